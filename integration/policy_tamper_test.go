package integration

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// TestPolicyTamperedOverTheBus publishes 1,000 altered policies to a real
// agent's down subject through the real server: bit flips in the signed
// body, the signature and the message's encoding, truncations, a policy
// signed by another site's key, one for another client, a replayed older
// revision and expired ones (the last three signed with the site's real
// key). The agent rejects every one, keeps its last good policy, and
// reports each rejection through its outbox: the site's compliance shows
// the last one and the status service holds a message 3002 for each. A
// genuine change then applies as usual.
func TestPolicyTamperedOverTheBus(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	a := enrolledAgent(t, rs, admin, rs.token(t, 1, time.Hour), "kiosk-01")
	id := a.ClientID()
	svc := rs.serviceConn(t)
	down, _ := contracts.AgentDown("LAB", id, contracts.KindPolicy)
	pushes, err := svc.SubscribeSync(down)
	if err != nil {
		t.Fatal(err)
	}
	svc.Flush()

	apply := func(level string) {
		rs.cli(t, "settings", "apply", "-f", settingsFile(t, "name: Kiosk\npriority: 10\nremoteTools:\n  accessLevel: "+level+"\n"))
	}
	apply("view")
	rs.cli(t, "settings", "deploy", "Kiosk", "--collection", "All Systems")
	capture := func(level string) []byte {
		t.Helper()
		for {
			m, err := pushes.NextMsg(policyWait)
			if err != nil {
				t.Fatalf("no push with accessLevel %s: %v", level, err)
			}
			if strings.Contains(decodeBody(t, m.Data), `"accessLevel":"`+level+`"`) {
				return m.Data
			}
		}
	}
	old := capture("view")
	apply("none")
	genuine := capture("none")
	var sp contracts.SignedPolicy
	if err := json.Unmarshal(genuine, &sp); err != nil {
		t.Fatal(err)
	}
	var current contracts.Policy
	_ = json.Unmarshal(sp.Policy, &current)
	wait(t, policyWait, "the agent to run revision "+strconv.FormatUint(current.Revision, 10), func() bool {
		p := agentPolicy(t, a.dir)
		return p != nil && p.Revision == current.Revision
	})

	siteKey := loadKey(t, filepath.Join(rs.dir, "keys", "site.nk"))
	other, _ := nkeys.CreateOperator()
	sign := func(kp nkeys.KeyPair, p contracts.Policy) []byte {
		body, _ := json.Marshal(p)
		sig, _ := kp.Sign(contracts.PolicySigningInput(body))
		pub, _ := kp.PublicKey()
		data, _ := json.Marshal(contracts.SignedPolicy{Header: contracts.NewHeader(contracts.TypeSignedPolicy), Policy: body, Signature: sig, Key: pub})
		return data
	}
	reencode := func(body, sig []byte) []byte {
		data, _ := json.Marshal(contracts.SignedPolicy{Header: sp.Header, Policy: body, Signature: sig, Key: sp.Key})
		return data
	}
	rng := rand.New(rand.NewPCG(3, 5))
	var bad [][]byte
	for range 400 {
		body := slices.Clone(sp.Policy)
		body[rng.IntN(len(body))] ^= 1 << rng.UintN(8)
		bad = append(bad, reencode(body, sp.Signature))
	}
	for range 200 {
		sig := slices.Clone(sp.Signature)
		sig[rng.IntN(len(sig))] ^= 1 << rng.UintN(8)
		bad = append(bad, reencode(sp.Policy, sig))
	}
	for range 150 {
		bad = append(bad, genuine[:rng.IntN(len(genuine))])
	}
	start := bytes.Index(genuine, []byte(`"policy":"`)) + len(`"policy":"`)
	end := bytes.Index(genuine, []byte(`"key":"`))
	for len(bad) < 850 {
		msg := slices.Clone(genuine)
		msg[start+rng.IntN(end-start)] ^= 1 << rng.UintN(7)
		var back contracts.SignedPolicy
		if json.Unmarshal(msg, &back) == nil && bytes.Equal(back.Policy, sp.Policy) && bytes.Equal(back.Signature, sp.Signature) {
			continue // base64's don't-care bits: the same message
		}
		bad = append(bad, msg)
	}
	for range 50 {
		bad = append(bad, sign(other, current))
	}
	for i := range 50 {
		p := current
		p.Revision = current.Revision + 1 + uint64(i)
		p.ClientID = "0195a3c4-0000-7000-8000-00000000dead"
		bad = append(bad, sign(siteKey, p))
	}
	for range 25 {
		bad = append(bad, old) // captured from the wire, an older revision
	}
	for i := range 25 {
		p := current
		p.Revision = current.Revision + 100 + uint64(i)
		p.Issued, p.Expires = time.Now().Add(-10*24*time.Hour), time.Now().Add(-3*24*time.Hour)
		bad = append(bad, sign(siteKey, p))
	}
	if len(bad) != 1000 {
		t.Fatalf("built %d tampered policies, want 1000", len(bad))
	}
	for _, m := range bad {
		if err := svc.Publish(down, m); err != nil {
			t.Fatal(err)
		}
	}
	svc.Flush()
	wait(t, 60*time.Second, "the agent to reject 1000 policies", func() bool {
		p := agentPolicy(t, a.dir)
		return p.Rejected == 1000
	})
	p := agentPolicy(t, a.dir)
	if p.Revision != current.Revision || *p.Settings.RemoteTools.AccessLevel != "none" {
		t.Fatalf("after the tampered policies: got revision %d (%s), want %d kept", p.Revision, *p.Settings.RemoteTools.AccessLevel, current.Revision)
	}

	// Reported: every rejection reaches the site through the outbox.
	wait(t, 60*time.Second, "1000 policy rejections in the status messages", func() bool {
		resp, err := admin.StatusList(ctx(t), contracts.StatusListRequest{Filter: contracts.StatusFilter{MsgIDs: []int{contracts.StatusPolicyRejected}}, Limit: contracts.MaxStatusLimit})
		return err == nil && len(resp.Messages) == 1000
	})
	wait(t, policyWait, "the outbox to drain", func() bool { return a.OutboxLen() == 0 })
	var rp contracts.ClientPolicyResponse
	rs.cliJSON(t, &rp, "clients", "policy", "kiosk-01")
	if rp.State != contracts.ComplianceApplied || rp.AppliedRevision != current.Revision {
		t.Fatalf("compliance after the rejections: got %s at %d, want applied at %d", rp.State, rp.AppliedRevision, current.Revision)
	}

	// The last good policy gives way to the next genuine one.
	apply("full")
	wait(t, policyWait, "the next genuine policy", func() bool {
		p := agentPolicy(t, a.dir)
		return *p.Settings.RemoteTools.AccessLevel == "full"
	})
}

func decodeBody(t testing.TB, data []byte) string {
	var sp contracts.SignedPolicy
	if err := json.Unmarshal(data, &sp); err != nil {
		return ""
	}
	return string(sp.Policy)
}
