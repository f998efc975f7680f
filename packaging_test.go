package hearth

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The configuration the .deb installs is valid as shipped: loopback only,
// its data in the service's StateDirectory.
func TestPackagedConfig(t *testing.T) {
	c, err := LoadConfig("packaging/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/hearth" {
		t.Errorf("data_dir = %q, want /var/lib/hearth (StateDirectory=hearth in packaging/hearth.service)", c.DataDir)
	}
	for key, addr := range map[string]string{"http.addr": c.HTTP.Addr, "mqtt.addr": c.MQTT.Addr} {
		if !IsLoopbackAddr(addr) {
			t.Errorf("%s = %q, want loopback: the sample password is refused elsewhere", key, addr)
		}
	}
	unit, err := os.ReadFile("packaging/hearth.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nStateDirectory=hearth\n") || !strings.Contains(string(unit), " -config /etc/hearth/config.yaml\n") {
		t.Errorf("hearth.service does not run on /etc/hearth/config.yaml with StateDirectory=hearth:\n%s", unit)
	}
}

// The container's configuration listens on every interface and keeps its
// data on the volume /data. As shipped it is refused for its sample
// passwords, and for nothing else: with real hashes it is valid.
func TestContainerConfig(t *testing.T) {
	text, err := os.ReadFile("packaging/container/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseConfig(strings.NewReader(string(text)))
	if err == nil {
		t.Fatal("valid with the sample passwords on 0.0.0.0, want it refused")
	}
	var problems []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		problems = j.Unwrap()
	} else {
		problems = []error{err}
	}
	for _, p := range problems {
		var ce *ConfigError
		if !errors.As(p, &ce) || !strings.Contains(ce.Error(), "still has the sample password") {
			t.Errorf("problem other than a sample password: %v", p)
		}
	}

	sample := regexp.MustCompile(`"\$2a\$10\$[^"]+"`)
	if len(problems) != len(sample.FindAll(text, -1)) {
		t.Errorf("%d problems for %d sample hashes: %v", len(problems), len(sample.FindAll(text, -1)), err)
	}
	real := sample.ReplaceAllLiteral(text, []byte(`"`+testHashes()["secret-mum"]+`"`))
	c, err := ParseConfig(strings.NewReader(string(real)))
	if err != nil {
		t.Fatalf("with real password hashes: %v", err)
	}
	if c.DataDir != "/data" {
		t.Errorf("data_dir = %q, want /data (VOLUME in the Containerfile)", c.DataDir)
	}
	for key, addr := range map[string]string{"http.addr": c.HTTP.Addr, "mqtt.addr": c.MQTT.Addr} {
		if IsLoopbackAddr(addr) {
			t.Errorf("%s = %q: loopback inside a container is not reachable through its ports", key, addr)
		}
	}
}
