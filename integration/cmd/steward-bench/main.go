// Command steward-bench runs Steward's benchmark suite: real sites driven
// by simulated agents, each figure beside a raw baseline measured in the
// same run. It prints the table and merges the figures into
// bench/results.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/stewardhq/steward/integration/bench"
)

func main() {
	steward := flag.String("steward", "bin/steward", "the steward binary")
	natsServer := flag.String("nats-server", "bin/nats-server", "a plain nats-server binary (the raw baseline)")
	agents := flag.Int("agents", 2000, "simulated agents")
	only := flag.String("bench", "", "comma-separated benchmarks (default all): "+strings.Join(bench.Names, ", "))
	out := flag.String("out", "bench/results.json", "results file (merged)")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	root := flag.String("root", ".", "the repository (go test -bench runs there)")
	profile := flag.String("profile", "", "write CPU profiles of the measured parts (the site's and the fleet's) into this directory")
	flag.Parse()

	// Each simulated agent and each raw baseline client is a socket: allow
	// as many as the system lets this process have.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	// The fleet is the harness and shares the machine with the site it
	// measures: collect its garbage less often (the sites and servers it
	// starts keep Go's default).
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "steward-bench-")
	if err != nil {
		fail(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	env := &bench.Env{Steward: abs(*steward), NATSServer: abs(*natsServer), Dir: dir, Agents: *agents, Root: abs(*root), ProfileDir: *profile,
		Log: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
		}}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	results, err := env.Run(ctx, names)
	bench.Print(os.Stdout, results)
	if werr := bench.Write(*out, results); werr != nil {
		fail(werr)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
