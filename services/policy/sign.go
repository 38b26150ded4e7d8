package policy

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// Signer signs policies with the site signing key, the NKey agents pinned
// at enrollment. It keeps the expanded ed25519 key: an NKey key pair
// expands its seed again for every signature, which would be a third of
// the cost of a fan-out.
type Signer struct {
	key ed25519.PrivateKey
	pub string
}

// NewSigner wraps the site key.
func NewSigner(kp nkeys.KeyPair) (*Signer, error) {
	if kp == nil {
		return nil, errors.New("policy: the site signing key is required")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("policy: site key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("policy: the site key has no seed: %w", err)
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("policy: site key seed: %w", err)
	}
	return &Signer{key: ed25519.NewKeyFromSeed(raw), pub: pub}, nil
}

// PublicKey is the site key's public key.
func (s *Signer) PublicKey() string { return s.pub }

// Sign encodes p once and signs exactly those bytes: the envelope carries
// them as they are, so verifying never depends on re-encoding JSON.
func (s *Signer) Sign(p *contracts.Policy) (*contracts.SignedPolicy, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return s.SignBody(body)
}

// SignBody signs body, the JSON of a contracts.Policy.
func (s *Signer) SignBody(body []byte) (*contracts.SignedPolicy, error) {
	sig := ed25519.Sign(s.key, contracts.PolicySigningInput(body))
	return &contracts.SignedPolicy{Header: contracts.NewHeader(contracts.TypeSignedPolicy), Policy: body, Signature: sig, Key: s.pub}, nil
}
