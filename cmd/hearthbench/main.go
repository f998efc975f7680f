// Command hearthbench measures hearth against Debian's mosquitto, side by
// side, in alternating rounds, with the same independent clients:
// mosquitto_pub and mosquitto_sub for the chat burst and the live
// latency, MQTT.js under Node for the idle WebSocket clients. It prints
// each figure as the median over the rounds, its spread, and the ratio to
// mosquitto. `make bench` runs it; see the README's Performance section.
//
//	hearthbench -hearth bin/hearth -rounds 3
//
// It fails when any message was lost or doubled.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hearthbench:", err)
		os.Exit(1)
	}
}

type options struct {
	hearth, mosquitto, mqttJS string
	rounds                    int
	pubs, each                int
	rate                      int
	latencyFor                time.Duration
	idle, perProc             int
	historyFill, pages        int
	only                      map[string]bool
}

// workloads are the names -only takes.
var workloads = []string{"idle", "burst", "latency", "history"}

func (o options) does(w string) bool { return len(o.only) == 0 || o.only[w] }

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("hearthbench", flag.ContinueOnError)
	fs.StringVar(&o.hearth, "hearth", "bin/hearth", "the hearth binary")
	fs.StringVar(&o.mosquitto, "mosquitto", "mosquitto", "the mosquitto binary")
	fs.StringVar(&o.mqttJS, "mqttjs", "webclient/node_modules/mqtt", "the MQTT.js package directory")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every workload on both brokers, in alternating order")
	fs.IntVar(&o.pubs, "publishers", 10, "chat burst: mosquitto_pub processes")
	fs.IntVar(&o.each, "messages", 10000, "chat burst: messages each")
	fs.IntVar(&o.rate, "rate", 1000, "latency: messages a second")
	fs.DurationVar(&o.latencyFor, "latency-for", 5*time.Second, "latency: how long to publish")
	fs.IntVar(&o.idle, "idle", 2000, "idle MQTT.js WebSocket clients")
	fs.IntVar(&o.perProc, "per-node", 2500, "idle clients per Node process")
	fs.IntVar(&o.historyFill, "history", 1000000, "messages in hearth's room for the history pages")
	fs.IntVar(&o.pages, "pages", 2000, "history pages of 50 asked for over HTTP")
	only := fs.String("only", "", "run only these workloads (comma-separated: "+strings.Join(workloads, ",")+"); default all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			if !slices.Contains(workloads, w) {
				return fmt.Errorf("-only: no workload %q", w)
			}
			o.only[w] = true
		}
	}
	if o.rounds < 1 || o.pubs < 1 || o.each < 1 || o.rate < 1 || o.idle < 1 || o.perProc < 1 || o.historyFill < 100 || o.pages < 1 {
		return errors.New("-rounds, -publishers, -messages, -rate, -idle, -per-node and -pages must be at least 1, -history at least 100")
	}
	var tl tools
	var err error
	for _, t := range []struct {
		path *string
		name string
	}{{&tl.pub, "mosquitto_pub"}, {&tl.sub, "mosquitto_sub"}, {&tl.node, "node"}, {&o.mosquitto, o.mosquitto}, {&o.hearth, o.hearth}} {
		if *t.path, err = exec.LookPath(t.name); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	if tl.mqttJS, err = filepath.Abs(o.mqttJS); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(tl.mqttJS, "package.json")); err != nil {
		return fmt.Errorf("MQTT.js: %w (make web installs it)", err)
	}
	dir, err := os.MkdirTemp("", "hearthbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(out, "hearthbench: %d rounds; burst %d x %d; latency %d msg/s for %s; %d idle WebSocket clients; history of %d\n",
		o.rounds, o.pubs, o.each, o.rate, o.latencyFor, o.idle, o.historyFill)
	var h, m figures
	for round := range o.rounds {
		order := []string{"hearth", "mosquitto"}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			bdir := filepath.Join(dir, fmt.Sprintf("%s-%d", name, round))
			if err := os.Mkdir(bdir, 0o700); err != nil {
				return err
			}
			var b *broker
			f := &m
			if name == "hearth" {
				f = &h
				fill := o.historyFill
				if !o.does("history") {
					fill = 0
				}
				b, err = startHearth(ctx, o.hearth, bdir, fill)
			} else {
				b, err = startMosquitto(ctx, o.mosquitto, bdir)
			}
			if err != nil {
				return err
			}
			err = f.measure(ctx, tl, b, o, round)
			b.stop()
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, name, err)
			}
			fmt.Fprintf(out, "round %d %-9s %s\n", round+1, name, f.last())
		}
	}
	fmt.Fprintln(out)
	printTable(out, o, &h, &m)
	if lost := h.lost + m.lost; lost > 0 {
		return fmt.Errorf("%d messages lost or doubled (hearth %d, mosquitto %d)", lost, h.lost, m.lost)
	}
	return nil
}

// figures are one broker's results, one entry per round.
type figures struct {
	delivered, archived []float64
	burstCPU            []float64 // broker CPU ms per 1,000 messages
	p50, p99            []float64 // ms
	perClient           []float64 // KB
	reachAll            []float64 // ms
	start               []float64 // ms
	pageP50, pageP99    []float64 // ms
	lost                int       // lost or doubled, over every workload and round
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (f *figures) measure(ctx context.Context, tl tools, b *broker, o options, round int) error {
	tag := fmt.Sprintf("r%d-%d", round, time.Now().UnixNano())
	f.start = append(f.start, ms(b.start))
	// Idle clients first, on a fresh process: memory a burst left behind
	// would otherwise take them in.
	if o.does("idle") {
		ir, err := tl.idle(ctx, b, tag+"-idle", o.idle, o.perProc)
		if err != nil {
			return fmt.Errorf("idle clients: %w", err)
		}
		f.lost += ir.missed
		if ir.missed > 0 {
			return fmt.Errorf("idle clients: %d of %d did not get the message", ir.missed, ir.clients)
		}
		f.perClient = append(f.perClient, float64(ir.perClient)/1024)
		f.reachAll = append(f.reachAll, ms(ir.reachAll))
	}
	if o.does("burst") {
		br, err := tl.burst(ctx, b, tag+"-burst", o.pubs, o.each)
		if err != nil {
			return fmt.Errorf("chat burst: %w", err)
		}
		f.delivered = append(f.delivered, br.delivered)
		f.burstCPU = append(f.burstCPU, ms(br.cpu)*1000/float64(br.n))
		f.lost += br.lost + br.doubled + br.lostArch + br.dblArch
		if b.http != "" {
			f.archived = append(f.archived, br.archived)
		}
		if br.lost+br.doubled+br.lostArch+br.dblArch > 0 {
			return fmt.Errorf("chat burst: %d lost, %d doubled live; %d lost, %d doubled in the archive", br.lost, br.doubled, br.lostArch, br.dblArch)
		}
	}
	if o.does("latency") {
		lr, err := tl.latency(ctx, b, tag+"-lat", o.rate, o.latencyFor)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		f.lost += lr.lost + lr.doubled
		if lr.lost+lr.doubled > 0 {
			return fmt.Errorf("latency: %d of %d lost, %d doubled", lr.lost, lr.n, lr.doubled)
		}
		f.p50, f.p99 = append(f.p50, ms(lr.p50)), append(f.p99, ms(lr.p99))
	}
	if b.http != "" && o.does("history") {
		pr, err := pages(ctx, b, o.pages, o.historyFill)
		if err != nil {
			return err
		}
		f.pageP50, f.pageP99 = append(f.pageP50, ms(pr.p50)), append(f.pageP99, ms(pr.p99))
	}
	return nil
}

// last describes the latest round.
func (f *figures) last() string {
	at := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return v[len(v)-1]
	}
	s := fmt.Sprintf("burst %.0f msg/s, CPU %.0f ms/1000", at(f.delivered), at(f.burstCPU))
	if len(f.archived) > 0 {
		s += fmt.Sprintf(" (archived %.0f msg/s)", at(f.archived))
	}
	s += fmt.Sprintf("; latency p50 %.2f ms, p99 %.2f ms; idle %.1f KB/client, all reached in %.0f ms; start %.0f ms",
		at(f.p50), at(f.p99), at(f.perClient), at(f.reachAll), at(f.start))
	if len(f.pageP99) > 0 {
		s += fmt.Sprintf("; history page p50 %.2f ms, p99 %.2f ms", at(f.pageP50), at(f.pageP99))
	}
	return s
}

// stat is the median of v and its spread over the rounds.
func stat(v []float64, format string) (median float64, text string) {
	if len(v) == 0 {
		return 0, ""
	}
	s := slices.Clone(v)
	slices.Sort(s)
	median = s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	text = fmt.Sprintf(format, median)
	if len(s) > 1 {
		text += fmt.Sprintf(" ("+format+"–"+format+")", s[0], s[len(s)-1])
	}
	return median, text
}

func printTable(out io.Writer, o options, h, m *figures) {
	fmt.Fprintf(out, "Medians over %d rounds (spread: lowest–highest).\n\n", o.rounds)
	fmt.Fprintln(out, "| workload | hearth | mosquitto | ratio |")
	fmt.Fprintln(out, "|---|---|---|---|")
	row := func(what string, hv, mv []float64, format, unit string) {
		hm, ht := stat(hv, format)
		mm, mt := stat(mv, format)
		if ht == "" && mt == "" {
			return // not run (-only)
		}
		ratio := ""
		if hm > 0 && mm > 0 {
			ratio = fmt.Sprintf("%.2f×", hm/mm)
		}
		if mt != "" {
			mt += " " + unit
		}
		fmt.Fprintf(out, "| %s | %s %s | %s | %s |\n", what, ht, unit, mt, ratio)
	}
	burst := fmt.Sprintf("chat burst %d × %d, delivered", o.pubs, o.each)
	row(burst, h.delivered, m.delivered, "%.0f", "msg/s")
	row("chat burst, archived (vs mosquitto delivered)", h.archived, m.delivered, "%.0f", "msg/s")
	row("chat burst, broker CPU per 1,000 messages", h.burstCPU, m.burstCPU, "%.0f", "ms")
	row(fmt.Sprintf("latency at %d msg/s, p50", o.rate), h.p50, m.p50, "%.2f", "ms")
	row(fmt.Sprintf("latency at %d msg/s, p99", o.rate), h.p99, m.p99, "%.2f", "ms")
	row(fmt.Sprintf("%d idle WebSocket clients, RSS each", o.idle), h.perClient, m.perClient, "%.1f", "KB")
	row(fmt.Sprintf("one message to all %d", o.idle), h.reachAll, m.reachAll, "%.0f", "ms")
	row("start to ready", h.start, m.start, "%.0f", "ms")
	row(fmt.Sprintf("history page of 50 of %d over HTTP, p50", o.historyFill), h.pageP50, nil, "%.2f", "ms")
	row(fmt.Sprintf("history page of 50 of %d over HTTP, p99", o.historyFill), h.pageP99, nil, "%.2f", "ms")
	fmt.Fprintf(out, "\nlost or doubled: hearth %d, mosquitto %d\n", h.lost, m.lost)
}
