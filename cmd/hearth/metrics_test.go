package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/broker"
	"github.com/hearth-home/hearth/internal/mqtttest"
)

// scrape GETs url with an optional bearer token and parses the answer.
func scrape(t *testing.T, url, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not the Prometheus text format: %v", url, err)
	}
	return resp.StatusCode, fams
}

// value is the value of the series of family name whose labels include
// labels ("k=v" each); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !slices.ContainsFunc(m.Label, func(p *dto.LabelPair) bool { return p.GetName() == k && p.GetValue() == v }) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// forgedToken has a token's shape and a signature of no one's key: it is
// refused without a bcrypt comparison, and the login limit does not count it.
const forgedToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJraWQifQ.c2lnbmF0dXJlLW5vdC12YWxpZC1hdC1hbGw"

// TestMetrics: GET /metrics on the HTTP port answers admins only (401
// without a token, 403 for a member's), metrics.addr answers without a
// token and serves nothing else; both carry the families the README
// lists, every refusal reason from the start, each bad CONNECT counted,
// and the three histograms observed. No label names a room or a user.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	yaml := strings.Replace(mqtttest.ConfigYAML(filepath.Join(dir, "data"), testUsers), "\nusers:", "\nmetrics: {addr: \"127.0.0.1:0\"}\nusers:", 1)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := hearth.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	app := startApp(t, cfg)
	url := "http://" + app.HTTPAddr() + "/metrics"

	if code, _ := scrape(t, url, ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d, want 401", code)
	}
	if code, _ := scrape(t, url, "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a forged token: %d, want 401", code)
	}
	if code, _ := scrape(t, url, login(t, app, "dad")); code != http.StatusForbidden {
		t.Errorf("GET /metrics as a member: %d, want 403", code)
	}
	// A scraper's token, as the README says to make one.
	var out strings.Builder
	if err := token([]string{"-config", path, "-user", "mum", "-ttl", "8760h"}, &out, io.Discard); err != nil {
		t.Fatalf("hearth token: %v", err)
	}
	admin := strings.TrimSpace(out.String())
	code, fams := scrape(t, url, admin)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics as an admin: %d, want 200", code)
	}
	for _, r := range broker.Reasons() {
		if v := value(fams, "hearth_mqtt_refused_total", "reason="+r.String()); v != 0 {
			t.Errorf("hearth_mqtt_refused_total{reason=%q} at start: %v, want 0", r, v)
		}
	}
	b := hearth.Build()
	if v := value(fams, "hearth_build_info", "version="+b.Version, "commit="+b.Commit, "goversion="+b.GoVersion); v != 1 {
		t.Errorf("hearth_build_info{version=%q, commit=%q, goversion=%q}: %v, want 1", b.Version, b.Commit, b.GoVersion, v)
	}

	// Some work: bad CONNECTs, a message delivered and archived.
	const bad = 25
	for range bad {
		if _, ca, err := dial(t, app.MQTTAddr(), "kid", connectOpts{password: forgedToken}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
			t.Fatalf("bad CONNECT: %v %+v", err, ca)
		}
	}
	dad := mustDial(t, app.MQTTAddr(), "dad", connectOpts{})
	dad.subscribe(hearth.RoomMessagesFilter("family"))
	kid := mustDial(t, app.MQTTAddr(), "kid", connectOpts{})
	if rc := kid.publish(hearth.MessageTopic("family", "kid"), 1, false, msg("m1", "hello")); rc != 0 {
		t.Fatalf("publish: %#x", rc)
	}
	<-dad.recv
	waitFor(t, "the message archived", 5*time.Second, func() bool { return app.bridge.Stats.Archived.Load() == 1 })

	// metrics.addr: the same without a token, and nothing else.
	local := "http://" + app.MetricsAddr()
	code, fams = scrape(t, local+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics on metrics.addr: %d, want 200", code)
	}
	for _, path := range []string{"/", "/api/rooms", "/healthz"} {
		if code := httpDo(t, "GET", local+path, admin, "", nil); code != http.StatusNotFound {
			t.Errorf("GET %s on metrics.addr: %d, want 404", path, code)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"hearth_mqtt_refused_total", []string{"reason=bad_credentials"}, bad},
		{"hearth_mqtt_clients_connected", nil, 2},
		{"hearth_mqtt_messages_received_total", nil, 1},
		{"hearth_archive_messages_total", nil, 1},
		{"hearth_mqtt_delivery_seconds", nil, 2}, // dad's, and the bridge's
		{"hearth_archive_commit_seconds", nil, 1},
		{"hearth_http_request_duration_seconds", []string{"route=POST /api/login", "status=2xx"}, 1},
		{"hearth_http_request_duration_seconds", []string{"route=GET /metrics", "status=4xx"}, 3},
		{"hearth_ready", nil, 1},
		{"go_goroutines", nil, 1},
		{"go_memstats_heap_inuse_bytes", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
		{"hearth_session_writes_pending", nil, 0},
	} {
		if v := value(fams, c.name, c.labels...); v < c.min {
			t.Errorf("%s%v: %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	if v := value(fams, "hearth_mqtt_refused_total", "reason=bad_credentials"); v != bad {
		t.Errorf("bad CONNECTs counted %v, want %d", v, bad)
	}
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if n := l.GetName(); n == "room" || n == "user" || n == "topic" || n == "path" || strings.Contains(l.GetValue(), "family") {
					t.Errorf("%s has label %s=%q", name, n, l.GetValue())
				}
			}
		}
	}
}

// TestMetricsAddrConfig: metrics.addr is off by default and must be a
// loopback host:port, apart from the other listeners.
func TestMetricsAddrConfig(t *testing.T) {
	base := testConfig(t, t.TempDir())
	if base.Metrics.Addr != "" {
		t.Fatalf("metrics.addr defaults to %q, want off", base.Metrics.Addr)
	}
	for _, c := range []struct{ addr, err string }{
		{"", ""},
		{"127.0.0.1:9464", ""},
		{"[::1]:9464", ""},
		{"localhost:9464", ""},
		{"127.0.0.1:0", ""},
		{"0.0.0.0:9464", "metrics.addr: \"0.0.0.0:9464\": must be a loopback address"},
		{":9464", "must be a loopback address"},
		{"192.168.1.2:9464", "must be a loopback address"},
		{"127.0.0.1", "want host:port"},
		{"127.0.0.1:99999", "port must be a number"},
		{"127.0.0.1:8080", "is also http.addr"},
	} {
		cfg := base
		cfg.HTTP.Addr = "127.0.0.1:8080"
		cfg.Metrics.Addr = c.addr
		err := cfg.Validate()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("metrics.addr %q: %v, want no error", c.addr, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("metrics.addr %q: %v, want an error with %q", c.addr, err, c.err)
		}
	}
	cfg, err := hearth.ParseConfig(strings.NewReader(strings.Replace(mqtttest.ConfigYAML(t.TempDir(), testUsers), "\nusers:", "\nmetrics: {addr: \"10.0.0.1:9464\"}\nusers:", 1)))
	if err == nil || !strings.Contains(err.Error(), "metrics.addr") {
		t.Errorf("config.yaml with metrics.addr 10.0.0.1:9464: %v (%+v), want an error naming metrics.addr", err, cfg.Metrics)
	}
}
