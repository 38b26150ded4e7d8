package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// signPolicy signs p as the site does: the JSON once, the signature over
// exactly those bytes.
func signPolicy(t testing.TB, kp nkeys.KeyPair, p contracts.Policy) []byte {
	t.Helper()
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return envelope(t, kp, body)
}

func envelope(t testing.TB, kp nkeys.KeyPair, body []byte) []byte {
	t.Helper()
	sig, err := kp.Sign(contracts.PolicySigningInput(body))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	data, _ := json.Marshal(contracts.SignedPolicy{Header: contracts.NewHeader(contracts.TypeSignedPolicy), Policy: body, Signature: sig, Key: pub})
	return data
}

// policyFor is a policy of revision rev for the bench's client.
func (b *bench) policyFor(rev uint64, sections contracts.SettingsSections) contracts.Policy {
	now := time.Now().UTC()
	return contracts.Policy{
		Header: contracts.NewHeader(contracts.TypePolicy), Site: testSite, ClientID: b.clientID, Revision: rev,
		Issued: now, Expires: now.Add(time.Hour), Settings: sections,
		Origins: map[string]contracts.Named{"remoteTools.enabled": {ID: "s1", Name: "Lab"}},
	}
}

// policyAgent is an enrolled agent that is not running: policies are
// applied to it directly.
func policyAgent(t *testing.T) (*bench, *Agent) {
	b := newBench(t)
	b.enrolled()
	a := b.newAgent(nil)
	t.Cleanup(func() { a.Close() })
	return b, a
}

// acks returns the policy acknowledgements in the outbox.
func acks(t *testing.T, a *Agent) []contracts.PolicyAck {
	t.Helper()
	pending, err := a.store.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []contracts.PolicyAck
	for _, e := range pending {
		if e.Kind != contracts.KindPolicyAck {
			continue
		}
		var ack contracts.PolicyAck
		if err := json.Unmarshal(e.Item.Data, &ack); err != nil {
			t.Fatal(err)
		}
		out = append(out, ack)
	}
	return out
}

func TestApplyPolicyAcknowledges(t *testing.T) {
	b, a := policyAgent(t)
	ctx := context.Background()
	sec := contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true)}}
	if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(3, sec)), "test") {
		t.Fatal("a valid policy was not applied")
	}
	// The same revision again (a push and a fetch crossing) changes nothing.
	if a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(3, sec)), "test") {
		t.Fatal("the same revision was applied twice")
	}
	// An older revision is a replay: rejected and reported.
	if a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(2, contracts.SettingsSections{})), "test") {
		t.Fatal("an older revision was applied")
	}
	got := acks(t, a)
	if len(got) != 2 || !got[0].Applied || got[0].Revision != 3 || got[1].Applied || got[1].Code != contracts.RejectReplay ||
		got[1].Revision != 2 || got[1].AppliedRevision != 3 {
		t.Fatalf("got acknowledgements %+v, want applied 3, then replay of 2 rejected", got)
	}
	st := a.Status()
	if st.Policy == nil || st.Policy.Revision != 3 || !*st.Policy.Settings.RemoteTools.Enabled || st.Policy.Rejected != 1 ||
		st.Policy.LastRejection.Code != contracts.RejectReplay || st.Policy.Origins["remoteTools.enabled"].Name != "Lab" {
		t.Fatalf("got status policy %+v", st.Policy)
	}
	if err := contracts.Decode(mustJSON(t, got[0]), contracts.TypePolicyAck, &contracts.PolicyAck{}); err != nil {
		t.Fatalf("the acknowledgement does not validate: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestTamperedPolicies sends 1,000 altered policies to an agent that runs
// revision 5: bit flips in the signed body, in the signature and in the
// message's encoding of both, truncations, another site's key, another
// client, replays of older revisions and expired ones. Every one is
// rejected with its reason and reported; revision 5 stays in force; the
// genuine revision 6 then applies.
func TestTamperedPolicies(t *testing.T) {
	b, a := policyAgent(t)
	ctx := context.Background()
	good := contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true), PermittedViewers: ptr([]string{"alice"})}}
	if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(5, good)), "test") {
		t.Fatal("revision 5 not applied")
	}
	next := b.policyFor(6, contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(false)}})
	genuine := signPolicy(t, b.siteKP, next)
	var sp contracts.SignedPolicy
	if err := json.Unmarshal(genuine, &sp); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	other, _ := nkeys.CreateAccount()
	otherPub, _ := other.PublicKey()
	pinned, _ := b.siteKP.PublicKey()

	type tampered struct {
		kind string
		data []byte
		code string
	}
	var cases []tampered
	add := func(kind, code string, data []byte) { cases = append(cases, tampered{kind, data, code}) }
	reencode := func(body, sig []byte, key string) []byte {
		data, _ := json.Marshal(contracts.SignedPolicy{Header: sp.Header, Policy: body, Signature: sig, Key: key})
		return data
	}
	for range 400 { // a bit of the signed body
		body := slices.Clone(sp.Policy)
		i := rng.IntN(len(body))
		body[i] ^= 1 << rng.UintN(8)
		add("body bit flip", contracts.RejectSignature, reencode(body, sp.Signature, sp.Key))
	}
	for range 200 { // a bit of the signature
		sig := slices.Clone(sp.Signature)
		sig[rng.IntN(len(sig))] ^= 1 << rng.UintN(8)
		add("signature bit flip", contracts.RejectSignature, reencode(sp.Policy, sig, sp.Key))
	}
	for range 150 { // the message cut short anywhere
		add("truncated", contracts.RejectMalformed, genuine[:rng.IntN(len(genuine))])
	}
	// A bit of the message as it travels, within the encoded body or
	// signature; a flip that decodes to the very same bytes (base64 has
	// a few don't-care bits) is not a tampering and is skipped.
	start := bytes.Index(genuine, []byte(`"policy":"`)) + len(`"policy":"`)
	end := bytes.Index(genuine, []byte(`"key":"`))
	for n := 0; n < 100; {
		msg := slices.Clone(genuine)
		msg[start+rng.IntN(end-start)] ^= 1 << rng.UintN(7)
		var back contracts.SignedPolicy
		if json.Unmarshal(msg, &back) == nil && bytes.Equal(back.Policy, sp.Policy) && bytes.Equal(back.Signature, sp.Signature) {
			continue
		}
		add("message bit flip", "", msg)
		n++
	}
	for i := range 50 { // signed by another site's key, claiming either key
		key := otherPub
		if i%2 == 0 {
			key = pinned
		}
		sig, _ := other.Sign(contracts.PolicySigningInput(sp.Policy))
		code := contracts.RejectSite
		if key == pinned {
			code = contracts.RejectSignature
		}
		add("another site's key", code, reencode(sp.Policy, sig, key))
	}
	for range 50 { // signed by the site, for another client
		p := next
		p.ClientID = "0b7c6c1e-8c1f-4c31-9d55-" + string(rune('a'+rng.IntN(26))) + "f1f9a3b2d11"
		add("another client", contracts.RejectClient, signPolicy(t, b.siteKP, p))
	}
	for i := range 25 { // a captured older revision, replayed
		add("replay", contracts.RejectReplay, signPolicy(t, b.siteKP, b.policyFor(uint64(1+i%4), good)))
	}
	for range 25 { // expired
		p := next
		p.Issued, p.Expires = time.Now().Add(-9*24*time.Hour), time.Now().Add(-2*24*time.Hour)
		add("expired", contracts.RejectExpired, signPolicy(t, b.siteKP, p))
	}
	if len(cases) != 1000 {
		t.Fatalf("built %d cases, want 1000", len(cases))
	}
	for i, c := range cases {
		if a.applyPolicy(ctx, c.data, "test") {
			t.Fatalf("case %d (%s) was applied", i, c.kind)
		}
		rej := a.Status().Policy.LastRejection
		if c.code != "" && rej.Code != c.code {
			t.Fatalf("case %d (%s): got rejection %s (%s), want %s", i, c.kind, rej.Code, rej.Reason, c.code)
		}
	}
	st := a.Status().Policy
	if st.Revision != 5 || !*st.Settings.RemoteTools.Enabled || st.Rejected != 1000 || a.PolicyRevision() != 5 {
		t.Fatalf("after the tampered policies: got revision %d (PolicyRevision %d), %d rejected; want 5 kept and 1000 rejected", st.Revision, a.PolicyRevision(), st.Rejected)
	}
	reported := acks(t, a)
	if len(reported) != 1001 {
		t.Fatalf("got %d acknowledgements, want 1 applied + 1000 rejections", len(reported))
	}
	for _, r := range reported[1:] {
		if r.Applied || r.AppliedRevision != 5 || r.Code == "" || r.Reason == "" {
			t.Fatalf("got rejection report %+v, want each with its code and reason, revision 5 applied", r)
		}
		// Only a policy verified and meant for this client has a revision
		// of this client's numbering; another client's revision reported
		// made the site show this one failed at a revision it never had.
		if r.Code != contracts.RejectReplay && r.Code != contracts.RejectExpired && r.Revision != 0 {
			t.Fatalf("a %s rejection reported revision %d, want 0", r.Code, r.Revision)
		}
	}
	if !a.applyPolicy(ctx, genuine, "test") {
		t.Fatalf("the genuine revision 6 was not applied after the tampered ones")
	}
}

// TestRemoteAssistanceLayers walks the local configuration layer through
// the seed's states: managed with and without override, tattooed when the
// site stops, reset to the user's own, and revertOnUnmanage.
func TestRemoteAssistanceLayers(t *testing.T) {
	b, a := policyAgent(t)
	ctx := context.Background()
	rev := uint64(0)
	apply := func(ra *contracts.RemoteAssistanceSettings, rt *contracts.RemoteToolsSettings) contracts.AgentPolicyStatus {
		t.Helper()
		rev++
		if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(rev, contracts.SettingsSections{RemoteAssistance: ra, RemoteTools: rt})), "test") {
			t.Fatalf("revision %d not applied", rev)
		}
		return a.PolicyStatus()
	}
	eff := func(st contracts.AgentPolicyStatus) string {
		e := st.RemoteAssistance.Effective
		return boolText(*e.Unsolicited) + "/" + boolText(*e.Solicited) + "/" + *e.Level
	}

	// Unmanaged: the built-in defaults, then the user's own.
	st := apply(nil, nil)
	if eff(st) != "no/yes/full" || st.RemoteAssistance.Managed || st.RemoteAssistance.Tattooed {
		t.Fatalf("unconfigured: got %s %+v", eff(st), st.RemoteAssistance)
	}
	if _, err := a.SetUserSettings([]string{"unsolicited=false", "level=view"}); err != nil {
		t.Fatal(err)
	}
	if got := eff(a.PolicyStatus()); got != "no/yes/view" {
		t.Fatalf("user's own: got %s, want no/yes/view", got)
	}

	// Managed without override: the user's choices win where made.
	managed := &contracts.RemoteAssistanceSettings{Manage: ptr(true), OverrideUserSettings: ptr(false), Unsolicited: ptr(true), Solicited: ptr(false), Level: ptr("full")}
	st = apply(managed, nil)
	if eff(st) != "no/no/view" || !st.RemoteAssistance.Managed || st.RemoteAssistance.Sources["solicited"] != "site" || st.RemoteAssistance.Sources["level"] != "user" {
		t.Fatalf("managed, no override: got %s %+v", eff(st), st.RemoteAssistance)
	}
	// With override the site's values win.
	over := *managed
	over.OverrideUserSettings = ptr(true)
	st = apply(&over, nil)
	if eff(st) != "yes/no/full" || st.RemoteAssistance.Sources["level"] != "site" {
		t.Fatalf("managed, override: got %s %+v", eff(st), st.RemoteAssistance)
	}

	// The site stops managing (undeployed: Default's manage=false): the
	// last values stay in force, tattooed.
	st = apply(&contracts.RemoteAssistanceSettings{Manage: ptr(false), RevertOnUnmanage: ptr(false)}, nil)
	if eff(st) != "yes/no/full" || st.RemoteAssistance.Managed || !st.RemoteAssistance.Tattooed {
		t.Fatalf("unmanaged: got %s %+v, want the last values tattooed", eff(st), st.RemoteAssistance)
	}
	// Another unmanaging policy leaves the tattoo.
	st = apply(nil, nil)
	if !st.RemoteAssistance.Tattooed || eff(st) != "yes/no/full" {
		t.Fatalf("still unmanaged: got %s %+v", eff(st), st.RemoteAssistance)
	}
	// Reset returns to the user's own values.
	resp, err := a.ResetSettings()
	if err != nil || !slices.Contains(resp.Changed, "remoteAssistance") || resp.Policy.RemoteAssistance.Tattooed {
		t.Fatalf("reset: got %+v %v", resp, err)
	}
	if got := eff(a.PolicyStatus()); got != "no/yes/view" {
		t.Fatalf("after reset: got %s, want the user's no/yes/view", got)
	}
	// A reset with nothing tattooed changes nothing.
	if resp, _ := a.ResetSettings(); len(resp.Changed) != 0 {
		t.Fatalf("second reset: got changes %v", resp.Changed)
	}

	// revertOnUnmanage: stopping returns to the user's values at once.
	revert := over
	revert.RevertOnUnmanage = ptr(true)
	apply(&revert, nil)
	st = apply(nil, nil)
	if st.RemoteAssistance.Tattooed || eff(st) != "no/yes/view" {
		t.Fatalf("revert on unmanage: got %s %+v", eff(st), st.RemoteAssistance)
	}
	// A managed value reset is left alone: the site would write it again.
	apply(&over, nil)
	if resp, _ := a.ResetSettings(); len(resp.Changed) != 0 || !a.PolicyStatus().RemoteAssistance.Managed {
		t.Fatalf("reset while managed: got changes %v", resp.Changed)
	}
}

func boolText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// TestRemoteControlUsersRecord: while remote tools are enabled the
// permitted viewers are the local Remote Control Users record; it stays
// after remote tools are disabled, until a reset.
func TestRemoteControlUsersRecord(t *testing.T) {
	b, a := policyAgent(t)
	ctx := context.Background()
	apply := func(rev uint64, rt *contracts.RemoteToolsSettings) []string {
		t.Helper()
		if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(rev, contracts.SettingsSections{RemoteTools: rt})), "test") {
			t.Fatalf("revision %d not applied", rev)
		}
		return a.PolicyStatus().RemoteControlUsers
	}
	if got := apply(1, &contracts.RemoteToolsSettings{Enabled: ptr(false), PermittedViewers: ptr([]string{"mallory"})}); len(got) != 0 {
		t.Fatalf("disabled from the start: got record %v, want none", got)
	}
	if got := apply(2, &contracts.RemoteToolsSettings{Enabled: ptr(true), PermittedViewers: ptr([]string{"alice", "group:helpdesk"})}); !slices.Equal(got, []string{"alice", "group:helpdesk"}) {
		t.Fatalf("enabled: got %v", got)
	}
	if got := apply(3, &contracts.RemoteToolsSettings{Enabled: ptr(true), PermittedViewers: ptr([]string{"bob"})}); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("viewers changed: got %v", got)
	}
	if got := apply(4, &contracts.RemoteToolsSettings{Enabled: ptr(false), PermittedViewers: ptr([]string{})}); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("disabled: got %v, want the record kept", got)
	}
	resp, err := a.ResetSettings()
	if err != nil || !slices.Contains(resp.Changed, "remoteControlUsers") || len(resp.Policy.RemoteControlUsers) != 0 {
		t.Fatalf("reset: got %+v %v", resp, err)
	}
}

// TestPolicyIntervals: the agent section changes the running intervals;
// unconfigured settings fall back to the command line's.
func TestPolicyIntervals(t *testing.T) {
	b, a := policyAgent(t)
	ctx := context.Background()
	ag := &contracts.AgentSettings{Heartbeat: ptr(contracts.Duration(7 * time.Second)), PolicyRefresh: ptr(contracts.Duration(3 * time.Minute))}
	a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(1, contracts.SettingsSections{Agent: ag})), "test")
	if a.heartbeatInterval() != 7*time.Second || a.policyRefresh() != 3*time.Minute {
		t.Fatalf("got heartbeat %s refresh %s", a.heartbeatInterval(), a.policyRefresh())
	}
	select {
	case <-a.pol.heartbeatChanged:
	default:
		t.Fatal("the heartbeat loop was not told")
	}
	a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(2, contracts.SettingsSections{})), "test")
	if a.heartbeatInterval() != time.Hour || a.policyRefresh() != DefaultPolicyRefresh {
		t.Fatalf("unconfigured: got heartbeat %s refresh %s, want the command line's", a.heartbeatInterval(), a.policyRefresh())
	}
	// Scheduled inventory turned off on the command line stays off.
	if a.inventoryInterval() >= 0 {
		t.Fatalf("got inventory interval %s, want off", a.inventoryInterval())
	}

	// A restarted agent runs on the policy it applied.
	a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(3, contracts.SettingsSections{Agent: ag})), "test")
	a.Close()
	a2 := b.newAgent(nil)
	defer a2.Close()
	if a2.heartbeatInterval() != 7*time.Second || a2.Status().Policy.Revision != 3 {
		t.Fatalf("after restart: got heartbeat %s, policy %+v", a2.heartbeatInterval(), a2.Status().Policy)
	}
}

var _ = state.ErrNoChange

// TestStatusShowsFirstRejection: when the very first policy is rejected
// (here: expired by this machine's clock), status says so, though no
// policy was ever applied.
func TestStatusShowsFirstRejection(t *testing.T) {
	b, a := policyAgent(t)
	p := b.policyFor(1, contracts.SettingsSections{})
	p.Expires = time.Now().Add(-time.Minute)
	if a.applyPolicy(context.Background(), signPolicy(t, b.siteKP, p), "test") {
		t.Fatal("an expired policy applied")
	}
	st := a.Status()
	if st.Policy == nil || st.Policy.LastRejection == nil || st.Policy.LastRejection.Code != contracts.RejectExpired || st.Policy.Revision != 0 {
		t.Fatalf("status policy %+v: want revision 0 and the rejection (expired)", st.Policy)
	}
}

// TestFetchCrossedByPush: the answer to a fetch (revision 2) arrives after
// a push of revision 3 was applied: it is dropped as stale, not recorded
// and reported as a replayed policy (a false alert at the site). An answer
// below what the agent said it ran is still refused as a replay.
func TestFetchCrossedByPush(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	a := b.newAgent(nil)
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	id, _ := a.Identity()
	if !a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(1, contracts.SettingsSections{})), "test") {
		t.Fatal("revision 1 not applied")
	}
	svc := b.services()
	subject, _ := contracts.AgentUp(id.Site, id.ClientID, contracts.KindPolicyFetch)
	var answer atomic.Uint64
	answer.Store(2)
	sub, err := svc.Subscribe(subject, func(m *nats.Msg) {
		answer := answer.Load()
		if answer == 2 { // a push of revision 3 overtakes the answer
			a.applyPolicy(ctx, signPolicy(t, b.siteKP, b.policyFor(3, contracts.SettingsSections{})), "push")
		}
		resp, _ := json.Marshal(contracts.PolicyFetchResponse{Header: contracts.NewHeader(contracts.TypePolicyFetchResponse), Revision: answer,
			Policy: mustSigned(t, signPolicy(t, b.siteKP, b.policyFor(answer, contracts.SettingsSections{})))})
		_ = m.Respond(resp)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := a.FetchPolicy(ctx, svc, id); err != nil {
		t.Fatal(err)
	}
	st, _ := a.store.Policy()
	if st.Revision != 3 || st.LastRejection != nil || a.pol.rejected.Load() != 0 {
		t.Fatalf("revision %d, last rejection %+v, %d rejected: want 3 and the stale answer dropped", st.Revision, st.LastRejection, a.pol.rejected.Load())
	}
	answer.Store(1) // below what the agent says it runs (3): a replay
	if err := a.FetchPolicy(ctx, svc, id); err != nil {
		t.Fatal(err)
	}
	st, _ = a.store.Policy()
	if st.Revision != 3 || st.LastRejection == nil || st.LastRejection.Code != contracts.RejectReplay {
		t.Fatalf("revision %d, last rejection %+v: want 3 and revision 1 refused as a replay", st.Revision, st.LastRejection)
	}
}

// mustSigned decodes a signed policy's envelope.
func mustSigned(t *testing.T, data []byte) *contracts.SignedPolicy {
	t.Helper()
	var sp contracts.SignedPolicy
	if err := json.Unmarshal(data, &sp); err != nil {
		t.Fatal(err)
	}
	return &sp
}
