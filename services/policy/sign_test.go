package policy

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// TestSignVerifies: what the signer signs verifies with the site's public
// key through nkeys (as the agent verifies), over exactly the carried
// bytes, and the body built from pre-encoded settings decodes to the same
// policy as the plain encoding.
func TestSignVerifies(t *testing.T) {
	kp, _ := nkeys.CreateOperator()
	s, err := NewSigner(kp)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := mustApply(t, NewCatalog(now), settings("A", 10, func(ss *contracts.SettingsSections) {
		ss.RemoteTools = &contracts.RemoteToolsSettings{Enabled: ptr(true), PermittedViewers: ptr([]string{"alice"})}
	}))
	c, _, _, _ = c.Deploy("A", contracts.Named{ID: "web", Name: "Web"}, "alice", now)
	res := c.Resolve([]string{"web"})
	body, err := res.Body("LAB", "c1", 9, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := s.SignBody(body)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	verifier, _ := nkeys.FromPublicKey(pub)
	if err := verifier.Verify(contracts.PolicySigningInput(sp.Policy), sp.Signature); err != nil || sp.Key != pub {
		t.Fatalf("verify: %v (key %s)", err, sp.Key)
	}
	if err := verifier.Verify(sp.Policy, sp.Signature); err == nil {
		t.Fatalf("the signature verifies without the context prefix")
	}
	var got contracts.Policy
	if err := json.Unmarshal(sp.Policy, &got); err != nil {
		t.Fatal(err)
	}
	want := res.Policy("LAB", "c1", 9, now, time.Hour)
	want.ID = got.ID
	var plain contracts.Policy
	data, _ := json.Marshal(want)
	_ = json.Unmarshal(data, &plain)
	if !reflect.DeepEqual(got, plain) {
		t.Fatalf("got %+v\nwant %+v", got, plain)
	}
	// The envelope round-trips the body byte for byte.
	env, _ := json.Marshal(sp)
	var back contracts.SignedPolicy
	if err := json.Unmarshal(env, &back); err != nil || string(back.Policy) != string(body) {
		t.Fatalf("envelope round trip: %v", err)
	}
}
