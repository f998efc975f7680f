package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/hearth-home/hearth"
)

// errUsage is returned for bad command lines; the usage is printed first.
var errUsage = errors.New("bad usage (see above)")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "passwd":
		return passwd(args[1:], stdin, stdout, stderr)
	case "token":
		return token(args[1:], stdout, stderr)
	case "backup":
		return backup(ctx, args[1:], stdout, stderr)
	case "version":
		return version(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" { // hearth help serve
			return run(ctx, []string{args[1], "-h"}, stdin, stdout, stderr)
		}
		printUsage(stdout)
		return nil
	}
	printUsage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hearth "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	configPath := fs.String("config", "config.yaml", "configuration file")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text (key=value) or json (one object a line)")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	// From here on SIGHUP reloads the config instead of ending hearth.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := hearth.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	// hearth's live heap is small, and a burst of messages makes much
	// short-lived garbage: collecting at 200 % growth instead of Go's
	// 100 % costs a few MB and saves about a tenth of the CPU. GOGC, when
	// set, decides (README: Performance).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	app, err := Start(cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hearth is running: open %s (MQTT: %s)\n", app.URL(), orOff(app.MQTTAddr()))
	for ctx.Err() == nil {
		select {
		case <-hup:
			_ = app.Reload(*configPath) // it logs what it did, or why not
		case <-ctx.Done():
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return app.Close(sctx)
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// newLogger is serve's logger: level and format as the flags say.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: %q: want text or json", format)
}

// passwd reads one line (twice, without echo, at a terminal) and prints
// its bcrypt hash as the last line.
func passwd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("passwd", stderr)
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return errors.New("the passwords differ")
		}
		pw = string(a)
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	switch {
	case pw == "":
		return errors.New("empty password")
	case len(pw) > 72:
		return errors.New("password longer than 72 bytes (bcrypt's limit)")
	case pw == hearth.SamplePassword:
		fmt.Fprintln(stderr, "warning: that is the sample password; hearth refuses it on a non-loopback address")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	fmt.Fprintln(stdout, string(h))
	return nil
}

// token prints a token for a device or a script.
func token(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	configPath := fs.String("config", "config.yaml", "configuration file")
	user := fs.String("user", "", "user the token is for")
	ttl := hearth.Duration(720 * time.Hour)
	fs.Var(&ttl, "ttl", "how long the token is valid (e.g. 720h, 30d)")
	if help, err := parseFlags(fs, args, stdout); help || err != nil {
		return err
	}
	if *user == "" {
		return errors.New("-user is required")
	}
	if ttl.D() <= 0 || ttl.D() > hearth.MaxTokenTTL {
		return fmt.Errorf("-ttl must be more than 0 and at most %s", hearth.MaxTokenTTL)
	}
	cfg, err := hearth.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	if _, ok := cfg.User(*user); !ok {
		return fmt.Errorf("unknown user %q", *user)
	}
	a, err := newAuthenticator(cfg)
	if err != nil {
		return err
	}
	tok, _, err := a.Issue(*user, ttl.D())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// newAuthenticator loads (or makes) the token secret and builds the
// authenticator; serve and token must agree on the secret.
func newAuthenticator(cfg hearth.Config) (*hearth.Authenticator, error) {
	path := cfg.Auth.TokenSecretFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, "token.secret")
	}
	secret, err := hearth.LoadOrCreateSecret(path)
	if err != nil {
		return nil, err
	}
	return hearth.NewAuthenticator(cfg.Users, secret)
}
