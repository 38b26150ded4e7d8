package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// TestPolicyFullOutbox: an outbox full of another kind (the site's status
// service away) does not stop a policy: within the reserve its
// acknowledgement is queued; past it the acknowledgement is dropped and
// the policy applied all the same.
func TestPolicyFullOutbox(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a := b.newAgent(func(c *Config) { c.OutboxMax = 3 })
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	status := func() {
		t.Helper()
		if err := a.Enqueue(contracts.KindStatus, contracts.TypeStatusMessage, contracts.NewStatus(contracts.StatusAgentPackageInstalled, nil)); err != nil {
			t.Fatal(err)
		}
	}
	on := contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr(contracts.AccessFull)}}
	if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(1, on)), "test") {
		t.Fatal("revision 1 not applied")
	}
	status()
	status()
	if err := a.Enqueue(contracts.KindStatus, contracts.TypeStatusMessage, contracts.NewStatus(contracts.StatusAgentPackageInstalled, nil)); err == nil {
		t.Fatal("a fourth entry in an outbox of 3: want refused")
	}
	off := contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(false)}}
	if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(2, off)), "test") {
		t.Fatal("revision 2 not applied with the outbox full of status messages")
	}
	if n, _ := a.store.OutboxLen(); n != 4 {
		t.Fatalf("%d outbox entries, want 4: revision 2's acknowledgement in the reserve", n)
	}
	// Past the reserve: applied, the acknowledgement dropped.
	for range 20 {
		e, err := newEntry(contracts.KindStatus, contracts.TypeStatusMessage, contracts.NewStatus(contracts.StatusAgentPackageInstalled, nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.Enqueue(0, e); err != nil {
			t.Fatal(err)
		}
	}
	n, _ := a.store.OutboxLen()
	if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(3, on)), "test") {
		t.Fatal("revision 3 not applied past the outbox's reserve")
	}
	st, _ := a.store.Policy()
	if m, _ := a.store.OutboxLen(); st.Revision != 3 || !*st.Settings.RemoteTools.Enabled || m != n {
		t.Fatalf("revision %d in force, remote tools %v, %d outbox entries (want 3, true, %d)", st.Revision, *st.Settings.RemoteTools.Enabled, m, n)
	}
	// A policy rejected past the reserve (expired: the agent was away a
	// week) is recorded as rejected, its acknowledgement dropped; the
	// agent goes on (it dereferenced the policy it had refused, and
	// crashed at every fetch while the outbox stayed full).
	expired := b.policyFor(4, off)
	expired.Issued, expired.Expires = time.Now().Add(-8*24*time.Hour), time.Now().Add(-time.Hour)
	if a.applyPolicy(ctx, signPolicy(t, b.siteKP, expired), "test") {
		t.Fatal("an expired policy applied")
	}
	st, _ = a.store.Policy()
	if st.Revision != 3 || st.LastRejection == nil || st.LastRejection.Code != contracts.RejectExpired {
		t.Fatalf("revision %d in force, last rejection %+v (want 3, expired)", st.Revision, st.LastRejection)
	}
}

// TestContentFullOutbox: a download finished while the outbox is full of
// another kind is recorded as installed (its status message in the
// reserve), not fetched again at every sync.
func TestContentFullOutbox(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	cs := b.contentSite(svc)
	p := b.newPackage("big", "1", []testFile{{"data.bin", 0o640, randomBytes(3, 3*contracts.ChunkSize)}}, nil)
	a := b.newAgent(func(c *Config) { c.OutboxMax = 5 })
	for range 5 {
		if err := a.Enqueue(contracts.KindStatus, contracts.TypeStatusMessage, contracts.NewStatus(contracts.StatusAgentPackageInstalled, nil)); err != nil {
			t.Fatal(err)
		}
	}
	cs.assign(p)
	b.run(a)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, ok := heldContent(a, "big@1"); ok && c.State == contracts.ContentInstalled {
			break
		}
		if time.Now().After(deadline) {
			c, _ := heldContent(a, "big@1")
			t.Fatalf("big@1 is %q, want installed", c.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 2 {
		cs.changed(svc)
		time.Sleep(300 * time.Millisecond)
	}
	if _, chunks, _ := cs.counts(); chunks != 3 {
		t.Errorf("%d chunk requests for a version of 3 chunks, want 3", chunks)
	}
}
