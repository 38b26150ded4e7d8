package sign

import (
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// The expanded pair signs what the plain pair signs, byte for byte, and a
// JWT it encodes decodes (its signature verifies) with the issuer's key.
func TestExpandedKeyPairSignsAsThePair(t *testing.T) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Expand(kp)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := kp.PublicKey()
	if got, _ := ex.PublicKey(); got != want {
		t.Fatalf("public key %s, want %s", got, want)
	}
	msg := []byte("steward")
	a, _ := kp.Sign(msg)
	b, err := ex.Sign(msg)
	if err != nil || string(a) != string(b) {
		t.Fatalf("signatures differ (ed25519 is deterministic): %x vs %x (%v)", a, b, err)
	}
	if err := ex.Verify(msg, a); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := ex.Verify([]byte("other"), a); err == nil {
		t.Fatal("a signature over other bytes verified")
	}
	if seed, err := ex.Seed(); err != nil || len(seed) == 0 {
		t.Fatalf("seed not passed through: %v", err)
	}

	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(upub)
	token, err := uc.Encode(ex)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatalf("a JWT signed by the expanded pair does not decode: %v", err)
	}
	if dec.Issuer != want {
		t.Fatalf("issuer %s, want %s", dec.Issuer, want)
	}

	if _, err := Expand(nil); err == nil {
		t.Fatal("a nil key pair was expanded")
	}
}
