package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/history"
)

// writeConfig writes cfg's essentials as a config file for the commands.
func writeConfig(t *testing.T, cfg hearth.Config) string {
	t.Helper()
	var y strings.Builder
	fmt.Fprintf(&y, "data_dir: %q\nhttp: {addr: %q}\nmqtt: {addr: \"\"}\nusers:\n", cfg.DataDir, cfg.HTTP.Addr)
	for _, u := range cfg.Users {
		fmt.Fprintf(&y, "  - {name: %s, role: %s, password_hash: %q}\n", u.Name, u.Role, u.PasswordHash)
	}
	y.WriteString("rooms:\n  - {name: family, members: [\"*\"]}\n  - {name: parents, members: [mum, dad]}\n")
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBackupAndRestore: hearth backup copies the history from a running
// hearth and from a stopped one; hearth started on the copy serves the
// same history and goes on from the same seq.
func TestBackupAndRestore(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.HTTP.Addr = freePort(t)
	app := startApp(t, cfg)
	var msgs []hearth.Message
	for i := range 500 {
		msgs = append(msgs, hearth.Message{ID: fmt.Sprint("b", i), Room: "family", From: "kid", Text: fmt.Sprint("message ", i), At: int64(i + 1)})
	}
	if _, err := app.store.Append(msgs); err != nil {
		t.Fatal(err)
	}
	conf := writeConfig(t, cfg)
	out := filepath.Join(t.TempDir(), "backup.db")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"backup", "-config", conf, "-o", out}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("backup while running: %v (%s)", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "running server") {
		t.Errorf("backup while running said %q", stdout.String())
	}
	// Non-admins may not take one.
	if code := api(t, app, "GET", "/api/backup", login(t, app, "dad"), nil, nil); code != 403 {
		t.Errorf("backup as a member: %d, want 403", code)
	}
	want := readHistory(t, app, "kid", "family", "?limit=200")
	app.Close(t.Context())

	out2 := filepath.Join(t.TempDir(), "backup2.db")
	stdout.Reset()
	if err := run(t.Context(), []string{"backup", "-config", conf, "-o", out2}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("backup while stopped: %v", err)
	}
	if !strings.Contains(stdout.String(), "not running") {
		t.Errorf("backup while stopped said %q", stdout.String())
	}

	// Restore: a new data dir whose history.db is the copy.
	dir := t.TempDir()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "history.db"), b, 0o600)
	restored := startApp(t, testConfig(t, dir))
	got := readHistory(t, restored, "kid", "family", "?limit=200")
	if len(got.Messages) != 200 || got.Messages[199].Seq != 500 || got.Messages[0].Text != want.Messages[0].Text {
		t.Fatalf("restored history differs: %d messages, last seq %d", len(got.Messages), got.Messages[len(got.Messages)-1].Seq)
	}
	res, err := restored.store.Append([]hearth.Message{{ID: "after", Room: "family", From: "kid", Text: "x"}})
	if err != nil || res[0].Seq != 501 {
		t.Fatalf("after restore: seq %v %v, want 501", res, err)
	}
	s, err := history.Open(out2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if last, _ := s.LastSeq("family"); last != 500 {
		t.Fatalf("the copy taken while stopped has last seq %d, want 500", last)
	}
}
