package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildAndRunVersion builds hearth with extra go build flags and returns
// what its "hearth version" prints.
func buildAndRunVersion(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hearth")
	args := append(append([]string{"build", "-o", bin}, flags...), ".")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("hearth version: %v\n%s", err, out)
	}
	return string(out)
}

// field returns the value of the line of "hearth version" that starts
// with key.
func field(t *testing.T, out, key string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in:\n%s", key, out)
	return ""
}

func TestVersionFromLinker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hearth")
	}
	out := buildAndRunVersion(t, "-ldflags", "-X github.com/hearth-home/hearth.version=v9.9.9 -X github.com/hearth-home/hearth.commit=abc123 -X github.com/hearth-home/hearth.date=2026-01-02T03:04:05Z")
	for key, want := range map[string]string{"hearth": "v9.9.9", "commit": "abc123", "date": "2026-01-02T03:04:05Z"} {
		if got := field(t, out, key); got != want {
			t.Errorf("%s: got %q, want %q\n%s", key, got, want, out)
		}
	}
	if got := field(t, out, "go"); !strings.HasPrefix(got, "go1.") {
		t.Errorf("go: got %q, want go1.x os/arch", got)
	}
}

// A plain go build in a git checkout knows its commit, its time and a
// pseudo-version from Go's build info. Go stamps only a checkout whose .git
// is a directory (not a linked worktree), so the test commits a copy of the
// module into a fresh repository and builds there, with -buildvcs forced on
// over any GOFLAGS of the machine.
func TestVersionFromGit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hearth")
	}
	dir := gitCopyOfModule(t)
	bin := filepath.Join(t.TempDir(), "hearth")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hearth")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("hearth version: %v\n%s", err, out)
	}
	head := git(t, dir, "rev-parse", "HEAD")
	if got := field(t, string(out), "commit"); got != head {
		t.Errorf("commit: got %q, want %q (git rev-parse HEAD)\n%s", got, head, out)
	}
	if got, want := field(t, string(out), "date"), git(t, dir, "log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ"); got != want {
		t.Errorf("date: got %q, want the commit time %q\n%s", got, want, out)
	}
	if v := field(t, string(out), "hearth"); !strings.Contains(v, head[:12]) {
		t.Errorf("version: got %q, want a pseudo-version of commit %s\n%s", v, head[:12], out)
	}
}

// gitCopyOfModule copies the module's files (tracked and untracked, not
// ignored, plus the built web chat) into a new git repository with one
// commit, and returns its directory.
func gitCopyOfModule(t *testing.T) string {
	t.Helper()
	root := git(t, ".", "rev-parse", "--show-toplevel")
	files := strings.Split(git(t, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"), "\x00")
	dist, err := filepath.Glob(filepath.Join(root, "webclient", "dist", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dist {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	dir := t.TempDir()
	for _, f := range files {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=hearth", "-c", "user.email=hearth@example.invalid", "commit", "-q", "-m", "copy")
	return dir
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func TestVersionRefusesArguments(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"version", "extra"}, strings.NewReader(""), &out, &errOut); err == nil {
		t.Fatalf("hearth version extra: no error; printed %q", out.String())
	}
}
