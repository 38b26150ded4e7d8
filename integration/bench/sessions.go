package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// Session benchmarks: a site (bin/steward serve), a fleet of sessionAgents
// simulated agents, and sessions through the site's broker.
const (
	sessionAgents = 50  // concurrent sessions of session-relay
	keystrokes    = 200 // per session
	// typing is the pace of one session's keystrokes: a fast typist's 10
	// keys a second, so 50 sessions type 500 keys a second together.
	typing         = 100 * time.Millisecond
	tunnelBytes    = 64 << 20
	rawChunk       = contracts.MaxFrameBytes
	relayGoalAdded = time.Millisecond
)

// sessionSite starts the site and fleet with remote tools enabled for the
// bootstrap administrator and tunnels to port.
func (e *Env) sessionSite(ctx context.Context, name string, agents, port int) (*fleetSite, *client.Client, error) {
	saved := e.Agents
	e.Agents = agents
	fs, err := e.startFleet(ctx, name)
	e.Agents = saved
	if err != nil {
		return nil, nil, err
	}
	op, err := fs.site.Operator(ctx)
	if err != nil {
		fs.stop()
		return nil, nil, err
	}
	on, off, full := true, false, contracts.AccessFull
	viewers, ports := []string{op.Operator()}, []int{port}
	s := contracts.Settings{Name: "Bench sessions", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: &on, AccessLevel: &full, PromptUser: &off, AllowWhenNoUser: &on,
			PermittedViewers: &viewers, TunnelPorts: &ports}}}
	if _, err := op.SettingsApply(ctx, s); err == nil {
		_, err = op.SettingsDeploy(ctx, s.Name, contracts.AllSystemsName)
	}
	if err != nil {
		op.Close()
		fs.stop()
		return nil, nil, err
	}
	if err := waitFor(ctx, 2*time.Minute, func() bool {
		return countAt(fs.fleet.Agents(), func(p contracts.AgentPolicyStatus) bool { return hasViewer(p, op.Operator()) }) == agents
	}); err != nil {
		op.Close()
		fs.stop()
		return nil, nil, fmt.Errorf("%s: policy not applied: %w", name, err)
	}
	if err := waitFor(ctx, 2*time.Minute, func() bool {
		cs, err := op.ClientsList(ctx, contracts.ClientApproved)
		online := 0
		for _, c := range cs {
			if c.Online {
				online++
			}
		}
		return err == nil && online == agents
	}); err != nil {
		op.Close()
		fs.stop()
		return nil, nil, fmt.Errorf("%s: clients not online: %w", name, err)
	}
	return fs, op, nil
}

// sessionRelay: keystroke round trips (one byte in, its echo by the
// client's terminal out) in sessionAgents concurrent shell sessions,
// against raw NATS request/reply with as many concurrent requesters.
func (e *Env) sessionRelay(ctx context.Context) (Result, error) {
	e.Log("session-relay: %d sessions x %d keystrokes", sessionAgents, keystrokes)
	fs, op, err := e.sessionSite(ctx, "session", sessionAgents, 1)
	if err != nil {
		return Result{}, err
	}
	defer fs.stop()
	defer op.Close()
	agents := fs.fleet.Agents()
	sessions := make([]*client.Session, len(agents))
	for i, a := range agents {
		s, err := op.SessionOpen(ctx, contracts.SessionOpenRequest{Ref: a.ClientID(), Kind: contracts.SessionShell, Command: []string{"cat"}})
		if err != nil {
			return Result{}, fmt.Errorf("session-relay: open %d: %w", i, err)
		}
		sessions[i] = s
	}
	defer func() {
		for _, s := range sessions {
			s.End()
		}
	}()
	relayOp := func(i int) (func() error, error) {
		s := sessions[i]
		buf := make([]byte, 64)
		return func() error {
			if _, err := s.Write([]byte{'k'}); err != nil {
				return err
			}
			for {
				n, err := s.Read(buf)
				if err != nil {
					return err
				}
				for _, b := range buf[:n] {
					if b == 'k' {
						return nil
					}
				}
			}
		}, nil
	}

	// Raw: request/reply between two plain connections on the same server.
	if err := os.MkdirAll(fs.site.Dir+"-raw", 0o755); err != nil {
		return Result{}, err
	}
	url, _, stop, err := e.rawServer(ctx, fs.site.Dir+"-raw")
	if err != nil {
		return Result{}, err
	}
	defer stop()
	conns, _, err := e.rawClients(url, 2)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range sessionAgents {
		if _, err := conns[1].Subscribe("raw.echo."+strconv.Itoa(i), func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
			return Result{}, err
		}
	}
	_ = conns[1].Flush()
	rawOp := func(i int) (func() error, error) {
		subj := "raw.echo." + strconv.Itoa(i)
		return func() error {
			_, err := conns[0].Request(subj, []byte{'k'}, 5*time.Second)
			return err
		}, nil
	}

	// Typing (the goal): every session types at a fast typist's pace, and
	// so does the raw baseline. Then back to back, as fast as each session
	// can go: 50 PTYs and their cats on 2 cores, shown in the note.
	var rounds [4][]time.Duration
	for k, m := range []struct {
		op   func(int) (func() error, error)
		pace time.Duration
	}{{relayOp, typing}, {rawOp, typing}, {relayOp, 0}, {rawOp, 0}} {
		if rounds[k], err = measureConcurrent(sessionAgents, keystrokes, m.pace, m.op); err != nil {
			return Result{}, fmt.Errorf("session-relay: %w", err)
		}
	}
	relay, raw := rounds[0], rounds[1]
	rp99, bp99 := percentile(relay, 0.99), percentile(raw, 0.99)
	added := rp99 - bp99
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	note := fmt.Sprintf("%d sessions typing %d keystrokes each at one per %s: round trip p99 %.3f ms through the broker and the client's PTY vs %.3f ms raw request/reply "+
		"(p50 %.3f vs %.3f), added p99 %.3f ms; back to back (no pause, all sessions at once): p99 %.3f vs %.3f ms (p50 %.3f vs %.3f)",
		sessionAgents, keystrokes, typing, ms(rp99), ms(bp99), ms(percentile(relay, 0.5)), ms(percentile(raw, 0.5)), ms(added),
		ms(percentile(rounds[2], 0.99)), ms(percentile(rounds[3], 0.99)), ms(percentile(rounds[2], 0.5)), ms(percentile(rounds[3], 0.5)))
	return measured("session-relay", "ms", ms(rp99), ms(bp99), "added p99 < 1 ms", added < relayGoalAdded, note), nil
}

// measureConcurrent runs n workers doing count timed operations each, one
// every pace (0: back to back), each worker starting at its own offset
// within the first pace.
func measureConcurrent(n, count int, pace time.Duration, mk func(i int) (func() error, error)) ([]time.Duration, error) {
	var mu sync.Mutex
	var all []time.Duration
	var first error
	var wg sync.WaitGroup
	for i := range n {
		op, err := mk(i)
		if err != nil {
			return nil, err
		}
		wg.Go(func() {
			local := make([]time.Duration, 0, count)
			var next time.Time
			if pace > 0 {
				next = time.Now().Add(pace * time.Duration(i) / time.Duration(n))
			}
			for range count {
				if pace > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(pace)
				}
				t0 := time.Now()
				if err := op(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, first
}

// echoServer accepts connections on loopback and echoes them.
func echoServer() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln, nil
}

// echoThroughput writes n bytes into w while reading them back from r;
// MB/s of the round trip.
func echoThroughput(w io.Writer, r io.Reader, closeWrite func() error, n int) (float64, error) {
	chunk := make([]byte, 256<<10)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				errc <- err
				return
			}
		}
		errc <- closeWrite()
	}()
	got, err := io.CopyN(io.Discard, r, int64(n))
	if err != nil {
		return 0, fmt.Errorf("read back %d of %d bytes: %w", got, n, err)
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}

// tunnel: bytes echoed through a tunnel session (operator -> broker ->
// agent -> loopback TCP and back) against the same through a raw NATS
// relay (four hops with the same window) and plain loopback TCP.
func (e *Env) tunnel(ctx context.Context) (Result, error) {
	ln, err := echoServer()
	if err != nil {
		return Result{}, err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	e.Log("tunnel: %d MiB echoed", tunnelBytes>>20)
	fs, op, err := e.sessionSite(ctx, "tunnel", 1, port)
	if err != nil {
		return Result{}, err
	}
	defer fs.stop()
	defer op.Close()
	s, err := op.SessionOpen(ctx, contracts.SessionOpenRequest{Ref: fs.fleet.Agents()[0].ClientID(), Kind: contracts.SessionTunnel, Port: port})
	if err != nil {
		return Result{}, fmt.Errorf("tunnel: open: %w", err)
	}
	tun, err := echoThroughput(s, s, s.CloseWrite, tunnelBytes)
	s.End()
	if err != nil {
		return Result{}, fmt.Errorf("tunnel: %w", err)
	}

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return Result{}, err
	}
	tcp, err := echoThroughput(conn, conn, conn.(*net.TCPConn).CloseWrite, tunnelBytes)
	conn.Close()
	if err != nil {
		return Result{}, fmt.Errorf("tunnel tcp: %w", err)
	}

	if err := os.MkdirAll(fs.site.Dir+"-raw", 0o755); err != nil {
		return Result{}, err
	}
	url, _, stop, err := e.rawServer(ctx, fs.site.Dir+"-raw")
	if err != nil {
		return Result{}, err
	}
	defer stop()
	raw, err := rawRelay(e, url, tunnelBytes)
	if err != nil {
		return Result{}, fmt.Errorf("tunnel raw relay: %w", err)
	}
	note := fmt.Sprintf("echo through a tunnel session %.1f MB/s; raw NATS chunk relay (4 hops, %d KiB chunks, window %d) %.1f MB/s; loopback TCP %.1f MB/s",
		tun, rawChunk>>10, contracts.SessionWindow, raw, tcp)
	return measured("tunnel", "MB/s", tun, raw, ">= 0.5 of the raw relay", tun >= 0.5*raw, note), nil
}

// rawRelay is the tunnel's path without Steward: a sender publishes
// chunks, a relay forwards them to an echoer, which sends them back
// through the relay; the sender's window (acks from the receiver) bounds
// what is in flight, as a session's does.
func rawRelay(e *Env, url string, n int) (float64, error) {
	conns, _, err := e.rawClients(url, 3)
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sender, relay, echoer := conns[0], conns[1], conns[2]
	for _, p := range [][2]string{{"raw.op.up", "raw.agent.down"}, {"raw.agent.up", "raw.op.down"}, {"raw.op.ack", "raw.agent.ack"}} {
		to := p[1]
		if _, err := relay.Subscribe(p[0], func(m *nats.Msg) { _ = relay.PublishMsg(&nats.Msg{Subject: to, Header: m.Header, Data: m.Data}) }); err != nil {
			return 0, err
		}
	}
	// The echoer acknowledges each chunk as it takes it (as the agent does
	// once it wrote a frame to the TCP connection), through the relay.
	if _, err := echoer.Subscribe("raw.agent.down", func(m *nats.Msg) {
		_ = echoer.PublishMsg(&nats.Msg{Subject: "raw.agent.up", Header: m.Header, Data: m.Data})
		_ = echoer.PublishMsg(&nats.Msg{Subject: "raw.op.ack", Header: m.Header})
	}); err != nil {
		return 0, err
	}
	win := contracts.NewWindow(0)
	got := make(chan int, 4*contracts.SessionWindow)
	if _, err := sender.Subscribe("raw.op.down", func(m *nats.Msg) { got <- len(m.Data) }); err != nil {
		return 0, err
	}
	if _, err := sender.Subscribe("raw.agent.ack", func(m *nats.Msg) {
		s, _ := strconv.ParseUint(m.Header.Get(contracts.HdrSeq), 10, 64)
		win.Ack(s)
	}); err != nil {
		return 0, err
	}
	for _, c := range conns {
		if err := c.Flush(); err != nil {
			return 0, err
		}
	}
	chunk := make([]byte, rawChunk)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for sent := 0; sent < n; sent += len(chunk) {
			seq, err := win.Next(context.Background())
			if err != nil {
				errc <- err
				return
			}
			m := &nats.Msg{Subject: "raw.op.up", Header: nats.Header{contracts.HdrSeq: []string{strconv.FormatUint(seq, 10)}}, Data: chunk}
			if err := sender.PublishMsg(m); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for recv := 0; recv < n; {
		select {
		case k := <-got:
			recv += k
		case <-time.After(30 * time.Second):
			return 0, fmt.Errorf("raw relay stalled")
		}
	}
	win.Close()
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}
