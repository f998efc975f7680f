package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// TestHelp: -h and -help of every command, and of hearth itself, print
// the usage, the flags and an example to stdout, and succeed.
func TestHelp(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		flags []string // that the help must list
	}{
		{[]string{"-h"}, []string{"hearth serve", "hearth check", "hearth passwd", "hearth token", "hearth backup"}},
		{[]string{"-help"}, nil},
		{[]string{"help"}, nil},
		{[]string{"help", "check"}, []string{"-config"}},
		{[]string{"serve", "-h"}, []string{"-config", "-log-level", "-log-format", "SIGHUP"}},
		{[]string{"serve", "-help"}, []string{"-config"}},
		{[]string{"check", "-h"}, []string{"-config"}},
		{[]string{"passwd", "-h"}, nil},
		{[]string{"token", "-h"}, []string{"-config", "-user", "-ttl"}},
		{[]string{"backup", "-h"}, []string{"-config", "-o"}},
	} {
		var out, errb bytes.Buffer
		err := run(t.Context(), tt.args, nil, &out, &errb)
		if err != nil {
			t.Errorf("%v: %v, want no error", tt.args, err)
		}
		for _, want := range append(tt.flags, "Example", "Usage") {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v: stdout lacks %q:\n%s", tt.args, want, out.String())
			}
		}
		if errb.Len() > 0 {
			t.Errorf("%v: wrote to stderr: %s", tt.args, errb.String())
		}
	}
	// A bad flag or a stray argument is an error, with a short usage on stderr.
	for _, args := range [][]string{{"serve", "-nope"}, {"check", "extra"}, {"backup", "-o"}} {
		var out, errb bytes.Buffer
		err := run(t.Context(), args, nil, &out, &errb)
		if err == nil || !strings.Contains(errb.String(), "usage: hearth "+args[0]) || out.Len() > 0 {
			t.Errorf("%v: error %v, stderr %q, stdout %q", args, err, errb.String(), out.String())
		}
	}
}

// TestCheck: hearth check reports every problem of a config, each with
// its key, and a summary when there is none.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	good := mqtttest.ConfigYAML(filepath.Join(dir, "data"), testUsers)
	os.WriteFile(path, []byte(good), 0o600)
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"check", "-config", path}, nil, &out, &errb); err != nil {
		t.Fatalf("check of a good config: %v (%s)", err, errb.String())
	}
	if want := path + ": ok (4 users, 2 rooms)\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}

	for _, tt := range []struct {
		name, text string
		want       []string // one a line, in order
	}{
		{"several", strings.NewReplacer(
			"data_dir:", "colour: blue\nsize: 3\ndata_dir:",
			`{name: dad, role: member, password_hash: "`, `{name: dad, role: member, password_hash: "x`,
			"readers: [kitchen]", "readers: [kitchen, x]",
			"members: [mum, dad]", "members: [mum, dad]}\n  - {name: attic, members: [nan]",
			`"127.0.0.1:0", publish_rate: 0,`, `"0.0.0.0:0", publish_rate: -2,`,
		).Replace(good), []string{
			"colour: unknown key (line 1)",
			"size: unknown key (line 2)",
			"mqtt.publish_rate: must be 0",
			"users[1].password_hash: not a bcrypt hash",
			`rooms[0].readers[1]: unknown user "x"`,
			`rooms[2].members[0]: unknown user "nan"`,
		}},
		{"yaml syntax", "http: {addr: \n", []string{"yaml: line"}},
		{"sample password off loopback", "data_dir: data\nhttp: {addr: \"0.0.0.0:8080\"}\nusers:\n  - {name: mum, password_hash: \"" + sampleHash(t) + "\"}\nrooms: [{name: family, members: [\"*\"]}]\n",
			[]string{"users[0].password_hash: mum still has the sample password and http.addr 0.0.0.0:8080 is not loopback"}},
		{"missing tls files", strings.Replace(good, "mqtt: {", `mqtt: {tls: {addr: "127.0.0.1:0", cert_file: nope.pem, key_file: nope.key}, `, 1),
			[]string{"mqtt.tls.cert_file: open " + filepath.Join(dir, "nope.pem")}},
		{"missing https files", strings.Replace(good, "http: {", `http: {tls: {cert_file: nope.pem, key_file: nope.key}, `, 1),
			[]string{"http.tls.cert_file: open " + filepath.Join(dir, "nope.pem")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(path, []byte(tt.text), 0o600)
			var out, errb bytes.Buffer
			err := run(t.Context(), []string{"check", "-config", path}, nil, &out, &errb)
			if err == nil || out.Len() > 0 {
				t.Fatalf("check: %v, stdout %q; want an error and nothing on stdout", err, out.String())
			}
			lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tt.want), errb.String())
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], path+": ") || !strings.Contains(lines[i], w) {
					t.Errorf("line %d = %q, want %q after the path", i, lines[i], w)
				}
			}
		})
	}
	if err := run(t.Context(), []string{"check", "-config", filepath.Join(dir, "missing.yaml")}, nil, &out, &errb); err == nil {
		t.Error("check of a missing file: no error")
	}
}

// sampleHash is a bcrypt hash of the sample password.
func sampleHash(t *testing.T) string { return bcryptHash(t, "hearth-sample") }

// TestServeLogFormatJSON: -log-format json writes one JSON object a line,
// each with a time, a level and a message.
func TestServeLogFormatJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	os.WriteFile(path, []byte(mqtttest.ConfigYAML(filepath.Join(dir, "data"), testUsers)), 0o600)
	ctx, cancel := context.WithCancel(t.Context())
	var out, logs mqtttest.SafeBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-config", path, "-log-format", "json"}, nil, &out, &logs) }()
	waitFor(t, "hearth listening", 10*time.Second, func() bool { return strings.Contains(logs.String(), "hearth listening") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	for _, l := range lines {
		var v struct {
			Time  time.Time `json:"time"`
			Level string    `json:"level"`
			Msg   string    `json:"msg"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Level == "" || v.Msg == "" || v.Time.IsZero() {
			t.Errorf("log line %q: %v, want JSON with time, level and msg", l, err)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"shutting down"`) {
		t.Errorf("no shutdown line:\n%s", logs.String())
	}
	var errb bytes.Buffer
	if err := run(t.Context(), []string{"serve", "-config", path, "-log-format", "xml"}, nil, &bytes.Buffer{}, &errb); err == nil || !strings.Contains(err.Error(), "-log-format") {
		t.Errorf("-log-format xml: %v", err)
	}
}

// TestSIGHUP: the built binary reloads its config on a real SIGHUP, goes
// on serving, and logs what it did; hearth check exits 0 and 1.
func TestSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	dir := t.TempDir()
	bin := buildHearth(t, dir)
	path := filepath.Join(dir, "config.yaml")
	base := testConfig(t, filepath.Join(dir, "data"))
	rc := reloadConfig{dir: base.DataDir, http: freePort(t), mqtt: freePort(t), users: base.Users, rooms: []string{`{name: family, members: ["*"]}`}}
	rc.write(t, path)

	if out, err := exec.Command(bin, "check", "-config", path).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok (4 users, 1 room)") {
		t.Errorf("hearth check of a good config: %v\n%s", err, out)
	}

	var logs mqtttest.SafeBuffer
	cmd := exec.Command(bin, "serve", "-config", path, "-log-format", "json")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() })
	waitFor(t, "hearth listening", 20*time.Second, func() bool { return strings.Contains(logs.String(), "hearth listening") })

	rc.users = withUser(base.Users, "kid", hearth.User{Name: "nan", Role: hearth.RoleMember, PasswordHash: bcryptHash(t, password("nan"))})
	rc.write(t, path)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload's log line", 10*time.Second, func() bool { return strings.Contains(logs.String(), `"msg":"config reloaded"`) })
	if !strings.Contains(logs.String(), `"users_added":["nan"]`) || !strings.Contains(logs.String(), `"users_removed":["kid"]`) {
		t.Errorf("reload line: %s", logs.String())
	}
	var r struct{ Token string }
	if code := httpDo(t, "POST", "http://"+rc.http+"/api/login", "", `{"username":"nan","password":"`+password("nan")+`"}`, &r); code != 200 {
		t.Errorf("nan's login after SIGHUP: %d", code)
	}

	// A broken edit: check says so (exit status 1), and SIGHUP keeps the running config.
	os.WriteFile(path, []byte("users: [{name: Nan}]\nrooms: []\ncolour: red\n"), 0o600)
	c := exec.Command(bin, "check", "-config", path)
	out, err := c.CombinedOutput()
	if c.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "colour: unknown key") || !strings.Contains(string(out), "rooms: at least one room") {
		t.Errorf("hearth check of a bad config: %v, exit %d\n%s", err, c.ProcessState.ExitCode(), out)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refusal", 10*time.Second, func() bool { return strings.Contains(logs.String(), "config reload refused") })
	if code := httpDo(t, "POST", "http://"+rc.http+"/api/login", "", `{"username":"nan","password":"`+password("nan")+`"}`, &r); code != 200 {
		t.Errorf("nan's login after a refused reload: %d", code)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("hearth serve after SIGTERM: %v", err)
	}
}
