// Package sign holds the site signing key ready to sign: policies and
// session grants are both ed25519 signatures by the site key that agents
// pinned at enrollment, each over its own context-prefixed input.
package sign

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"
)

// Key is the site key with its ed25519 private key expanded once: an NKey
// key pair expands its seed again for every signature.
type Key struct {
	key ed25519.PrivateKey
	pub string
}

// New wraps the site key pair.
func New(kp nkeys.KeyPair) (*Key, error) {
	if kp == nil {
		return nil, errors.New("the site signing key is required")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("site key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("the site key has no seed: %w", err)
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("site key seed: %w", err)
	}
	return &Key{key: ed25519.NewKeyFromSeed(raw), pub: pub}, nil
}

// PublicKey is the site key's public NKey.
func (k *Key) PublicKey() string { return k.pub }

// Sign signs input (already prefixed with its context).
func (k *Key) Sign(input []byte) []byte { return ed25519.Sign(k.key, input) }

// KeyPair is an NKey key pair whose signing key is expanded once: what
// signs often through the nkeys interface (the auth callout's JWTs, two
// per connection) would otherwise expand the seed twice per signature,
// once for the public key and once for the private key. Seed, Verify and
// the rest are the wrapped pair's.
type KeyPair struct {
	nkeys.KeyPair
	k *Key
}

// Expand wraps kp, a key pair with a seed (not a curve key).
func Expand(kp nkeys.KeyPair) (*KeyPair, error) {
	k, err := New(kp)
	if err != nil {
		return nil, err
	}
	return &KeyPair{KeyPair: kp, k: k}, nil
}

// PublicKey is the pair's public NKey.
func (p *KeyPair) PublicKey() (string, error) { return p.k.pub, nil }

// Sign signs input with the expanded key.
func (p *KeyPair) Sign(input []byte) ([]byte, error) { return p.k.Sign(input), nil }
