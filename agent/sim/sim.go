// Package sim runs a fleet of simulated clients in one process: each is the
// real agent code (enrollment, heartbeats, outbox, inventory reports) with
// its own NKey and NATS connection, its state in memory instead of a state
// dir, and a synthetic inventory. steward-sim and the benchmarks use it.
package sim

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/agent/inventory"
	"github.com/stewardhq/steward/agent/state"
)

// Config of a fleet.
type Config struct {
	Server    string
	Token     string        // an enrollment token with at least Agents uses
	Agents    int           // how many clients
	Prefix    string        // names are <prefix>-000001 ...
	Heartbeat time.Duration // default 60s
	// Ramp is how many agents start per second (0: all at once).
	Ramp float64
	// SourceIPs spread connections over local addresses (127.0.0.x) to
	// pass the ~28,000 ephemeral ports one source address has.
	SourceIPs []net.IP
	// Inventory: report a synthetic inventory at enrollment (default on).
	NoInventory bool
	Seed        uint64
	Log         *slog.Logger
	// Setup, when set, is called with each agent after it is made and
	// before it runs (the benchmarks register down handlers with it).
	Setup func(a *agent.Agent)
}

// Fleet is a running set of simulated agents.
type Fleet struct {
	cfg    Config
	mu     sync.Mutex
	agents []*agent.Agent
	wg     sync.WaitGroup
	failed atomic.Int64
}

// Start makes every agent and runs it until ctx ends (Wait waits for that).
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Agents <= 0 {
		return nil, fmt.Errorf("agents must be positive")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sim"
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 60 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{cfg: cfg}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		var tick <-chan time.Time
		if cfg.Ramp > 0 {
			t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Ramp))
			defer t.Stop()
			tick = t.C
		}
		for i := range cfg.Agents {
			if tick != nil {
				select {
				case <-ctx.Done():
					return
				case <-tick:
				}
			}
			if err := f.startOne(ctx, i); err != nil {
				f.failed.Add(1)
				cfg.Log.Error("simulated agent did not start", "n", i, "err", err)
			}
		}
	}()
	return f, nil
}

func (f *Fleet) startOne(ctx context.Context, i int) error {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	cfg := agent.Config{
		Server:    f.cfg.Server,
		Token:     f.cfg.Token,
		Name:      fmt.Sprintf("%s-%06d", f.cfg.Prefix, i+1),
		Heartbeat: f.cfg.Heartbeat,
		Store:     state.NewMemStore(),
		Key:       kp,
		Inventory: inventory.NewSynthetic(f.cfg.Seed + uint64(i)),
		Log:       f.cfg.Log,
		Version:   "sim",
		RetryMax:  10 * time.Second,
	}
	if f.cfg.NoInventory {
		cfg.InventoryInterval = -1
	}
	if len(f.cfg.SourceIPs) > 0 {
		ip := f.cfg.SourceIPs[i%len(f.cfg.SourceIPs)]
		cfg.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if f.cfg.Setup != nil {
		f.cfg.Setup(a)
	}
	f.mu.Lock()
	f.agents = append(f.agents, a)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := a.Run(ctx); err != nil {
			f.cfg.Log.Error("simulated agent stopped", "name", cfg.Name, "err", err)
		}
		a.Close()
	}()
	return nil
}

// Stats is a snapshot of the fleet.
type Stats struct {
	Started   int `json:"started"`
	Failed    int `json:"failed"`
	Enrolled  int `json:"enrolled"`
	Connected int `json:"connected"`
	Refused   int `json:"refused"` // the server refused the key at the last attempt
	Outbox    int `json:"outbox"`  // messages waiting for the site, fleet-wide
}

// Stats counts the fleet's agents by state.
func (f *Fleet) Stats() Stats {
	f.mu.Lock()
	agents := append([]*agent.Agent(nil), f.agents...)
	f.mu.Unlock()
	st := Stats{Started: len(agents), Failed: int(f.failed.Load())}
	// Cheap reads only: a benchmark polls this while it measures.
	for _, a := range agents {
		if a.ClientID() == "" {
			continue
		}
		st.Enrolled++
		if a.Connected() {
			st.Connected++
		}
		if a.Refused() {
			st.Refused++
		}
		st.Outbox += a.OutboxLen()
	}
	return st
}

// Agents returns the fleet's agents.
func (f *Fleet) Agents() []*agent.Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*agent.Agent(nil), f.agents...)
}

// Wait waits until every agent has stopped (after ctx ended).
func (f *Fleet) Wait() { f.wg.Wait() }
