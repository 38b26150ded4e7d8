package replication

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// fuzzSeed is the fuzz test's site key (fixed, so a corpus stays valid).
const fuzzSeed = "SNABFP5DCEC35G7HBEPD5J3HH2XEPUPXXPNWU752PCECVZCSXCIEUNT2RI"

// FuzzDespoolerIntake drives the despooler's verification of offers and
// chunks with arbitrary input: it must never panic, and whatever it
// accepts must be what a peer may send: signed by the pinned key, a
// manifest Validate accepts, a chunk whose bytes hash to its name, of the
// size and version the accepted manifest says.
func FuzzDespoolerIntake(f *testing.F) {
	kp, err := nkeys.FromSeed([]byte(fuzzSeed))
	if err != nil {
		f.Fatal(err)
	}
	pinned, _ := kp.PublicKey()
	other, _ := nkeys.CreateServer()
	otherPub, _ := other.PublicKey()

	data := []byte("some package content")
	m, _ := manifestFor("tools", "1.0", []testFile{{path: "bin/tool", data: data}})
	m.Links = []contracts.ManifestLink{{Path: "bin/t", Target: "tool"}}
	good := mustJSON(f, m)
	h := m.Files[0].Chunks[0]
	seed := func(offer []byte, chunk []byte, pkg, version, hash string) {
		f.Add(offer, chunk, pkg, version, hash)
	}
	seed(offerBytes(f, kp, pinned, good), data, "tools", "1.0", h)
	seed(offerBytes(f, kp, pinned, good), []byte("other content!!!!!!!"), "tools", "1.0", h)
	seed(offerBytes(f, kp, pinned, good), data, "tools", "2.0", h)
	seed(offerBytes(f, other, pinned, good), data, "tools", "1.0", h)
	seed(offerBytes(f, other, otherPub, good), data, "tools", "1.0", h)
	bad := m
	bad.Files = []contracts.ManifestFile{m.Files[0]}
	bad.Files[0].Path = "../../etc/passwd"
	seed(offerBytes(f, kp, pinned, mustJSON(f, bad)), data, "tools", "1.0", h)
	bad.Files[0].Path = "/etc/passwd"
	seed(offerBytes(f, kp, pinned, mustJSON(f, bad)), data, "tools", "1.0", h)
	bad = m
	bad.Links = []contracts.ManifestLink{{Path: "l", Target: "../x"}}
	seed(offerBytes(f, kp, pinned, mustJSON(f, bad)), data, "tools", "1.0", h)
	bad = m
	bad.Size = contracts.MaxPackageBytes * 2
	seed(offerBytes(f, kp, pinned, mustJSON(f, bad)), data, "tools", "1.0", h)
	seed(offerBytes(f, kp, pinned, []byte(`{"type":"steward.v1.manifest"}`)), nil, "", "", "")
	seed([]byte(`{"type":"steward.v1.replication_offer","manifest":{"type":"steward.v1.signed_manifest","manifest":null}}`), nil, "a", "1", "zz")
	seed([]byte("{"), []byte{0}, "tools", "1.0", h)

	f.Fuzz(func(t *testing.T, offerData, chunk []byte, pkg, version, hash string) {
		o, err := verifyOffer(offerData, "PAR", pinned)
		if err != nil {
			if _, ok := asRejection(err); !ok {
				t.Fatalf("verifyOffer failed without a rejection: %v", err)
			}
			return
		}
		// Accepted: every promise holds.
		var offer contracts.ReplicationOffer
		if json.Unmarshal(offerData, &offer) != nil {
			t.Fatal("accepted an offer that does not decode")
		}
		sm := offer.Manifest
		if sm.Key != pinned || kp.Verify(contracts.ManifestSigningInput(sm.Manifest), sm.Signature) != nil {
			t.Fatal("accepted an offer not signed by the pinned key")
		}
		var again contracts.Manifest
		if json.Unmarshal(sm.Manifest, &again) != nil || again.Validate() != nil || o.Manifest.Validate() != nil {
			t.Fatal("accepted a manifest Validate refuses")
		}
		if o.Digest != contracts.ChunkHash(sm.Manifest) {
			t.Fatal("digest is not the manifest's hash")
		}
		hdr := nats.Header{}
		hdr.Set(contracts.HeaderPackage, pkg)
		hdr.Set(contracts.HeaderVersion, version)
		hdr.Set(contracts.HeaderChunk, hash)
		ref, err := chunkHeaders(hdr)
		if err != nil {
			return
		}
		if err := verifyChunk(ref, chunk, o); err != nil {
			if _, ok := asRejection(err); !ok {
				t.Fatalf("verifyChunk failed without a rejection: %v", err)
			}
			return
		}
		if contracts.ChunkHash(chunk) != hash || pkg != o.Manifest.Package || version != o.Manifest.Version {
			t.Fatal("accepted a chunk that does not match its name or version")
		}
		size, named := o.Sizes[hash]
		if !named || size != len(chunk) {
			t.Fatal("accepted a chunk the manifest does not name at that size")
		}
		if !containsChunk(&o.Manifest, hash) {
			t.Fatal("accepted a chunk outside the manifest")
		}
	})
}

func containsChunk(m *contracts.Manifest, h string) bool {
	for _, c := range m.Chunks() {
		if c == h {
			return true
		}
	}
	return false
}

// TestIntakeAccepts checks the fuzz test's first seed is accepted whole,
// so the fuzzer starts from the path that accepts.
func TestIntakeAccepts(t *testing.T) {
	kp, _ := nkeys.FromSeed([]byte(fuzzSeed))
	pinned, _ := kp.PublicKey()
	data := []byte("some package content")
	m, _ := manifestFor("tools", "1.0", []testFile{{path: "bin/tool", data: data}})
	o, err := verifyOffer(offerBytes(t, kp, pinned, mustJSON(t, m)), "PAR", pinned)
	if err != nil {
		t.Fatalf("verifyOffer: %v", err)
	}
	ref := chunkRef{Package: "tools", Version: "1.0", Hash: contracts.ChunkHash(data)}
	if err := verifyChunk(ref, data, o); err != nil {
		t.Fatalf("verifyChunk: %v", err)
	}
}
