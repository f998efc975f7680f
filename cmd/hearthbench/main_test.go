package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSmoke runs the whole bench with tiny sizes, so that `make bench`
// cannot rot: both brokers, every workload, nothing lost or doubled, and
// every row of the table has figures.
func TestSmoke(t *testing.T) {
	for _, tool := range []string{"mosquitto", "mosquitto_pub", "mosquitto_sub", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", tool, err)
		}
	}
	bin := filepath.Join(t.TempDir(), "hearth")
	if out, err := exec.Command("go", "build", "-o", bin, "../hearth").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	var out strings.Builder
	err := run(t.Context(), []string{"-hearth", bin, "-mqttjs", "../../webclient/node_modules/mqtt", "-rounds", "2",
		"-publishers", "3", "-messages", "100", "-latency-for", "300ms", "-idle", "20", "-per-node", "10",
		"-history", "500", "-pages", "20"}, &out)
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"delivered", "archived", "p50", "p99", "RSS each", "to all 20", "start to ready", "history page"} {
		re := regexp.MustCompile(`(?m)^\| [^|]*` + regexp.QuoteMeta(row) + `[^|]*\| [0-9.]+ \([0-9.]+–[0-9.]+\) [a-zA-Z/]+ \|`)
		if !re.MatchString(out.String()) {
			t.Errorf("no figures for %q", row)
		}
	}
	if !strings.Contains(out.String(), "lost or doubled: hearth 0, mosquitto 0") {
		t.Error("the table does not say that nothing was lost")
	}
}
