package push

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysFile: made once (mode 0600), the same on the next start, and a
// broken file is an error that names it.
func TestKeysFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vapid.json")
	k1, err := LoadOrCreateKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("vapid.json: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	k2, err := LoadOrCreateKeys(path)
	if err != nil || k2 != k1 {
		t.Fatalf("second load: %v, keys %v, want %v", err, k2, k1)
	}
	other, _ := NewKeys()
	for name, content := range map[string]string{
		"not json":          "{",
		"not base64":        `{"public_key":"x","private_key":"!!"}`,
		"not the pair":      `{"public_key":"` + other.Public + `","private_key":"` + k1.Private + `"}`,
		"private too short": `{"public_key":"` + k1.Public + `","private_key":"AAAA"}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKeys(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming %s", name, err, path)
		}
	}
}
