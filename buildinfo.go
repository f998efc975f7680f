package hearth

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// BuildInfo says which hearth this is.
type BuildInfo struct {
	Version   string // a release tag such as v0.4.0, or Go's pseudo-version of the commit
	Commit    string // the VCS revision, "" when unknown; ends in "+dirty" for modified sources
	Date      string // the commit time (RFC 3339), "" when unknown
	GoVersion string
}

// version, commit and date may be set at link time (make release):
//
//	-ldflags "-X github.com/hearth-home/hearth.version=v0.4.0"
//
// Anything left empty comes from the build info Go records.
var version, commit, date string

var build = sync.OnceValue(func() BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "(devel)"
		}
		return b
	}
	if b.Version == "" {
		b.Version = info.Main.Version
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.time":
			if b.Date == "" {
				b.Date = s.Value
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && commit == "" && b.Commit != "" {
		b.Commit += "+dirty"
	}
	return b
})

// Build returns what the binary knows of its own build.
func Build() BuildInfo { return build() }
