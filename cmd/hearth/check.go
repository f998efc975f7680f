package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hearth-home/hearth"
)

// check loads and validates a config file and prints every problem in
// it, one a line on stderr, or a summary on stdout when there is none.
func check(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	configPath := fs.String("config", "config.yaml", "configuration file")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	cfg, err := hearth.LoadConfig(*configPath)
	problems := hearth.Problems(err)
	if err == nil {
		problems = checkFiles(cfg)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "%s: %v\n", *configPath, p)
		}
		return fmt.Errorf("%s: %s", *configPath, count(len(problems), "problem"))
	}
	fmt.Fprintf(stdout, "%s: ok (%s, %s)\n", *configPath, count(len(cfg.Users), "user"), count(len(cfg.Rooms), "room"))
	return nil
}

// count is "1 room" or "n rooms".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// checkFiles checks what serve reads besides the config: the TLS
// certificate and key, and the token secret if it exists already (serve
// creates a missing one).
func checkFiles(cfg hearth.Config) []error {
	var errs []error
	if t := cfg.MQTT.TLS; t.Addr != "" {
		if _, err := loadCertificate("mqtt.tls", hearth.CertFiles{CertFile: t.CertFile, KeyFile: t.KeyFile}); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.HTTP.TLS.CertFile != "" {
		if _, err := loadCertificate("http.tls", cfg.HTTP.TLS); err != nil {
			errs = append(errs, err)
		}
	}
	key, path := "auth.token_secret_file", cfg.Auth.TokenSecretFile
	if path == "" {
		key, path = "data_dir", filepath.Join(cfg.DataDir, "token.secret")
	}
	if b, err := os.ReadFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, &hearth.ConfigError{Key: key, Err: fmt.Errorf("token secret: %w", err)})
	} else if err == nil && len(b) < 32 {
		errs = append(errs, &hearth.ConfigError{Key: key, Err: fmt.Errorf("token secret %s: want at least 32 bytes, have %d", path, len(b))})
	}
	return errs
}
