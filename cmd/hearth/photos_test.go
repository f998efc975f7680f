package main

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
)

func grayJPEG(t *testing.T, w int) string {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, w, 16)), nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBackupAttachments: hearth backup copies the photos beside the
// history, only the new ones when run again; hearth started on both
// serves them.
func TestBackupAttachments(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.HTTP.Addr = freePort(t)
	app := startApp(t, cfg)
	tok := login(t, app, "dad")
	upload := func(w int) string {
		var att struct{ ID string }
		if code := httpDo(t, "POST", "http://"+app.HTTPAddr()+"/api/rooms/family/attachments", tok, grayJPEG(t, w), &att); code != 201 {
			t.Fatalf("upload: %d", code)
		}
		return att.ID
	}
	sent := upload(20)
	if _, err := app.store.Append([]hearth.Message{{ID: "b1", Room: "family", From: "dad", Text: "look", Attachments: []string{sent}}}); err != nil {
		t.Fatal(err)
	}
	conf := writeConfig(t, cfg)
	out := filepath.Join(t.TempDir(), "backup.db")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"backup", "-config", conf, "-o", out}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("backup: %v (%s)", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "(1 new, 0 already there)") {
		t.Errorf("backup said %q", stdout.String())
	}
	for _, name := range []string{sent, sent + "-thumb"} {
		want, _ := os.ReadFile(filepath.Join(cfg.DataDir, "attachments", sent[:2], name))
		got, err := os.ReadFile(filepath.Join(out+".attachments", sent[:2], name))
		if err != nil || !bytes.Equal(got, want) || len(want) == 0 {
			t.Errorf("backup of %s: %v", name, err)
		}
	}
	second := upload(21)
	stdout.Reset()
	if err := run(t.Context(), []string{"backup", "-config", conf, "-o", out}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("second backup: %v", err)
	}
	if !strings.Contains(stdout.String(), "(1 new, 1 already there)") {
		t.Errorf("second backup said %q", stdout.String())
	}
	app.Close(t.Context())

	// Restore: history.db and attachments/ from the backup.
	dir := t.TempDir()
	b, _ := os.ReadFile(out)
	os.WriteFile(filepath.Join(dir, "history.db"), b, 0o600)
	if err := os.Rename(out+".attachments", filepath.Join(dir, "attachments")); err != nil {
		t.Fatal(err)
	}
	restored := startApp(t, testConfig(t, dir))
	kid := login(t, restored, "kid")
	if code := httpDo(t, "GET", "http://"+restored.HTTPAddr()+"/api/attachments/"+sent+"/thumb", kid, "", nil); code != 200 {
		t.Errorf("restored photo as kid: %d", code)
	}
	if code := httpDo(t, "GET", "http://"+restored.HTTPAddr()+"/api/attachments/"+second, login(t, restored, "dad"), "", nil); code != 200 {
		t.Errorf("restored unsent photo as its uploader: %d", code)
	}
}

// TestRetentionSweepsPhotos: the retention loop prunes the message that
// referred to a photo, and the photo's files go after that commit.
func TestRetentionSweepsPhotos(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	for i := range cfg.Rooms {
		if cfg.Rooms[i].Name == "family" {
			cfg.Rooms[i].Retention.MaxMessages = 1
		}
	}
	app := startApp(t, cfg)
	tok := login(t, app, "dad")
	var att struct{ ID string }
	if code := httpDo(t, "POST", "http://"+app.HTTPAddr()+"/api/rooms/family/attachments", tok, grayJPEG(t, 30), &att); code != 201 {
		t.Fatalf("upload: %d", code)
	}
	if _, err := app.store.Append([]hearth.Message{{ID: "g1", Room: "family", From: "dad", Attachments: []string{att.ID}}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(cfg.DataDir, "attachments", att.ID[:2], att.ID)
	app.reloadMu.Lock()
	app.retentionEvery = 20 * time.Millisecond
	app.startRetention(cfg.Rooms)
	app.reloadMu.Unlock()
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the photo went while its message is kept: %v", err)
	}
	// A newer message: retention (max_messages 1) prunes the photo's.
	if _, err := app.store.Append([]hearth.Message{{ID: "g2", Room: "family", From: "dad", Text: "newer"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the photo's files to go", 5*time.Second, func() bool {
		_, e1 := os.Stat(file)
		_, e2 := os.Stat(file + "-thumb")
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	})
	if code := httpDo(t, "GET", "http://"+app.HTTPAddr()+"/api/attachments/"+att.ID, tok, "", nil); code != 404 {
		t.Errorf("swept photo as its uploader: %d, want 404", code)
	}
}
