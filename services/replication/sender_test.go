package replication

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestDistributeInstalled sends a version PAR -> CHD, then CHD relays it
// to its own child GRC: GRC pins only CHD's key, so CHD must sign it again.
func TestDistributeInstalled(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chd := newSite(t, "CHD", par)
	grc := newSite(t, "GRC", chd)
	p, c, g := par.start(), chd.start(), grc.start()
	ctx := context.Background()

	shared := randomBytes(contracts.ChunkSize)
	files := []testFile{
		{path: "bin/tool", data: append(append([]byte{}, shared...), randomBytes(1000)...), mode: 0o755},
		{path: "share/copy", data: shared}, // the same chunk twice: stored and sent once
		{path: "empty", data: nil},
	}
	link := contracts.ManifestLink{Path: "bin/t", Target: "tool"}
	info, chunks := createVersion(t, p, "tools", "1.0", files, link)
	if info.Chunks != 2 || info.From != "" || info.Site != "PAR" {
		t.Fatalf("created %+v: want 2 chunks, made at PAR", info)
	}
	chd.waitInterest("steward.CHD.site.PAR.repl.offer")
	par.waitInterest("steward.CHD.site.PAR.repl.offer")

	if _, err := p.Distribute(ctx, "tools", "1.0", []string{"CHD"}, "alice"); err != nil {
		t.Fatalf("Distribute: %v", err)
	}
	j := waitJob(t, p, "tools", "1.0", "CHD", contracts.ContentInstalled)
	if j.Verified != info.Digest || j.ChunksTotal != 2 || j.Chunks != 2 {
		t.Fatalf("job %+v: want verified %s, 2 of 2 chunks", j, info.Digest)
	}
	got, err := c.Version(ctx, "tools", "1.0")
	if err != nil {
		t.Fatalf("CHD Version: %v", err)
	}
	if got.Info.Digest != info.Digest || got.Info.From != "PAR" || got.Info.Site != "PAR" {
		t.Fatalf("CHD holds %+v: want digest %s from PAR", got.Info, info.Digest)
	}
	if got.Signed.Key != par.pub() {
		t.Fatalf("CHD's copy is signed by %s, want PAR's key", got.Signed.Key)
	}
	for h, want := range chunks {
		data, err := c.ReadChunk(ctx, h)
		if err != nil || !bytes.Equal(data, want) {
			t.Fatalf("CHD chunk %s: %v", h, err)
		}
	}
	if par.emit.count(contracts.StatusSendStarted) != 1 || par.emit.count(contracts.StatusSendInstalled) != 1 {
		t.Fatalf("PAR status: got %d started, %d installed; want 1 each", par.emit.count(contracts.StatusSendStarted), par.emit.count(contracts.StatusSendInstalled))
	}
	if m, ok := chd.emit.last(contracts.StatusPackageStored); !ok || m.Properties["from"] != "PAR" {
		t.Fatalf("CHD status 6002: got %+v, want one from PAR", m)
	}

	// Distributing again finds it installed: nothing is sent.
	if _, err := p.Distribute(ctx, "tools", "1.0", []string{"CHD"}, "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "the second job", func() bool {
		j, _ := jobOf(p, "tools", "1.0", "CHD")
		return j.State == contracts.ContentInstalled && j.Attempts == 1 && j.ChunksTotal == 0
	})

	// CHD relays to GRC, signing with its own key.
	grc.waitInterest("steward.GRC.site.CHD.repl.offer")
	chd.waitInterest("steward.GRC.site.CHD.repl.offer")
	if _, err := c.Distribute(ctx, "tools", "", []string{"GRC"}, "bob"); err != nil {
		t.Fatalf("relay: %v", err)
	}
	waitJob(t, c, "tools", "1.0", "GRC", contracts.ContentInstalled)
	relayed, err := g.Version(ctx, "tools", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	if relayed.Info.Digest != info.Digest || relayed.Info.From != "CHD" || relayed.Info.Site != "PAR" || relayed.Signed.Key != chd.pub() {
		t.Fatalf("GRC holds %+v signed by %s: want digest %s from CHD, made at PAR, signed by CHD", relayed.Info, relayed.Signed.Key, info.Digest)
	}

	// Content goes down only: a child cannot send to its parent, and a
	// parent does not take an offer from its child.
	if _, err := c.Distribute(ctx, "tools", "1.0", []string{"PAR"}, "bob"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("distribute up: got %v, want bad_request", err)
	}
	if _, err := p.Distribute(ctx, "tools", "1.0", []string{"NOPE"}, "alice"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("distribute to an unknown site: got %v, want not_found", err)
	}
}

// TestResumeAfterDespoolerStop stops CHD's service mid-transfer: once it
// runs again, the next offer answers only the chunks CHD still lacks, and
// only those are sent.
func TestResumeAfterDespoolerStop(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chd := newSite(t, "CHD", par)
	p := par.start()
	chd.start()
	ctx := context.Background()

	const n = 8
	var files []testFile
	for i := range n {
		files = append(files, testFile{path: "f" + string(rune('a'+i)), data: randomBytes(contracts.ChunkSize)})
	}
	info, _ := createVersion(t, p, "big", "2.0", files)
	m, _ := buildManifest("big", "2.0", files)
	// Slow enough to stop in the middle: 4 chunks a second.
	if _, err := p.SetRoute(ctx, "CHD", 2<<20, "", "alice"); err != nil {
		t.Fatal(err)
	}
	chd.waitInterest("steward.CHD.site.PAR.repl.chunk")
	par.waitInterest("steward.CHD.site.PAR.repl.chunk")
	if _, err := p.Distribute(ctx, "big", "2.0", []string{"CHD"}, "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "3 chunks sent", func() bool {
		j, _ := jobOf(p, "big", "2.0", "CHD")
		return j.Chunks >= 3
	})
	chd.stop()
	// The sender finds CHD gone and backs off.
	natstest.Wait(t, waitFor, "the sender to notice", func() bool {
		j, _ := jobOf(p, "big", "2.0", "CHD")
		return j.Error != ""
	})
	sentAtStop := p.sender.sent.Load()

	// What CHD stored before it stopped, read (without serving) as the
	// next instance will find it.
	idle, err := New(ctx, chd.config())
	if err != nil {
		t.Fatal(err)
	}
	missing, err := idle.MissingChunks(ctx, m.Chunks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Version(ctx, "big", "2.0"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("version at CHD before the commit: got %v, want not_found", err)
	}
	idle.model.stop()
	if len(missing) == 0 || len(missing) > n-3 {
		t.Fatalf("CHD lacks %d chunks after the stop: want 1 to %d", len(missing), n-3)
	}
	c2 := chd.start()
	j := waitJob(t, p, "big", "2.0", "CHD", contracts.ContentInstalled)
	if j.ChunksTotal != len(missing) || j.Chunks != len(missing) {
		t.Fatalf("last offer asked for %d chunks (%d sent): want the %d missing", j.ChunksTotal, j.Chunks, len(missing))
	}
	if resent := p.sender.sent.Load() - sentAtStop; resent != int64(len(missing)) {
		t.Fatalf("resent %d chunks after the restart: want only the %d missing", resent, len(missing))
	}
	if j.Verified != info.Digest {
		t.Fatalf("verified %q, want %s", j.Verified, info.Digest)
	}
	if _, err := c2.Version(ctx, "big", "2.0"); err != nil {
		t.Fatalf("CHD after the resume: %v", err)
	}
}

// TestRateLimit sends 2 MiB on a route of 2 MiB/s: with a burst of one
// chunk it cannot take less than 0.75 s (a lower bound only: a slow
// machine passes too).
func TestRateLimit(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chd := newSite(t, "CHD", par)
	p := par.start()
	chd.start()
	ctx := context.Background()
	var files []testFile
	for i := range 4 {
		files = append(files, testFile{path: "f" + string(rune('a'+i)), data: randomBytes(contracts.ChunkSize)})
	}
	createVersion(t, p, "paced", "1", files)
	if _, err := p.SetRoute(ctx, "CHD", 2<<20, "", "alice"); err != nil {
		t.Fatal(err)
	}
	chd.waitInterest("steward.CHD.site.PAR.repl.offer")
	par.waitInterest("steward.CHD.site.PAR.repl.offer")
	start := time.Now()
	if _, err := p.Distribute(ctx, "paced", "1", []string{"CHD"}, "alice"); err != nil {
		t.Fatal(err)
	}
	waitJob(t, p, "paced", "1", "CHD", contracts.ContentInstalled)
	if took := time.Since(start); took < 700*time.Millisecond {
		t.Fatalf("2 MiB at 2 MiB/s took %s: want at least 0.75s", took)
	}
	if p.sender.paced.Load() == 0 {
		t.Fatal("the sender never waited for the route's rate")
	}
}

// TestRateLimitAcrossInstances: two instances of the sender, two jobs to
// one site at once: one instance sends to the site at a time, so the
// route's rate holds for the route. Each instance sent one job at the full
// rate before (twice the route's rate).
func TestRateLimitAcrossInstances(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chd := newSite(t, "CHD", par)
	ctx := context.Background()
	p1 := par.start()
	inbox, _ := contracts.SiteInbox("PAR")
	cfg2 := par.config()
	cfg2.NC = natstest.Connect(t, par.srv)
	cfg2.SiteNC = natstest.Connect(t, par.srv, nats.CustomInboxPrefix(inbox))
	p2, err := New(ctx, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	run2, stop2 := context.WithCancel(ctx)
	ran2 := make(chan struct{})
	go func() { _ = p2.Run(run2); close(ran2) }()
	t.Cleanup(func() { stop2(); <-ran2 })
	<-p2.Ready()
	chd.start()
	const rate = 2 << 20
	for _, pkg := range []string{"one", "two"} {
		var files []testFile
		for i := range 4 {
			files = append(files, testFile{path: "f" + string(rune('a'+i)), data: randomBytes(contracts.ChunkSize)})
		}
		createVersion(t, p1, pkg, "1", files)
	}
	if _, err := p1.SetRoute(ctx, "CHD", rate, "", "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "the route at the second instance", func() bool { return p2.Route("CHD").Rate == rate })
	chd.waitInterest("steward.CHD.site.PAR.repl.offer")
	par.waitInterest("steward.CHD.site.PAR.repl.offer")
	start := time.Now()
	for _, pkg := range []string{"one", "two"} {
		if _, err := p1.Distribute(ctx, pkg, "1", []string{"CHD"}, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	waitJob(t, p1, "one", "1", "CHD", contracts.ContentInstalled)
	waitJob(t, p1, "two", "1", "CHD", contracts.ContentInstalled)
	took := time.Since(start)
	// 8 chunks, each job's first in its burst: 6 at the rate (two
	// instances at once took half that).
	floor := time.Duration(float64(6*contracts.ChunkSize) / rate * float64(time.Second))
	sent1, sent2 := p1.sender.sent.Load(), p2.sender.sent.Load()
	t.Logf("4 MiB at 2 MiB/s took %s (floor %s); chunks sent by the instances: %d and %d", took.Round(time.Millisecond), floor, sent1, sent2)
	if took < floor*9/10 {
		t.Fatalf("4 MiB in %s: %.1f MiB/s on a route of 2 MiB/s", took.Round(time.Millisecond), float64(8*contracts.ChunkSize)/took.Seconds()/(1<<20))
	}
	if sent1+sent2 != 8 {
		t.Fatalf("%d + %d chunks sent, want the 8 once", sent1, sent2)
	}
}

// TestDestLease: one lease per destination; a holder whose entry was
// taken from it (expired, then leased by another instance) hears that it
// lost it at its next renewal; a released lease is free at once.
func TestDestLease(t *testing.T) {
	svc := newSite(t, "PAR", nil).start()
	ctx := context.Background()
	snd := svc.sender
	l, ok, err := snd.leaseDest(ctx, "CHD")
	if err != nil || !ok {
		t.Fatalf("first lease: %v, %v", ok, err)
	}
	if _, ok, err := snd.leaseDest(ctx, "CHD"); err != nil || ok {
		t.Fatalf("second lease of a held destination: %v, %v; want refused", ok, err)
	}
	lost := make(chan struct{})
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	go l.hold(hctx, 3*time.Second, func() { close(lost) }) // renewed every second
	time.Sleep(1200 * time.Millisecond)                    // renewed once
	if _, err := svc.sendersKV.Put(ctx, "CHD", []byte(`{"instance":"other"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(2 * time.Second): // the next renewal, well before the lease runs out
		t.Fatal("the holder did not hear at its next renewal that it lost the lease")
	}
	if err := svc.sendersKV.Delete(ctx, "CHD"); err != nil {
		t.Fatal(err)
	}
	l, ok, err = snd.leaseDest(ctx, "CHD")
	if err != nil || !ok {
		t.Fatalf("lease after the other let go: %v, %v", ok, err)
	}
	l.release()
	if _, ok, err := snd.leaseDest(ctx, "CHD"); err != nil || !ok {
		t.Fatalf("lease after a release: %v, %v", ok, err)
	}
}

// TestPacer checks the limiter's arithmetic on a fake clock: one chunk of
// burst, then each chunk waits for its bytes at the rate.
func TestPacer(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newPacer(1 << 20) // 1 MiB/s
	p.now = func() time.Time { return now }
	var slept time.Duration
	p.sleep = func(_ context.Context, d time.Duration) error { slept += d; now = now.Add(d); return nil }
	ctx := context.Background()
	for range 4 {
		if _, err := p.wait(ctx, contracts.ChunkSize); err != nil {
			t.Fatal(err)
		}
	}
	if want := 1500 * time.Millisecond; slept != want {
		t.Fatalf("4 chunks at 1 MiB/s waited %s: want %s (the first is the burst)", slept, want)
	}
	// A message larger than the burst waits for it a burst at a time.
	slept = 0
	if _, err := p.wait(ctx, contracts.ChunkSize*2); err != nil {
		t.Fatal(err)
	}
	if want := time.Second; slept != want {
		t.Fatalf("1 MiB at 1 MiB/s waited %s: want %s", slept, want)
	}
	if w, _ := newPacer(0).wait(ctx, 1<<30); w != 0 {
		t.Fatalf("an unlimited route waited %s", w)
	}
}

// TestScheduleClosed: outside the route's window nothing is sent; the job
// says why it waits, and goes once the schedule opens.
func TestScheduleClosed(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chd := newSite(t, "CHD", par)
	var clock = natstest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)) // a Monday noon
	par.cfg = func(c *Config) { c.Now = clock.Now; c.Location = time.UTC }
	p := par.start()
	c := chd.start()
	ctx := context.Background()
	createVersion(t, p, "night", "1", []testFile{{path: "a", data: randomBytes(100)}})
	if _, err := p.SetRoute(ctx, "CHD", 0, "Mon-Fri 18:00-06:00", "alice"); err != nil {
		t.Fatal(err)
	}
	chd.waitInterest("steward.CHD.site.PAR.repl.offer")
	par.waitInterest("steward.CHD.site.PAR.repl.offer")
	if _, err := p.Distribute(ctx, "night", "1", []string{"CHD"}, "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "the job to wait for the schedule", func() bool {
		j, _ := jobOf(p, "night", "1", "CHD")
		return j.State == contracts.ContentSending && j.Error != "" && j.Attempts == 0
	})
	if r := p.Route("CHD"); r.Open || r.Backlog != 100 {
		t.Fatalf("route %+v: want closed with 100 bytes queued", r)
	}
	if _, err := c.Version(ctx, "night", "1"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("sent outside the schedule: %v", err)
	}
	clock.Set(time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC))
	// The route changing wakes the waiting worker at once.
	if _, err := p.SetRoute(ctx, "CHD", 0, "Mon-Fri 18:00-06:00", "alice"); err != nil {
		t.Fatal(err)
	}
	waitJob(t, p, "night", "1", "CHD", contracts.ContentInstalled)
}

// TestTakeoverAfterSenderKilled: the instance sending a version dies
// mid-transfer (its connections cut, so it cannot give the job up); once
// its lease has run out another instance of the site takes the job over,
// and the destination gets only the chunks it still lacks.
func TestTakeoverAfterSenderKilled(t *testing.T) {
	par := newSite(t, "PAR", nil)
	par.cfg = func(c *Config) { c.Lease = 2 * time.Second }
	chd := newSite(t, "CHD", par)
	ctx := context.Background()

	// The first instance on connections of its own, to cut.
	inbox, _ := contracts.SiteInbox("PAR")
	nc1 := natstest.Connect(t, par.srv)
	site1 := natstest.Connect(t, par.srv, nats.CustomInboxPrefix(inbox))
	cfg1 := par.config()
	cfg1.NC, cfg1.SiteNC = nc1, site1
	p1, err := New(ctx, cfg1)
	if err != nil {
		t.Fatal(err)
	}
	run1, kill1 := context.WithCancel(ctx)
	defer kill1()
	ran1 := make(chan struct{})
	go func() { _ = p1.Run(run1); close(ran1) }()
	<-p1.Ready()
	chd.start()

	const n = 8
	var files []testFile
	for i := range n {
		files = append(files, testFile{path: "f" + string(rune('a'+i)), data: randomBytes(contracts.ChunkSize)})
	}
	info, _ := createVersion(t, p1, "big", "3.0", files)
	// Slow enough to kill in the middle: 4 chunks a second.
	if _, err := p1.SetRoute(ctx, "CHD", 2<<20, "", "alice"); err != nil {
		t.Fatal(err)
	}
	chd.waitInterest("steward.CHD.site.PAR.repl.chunk")
	par.waitInterest("steward.CHD.site.PAR.repl.chunk")
	if _, err := p1.Distribute(ctx, "big", "3.0", []string{"CHD"}, "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "3 chunks sent", func() bool {
		j, _ := jobOf(p1, "big", "3.0", "CHD")
		return j.Chunks >= 3
	})
	// Killed: nothing it writes from now on reaches the bus.
	nc1.Close()
	site1.Close()
	kill1()
	<-ran1
	sentBy1 := p1.sender.sent.Load()

	killed := time.Now()
	p2 := par.start()
	j := waitJob(t, p2, "big", "3.0", "CHD", contracts.ContentInstalled)
	// The lease runs from the first instance's last progress write, at
	// most saveEvery before the kill.
	if since := time.Since(killed); since < 2*time.Second-saveEvery {
		t.Fatalf("taken over %s after the kill, within the first instance's lease of 2s", since)
	}
	if j.Verified != info.Digest {
		t.Fatalf("verified %q, want %s", j.Verified, info.Digest)
	}
	// The second instance sent what the first had not got stored (a
	// chunk stored whose answer the cut lost counts for neither).
	sentBy2 := p2.sender.sent.Load()
	if sentBy2 == 0 || sentBy2 >= n || sentBy1+sentBy2 < n-1 {
		t.Fatalf("the first instance sent %d chunks, the second %d: want the second to send the rest of %d, not all", sentBy1, sentBy2, n)
	}
	v, err := chd.svc.Version(ctx, "big", "3.0")
	if err != nil || v.Info.Digest != info.Digest {
		t.Fatalf("CHD after the takeover: %+v %v", v, err)
	}
}
