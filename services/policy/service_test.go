package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

const site = "LAB"

// fakeDirectory stands in for discovery: collections by ID and name, and
// their members.
type fakeDirectory struct {
	mu      sync.Mutex
	colls   map[string]contracts.Named
	members map[string][]contracts.Named
	refused map[string]bool // operators whose reads are denied
	// listed, when set, runs after Members has read a collection's list
	// and before it answers: what it changes, the answer does not say.
	listed func(collection string)
}

func newDirectory() *fakeDirectory {
	return &fakeDirectory{colls: map[string]contracts.Named{contracts.AllSystemsID: {ID: contracts.AllSystemsID, Name: contracts.AllSystemsName}}, members: map[string][]contracts.Named{}}
}

func (d *fakeDirectory) set(coll contracts.Named, ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.colls[coll.ID] = coll
	var ms []contracts.Named
	for _, id := range ids {
		ms = append(ms, contracts.Named{ID: id, Name: "n-" + id})
	}
	d.members[coll.ID] = ms
}

func (d *fakeDirectory) Collection(_ context.Context, _, ref string) (contracts.Named, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.colls {
		if c.ID == ref || strings.EqualFold(c.Name, ref) {
			return c, nil
		}
	}
	return contracts.Named{}, contracts.Errorf(contracts.CodeNotFound, "unknown collection %q", ref)
}

func (d *fakeDirectory) Members(_ context.Context, operator, id string) ([]contracts.Named, error) {
	d.mu.Lock()
	if d.refused[operator] {
		d.mu.Unlock()
		return nil, contracts.Errorf(contracts.CodePermissionDenied, "%s may not read collection %s", operator, id)
	}
	if _, ok := d.colls[id]; !ok {
		d.mu.Unlock()
		return nil, contracts.Errorf(contracts.CodeNotFound, "unknown collection %q", id)
	}
	list, listed := slices.Clone(d.members[id]), d.listed
	d.mu.Unlock()
	if listed != nil {
		listed(id)
	}
	return list, nil
}

func (d *fakeDirectory) Client(_ context.Context, _, ref string) (contracts.Client, error) {
	return contracts.Client{ID: ref, Name: "n-" + ref}, nil
}

// agents records, per client, the policies pushed to it, verified with
// the site key.
type agents struct {
	mu     sync.Mutex
	latest map[string]contracts.Policy
	pushes int
	bad    []string
}

func watchAgents(t *testing.T, nc *nats.Conn, sitePub string) *agents {
	a := &agents{latest: map[string]contracts.Policy{}}
	key, _ := nkeys.FromPublicKey(sitePub)
	_, err := nc.Subscribe("steward."+site+".agent.*.down.policy", func(m *nats.Msg) {
		var sp contracts.SignedPolicy
		var p contracts.Policy
		err := json.Unmarshal(m.Data, &sp)
		if err == nil {
			err = key.Verify(contracts.PolicySigningInput(sp.Policy), sp.Signature)
		}
		if err == nil {
			err = json.Unmarshal(sp.Policy, &p)
		}
		info, _ := contracts.ParseSubject(m.Subject)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.pushes++
		if err != nil || p.ClientID != info.Principal {
			a.bad = append(a.bad, fmt.Sprintf("%s: %v (%s)", m.Subject, err, p.ClientID))
			return
		}
		if p.Revision > a.latest[p.ClientID].Revision {
			a.latest[p.ClientID] = p
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return a
}

func (a *agents) get(id string) (contracts.Policy, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.latest[id]
	return p, ok
}

type testSite struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	dir    *fakeDirectory
	key    nkeys.KeyPair
	svcs   []*Service
	agents *agents
}

// startTestSite runs n instances of the service on one server; each
// tweak changes every instance's config (authorization, say).
func startTestSite(t *testing.T, n int, tweaks ...func(*Config)) *testSite {
	return startTestSiteOn(t, natstest.Start(t), n, tweaks...)
}

// startTestSiteOn is startTestSite on server srv.
func startTestSiteOn(t *testing.T, srv *server.Server, n int, tweaks ...func(*Config)) *testSite {
	nc := natstest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	subj, _ := contracts.MembershipSubject(site)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: DiscoveryEventsStream, Subjects: []string{subj}}); err != nil {
		t.Fatal(err)
	}
	kp, _ := nkeys.CreateOperator()
	pub, _ := kp.PublicKey()
	ts := &testSite{t: t, nc: nc, js: js, dir: newDirectory(), key: kp}
	ts.agents = watchAgents(t, natstest.Connect(t, srv), pub)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("STEWARD_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for range n {
		cfg := Config{NC: natstest.Connect(t, srv), Site: site, SiteKey: kp, NoAuthz: true, Directory: ts.dir, Log: log, ResyncEvery: -1}
		for _, tweak := range tweaks {
			tweak(&cfg)
		}
		svc, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		natstest.RunService(t, svc)
		ts.svcs = append(ts.svcs, svc)
	}
	return ts
}

// op sends an operator request as alice.
func (ts *testSite) op(kind string, req, resp any) error { return ts.opAs("alice", kind, req, resp) }

// opAs sends an operator request as operator.
func (ts *testSite) opAs(operator, kind string, req, resp any) error {
	subj, _ := contracts.OpUp(site, operator, kind)
	return rpc.Call(context.Background(), ts.nc, subj, req, resp)
}

func (ts *testSite) apply(t *testing.T, s contracts.Settings) contracts.SettingsApplyResponse {
	t.Helper()
	var resp contracts.SettingsApplyResponse
	if err := ts.op(contracts.KindSettingsApply, contracts.SettingsApplyRequest{Header: contracts.NewHeader(contracts.TypeSettingsApplyRequest), Settings: s}, &resp); err != nil {
		t.Fatalf("apply %s: %v", s.Name, err)
	}
	return resp
}

func (ts *testSite) deploy(t *testing.T, kind, ref, coll string) contracts.SettingsDeployResponse {
	t.Helper()
	var resp contracts.SettingsDeployResponse
	if err := ts.op(kind, contracts.SettingsDeployRequest{Header: contracts.NewHeader(contracts.TypeSettingsDeployRequest), Ref: ref, Collection: coll}, &resp); err != nil {
		t.Fatalf("%s %s to %s: %v", kind, ref, coll, err)
	}
	return resp
}

// membership publishes a discovery membership event.
func (ts *testSite) membership(t *testing.T, coll contracts.Named, added, removed []string) {
	t.Helper()
	subj, _ := contracts.MembershipSubject(site)
	ev := contracts.MembershipChanged{Header: contracts.NewHeader(contracts.TypeMembershipChanged), Collection: coll, Added: added, Removed: removed, Cause: contracts.CauseClient}
	data, _ := json.Marshal(ev)
	if _, err := ts.js.Publish(context.Background(), subj, data); err != nil {
		t.Fatal(err)
	}
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%04d", prefix, i))
	}
	return out
}

func enabled(p contracts.Policy) bool {
	rt := p.Settings.RemoteTools
	return rt != nil && rt.Enabled != nil && *rt.Enabled
}

// TestServiceFanOut runs two instances on one server: a deployment pushes
// a signed policy to every member, membership events add and remove
// members, a settings change made through the other instance reaches the
// members only, and both instances agree on every client's revision.
func TestServiceFanOut(t *testing.T) {
	ts := startTestSite(t, 2)
	web := contracts.Named{ID: "coll-web", Name: "Web"}
	ts.dir.set(web, ids("web", 0, 300))
	ts.apply(t, contracts.Settings{Name: "Lab", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true)}}})
	dep := ts.deploy(t, contracts.KindSettingsDeploy, "Lab", "web")
	if dep.Result != contracts.DeployDeployed || dep.Members != 300 || dep.Clients != 300 {
		t.Fatalf("deploy: got %+v, want 300 members with a new policy", dep)
	}
	natstest.Wait(t, 10*time.Second, "300 pushes", func() bool {
		for _, id := range ids("web", 0, 300) {
			if p, ok := ts.agents.get(id); !ok || !enabled(p) {
				return false
			}
		}
		return true
	})

	// Discovery says 50 joined and 10 left.
	ts.membership(t, web, ids("web", 300, 350), ids("web", 0, 10))
	natstest.Wait(t, 10*time.Second, "the membership event applied", func() bool {
		for _, id := range ids("web", 300, 350) {
			if p, ok := ts.agents.get(id); !ok || !enabled(p) {
				return false
			}
		}
		for _, id := range ids("web", 0, 10) {
			if p, _ := ts.agents.get(id); enabled(p) {
				return false
			}
		}
		return true
	})

	// A change through either instance reaches the 340 members.
	before := ts.agents.pushes
	resp := ts.apply(t, contracts.Settings{Name: "Lab", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr("view")}}})
	if resp.Result != contracts.ApplyUpdated || resp.Clients != 340 {
		t.Fatalf("update: got %s to %d clients, want updated to 340", resp.Result, resp.Clients)
	}
	natstest.Wait(t, 10*time.Second, "the change pushed", func() bool {
		ts.agents.mu.Lock()
		defer ts.agents.mu.Unlock()
		return ts.agents.pushes-before >= 340
	})
	// Applying it again pushes nothing: no revision without a change.
	again := ts.apply(t, contracts.Settings{Name: "Lab", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr("view")}}})
	if again.Result != contracts.ApplyUnchanged || again.Clients != 0 {
		t.Fatalf("apply again: got %+v", again)
	}
	for _, svc := range ts.svcs {
		natstest.Wait(t, 10*time.Second, "both instances to agree", func() bool {
			for _, id := range ids("web", 0, 350) {
				e, _ := svc.model.client(id)
				p, _ := ts.agents.get(id)
				if e.rec.Revision != p.Revision {
					return false
				}
			}
			return true
		})
	}
	ts.agents.mu.Lock()
	if len(ts.agents.bad) > 0 {
		t.Fatalf("bad pushes: %v", ts.agents.bad[:min(3, len(ts.agents.bad))])
	}
	ts.agents.mu.Unlock()

	// Undeploy: every member gets the defaults.
	ts.deploy(t, contracts.KindSettingsUndeploy, "Lab", "Web")
	natstest.Wait(t, 10*time.Second, "undeployed", func() bool {
		for _, id := range ids("web", 10, 350) {
			if p, _ := ts.agents.get(id); enabled(p) {
				return false
			}
		}
		return true
	})
}

// TestServiceConcurrentChanges changes the same clients through both
// instances at once (settings changes, membership events): each record is
// written by compare-and-set, so both instances end with the same
// revision per client, and the last push of every client says what the
// final catalog says.
func TestServiceConcurrentChanges(t *testing.T) {
	ts := startTestSite(t, 2)
	web := contracts.Named{ID: "coll-web", Name: "Web"}
	ts.dir.set(web, ids("c", 0, 100))
	ts.apply(t, contracts.Settings{Name: "A", Priority: 10})
	ts.deploy(t, contracts.KindSettingsDeploy, "A", "Web")

	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			var resp contracts.SettingsApplyResponse
			port := []int{1000 + i}
			_ = ts.op(contracts.KindSettingsApply, contracts.SettingsApplyRequest{Header: contracts.NewHeader(contracts.TypeSettingsApplyRequest),
				Settings: contracts.Settings{Name: "A", Priority: 10, SettingsSections: contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{TunnelPorts: &port}}}}, &resp)
		})
	}
	ts.membership(t, web, ids("c", 100, 120), nil)
	wg.Wait()
	// Whichever change won last, every client ends on it.
	var final contracts.SettingsInfo
	if err := ts.op(contracts.KindSettingsShow, contracts.SettingsRequest{Header: contracts.NewHeader(contracts.TypeSettingsRequest), Ref: "A"}, &struct {
		contracts.Header
		Settings *contracts.SettingsInfo `json:"settings"`
	}{Settings: &final}); err != nil {
		t.Fatal(err)
	}
	want := (*final.RemoteTools.TunnelPorts)[0]
	natstest.Wait(t, 15*time.Second, "every client on the final settings", func() bool {
		for _, id := range ids("c", 0, 120) {
			p, ok := ts.agents.get(id)
			if !ok || p.Settings.RemoteTools.TunnelPorts == nil || (*p.Settings.RemoteTools.TunnelPorts)[0] != want {
				return false
			}
			for _, svc := range ts.svcs {
				if e, _ := svc.model.client(id); e.rec.Revision != p.Revision {
					return false
				}
			}
		}
		return true
	})
}

// TestServiceFetchAndAck: an agent's fetch gets its policy signed now, or
// "current"; an agent ahead of the site gets a revision above its own; its
// acknowledgements make compliance.
func TestServiceFetchAndAck(t *testing.T) {
	ts := startTestSite(t, 1)
	fetch := func(client string, applied uint64) contracts.PolicyFetchResponse {
		t.Helper()
		return ts.fetchAs(t, client, applied)
	}
	first := fetch("c1", 0)
	if first.Current || first.Policy == nil || first.Revision != 1 {
		t.Fatalf("first fetch: got %+v, want revision 1 signed", first)
	}
	var p contracts.Policy
	_ = json.Unmarshal(first.Policy.Policy, &p)
	if p.ClientID != "c1" || p.Site != site || !p.Expires.After(time.Now().Add(6*24*time.Hour)) || p.Origins["remoteTools.enabled"].Name != contracts.DefaultSettingsName {
		t.Fatalf("got %+v", p)
	}
	if again := fetch("c1", 1); !again.Current || again.Policy != nil {
		t.Fatalf("fetch at the current revision: got %+v, want current", again)
	}
	if ahead := fetch("c1", 40); ahead.Revision != 41 || ahead.Policy == nil {
		t.Fatalf("agent ahead at 40: got revision %d, want 41", ahead.Revision)
	}

	ack := func(a contracts.PolicyAck) contracts.OutboxAck {
		t.Helper()
		data, _ := json.Marshal(a)
		subj, _ := contracts.AgentUp(site, "c1", contracts.KindPolicyAck)
		var resp contracts.OutboxAck
		batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: []contracts.OutboxItem{{ID: a.ID, Type: contracts.TypePolicyAck, Time: time.Now(), Data: data}}}
		if err := rpc.Call(context.Background(), ts.nc, subj, batch, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	compliance := func() contracts.ClientPolicyResponse {
		var resp contracts.ClientPolicyResponse
		if err := ts.op(contracts.KindClientsPolicy, contracts.ClientPolicyRequest{Header: contracts.NewHeader(contracts.TypeClientPolicyRequest), Ref: "c1"}, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if got := compliance(); got.State != contracts.ComplianceUnknown || got.Revision != 41 {
		t.Fatalf("before any report: got %s at %d", got.State, got.Revision)
	}
	a := contracts.PolicyAck{Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 41, Applied: true, AppliedRevision: 41, AppliedAt: time.Now()}
	if r := ack(a); len(r.Stored) != 1 {
		t.Fatalf("ack: got %+v", r)
	}
	if got := compliance(); got.State != contracts.ComplianceApplied || got.AppliedRevision != 41 {
		t.Fatalf("after the ack: got %s at %d", got.State, got.AppliedRevision)
	}
	rej := contracts.PolicyAck{Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 0, AppliedRevision: 41, Code: contracts.RejectSignature, Reason: "bad"}
	ack(rej)
	if got := compliance(); got.State != contracts.ComplianceApplied {
		t.Fatalf("a rejected forgery does not change compliance: got %s", got.State)
	}
	// The agent runs revision 50 (the site's records were restored from an
	// older backup) and refuses 41 as a replay: the site makes 51 and
	// pushes it, and the client is pending until it acknowledges 51.
	replay := contracts.PolicyAck{Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 41, AppliedRevision: 50, Code: contracts.RejectReplay, Reason: "revision 41 is not newer than the applied revision 50"}
	ack(replay)
	natstest.Wait(t, 10*time.Second, "revision 51 pushed to c1", func() bool {
		p, ok := ts.agents.get("c1")
		return ok && p.Revision == 51
	})
	if got := compliance(); got.State != contracts.CompliancePending || got.Revision != 51 {
		t.Fatalf("after the catch-up: got %s at %d, want pending at 51", got.State, got.Revision)
	}
	// A malformed acknowledgement is refused for good.
	bad := contracts.PolicyAck{Header: contracts.NewHeader(contracts.TypePolicyAck)}
	if r := ack(bad); len(r.Rejected) != 1 || r.Rejected[0].Code != contracts.CodeBadRequest {
		t.Fatalf("malformed ack: got %+v", r)
	}
}

// TestResyncTriesEveryDeployer: the members of a collection are read again
// on behalf of an operator who deployed to it; when the first cannot read
// them any more (deleted, or no longer granted the collection), the next
// one is asked. Resync gave up on the collection for good.
func TestResyncTriesEveryDeployer(t *testing.T) {
	ts := startTestSite(t, 1)
	lab := contracts.Named{ID: "coll-lab", Name: "Lab"}
	ts.dir.set(lab, []string{"c1"})
	ts.apply(t, contracts.Settings{Name: "A first", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true)}}})
	ts.apply(t, contracts.Settings{Name: "B second", Priority: 20, SettingsSections: contracts.SettingsSections{
		Agent: &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(time.Minute))}}})
	ts.deploy(t, contracts.KindSettingsDeploy, "A first", "lab")
	var dep contracts.SettingsDeployResponse
	if err := ts.opAs("bob", contracts.KindSettingsDeploy, contracts.SettingsDeployRequest{Header: contracts.NewHeader(contracts.TypeSettingsDeployRequest), Ref: "B second", Collection: "lab"}, &dep); err != nil {
		t.Fatal(err)
	}
	// alice may no longer read Lab; c2 joined and its event was lost.
	ts.dir.mu.Lock()
	ts.dir.refused = map[string]bool{"alice": true}
	ts.dir.mu.Unlock()
	ts.dir.set(lab, []string{"c1", "c2"})
	if !ts.svcs[0].resync(context.Background(), true) {
		t.Fatal("resync with bob still granted: incomplete")
	}
	natstest.Wait(t, 10*time.Second, "c2's policy after the resync", func() bool {
		p, ok := ts.agents.get("c2")
		return ok && enabled(p)
	})
	// Nobody who deployed can read Lab (or discovery does not answer, as
	// at a site's start): the resync says it is incomplete, to be tried
	// again soon rather than in an hour.
	ts.dir.mu.Lock()
	ts.dir.refused = map[string]bool{"alice": true, "bob": true}
	ts.dir.mu.Unlock()
	if ts.svcs[0].resync(context.Background(), false) {
		t.Fatal("resync with no deployer able to read Lab: complete")
	}
}

// TestAcksInOneBatch: the reports of one client in one outbox batch each
// build on the one before (each was built on the stored record, so the
// last one lost what the others said), and a rejection of a lower
// revision (an old or forged message) does not hide the failure of the
// current one.
func TestAcksInOneBatch(t *testing.T) {
	ts := startTestSite(t, 1)
	subj, _ := contracts.AgentUp(site, "c2", contracts.KindPolicyFetch)
	var resp contracts.PolicyFetchResponse
	if err := rpc.Call(context.Background(), ts.nc, subj, contracts.PolicyFetchRequest{Header: contracts.NewHeader(contracts.TypePolicyFetchRequest), AppliedRevision: 40}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Revision != 41 {
		t.Fatalf("fetch: revision %d, want 41", resp.Revision)
	}
	appliedAt := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	acks := []contracts.PolicyAck{
		{Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 40, Applied: true, AppliedRevision: 40, AppliedAt: appliedAt},
		{Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 41, AppliedRevision: 40, Code: contracts.RejectExpired, Reason: "expired an hour ago"},
		{Header: contracts.NewHeader(contracts.TypePolicyAck), Revision: 0, AppliedRevision: 40, Code: contracts.RejectSignature, Reason: "bad signature"},
	}
	batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch)}
	for _, a := range acks {
		data, _ := json.Marshal(a)
		batch.Items = append(batch.Items, contracts.OutboxItem{ID: a.ID, Type: contracts.TypePolicyAck, Time: time.Now(), Data: data})
	}
	ackSubj, _ := contracts.AgentUp(site, "c2", contracts.KindPolicyAck)
	var ack contracts.OutboxAck
	if err := rpc.Call(context.Background(), ts.nc, ackSubj, batch, &ack); err != nil {
		t.Fatal(err)
	}
	if len(ack.Stored) != len(acks) {
		t.Fatalf("stored %d of %d: %+v", len(ack.Stored), len(acks), ack)
	}
	kv, err := ts.js.KeyValue(context.Background(), ComplianceBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), "c2")
	if err != nil {
		t.Fatal(err)
	}
	var rec complianceRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.AppliedRevision != 40 || !rec.AppliedAt.Equal(appliedAt) || rec.RejectedRevision != 41 || rec.Code != contracts.RejectExpired {
		t.Fatalf("stored record %+v: want applied 40 at %v, rejected 41 (%s)", rec, appliedAt, contracts.RejectExpired)
	}
	var cp contracts.ClientPolicyResponse
	if err := ts.op(contracts.KindClientsPolicy, contracts.ClientPolicyRequest{Header: contracts.NewHeader(contracts.TypeClientPolicyRequest), Ref: "c2"}, &cp); err != nil {
		t.Fatal(err)
	}
	if cp.State != contracts.ComplianceFailed || cp.Reason != "expired an hour ago" {
		t.Fatalf("compliance %s (%q), want failed: expired an hour ago", cp.State, cp.Reason)
	}
}

// TestStaleMembersListKeepsEvents: a members list read before a membership
// event and used after it (a resync or a deployment racing a client
// joining or leaving) does not undo the event; a change with no event (a
// lost one) is still repaired by the list.
func TestStaleMembersListKeepsEvents(t *testing.T) {
	ts := startTestSite(t, 1)
	svc := ts.svcs[0]
	web := contracts.Named{ID: "coll-web", Name: "Web"}
	ts.dir.set(web, []string{"w1", "w2"})
	ts.apply(t, contracts.Settings{Name: "Lab", Priority: 10, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true)}}})
	ts.deploy(t, contracts.KindSettingsDeploy, "Lab", "web")
	inWeb := func(id string) bool {
		e, ok := svc.model.client(id)
		return ok && slices.Contains(e.rec.Collections, web.ID)
	}
	natstest.Wait(t, 10*time.Second, "w1 and w2 in Web", func() bool { return inWeb("w1") && inWeb("w2") })

	// Discovery lists Web as {w1, w2}; before the list reaches the
	// policy service, w3 joins and w1 leaves, and their events are applied.
	var once sync.Once
	ts.dir.listed = func(string) {
		once.Do(func() {
			ts.membership(t, web, []string{"w3"}, []string{"w1"})
			natstest.Wait(t, 10*time.Second, "the event applied", func() bool { return inWeb("w3") && !inWeb("w1") })
		})
	}
	if !svc.resync(context.Background(), true) {
		t.Fatal("resync incomplete")
	}
	if !inWeb("w3") || inWeb("w1") || !inWeb("w2") {
		t.Fatalf("after a resync on a list older than the event: w1 %v, w2 %v, w3 %v; want out, in, in", inWeb("w1"), inWeb("w2"), inWeb("w3"))
	}
	if p, ok := ts.agents.get("w3"); !ok || !enabled(p) {
		t.Fatalf("w3's last policy pushed: %+v (pushed %v), want remote tools enabled", p.Settings, ok)
	}

	// The list is newer than every event: w4 joined with its event lost,
	// w3 left with its event lost. The list wins.
	ts.dir.listed = nil
	ts.dir.set(web, []string{"w2", "w4"})
	if !svc.resync(context.Background(), true) {
		t.Fatal("resync incomplete")
	}
	if !inWeb("w4") || inWeb("w3") || !inWeb("w2") {
		t.Fatalf("after a resync on a list newer than every event: w2 %v, w3 %v, w4 %v; want in, out, in", inWeb("w2"), inWeb("w3"), inWeb("w4"))
	}
}
