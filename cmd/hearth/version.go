package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/hearth-home/hearth"
)

// version prints which hearth this is: the version (a release tag, or Go's
// pseudo-version of the commit), the commit, its date and the Go toolchain.
func version(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	b := hearth.Build()
	fmt.Fprintf(stdout, "hearth %s\ncommit %s\ndate   %s\ngo     %s %s/%s\n",
		b.Version, orUnknown(b.Commit), orUnknown(b.Date), b.GoVersion, runtime.GOOS, runtime.GOARCH)
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
