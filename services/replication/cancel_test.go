package replication

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// working says whether svc's sender runs a worker for dest.
func working(svc *Service, dest string) bool {
	svc.sender.mu.Lock()
	defer svc.sender.mu.Unlock()
	return svc.sender.active[dest]
}

// TestCancelDistribution: a distribution to a site that is gone (linked
// once, never answering) is retried for ever; cancelling it deletes the
// job, audited, and the worker waiting in its backoff lets it go at once
// without writing it again. So does a worker waiting for a closed
// schedule. The backoff, the schedule and the lease are hours long here:
// only the deletion can wake the workers.
func TestCancelDistribution(t *testing.T) {
	par := newSite(t, "PAR", nil)
	clock := natstest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)) // a Monday noon
	par.cfg = func(c *Config) {
		c.RetryBase, c.RetryMax, c.Lease = time.Hour, time.Hour, 3*time.Hour
		c.Now, c.Location = clock.Now, time.UTC
	}
	for _, gone := range []string{"GON", "NGT"} { // linked once, gone now: nothing answers for them
		par.peers[gone] = contracts.SitePeer{Site: gone, Role: contracts.PeerChild, SigningKey: par.pub()}
	}
	p := par.start()
	ctx := context.Background()
	createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(100)}})
	createVersion(t, p, "tools", "2.0", []testFile{{path: "a", data: randomBytes(200)}})
	if _, err := p.SetRoute(ctx, "NGT", 0, "Mon-Fri 18:00-06:00", "alice"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0", "2.0"} {
		if _, err := p.Distribute(ctx, "tools", v, []string{"GON"}, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Distribute(ctx, "tools", "1.0", []string{"NGT"}, "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "the job to GON to wait for its retry, the one to NGT for its schedule", func() bool {
		g, _ := jobOf(p, "tools", "1.0", "GON")
		n, _ := jobOf(p, "tools", "1.0", "NGT")
		return g.Attempts == 1 && g.Error != "" && n.State == contracts.ContentSending && n.Error != "" && working(p, "GON") && working(p, "NGT")
	})
	if r := p.Route("GON"); r.Backlog != 300 {
		t.Fatalf("route to GON %+v: want 300 bytes queued", r)
	}

	// Refused: no site, a bad site, a distribution that does not exist.
	if _, err := p.CancelDistribution(ctx, "tools", "1.0", nil, "alice"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("cancel without a site: %v, want bad_request", err)
	}
	if _, err := p.CancelDistribution(ctx, "tools", "1.0", []string{"a.b"}, "alice"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("cancel to a bad site code: %v, want bad_request", err)
	}
	if _, err := p.CancelDistribution(ctx, "tools", "3.0", []string{"GON"}, "alice"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("cancel of a version never sent: %v, want not_found", err)
	}

	// Every version to GON (version ""): both jobs, the worker stops.
	got, err := p.CancelDistribution(ctx, "tools", "", []string{"GON"}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != "1.0" || got[1].Version != "2.0" || got[0].Site != "GON" || got[0].Attempts != 1 {
		t.Fatalf("cancelled %+v: want tools 1.0 and 2.0 to GON as they stood", got)
	}
	natstest.Wait(t, waitFor, "the worker for GON to stop", func() bool { return !working(p, "GON") })
	for _, v := range []string{"1.0", "2.0"} {
		if _, err := p.jobsKV.Get(ctx, jobKey("tools", v, "GON")); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("job tools %s to GON after the cancel: %v; want it deleted, not written again", v, err)
		}
	}
	if r := p.Route("GON"); r.Backlog != 0 {
		t.Fatalf("route to GON %+v: want nothing queued", r)
	}
	if m, ok := par.emit.last(contracts.StatusPackageDistributionCancelled); !ok || m.Properties["by"] != "bob" || m.Properties["sites"] != "GON" || !m.Audit {
		t.Fatalf("status 8009: %+v, want an audit message by bob for GON", m)
	}
	if n := par.emit.count(contracts.StatusPackageDistributionCancelled); n != 2 {
		t.Fatalf("status 8009 sent %d times, want once per version", n)
	}

	// One version to the site whose schedule is closed.
	if got, err := p.CancelDistribution(ctx, "tools", "1.0", []string{"NGT", "GON"}, "bob"); err != nil || len(got) != 1 || got[0].Site != "NGT" {
		t.Fatalf("cancel to NGT = %+v, %v; want the one job to NGT", got, err)
	}
	natstest.Wait(t, waitFor, "the worker for NGT to stop", func() bool { return !working(p, "NGT") })
	if _, err := p.jobsKV.Get(ctx, jobKey("tools", "1.0", "NGT")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("job to NGT after the cancel: %v; want it deleted", err)
	}
	if jobs := p.Jobs("tools", ""); len(jobs) != 0 {
		t.Fatalf("jobs after the cancels: %+v, want none", jobs)
	}
	if n := par.emit.count(contracts.StatusSendFailed); n != 0 {
		t.Fatalf("a cancelled job reported failed %d times", n)
	}
	// The versions stay; a new distribution starts afresh.
	if _, err := p.Distribute(ctx, "tools", "2.0", []string{"GON"}, "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "the new job to be tried", func() bool {
		j, _ := jobOf(p, "tools", "2.0", "GON")
		return j.Attempts == 1
	})
}
