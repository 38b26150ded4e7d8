package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// despoolerSite is CHD alone, whose parent PAR is played by the test with
// parKey.
func despoolerSite(t *testing.T) (*testSite, *Service, nkeys.KeyPair) {
	t.Helper()
	chd := newSite(t, "CHD", nil)
	parKey, _ := nkeys.CreateServer()
	parPub, _ := parKey.PublicKey()
	chd.peers["PAR"] = contracts.SitePeer{Site: "PAR", Role: contracts.PeerParent, SigningKey: parPub}
	kidKey, _ := nkeys.CreateServer()
	kidPub, _ := kidKey.PublicKey()
	chd.peers["KID"] = contracts.SitePeer{Site: "KID", Role: contracts.PeerChild, SigningKey: kidPub}
	return chd, chd.start(), parKey
}

// manifestFor is a valid manifest of pkg@version (made at PAR) of files.
func manifestFor(pkg, version string, files []testFile) (contracts.Manifest, map[string][]byte) {
	m, chunks := buildManifest(pkg, version, files)
	m.Header = contracts.NewHeader(contracts.TypeManifest)
	m.Site, m.ChunkSize = "PAR", contracts.ChunkSize
	for _, f := range m.Files {
		m.Size += f.Size
	}
	return m, chunks
}

// offerBytes signs body (a manifest's JSON, valid or not) with kp, naming
// key as the signer, and wraps it in an offer.
func offerBytes(t testing.TB, kp nkeys.KeyPair, key string, body []byte) []byte {
	t.Helper()
	sig, err := kp.Sign(contracts.ManifestSigningInput(body))
	if err != nil {
		t.Fatal(err)
	}
	o := contracts.ReplicationOffer{Header: contracts.NewHeader(contracts.TypeReplicationOffer),
		Manifest: contracts.SignedManifest{Header: contracts.NewHeader(contracts.TypeSignedManifest), Manifest: body, Signature: sig, Key: key}}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send sends a raw request of kind from site from to CHD.
func send(t testing.TB, nc *nats.Conn, from, kind string, data []byte, h nats.Header) (*nats.Msg, error) {
	t.Helper()
	subj, err := contracts.SiteSubject("CHD", from, kind)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(subj)
	msg.Data = data
	for k, v := range h {
		msg.Header[k] = v
	}
	return rpc.CallMsg(context.Background(), nc, msg)
}

func offerReply(t testing.TB, nc *nats.Conn, from string, data []byte) (contracts.ReplicationOfferReply, error) {
	t.Helper()
	var r contracts.ReplicationOfferReply
	msg, err := send(t, nc, from, contracts.KindReplOffer, data, nil)
	if err == nil {
		err = json.Unmarshal(msg.Data, &r)
	}
	return r, err
}

func chunkHeader(pkg, version, hash string) nats.Header {
	h := nats.Header{}
	h.Set(contracts.HeaderPackage, pkg)
	h.Set(contracts.HeaderVersion, version)
	h.Set(contracts.HeaderChunk, hash)
	return h
}

func commitReq(t testing.TB, nc *nats.Conn, from string, c contracts.ReplicationCommit) (contracts.ReplicationCommitAck, error) {
	t.Helper()
	subj, _ := contracts.SiteSubject("CHD", from, contracts.KindReplCommit)
	c.Header = contracts.NewHeader(contracts.TypeReplicationCommit)
	var ack contracts.ReplicationCommitAck
	err := rpc.Call(context.Background(), nc, subj, c, &ack)
	return ack, err
}

// quarantinedWith waits for no one: it reads the quarantine for an entry
// of what whose reason holds reason.
func quarantinedWith(t testing.TB, svc *Service, what, reason string) QuarantineEntry {
	t.Helper()
	q, err := svc.Quarantined(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range q {
		if e.What == what && strings.Contains(e.Reason, reason) {
			return e
		}
	}
	t.Fatalf("quarantine %+v: want a %s entry with reason %q", q, what, reason)
	return QuarantineEntry{}
}

func TestOfferQuarantine(t *testing.T) {
	chd, c, parKey := despoolerSite(t)
	parPub, _ := parKey.PublicKey()
	other, _ := nkeys.CreateServer()
	otherPub, _ := other.PublicKey()
	valid, _ := manifestFor("tools", "1.0", []testFile{{path: "bin/tool", data: randomBytes(100)}})
	change := func(fn func(*contracts.Manifest)) []byte {
		m := valid
		m.Files = append([]contracts.ManifestFile(nil), valid.Files...)
		fn(&m)
		return mustJSON(t, m)
	}
	h := valid.Files[0].Chunks[0]
	tests := []struct {
		name   string
		from   string
		offer  []byte
		code   contracts.Code
		reason string
	}{
		{"unknown site", "XXX", offerBytes(t, parKey, parPub, mustJSON(t, valid)), contracts.CodePermissionDenied, "not linked"},
		{"from a child", "KID", offerBytes(t, parKey, parPub, mustJSON(t, valid)), contracts.CodePermissionDenied, "only from the parent"},
		{"bad signature", "PAR", offerBytes(t, other, parPub, mustJSON(t, valid)), contracts.CodePermissionDenied, "does not verify"},
		{"another key", "PAR", offerBytes(t, other, otherPub, mustJSON(t, valid)), contracts.CodePermissionDenied, "pinned"},
		{"dotdot path", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) { m.Files[0].Path = "../etc/passwd" })), contracts.CodeBadRequest, "escapes"},
		{"inner dotdot", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) { m.Files[0].Path = "bin/../../x" })), contracts.CodeBadRequest, "escapes"},
		{"absolute path", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) { m.Files[0].Path = "/etc/passwd" })), contracts.CodeBadRequest, "absolute"},
		{"link escape", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) {
			m.Links = []contracts.ManifestLink{{Path: "bin/l", Target: "../../etc"}}
		})), contracts.CodeBadRequest, "escapes"},
		{"link through link", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) {
			m.Links = []contracts.ManifestLink{{Path: "x/l1", Target: ".."}, {Path: "y", Target: "x/l1/../.."}}
		})), contracts.CodeBadRequest, "passes through link"},
		{"case collision", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) {
			m.Links = []contracts.ManifestLink{{Path: "BIN/TOOL", Target: "x"}}
		})), contracts.CodeBadRequest, "differ only in case"},
		{"size bomb", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) {
			m.Size = contracts.MaxPackageBytes + 1
			m.Files[0].Size = contracts.MaxPackageBytes + 1
		})), contracts.CodeBadRequest, "at most"},
		{"chunk count", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) {
			m.Files[0].Chunks = []string{h, h}
		})), contracts.CodeBadRequest, "chunks for"},
		{"one chunk two sizes", "PAR", offerBytes(t, parKey, parPub, change(func(m *contracts.Manifest) {
			m.Files = append(m.Files, contracts.ManifestFile{Path: "big", Mode: 0o644, Size: contracts.ChunkSize + 1,
				SHA256: h, Chunks: []string{h, h}})
			m.Size += contracts.ChunkSize + 1
		})), contracts.CodeBadRequest, "elsewhere"},
		{"not json", "PAR", []byte("{"), contracts.CodeBadRequest, "malformed"},
		{"wrong type", "PAR", []byte(`{"type":"steward.v1.heartbeat"}`), contracts.CodeBadRequest, "type"},
		{"too large", "PAR", make([]byte, maxOfferBytes+1), contracts.CodeTooLarge, "at most"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := offerReply(t, chd.nc, tt.from, tt.offer)
			if contracts.CodeOf(err) != tt.code {
				t.Fatalf("offer: got %v, want %s", err, tt.code)
			}
			e := quarantinedWith(t, c, QuarantineOffer, tt.reason)
			if e.From != tt.from || e.Size != len(tt.offer) || e.SHA256 != contracts.ChunkHash(tt.offer) {
				t.Fatalf("entry %+v: want from %s, %d bytes", e, tt.from, len(tt.offer))
			}
			if len(e.Data) != 0 {
				t.Fatalf("the list carries %d bytes of data: it reads entries without it", len(e.Data))
			}
			full, err := c.QuarantinedEntry(context.Background(), e.ID)
			kept, truncated := tt.offer[:min(len(tt.offer), maxQuarantineData)], len(tt.offer) > maxQuarantineData
			if tt.from != "PAR" { // not a site content comes from: its bytes are not kept
				kept, truncated = nil, false
			}
			if err != nil || !bytes.Equal(full.Data, kept) || full.Truncated != truncated {
				t.Fatalf("entry keeps %d bytes (truncated %v, err %v) of %d; want the first %d", len(full.Data), full.Truncated, err, len(tt.offer), len(kept))
			}
			if got := chd.emit.count(contracts.StatusPackageQuarantined); got != i+1 {
				t.Fatalf("status 6001: got %d, want %d", got, i+1)
			}
			if _, err := c.Version(context.Background(), "tools", "1.0"); contracts.CodeOf(err) != contracts.CodeNotFound {
				t.Fatalf("installed after a rejected offer: %v", err)
			}
		})
	}
	if keys := inboxKeys(t, c); len(keys) != 0 {
		t.Fatalf("inbox holds %v: want no offer recorded from rejected ones", keys)
	}
}

// TestChunksAndCommit walks the despooler through one version: chunks are
// checked against the offer, duplicates and any order are fine, nothing
// is visible until the commit, and a commit with a chunk missing fails.
func TestChunksAndCommit(t *testing.T) {
	chd, c, parKey := despoolerSite(t)
	parPub, _ := parKey.PublicKey()
	ctx := context.Background()
	files := []testFile{{path: "a", data: randomBytes(contracts.ChunkSize + 10)}, {path: "b", data: randomBytes(10)}}
	m, chunks := manifestFor("tools", "1.0", files)
	body := mustJSON(t, m)
	digest := contracts.ChunkHash(body)
	reply, err := offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, body))
	if err != nil {
		t.Fatalf("offer: %v", err)
	}
	if len(reply.Missing) != 3 || reply.Installed {
		t.Fatalf("offer reply %+v: want 3 missing", reply)
	}
	h0, h1, h2 := m.Files[0].Chunks[0], m.Files[0].Chunks[1], m.Files[1].Chunks[0]

	// Chunks that fail verification are quarantined.
	bad := []struct {
		name   string
		h      nats.Header
		data   []byte
		reason string
	}{
		{"hash mismatch", chunkHeader("tools", "1.0", h2), randomBytes(10), "SHA-256"},
		{"not in the manifest", chunkHeader("tools", "1.0", contracts.ChunkHash([]byte("x"))), []byte("x"), "not in the manifest"},
		{"wrong size", chunkHeader("tools", "1.0", h0), chunks[h2], "bytes"},
		{"bad header", chunkHeader("tools", "1.0", "zz"), []byte("x"), "header"},
	}
	for _, b := range bad {
		if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, b.data, b.h); contracts.CodeOf(err) != contracts.CodeBadRequest {
			t.Fatalf("%s: got %v, want bad_request", b.name, err)
		}
		quarantinedWith(t, c, QuarantineChunk, b.reason)
	}
	// A chunk of a version nobody offered is refused, not quarantined.
	if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, chunks[h2], chunkHeader("other", "1", h2)); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("chunk without an offer: got %v, want not_found", err)
	}
	// Out of order, and one twice.
	for _, h := range []string{h2, h0, h2} {
		if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, chunks[h], chunkHeader("tools", "1.0", h)); err != nil {
			t.Fatalf("chunk %s: %v", h, err)
		}
	}
	// Not visible before the commit; a commit with a chunk missing fails.
	if vs := c.Versions(""); len(vs) != 0 {
		t.Fatalf("versions before the commit: %+v", vs)
	}
	if _, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "tools", Version: "1.0", Digest: digest}); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("commit with a chunk missing: got %v, want conflict", err)
	}
	if _, err := c.Version(ctx, "tools", "1.0"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("installed without every chunk: %v", err)
	}
	// The next offer asks only for the missing one.
	reply, err = offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, body))
	if err != nil || len(reply.Missing) != 1 || reply.Missing[0] != h1 {
		t.Fatalf("second offer: %+v %v, want only %s missing", reply, err, h1)
	}
	if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, chunks[h1], chunkHeader("tools", "1.0", h1)); err != nil {
		t.Fatal(err)
	}
	// A chunk the store held at the offer is looked up again at the
	// commit (a prune may have removed it since): gone, the commit fails,
	// and the next offer asks for it.
	if err := c.chunks.Delete(ctx, h0); err != nil {
		t.Fatal(err)
	}
	if _, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "tools", Version: "1.0", Digest: digest}); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("commit with a chunk removed since the offer: got %v, want conflict", err)
	}
	reply, err = offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, body))
	if err != nil || len(reply.Missing) != 1 || reply.Missing[0] != h0 {
		t.Fatalf("third offer: %+v %v, want only %s missing", reply, err, h0)
	}
	if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, chunks[h0], chunkHeader("tools", "1.0", h0)); err != nil {
		t.Fatal(err)
	}
	if _, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "tools", Version: "1.0", Digest: strings.Repeat("0", 64)}); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("commit of another digest: got %v, want conflict", err)
	}
	ack, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "tools", Version: "1.0", Digest: digest})
	if err != nil || ack.Digest != digest || ack.Bytes != m.Size {
		t.Fatalf("commit: %+v %v, want digest %s and %d bytes", ack, err, digest, m.Size)
	}
	v, err := c.Version(ctx, "tools", "1.0")
	if err != nil || v.Info.From != "PAR" || v.Info.Digest != digest {
		t.Fatalf("installed %+v %v", v, err)
	}
	if chd.emit.count(contracts.StatusPackageStored) != 1 {
		t.Fatal("no status 6002")
	}
	// A commit again (its answer lost) is answered the same; an offer
	// again finds it installed.
	if ack, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "tools", Version: "1.0", Digest: digest}); err != nil || ack.Digest != digest {
		t.Fatalf("second commit: %+v %v", ack, err)
	}
	if reply, err := offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, body)); err != nil || !reply.Installed {
		t.Fatalf("offer of an installed version: %+v %v", reply, err)
	}
	// Another manifest under the same version is refused for good.
	m2, _ := manifestFor("tools", "1.0", []testFile{{path: "c", data: randomBytes(5)}})
	if _, err := offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, mustJSON(t, m2))); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("another digest for an installed version: got %v, want conflict", err)
	}
	quarantinedWith(t, c, QuarantineOffer, "never change")
	if keys := inboxKeys(t, c); len(keys) != 0 {
		t.Fatalf("inbox holds %v after the commit", keys)
	}
}

// TestStoreFull: a full chunk store refuses with CodeUnavailable and
// status 6003, and nothing is installed.
func TestStoreFull(t *testing.T) {
	chd := newSite(t, "CHD", nil)
	parKey, _ := nkeys.CreateServer()
	parPub, _ := parKey.PublicKey()
	chd.peers["PAR"] = contracts.SitePeer{Site: "PAR", Role: contracts.PeerParent, SigningKey: parPub}
	chd.cfg = func(c *Config) { c.MaxChunkBytes = 700 << 10 }
	c := chd.start()
	m, chunks := manifestFor("huge", "1", []testFile{{path: "a", data: randomBytes(3 * contracts.ChunkSize)}})
	body := mustJSON(t, m)
	if _, err := offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, body)); err != nil {
		t.Fatal(err)
	}
	var (
		failed  error
		refused string
	)
	for _, h := range m.Files[0].Chunks {
		if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, chunks[h], chunkHeader("huge", "1", h)); err != nil {
			failed, refused = err, h
			break
		}
	}
	if contracts.CodeOf(failed) != contracts.CodeUnavailable {
		t.Fatalf("chunks into a full store: got %v, want unavailable", failed)
	}
	// The refused chunk is not there, not even as an object naming no data.
	if missing, err := c.MissingChunks(context.Background(), []string{refused}); err != nil || len(missing) != 1 {
		t.Fatalf("the refused chunk: missing %v, %v; want it missing", missing, err)
	}
	if _, err := c.ReadChunk(context.Background(), refused); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("reading the refused chunk: got %v, want not_found", err)
	}
	if chd.emit.count(contracts.StatusPackageStoreFailed) == 0 {
		t.Fatal("no status 6003")
	}
	if _, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "huge", Version: "1", Digest: contracts.ChunkHash(body)}); err == nil {
		t.Fatal("commit succeeded with the store full")
	}
	if _, err := c.Version(context.Background(), "huge", "1"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("installed half: %v", err)
	}
}

// inboxKeys lists the offers in the inbox.
func inboxKeys(t testing.TB, svc *Service) []string {
	t.Helper()
	return kvKeys(t, svc.inboxKV)
}

// TestCommitAfterOfferRecordedAgain: the chunks an instance stored for an
// offer count for the commit only while the inbox record is the one they
// were stored for. Recorded again (another instance took a new offer of
// the same version), they are looked up: one removed meanwhile fails the
// commit.
func TestCommitAfterOfferRecordedAgain(t *testing.T) {
	chd, c, parKey := despoolerSite(t)
	parPub, _ := parKey.PublicKey()
	ctx := context.Background()
	m, chunks := manifestFor("tools", "1.0", []testFile{{path: "a", data: randomBytes(10)}, {path: "b", data: randomBytes(20)}})
	body := mustJSON(t, m)
	digest := contracts.ChunkHash(body)
	if _, err := offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, body)); err != nil {
		t.Fatal(err)
	}
	for h, data := range chunks {
		if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, data, chunkHeader("tools", "1.0", h)); err != nil {
			t.Fatal(err)
		}
	}
	// Another instance records the offer again; a chunk goes.
	key := inboxKey("PAR", "tools", "1.0")
	e, err := c.inboxKV.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.inboxKV.Put(ctx, key, e.Value()); err != nil {
		t.Fatal(err)
	}
	h0 := m.Files[0].Chunks[0]
	if err := c.chunks.Delete(ctx, h0); err != nil {
		t.Fatal(err)
	}
	if _, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "tools", Version: "1.0", Digest: digest}); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("commit with a chunk removed after the offer was recorded again: got %v, want conflict", err)
	}
	if _, err := c.Version(ctx, "tools", "1.0"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("installed without every chunk: %v", err)
	}
}

// TestQuarantineRate: a peer sending junk without end (a child may publish
// offers to its parent) fills the quarantine only at its own rate, and
// keeps none of its bytes: the parent's rejections are still recorded.
// Before, each junk offer kept 256 KiB until the bucket was full, and then
// nobody's rejections were recorded for up to 30 days.
func TestQuarantineRate(t *testing.T) {
	chd, c, parKey := despoolerSite(t)
	ctx := context.Background()
	junk := randomBytes(300 << 10)
	for range quarantineBurst + 200 {
		if _, err := c.receiveOffer(ctx, "KID", junk); contracts.CodeOf(err) != contracts.CodePermissionDenied {
			t.Fatalf("a child's offer: got %v, want permission_denied", err)
		}
	}
	list, err := c.Quarantined(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list); n < quarantineBurst || n > quarantineBurst+20 {
		t.Fatalf("%d entries of the child's %d offers, want its burst (%d) and what its rate adds", n, quarantineBurst+200, quarantineBurst)
	}
	if n := chd.emit.count(contracts.StatusPackageQuarantined); n != len(list) {
		t.Fatalf("%d status messages for %d entries", n, len(list))
	}
	full, err := c.QuarantinedEntry(ctx, list[0].ID)
	if err != nil || len(full.Data) != 0 {
		t.Fatalf("a child's offer keeps %d bytes (%v), want none", len(full.Data), err)
	}
	parPub, _ := parKey.PublicKey()
	bad := offerBytes(t, parKey, parPub, []byte("{"))
	if _, err := c.receiveOffer(ctx, "PAR", bad); err == nil {
		t.Fatal("a malformed manifest from the parent: accepted")
	}
	e := quarantinedWith(t, c, QuarantineOffer, "malformed")
	if full, err := c.QuarantinedEntry(ctx, e.ID); err != nil || e.From != "PAR" || !bytes.Equal(full.Data, bad) {
		t.Fatalf("the parent's rejected offer: entry %+v, %d bytes kept, %v", e.QuarantineInfo, len(full.Data), err)
	}
}
