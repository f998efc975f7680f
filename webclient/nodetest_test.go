package webclient

import (
	"os/exec"
	"strings"
	"testing"

	mt "github.com/hearth-home/hearth/internal/mqtttest"
)

// TestNodeUnitTests runs the page's JavaScript unit tests (test/*.test.mjs,
// node's own test runner) on the sources in src/.
func TestNodeUnitTests(t *testing.T) {
	node := mt.NeedTool(t, "node", "nodejs")
	out, err := exec.Command(node, "--test", "test/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test did not report its results:\n%s", out)
	}
	t.Logf("%s", out)
}
