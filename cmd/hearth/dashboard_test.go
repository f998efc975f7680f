package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestDashboardQueriesExist: every query of docs/grafana-dashboard.json
// names only metrics a running hearth exports.
func TestDashboardQueriesExist(t *testing.T) {
	app := startApp(t, testConfig(t, t.TempDir()))
	// The histogram by route has no series before a request.
	if code := api(t, app, "GET", "/healthz", "", nil, nil); code != 200 {
		t.Fatalf("GET /healthz: %d", code)
	}
	got, err := app.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]dto.MetricType{}
	for _, f := range got {
		fams[f.GetName()] = f.GetType()
	}
	dash, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	exprs, missing, err := checkDashboard(dash, fams)
	if err != nil {
		t.Fatal(err)
	}
	if len(exprs) < 10 {
		t.Errorf("the dashboard has %d queries, want at least 10", len(exprs))
	}
	for _, m := range missing {
		t.Errorf("the dashboard queries %s, which hearth does not export", m)
	}

	// The check itself finds what is wrong.
	bad := `{"panels": [{"type": "row", "panels": [{"targets": [
		{"expr": "histogram_quantile(0.99, sum by (le, route) (rate(hearth_nope_seconds_bucket{route=~\"GET .*\"}[5m])))"},
		{"expr": "rate(hearth_mqtt_clients_connected_total[5m]) / on (instance) group_left hearth_ready"},
		{"expr": "hearth_mqtt_clients_connected_bucket"}]}]}]}`
	_, missing, err = checkDashboard([]byte(bad), fams)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"hearth_nope_seconds_bucket", "hearth_mqtt_clients_connected_total", "hearth_mqtt_clients_connected_bucket"}; !slices.Equal(missing, want) {
		t.Errorf("a dashboard with wrong names: missing %v, want %v", missing, want)
	}
}

// checkDashboard returns every PromQL expression of a Grafana dashboard's
// panels (rows' panels too), and the metric names they use that are not
// among fams. name_bucket, name_sum and name_count stand for a histogram
// (or summary) called name.
func checkDashboard(dashboard []byte, fams map[string]dto.MetricType) (exprs, missing []string, err error) {
	type panel struct {
		Targets []struct{ Expr string } `json:"targets"`
		Panels  json.RawMessage         `json:"panels"`
	}
	var walk func(raw json.RawMessage) error
	walk = func(raw json.RawMessage) error {
		if len(raw) == 0 {
			return nil
		}
		var ps []panel
		if err := json.Unmarshal(raw, &ps); err != nil {
			return fmt.Errorf("panels: %w", err)
		}
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					exprs = append(exprs, tg.Expr)
				}
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	var d struct{ Panels json.RawMessage }
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return nil, nil, fmt.Errorf("dashboard: %w", err)
	}
	if err := walk(d.Panels); err != nil {
		return nil, nil, err
	}
	for _, e := range exprs {
		for _, name := range metricNames(e) {
			if !exported(name, fams) && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	return exprs, missing, nil
}

func exported(name string, fams map[string]dto.MetricType) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if typ, found := fams[base]; ok && found && (typ == dto.MetricType_HISTOGRAM || suffix != "_bucket" && typ == dto.MetricType_SUMMARY) {
			return true
		}
	}
	return false
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGroupings = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`(?:^|[^A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)`)
	promKeywords  = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless", "inf", "nan"}
)

// metricNames returns the metric names of a PromQL expression: what is
// left once strings, label matchers, ranges and groupings are taken out,
// that is neither a function nor a keyword.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promGroupings.ReplaceAllString(e, " ")
	var names []string
	for _, m := range promIdent.FindAllStringSubmatchIndex(e, -1) {
		name := e[m[2]:m[3]]
		if strings.HasPrefix(strings.TrimLeft(e[m[3]:], " \t\n"), "(") || slices.Contains(promKeywords, strings.ToLower(name)) {
			continue // a function or aggregation, or a keyword
		}
		names = append(names, name)
	}
	return names
}
