package state

import (
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// TestIdentityCAPin: the pinned site CA travels with the identity; an
// identity without one (from before the site had TLS) reads back without,
// and a malformed fingerprint is refused.
func TestIdentityCAPin(t *testing.T) {
	fp := contracts.CertFingerprint([]byte("site CA"))
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			id := testIdentity()
			id.CAFingerprint = fp
			if err := s.PutIdentity(id); err != nil {
				t.Fatal(err)
			}
			if got, _, err := s.GetIdentity(); err != nil || got.CAFingerprint != fp {
				t.Fatalf("got CA %q (%v), want %s", got.CAFingerprint, err, fp)
			}
			id.CAFingerprint = ""
			if err := s.PutIdentity(id); err != nil {
				t.Fatal(err)
			}
			if got, _, err := s.GetIdentity(); err != nil || got.CAFingerprint != "" {
				t.Fatalf("got CA %q (%v) after storing none, want none", got.CAFingerprint, err)
			}
			id.CAFingerprint = "sha256:nothex"
			if err := s.PutIdentity(id); err == nil {
				t.Fatal("stored a malformed CA fingerprint, want it refused")
			}
		})
	}
}
