package policy

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// fetchAs fetches client's policy saying it runs applied.
func (ts *testSite) fetchAs(t *testing.T, client string, applied uint64) contracts.PolicyFetchResponse {
	t.Helper()
	subj, _ := contracts.AgentUp(site, client, contracts.KindPolicyFetch)
	var resp contracts.PolicyFetchResponse
	if err := rpc.Call(context.Background(), ts.nc, subj, contracts.PolicyFetchRequest{Header: contracts.NewHeader(contracts.TypePolicyFetchRequest), AppliedRevision: applied}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// ackAs sends client's acknowledgements in one outbox batch.
func (ts *testSite) ackAs(t *testing.T, client string, acks ...contracts.PolicyAck) {
	t.Helper()
	batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch)}
	for _, a := range acks {
		a.Header = contracts.NewHeader(contracts.TypePolicyAck)
		data, _ := json.Marshal(a)
		batch.Items = append(batch.Items, contracts.OutboxItem{ID: a.ID, Type: contracts.TypePolicyAck, Time: time.Now(), Data: data})
	}
	subj, _ := contracts.AgentUp(site, client, contracts.KindPolicyAck)
	var resp contracts.OutboxAck
	if err := rpc.Call(context.Background(), ts.nc, subj, batch, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Stored) != len(acks) {
		t.Fatalf("acks of %s: stored %d of %d: %+v", client, len(resp.Stored), len(acks), resp)
	}
}

// clientPolicy is the operator's view of client.
func (ts *testSite) clientPolicy(t *testing.T, client string) contracts.ClientPolicyResponse {
	t.Helper()
	var resp contracts.ClientPolicyResponse
	if err := ts.op(contracts.KindClientsPolicy, contracts.ClientPolicyRequest{Header: contracts.NewHeader(contracts.TypeClientPolicyRequest), Ref: client}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestRejectionOfAnotherClientsPolicy: a client that had another client's
// policy replayed to it reports a rejection with code client (or site)
// and that policy's revision. It does not make the client failed, nor
// does a rejection of a revision above the client's current one; a
// rejection recorded that way before (revision 57) no longer hides a
// genuine one below it. The client showed failed at a revision it never
// had.
func TestRejectionOfAnotherClientsPolicy(t *testing.T) {
	ts := startTestSite(t, 1)
	if r := ts.fetchAs(t, "c3", 0); r.Revision != 1 {
		t.Fatalf("fetch: revision %d, want 1", r.Revision)
	}
	ts.ackAs(t, "c3", contracts.PolicyAck{Revision: 1, Applied: true, AppliedRevision: 1, AppliedAt: time.Now()})
	// Revision 2 (the defaults change) is on its way to c3.
	ts.apply(t, contracts.Settings{Name: contracts.DefaultSettingsName, SettingsSections: contracts.SettingsSections{Agent: &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(time.Minute))}}})
	ts.ackAs(t, "c3",
		contracts.PolicyAck{Revision: 57, AppliedRevision: 1, Code: contracts.RejectClient, Reason: "the policy is for client c9"},
		contracts.PolicyAck{Revision: 2, AppliedRevision: 1, Code: contracts.RejectSite, Reason: "the policy is for site OTHER"},
		contracts.PolicyAck{Revision: 0, AppliedRevision: 1, Code: contracts.RejectClient, Reason: "the policy is for client c9"},
		contracts.PolicyAck{Revision: 99, AppliedRevision: 1, Code: contracts.RejectExpired, Reason: "expired"},
	)
	if got := ts.clientPolicy(t, "c3"); got.State != contracts.CompliancePending || got.Revision != 2 || got.AppliedRevision != 1 {
		t.Fatalf("after rejections of policies not issued to c3: %s (%q) at %d applied %d, want pending at 2", got.State, got.Reason, got.Revision, got.AppliedRevision)
	}
	if rec, _ := ts.svcs[0].model.report("c3"); rec.RejectedRevision != 0 || rec.Code != "" {
		t.Fatalf("stored rejection %d (%s), want none", rec.RejectedRevision, rec.Code)
	}

	// A record from before: rejected 57 (another client's revision).
	kv, err := ts.js.KeyValue(context.Background(), ComplianceBucket)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := json.Marshal(complianceRecord{AppliedRevision: 1, Reported: time.Now(), RejectedRevision: 57, Code: contracts.RejectClient, Reason: "the policy is for client c9"})
	if _, err := kv.Put(context.Background(), "c3", old); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 10*time.Second, "the old record loaded", func() bool {
		rec, _ := ts.svcs[0].model.report("c3")
		return rec.RejectedRevision == 57
	})
	// c3 genuinely rejects revision 2.
	ts.ackAs(t, "c3", contracts.PolicyAck{Revision: 2, AppliedRevision: 1, Code: contracts.RejectExpired, Reason: "issued in the future"})
	if got := ts.clientPolicy(t, "c3"); got.Revision != 2 || got.State != contracts.ComplianceFailed || got.Reason != "issued in the future" {
		t.Fatalf("after a genuine rejection of 2: %s (%q) at %d, want failed at 2", got.State, got.Reason, got.Revision)
	}
}
