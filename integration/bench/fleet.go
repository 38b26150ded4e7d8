package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/agent/sim"
	"github.com/stewardhq/steward/contracts"
)

// Env is what the benchmarks share: binaries, a scratch dir, the fleet size.
type Env struct {
	Steward    string // bin/steward
	NATSServer string // bin/nats-server, the raw baseline
	Dir        string
	Root       string // the repository, where go test runs
	Agents     int
	Log        func(format string, args ...any)
	// ProfileDir, when set, receives CPU profiles of the measured part of
	// the benchmarks that take them: the site's (from its --debug-listen)
	// and this process's (the simulated fleet), as <name>-site.pprof and
	// <name>-fleet.pprof.
	ProfileDir string
}

// fleetSite is a site with a connected simulated fleet.
type fleetSite struct {
	site   *Site
	fleet  *sim.Fleet
	cancel context.CancelFunc
}

func (e *Env) startFleet(ctx context.Context, name string) (*fleetSite, error) {
	return e.startFleetWith(ctx, name, nil)
}

// startFleetWith is startFleet calling setup with each agent before it runs.
func (e *Env) startFleetWith(ctx context.Context, name string, setup func(*agent.Agent)) (*fleetSite, error) {
	dir := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The profiler always: memory-per-agent reads the site's memory
	// statistics from it.
	debug, err := freeAddr()
	if err != nil {
		return nil, err
	}
	site, err := StartSite(ctx, e.Steward, dir, "--debug-listen", debug)
	if err != nil {
		return nil, err
	}
	site.DebugAddr = debug
	tok, err := site.Token(ctx, e.Agents)
	if err != nil {
		site.Stop()
		return nil, err
	}
	fctx, cancel := context.WithCancel(context.Background())
	fleet, err := sim.Start(fctx, sim.Config{Server: site.URL(), Token: tok, Agents: e.Agents, Ramp: 1000, NoInventory: true, Prefix: name, Setup: setup,
		SourceIPs: fleetSources()})
	if err != nil {
		cancel()
		site.Stop()
		return nil, err
	}
	fs := &fleetSite{site: site, fleet: fleet, cancel: cancel}
	e.Log("%s: enrolling %d agents", name, e.Agents)
	if err := waitFor(ctx, 10*time.Minute, func() bool {
		st := fleet.Stats()
		return st.Connected == e.Agents
	}); err != nil {
		fs.stop()
		return nil, fmt.Errorf("%s: fleet not connected: %+v", name, fleet.Stats())
	}
	return fs, nil
}

// fleetSources are the loopback addresses a simulated fleet dials from.
// Real agents come from as many machines; from one address, every dial
// of a storm searches a port range crowded with the fleet's connections
// and the failed attempts' TIME_WAIT, and the kernel's search (CPU of the
// fleet's process, on the site's cores) grows with the crowd: in one
// 10,000-agent storm profile, connect(2) took half the fleet's CPU.
func fleetSources() []net.IP {
	ips := make([]net.IP, 16)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(2+i))
	}
	return ips
}

func (fs *fleetSite) stop() {
	fs.cancel()
	fs.fleet.Wait()
	fs.site.Stop()
}

func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	return waitEvery(ctx, limit, 50*time.Millisecond, cond)
}

// waitEvery is waitFor asking cond every d.
func waitEvery(ctx context.Context, limit, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}

// serviceConn connects with the site's service key.
func (s *Site) serviceConn() (*nats.Conn, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, "keys", "service.nk"))
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	return nats.Connect(s.URL(), nats.Nkey(pub, kp.Sign))
}

// Fleet runs the benchmarks that need a connected fleet: memory per agent,
// heartbeat ingest and the reconnect storm, in that order, on one site.
func (e *Env) Fleet(ctx context.Context, want func(string) bool) ([]Result, error) {
	var out []Result
	dir := filepath.Join(e.Dir, "raw")
	os.MkdirAll(dir, 0o755)
	site, err := StartSite(ctx, e.Steward, filepath.Join(e.Dir, "fleet-mem-empty"))
	if err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // let the idle site settle before the first reading
	rss0, _ := site.RSS()
	site.Stop()

	// The raw baselines first, while no fleet holds sockets in this
	// process (and so that the two loads never overlap).
	var rawMem, rawStorm float64
	if want("memory-per-agent") {
		if rawMem, err = e.rawMemoryPerConn(ctx, dir); err != nil {
			return nil, err
		}
	}
	if want("reconnect-storm") {
		if rawStorm, err = e.rawConnectStorm(ctx, dir); err != nil {
			return nil, err
		}
	}

	fs, err := e.startFleet(ctx, "fleet")
	if err != nil {
		return nil, err
	}
	defer fs.stop()
	if want("memory-per-agent") {
		time.Sleep(5 * time.Second)
		rss1, err := fs.site.RSS()
		if err != nil {
			return nil, err
		}
		ms, err := siteMemStats(ctx, fs.site)
		if err != nil {
			return nil, err
		}
		e.heapProfile(ctx, fs.site, "memory-per-agent")
		perAgent := float64(rss1-rss0) / float64(e.Agents) / 1024
		raw := rawMem
		out = append(out, measured("memory-per-agent", "KiB", perAgent, raw, "< 60 KiB", perAgent < 60,
			fmt.Sprintf("site RSS %d MiB idle, %d MiB with the fleet (Go heap in use %d MiB, free and kept %d MiB, goroutine stacks %d MiB); baseline: plain nats-server per connection",
				rss0>>20, rss1>>20, ms.HeapInuse>>20, (ms.HeapIdle-ms.HeapReleased)>>20, ms.StackInuse>>20)))
		out[len(out)-1].Agents = e.Agents
	}
	if want("heartbeat-ingest") {
		r, err := e.heartbeatIngest(ctx, fs)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if want("reconnect-storm") {
		r, err := e.reconnectStorm(ctx, fs, rawStorm)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// heartbeatIngest publishes heartbeats for the fleet's clients as fast as
// discovery takes them, and compares with JetStream async publish of the
// same payloads on the same server.
func (e *Env) heartbeatIngest(ctx context.Context, fs *fleetSite) (Result, error) {
	nc, err := fs.site.serviceConn()
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	var ids []string
	for _, a := range fs.fleet.Agents() {
		ids = append(ids, a.ClientID())
	}
	hb := contracts.Heartbeat{Header: contracts.NewHeader(contracts.TypeHeartbeat), Name: "bench", Hostname: "bench", OS: "linux",
		Arch: "amd64", AgentVersion: "sim", Capability: 1, Interval: contracts.Duration(time.Minute), Started: time.Now()}
	payload, _ := json.Marshal(hb)
	processed := func() int {
		msg, err := nc.Request("$SRV.STATS.steward-discovery", nil, 2*time.Second)
		if err != nil {
			return -1
		}
		var st micro.Stats
		_ = json.Unmarshal(msg.Data, &st)
		for _, ep := range st.Endpoints {
			if ep.Name == "heartbeat" {
				return ep.NumRequests
			}
		}
		return -1
	}
	const total, window = 60000, 5000
	subjects := make([]string, len(ids))
	for i, id := range ids {
		subjects[i], _ = contracts.AgentUp("LAB", id, contracts.KindHeartbeat)
	}
	before := processed()
	start := time.Now()
	sent := 0
	for sent < total {
		// Keep at most a window in flight, so the service's pending
		// limit never drops heartbeats: send a window, then wait until
		// half of it is taken.
		for end := min(sent+window/2, total); sent < end; sent++ {
			if err := nc.Publish(subjects[sent%len(subjects)], payload); err != nil {
				return Result{}, err
			}
		}
		nc.Flush()
		if err := waitFor(ctx, time.Minute, func() bool { return sent-(processed()-before) <= window/2 }); err != nil {
			return Result{}, fmt.Errorf("discovery stopped taking heartbeats: %d of %d", processed()-before, sent)
		}
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool { return processed()-before >= total }); err != nil {
		return Result{}, fmt.Errorf("heartbeats processed %d of %d", processed()-before, total)
	}
	rate := float64(total) / time.Since(start).Seconds()

	// Baseline: JetStream async publish (file storage, sync always) of the
	// same payloads, on the same server.
	js, _ := jetstream.New(nc)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_HEARTBEAT", Subjects: []string{"bench.heartbeat"}, Storage: jetstream.FileStorage})
	if err != nil {
		return Result{}, err
	}
	defer js.DeleteStream(ctx, stream.CachedInfo().Config.Name)
	start = time.Now()
	for i := 0; i < total; i++ {
		if _, err := js.PublishAsync("bench.heartbeat", payload); err != nil {
			return Result{}, err
		}
		if (i+1)%(window/2) == 0 || i == total-1 { // at most half a window in flight, as above
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(5 * time.Minute):
				return Result{}, fmt.Errorf("baseline publishes not acknowledged")
			}
		}
	}
	base := float64(total) / time.Since(start).Seconds()
	r := measured("heartbeat-ingest", "msgs/s", rate, base, ">= 15000 msgs/s", rate >= 15000,
		fmt.Sprintf("%d heartbeats over %d clients taken by discovery (last-seen written behind, coalesced); baseline: JetStream async publish, file storage, sync always", total, len(ids)))
	r.Agents = e.Agents
	return r, nil
}

// reconnectStorm restarts the site and times until every agent is
// connected again; the baseline is the same number of raw clients
// connecting and subscribing to a plain nats-server.
func (e *Env) reconnectStorm(ctx context.Context, fs *fleetSite, raw float64) (Result, error) {
	if err := fs.site.Stop(); err != nil {
		return Result{}, err
	}
	if err := waitFor(ctx, time.Minute, func() bool { return fs.fleet.Stats().Connected == 0 }); err != nil {
		return Result{}, fmt.Errorf("agents did not notice the site stopping")
	}
	// The clock runs from the process's start: the agents' storm and the
	// site's own start overlap, and the site's readiness for an operator is
	// checked only after the fleet is back (during the storm an operator's
	// connection waits in the same callout queue as the agents').
	start := time.Now()
	if err := fs.site.launch(); err != nil {
		return Result{}, err
	}
	stopProfile := e.profile(ctx, fs.site, "reconnect-storm", 30*time.Second)
	// The fleet's count every second: where the storm spends its time.
	var curve []string
	// Counting the fleet reads every agent: not more often than this, or
	// the count takes CPU from the storm it measures.
	if err := waitEvery(ctx, 10*time.Minute, 200*time.Millisecond, func() bool {
		st := fs.fleet.Stats()
		if s := int(time.Since(start) / time.Second); s >= len(curve) {
			curve = append(curve, fmt.Sprintf("%d/%d", st.Connected, st.Refused))
		}
		return st.Connected == e.Agents
	}); err != nil {
		return Result{}, fmt.Errorf("storm did not settle: %+v", fs.fleet.Stats())
	}
	settled := time.Since(start).Seconds()
	e.Log("reconnect-storm: settled after %.1f s; connected/refused at each second: %v", settled, curve)
	stopProfile()
	if err := fs.site.ready(ctx, time.Minute); err != nil {
		return Result{}, err
	}
	// The goal is stated for 10,000 agents: a smaller fleet cannot show it.
	r := measured("reconnect-storm", "s", settled, raw, "< 30 s for 10,000 agents", settled < 30 && e.Agents >= 10000,
		"from the restarted site's start to every agent reconnected (auth callout per connection, jittered backoff); baseline: raw connect+subscribe to a plain nats-server")
	r.Agents = e.Agents
	return r, nil
}

// rawServer runs the plain nats-server binary on a free port.
func (e *Env) rawServer(ctx context.Context, dir string) (url string, pid int, stop func(), err error) {
	l, err := netListen()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(e.NATSServer, "-a", "127.0.0.1", "-p", l)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("start %s: %w (make bench builds it)", e.NATSServer, err)
	}
	url = "nats://127.0.0.1:" + l
	if err := waitFor(ctx, 30*time.Second, func() bool {
		nc, err := nats.Connect(url)
		if err != nil {
			return false
		}
		nc.Close()
		return true
	}); err != nil {
		cmd.Process.Kill()
		return "", 0, nil, err
	}
	return url, cmd.Process.Pid, func() { cmd.Process.Kill(); cmd.Wait() }, nil
}

// rawClients connects n plain clients, each subscribing to its own two
// subjects as an agent does, concurrently; it returns them and the time.
func (e *Env) rawClients(url string, n int) ([]*nats.Conn, time.Duration, error) {
	conns := make([]*nats.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nc, err := nats.Connect(url, nats.Timeout(30*time.Second))
			if err != nil {
				errs <- err
				return
			}
			nc.Subscribe(fmt.Sprintf("raw.%d.down.>", i), func(*nats.Msg) {})
			nc.Subscribe(fmt.Sprintf("_INBOX.raw%d.>", i), func(*nats.Msg) {})
			nc.Flush()
			conns[i] = nc
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return conns, 0, err
	}
	return conns, time.Since(start), nil
}

func (e *Env) rawConnectStorm(ctx context.Context, dir string) (float64, error) {
	url, _, stop, err := e.rawServer(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer stop()
	conns, took, err := e.rawClients(url, e.Agents)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return took.Seconds(), err
}

func (e *Env) rawMemoryPerConn(ctx context.Context, dir string) (float64, error) {
	url, pid, stop, err := e.rawServer(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer stop()
	time.Sleep(time.Second)
	rss0, err := rssOf(pid)
	if err != nil {
		return 0, err
	}
	conns, _, err := e.rawClients(url, e.Agents)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return 0, err
	}
	time.Sleep(3 * time.Second)
	rss1, err := rssOf(pid)
	if err != nil {
		return 0, err
	}
	return float64(rss1-rss0) / float64(e.Agents) / 1024, nil
}
