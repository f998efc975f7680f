package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// commandHelp is what -h prints for each command, in the order of the
// top-level help.
var commandHelp = []struct {
	name     string
	synopsis string // after "hearth "
	about    string
	examples []string
}{
	{"serve", "serve [-config config.yaml] [-log-level info] [-log-format text]",
		"Run the broker, the archive, the API and the web chat until SIGINT or SIGTERM.\n" +
			"SIGHUP reads the config file again and applies users, rooms, acl rules and limits\n" +
			"without a restart (README: Operations).",
		[]string{"hearth serve -config /etc/hearth/config.yaml", "hearth serve -log-level debug -log-format json", "systemctl reload hearth    # or: kill -HUP $(pidof hearth)"}},
	{"check", "check [-config config.yaml]",
		"Load and validate the config file and report every problem in it, each with its key.\n" +
			"Exit status 0 and a short summary when it is fine, 1 when it is not.",
		[]string{"hearth check -config /etc/hearth/config.yaml", "hearth check -config new.yaml && sudo systemctl reload hearth"}},
	{"passwd", "passwd",
		"Read a password (one line on stdin, or twice at a terminal) and print its bcrypt hash\n" +
			"as the last line, for a user's password_hash.",
		[]string{"hearth passwd", "echo 'correct horse' | hearth passwd"}},
	{"token", "token -config FILE -user NAME [-ttl 720h]",
		"Print a token for a device or a script: an MQTT password, or an API Bearer token.",
		[]string{"hearth token -config config.yaml -user kitchen -ttl 30d"}},
	{"backup", "backup -config FILE -o FILE",
		"Write a consistent copy of the history to a file, while hearth runs or not.",
		[]string{"hearth backup -config /etc/hearth/config.yaml -o /var/backups/hearth-history.db"}},
	{"version", "version",
		"Print the version, the commit, its date and the Go toolchain this binary was built with.",
		[]string{"hearth version"}},
}

// printUsage prints the top-level help: every command and an example.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, "hearth: a self-hosted family chat\n\nUsage:\n")
	for _, c := range commandHelp {
		fmt.Fprintf(w, "  hearth %s\n", c.synopsis)
	}
	fmt.Fprintf(w, "\n'hearth COMMAND -h' prints a command's flags and examples.\n\nExample:\n  hearth passwd                      # make a password_hash for config.yaml\n  hearth check -config config.yaml\n  hearth serve -config config.yaml\n")
}

// parseFlags parses a command's flags. -h or -help prints the command's
// help to stdout and reports help, and the command does nothing more; a
// bad flag or a stray argument prints a short usage to the flag set's
// output (stderr) and is an error.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (help bool, err error) {
	out := fs.Output()
	fs.SetOutput(io.Discard) // flag would print its whole usage with every error
	err = fs.Parse(args)
	fs.SetOutput(out)
	name := strings.TrimPrefix(fs.Name(), "hearth ")
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(stdout, fs)
		return true, nil
	case err == nil && fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(out, "usage: hearth %s\n'hearth %s -h' prints the flags and examples.\n", synopsis(name), name)
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return false, nil
}

func synopsis(name string) string {
	for _, c := range commandHelp {
		if c.name == name {
			return c.synopsis
		}
	}
	return name
}

// printHelp prints a command's help: usage, what it does, its flags and
// examples.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	name := strings.TrimPrefix(fs.Name(), "hearth ")
	fmt.Fprintf(w, "Usage: hearth %s\n", synopsis(name))
	for _, c := range commandHelp {
		if c.name != name {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", c.about)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(w, "\nFlags:\n")
			out := fs.Output()
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(out)
		}
		fmt.Fprintf(w, "\nExample:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}
