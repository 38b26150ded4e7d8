package replication

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// Verification of what a peer site sends, as pure functions (no NATS, no
// store): the despooler's handlers call them, and FuzzDespoolerIntake
// drives them with arbitrary bytes. Whatever they refuse is a *rejection:
// quarantined, never installed.

// maxOfferBytes bounds an offer's JSON: a manifest of MaxManifestBytes in
// base64 and the envelope around it.
const maxOfferBytes = (contracts.MaxManifestBytes+2)/3*4 + 16<<10

// rejection is input that failed verification, with the code the sender
// is answered with.
type rejection struct {
	code   contracts.Code
	reason string
}

func (r *rejection) Error() string { return r.reason }

func reject(code contracts.Code, format string, args ...any) *rejection {
	return &rejection{code: code, reason: fmt.Sprintf(format, args...)}
}

// asRejection reports whether err is a failed verification.
func asRejection(err error) (*rejection, bool) {
	var r *rejection
	ok := errors.As(err, &r)
	return r, ok
}

// offer is a verified offer: the manifest as signed by the sending site,
// decoded, with the size of each of its chunks.
type offer struct {
	From     string
	Signed   contracts.SignedManifest
	Manifest contracts.Manifest
	Digest   string
	Sizes    map[string]int // chunk hash -> its size

	// rev is the revision of the inbox record this offer was read from or
	// written as (0: not recorded yet).
	rev uint64
	// held are the chunks this instance stored, verified, for the offer
	// as recorded at rev (an offer recorded again starts afresh).
	// The commit looks up only the others: these are younger than the
	// prune's grace and named by the inbox record, so no prune (of any
	// instance) removes them first. Chunks the store held already at the
	// offer are looked up again: a prune that listed the used chunks
	// before the offer was recorded may be removing them.
	mu   sync.Mutex
	held map[string]bool
}

// markHeld records chunks of the offer as stored.
func (o *offer) markHeld(hashes ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.held == nil {
		o.held = make(map[string]bool, len(o.Sizes))
	}
	for _, h := range hashes {
		o.held[h] = true
	}
}

// unheld is the offer's chunks (hash -> size) not known to be stored.
func (o *offer) unheld() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]int, len(o.Sizes)-len(o.held))
	for h, size := range o.Sizes {
		if !o.held[h] {
			out[h] = size
		}
	}
	return out
}

// verifyOffer decodes an offer's bytes from site from and verifies it
// against pinned, the signing key pinned for that site.
func verifyOffer(data []byte, from, pinned string) (*offer, error) {
	if len(data) > maxOfferBytes {
		return nil, reject(contracts.CodeTooLarge, "offer of %d bytes: at most %d", len(data), maxOfferBytes)
	}
	var o contracts.ReplicationOffer
	if err := contracts.DecodeLimit(data, contracts.TypeReplicationOffer, &o, maxOfferBytes); err != nil {
		return nil, reject(contracts.CodeBadRequest, "%v", err)
	}
	return verifySigned(o.Manifest, from, pinned)
}

// verifySigned verifies a signed manifest from site from: signed by
// pinned, over a manifest that Validate accepts and whose chunks are
// consistent.
func verifySigned(sm contracts.SignedManifest, from, pinned string) (*offer, error) {
	if sm.Type != contracts.TypeSignedManifest {
		return nil, reject(contracts.CodeBadRequest, "signed manifest of type %q, want %q", sm.Type, contracts.TypeSignedManifest)
	}
	if pinned == "" {
		return nil, reject(contracts.CodePermissionDenied, "no signing key is pinned for site %s", from)
	}
	if sm.Key != pinned {
		return nil, reject(contracts.CodePermissionDenied, "signed by key %q, but the key pinned for site %s is %s", clip(sm.Key, 64), from, pinned)
	}
	kp, err := nkeys.FromPublicKey(pinned)
	if err != nil {
		return nil, reject(contracts.CodePermissionDenied, "the key pinned for site %s is not a public key: %v", from, err)
	}
	if len(sm.Manifest) > contracts.MaxManifestBytes {
		return nil, reject(contracts.CodeTooLarge, "manifest of %d bytes: at most %d", len(sm.Manifest), contracts.MaxManifestBytes)
	}
	if err := kp.Verify(contracts.ManifestSigningInput(sm.Manifest), sm.Signature); err != nil {
		return nil, reject(contracts.CodePermissionDenied, "the manifest's signature does not verify with the key pinned for site %s", from)
	}
	o := &offer{From: from, Signed: sm, Digest: sm.Digest()}
	if err := contracts.DecodeLimit(sm.Manifest, contracts.TypeManifest, &o.Manifest, contracts.MaxManifestBytes); err != nil {
		return nil, reject(contracts.CodeBadRequest, "%v", err)
	}
	if o.Sizes, err = o.Manifest.ChunkSizes(); err != nil {
		return nil, reject(contracts.CodeBadRequest, "invalid %s: %v", contracts.TypeManifest, err)
	}
	return o, nil
}

// chunkRef is what a repl.chunk message's headers name.
type chunkRef struct {
	Package, Version, Hash string
}

// chunkHeaders reads and checks a chunk message's headers.
func chunkHeaders(h nats.Header) (chunkRef, error) {
	ref := chunkRef{Package: h.Get(contracts.HeaderPackage), Version: h.Get(contracts.HeaderVersion), Hash: h.Get(contracts.HeaderChunk)}
	if err := contracts.ValidPackageName(ref.Package); err != nil {
		return ref, reject(contracts.CodeBadRequest, "header %s: %v", contracts.HeaderPackage, err)
	}
	if err := contracts.ValidPackageVersion(ref.Version); err != nil {
		return ref, reject(contracts.CodeBadRequest, "header %s: %v", contracts.HeaderVersion, err)
	}
	if err := contracts.ValidHash(ref.Hash); err != nil {
		return ref, reject(contracts.CodeBadRequest, "header %s: %v", contracts.HeaderChunk, err)
	}
	return ref, nil
}

// verifyChunk checks a chunk against the verified offer it claims to
// belong to: named in the manifest, of the size it says, and hashing to
// its name.
func verifyChunk(ref chunkRef, data []byte, o *offer) error {
	if o.Manifest.Package != ref.Package || o.Manifest.Version != ref.Version {
		return reject(contracts.CodeBadRequest, "chunk for %s checked against the offer of %s",
			contracts.PackageKey(ref.Package, ref.Version), contracts.PackageKey(o.Manifest.Package, o.Manifest.Version))
	}
	want, ok := o.Sizes[ref.Hash]
	if !ok {
		return reject(contracts.CodeBadRequest, "chunk %s is not in the manifest of %s", ref.Hash, contracts.PackageKey(ref.Package, ref.Version))
	}
	if len(data) != want {
		return reject(contracts.CodeBadRequest, "chunk %s: %d bytes, the manifest says %d", ref.Hash, len(data), want)
	}
	if got := contracts.ChunkHash(data); got != ref.Hash {
		return reject(contracts.CodeBadRequest, "chunk %s: the data's SHA-256 is %s", ref.Hash, got)
	}
	return nil
}

// clip shortens s to at most n bytes for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
