package policy

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/sign"
)

// Signer signs policies with the site signing key, the NKey agents pinned
// at enrollment.
type Signer struct{ key *sign.Key }

// NewSigner wraps the site key.
func NewSigner(kp nkeys.KeyPair) (*Signer, error) {
	k, err := sign.New(kp)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &Signer{key: k}, nil
}

// PublicKey is the site key's public key.
func (s *Signer) PublicKey() string { return s.key.PublicKey() }

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
	sig := s.key.Sign(contracts.PolicySigningInput(body))
	return &contracts.SignedPolicy{Header: contracts.NewHeader(contracts.TypeSignedPolicy), Policy: body, Signature: sig, Key: s.key.PublicKey()}, nil
}
