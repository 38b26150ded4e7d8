// Command steward-sim runs many simulated clients in one process, each the
// real agent code with its own NKey and NATS connection, against a site.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/agent/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var cfg sim.Config
	var sources, output, logLevel string
	var every, duration time.Duration
	cmd := &cobra.Command{
		Use:   "steward-sim",
		Short: "Simulate a fleet of Steward clients",
		Long: `steward-sim runs many clients in one process. Each is the real agent code
(enrollment, heartbeats, outbox, inventory reports) with its own NKey and its
own NATS connection; state is kept in memory and the inventory is synthetic
but varied. Create a token with enough uses first.

One process opens about 28,000 connections from one source address; spread
bigger fleets over loopback addresses with --source-ips, or run several
processes with different --prefix.`,
		Example: `  TOKEN=$(steward tokens create --uses 5000 --ttl 1h)
  steward-sim --server nats://127.0.0.1:4222 --token "$TOKEN" --agents 5000
  steward-sim --token "$TOKEN" --agents 20000 --source-ips 127.0.0.2,127.0.0.3 --ramp 500`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
			if cfg.Token == "" {
				return errors.New("--token is required (steward tokens create --uses N)")
			}
			for _, s := range strings.Split(sources, ",") {
				if s = strings.TrimSpace(s); s == "" {
					continue
				}
				ip := net.ParseIP(s)
				if ip == nil || !ip.IsLoopback() {
					return fmt.Errorf("--source-ips: %q is not a loopback address", s)
				}
				cfg.SourceIPs = append(cfg.SourceIPs, ip)
			}
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			start := time.Now()
			fleet, err := sim.Start(ctx, cfg)
			if err != nil {
				return err
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			var st sim.Stats
		loop:
			for {
				select {
				case <-ctx.Done():
					break loop
				case <-tick.C:
					st = fleet.Stats()
					fmt.Fprintf(os.Stderr, "%6.0fs  started %d/%d  enrolled %d  connected %d  outbox %d  failed %d\n",
						time.Since(start).Seconds(), st.Started, cfg.Agents, st.Enrolled, st.Connected, st.Outbox, st.Failed)
				}
			}
			st = fleet.Stats()
			fleet.Wait()
			if output == "json" {
				return json.NewEncoder(os.Stdout).Encode(st)
			}
			fmt.Printf("agents %d, enrolled %d, connected at the end %d, failed %d\n", st.Started, st.Enrolled, st.Connected, st.Failed)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", envOr("STEWARD_SERVER", "nats://127.0.0.1:4222"), "site NATS URL (env STEWARD_SERVER)")
	f.StringVar(&cfg.Token, "token", os.Getenv("STEWARD_TOKEN"), "enrollment token with enough uses (env STEWARD_TOKEN)")
	f.IntVar(&cfg.Agents, "agents", 100, "how many clients to simulate")
	f.StringVar(&cfg.Prefix, "prefix", "sim", "client names are PREFIX-000001 ...")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", 60*time.Second, "heartbeat interval of each client")
	f.Float64Var(&cfg.Ramp, "ramp", 200, "clients started per second (0: all at once)")
	f.StringVar(&sources, "source-ips", "", "comma-separated loopback source addresses to spread connections over")
	f.BoolVar(&cfg.NoInventory, "no-inventory", false, "do not send inventory reports")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the synthetic inventories")
	f.DurationVar(&every, "progress", 5*time.Second, "how often to print progress")
	f.DurationVar(&duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.StringVarP(&output, "output", "o", "table", "final summary: table or json")
	f.StringVar(&logLevel, "log-level", "warn", "log level of the simulated agents")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
