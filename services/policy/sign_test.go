package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/jsbatch"
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
	if plainBody, _ := json.Marshal(want); string(plainBody) != string(sp.Policy) {
		t.Fatalf("the body differs from the policy's plain encoding:\n%s\n%s", sp.Policy, plainBody)
	}
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

// TestSignAllByBatch: signAll signs every new revision (and nothing else)
// and says per batch of jsbatch.MaxBatch when that batch is done; each batch's
// signatures are for its own clients.
func TestSignAllByBatch(t *testing.T) {
	kp, _ := nkeys.CreateOperator()
	signer, err := NewSigner(kp)
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: Config{Site: "LAB", Now: func() time.Time { return now }, Validity: time.Hour}, signer: signer}
	res := NewCatalog(now).Resolve(nil)
	staged := make([]outcome, 2*jsbatch.MaxBatch+7)
	for i := range staged {
		staged[i] = outcome{id: fmt.Sprintf("c%d", i), res: res, newRev: i%5 != 0, rec: clientRecord{Revision: uint64(i + 1)}}
	}
	out, done := s.signAll(staged)
	if len(done) != 3 {
		t.Fatalf("%d batches, want 3", len(done))
	}
	for b := range done {
		done[b].Wait()
		for i := b * jsbatch.MaxBatch; i < min((b+1)*jsbatch.MaxBatch, len(staged)); i++ {
			if !staged[i].newRev {
				if out[i] != nil {
					t.Fatalf("client %d has no new revision but was signed", i)
				}
				continue
			}
			var sp contracts.SignedPolicy
			var p contracts.Policy
			if err := json.Unmarshal(out[i], &sp); err != nil {
				t.Fatalf("batch %d, client %d: %v", b, i, err)
			}
			if err := json.Unmarshal(sp.Policy, &p); err != nil || p.ClientID != staged[i].id || p.Revision != uint64(i+1) {
				t.Fatalf("batch %d, client %d: signed policy for %s revision %d (%v)", b, i, p.ClientID, p.Revision, err)
			}
		}
	}
}
