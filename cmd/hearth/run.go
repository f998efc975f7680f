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
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/hearth-home/hearth"
)

const usage = `hearth: a self-hosted family chat

Usage:
  hearth serve [-config config.yaml] [-log-level info]   run the broker, archive, API and web chat
  hearth passwd                                           read a password, print its bcrypt hash
  hearth token -config FILE -user NAME [-ttl 720h]        print a token for a device or script
  hearth backup -config FILE -o FILE                      copy the history, while hearth runs or not
`

// errUsage is returned for bad command lines; the usage is printed first.
var errUsage = errors.New("bad usage (see above)")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
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
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
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
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	app, err := Start(cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hearth is running: open %s (MQTT: %s)\n", app.URL(), orOff(app.MQTTAddr()))
	<-ctx.Done()
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

// passwd reads one line (twice, without echo, at a terminal) and prints
// its bcrypt hash as the last line.
func passwd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("passwd", stderr)
	if err := fs.Parse(args); err != nil {
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
	if err := fs.Parse(args); err != nil {
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
