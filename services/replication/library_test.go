package replication

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

func TestLibrary(t *testing.T) {
	par := newSite(t, "PAR", nil)
	clock := natstest.NewClock(time.Now())
	par.cfg = func(c *Config) { c.Now = clock.Now }
	p := par.start()
	ctx := context.Background()

	data := randomBytes(100)
	h := contracts.ChunkHash(data)
	if _, err := p.MissingChunks(ctx, []string{"nothex"}); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("MissingChunks of a bad hash: got %v, want bad_request", err)
	}
	if err := p.PutChunk(ctx, h, randomBytes(100)); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("PutChunk of other bytes: got %v, want bad_request", err)
	}
	big := randomBytes(contracts.ChunkSize + 1)
	if err := p.PutChunk(ctx, contracts.ChunkHash(big), big); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("PutChunk over ChunkSize: got %v, want bad_request", err)
	}
	if missing, err := p.MissingChunks(ctx, []string{h, h}); err != nil || len(missing) != 1 {
		t.Fatalf("MissingChunks: %v %v, want [%s] once", missing, err, h)
	}
	m, _ := buildManifest("tools", "1.0", []testFile{{path: "a", data: data}})
	if _, err := p.CreateVersion(ctx, m, "alice"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("CreateVersion without its chunks: got %v, want conflict", err)
	}
	if _, err := p.ReadChunk(ctx, h); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("ReadChunk of a missing chunk: got %v, want not_found", err)
	}
	for range 2 { // twice: stored once
		if err := p.PutChunk(ctx, h, data); err != nil {
			t.Fatal(err)
		}
	}
	if missing, _ := p.MissingChunks(ctx, []string{h}); len(missing) != 0 {
		t.Fatalf("missing %v after PutChunk", missing)
	}
	// Stored as the object store's own Put would: one object of one chunk
	// whose digest its reader checks, and one message of chunk data.
	if got, err := p.chunks.GetBytes(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the chunk through the object store: %v", err)
	}
	if info, err := p.chunks.GetInfo(ctx, h); err != nil || info.Size != 100 || info.Chunks != 1 {
		t.Fatalf("the chunk's object info: %+v %v", info, err)
	}
	if si, err := p.chunkStream.Info(ctx, jetstream.WithSubjectFilter("$O."+ChunksStore+".C.>")); err != nil || len(si.State.Subjects) != 1 {
		t.Fatalf("chunk data messages after storing twice: %v %v, want 1", si, err)
	}
	bad := m
	bad.Files = []contracts.ManifestFile{m.Files[0]}
	bad.Files[0].Path = "../a"
	if _, err := p.CreateVersion(ctx, bad, "alice"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("CreateVersion of a bad manifest: got %v, want bad_request", err)
	}
	v1, err := p.CreateVersion(ctx, m, "alice")
	if err != nil || v1.CreatedBy != "alice" || v1.Site != "PAR" || v1.Size != 100 || v1.Files != 1 || v1.Chunks != 1 {
		t.Fatalf("CreateVersion: %+v %v", v1, err)
	}
	if _, err := p.CreateVersion(ctx, m, "alice"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("CreateVersion again: got %v, want conflict", err)
	}
	v, err := p.Version(ctx, "tools", "1.0")
	if err != nil || v.Signed.Key != par.pub() || v.Signed.Digest() != v1.Digest || v.Manifest.CreatedBy != "alice" {
		t.Fatalf("Version: %+v %v", v, err)
	}

	// A manifest over MaxManifestBytes is refused, however small the files.
	var many []testFile
	for i := range 8000 {
		many = append(many, testFile{path: fmt.Sprintf("dir/%s-%05d", strings.Repeat("x", 60), i)})
	}
	mm, _ := buildManifest("many", "1", many)
	if _, err := p.CreateVersion(ctx, mm, "alice"); contracts.CodeOf(err) != contracts.CodeTooLarge {
		t.Fatalf("CreateVersion of a huge manifest: got %v, want too_large", err)
	}

	// Versions are listed by package then creation; "" is the newest.
	clock.Set(clock.Now().Add(time.Minute))
	shared := randomBytes(50)
	v2, _ := createVersion(t, p, "tools", "2.0", []testFile{{path: "a", data: data}, {path: "b", data: shared}})
	createVersion(t, p, "other", "1", []testFile{{path: "s", data: shared}})
	var got []string
	for _, v := range p.Versions("") {
		got = append(got, contracts.PackageKey(v.Package, v.Version))
	}
	if strings.Join(got, " ") != "other@1 tools@1.0 tools@2.0" {
		t.Fatalf("Versions: %v", got)
	}
	if newest, err := p.Version(ctx, "tools", ""); err != nil || newest.Info.Digest != v2.Digest {
		t.Fatalf("newest: %+v %v", newest, err)
	}
	// Info answers what Version's Info does, without the manifest.
	for _, ver := range []string{"1.0", "2.0", ""} {
		v, verr := p.Version(ctx, "tools", ver)
		info, err := p.Info(ctx, "tools", ver)
		if verr != nil || err != nil || info != v.Info {
			t.Fatalf("Info(tools, %q) = %+v %v, want %+v %v", ver, info, err, v.Info, verr)
		}
	}
	for _, ver := range []string{"3.0", ""} {
		if _, err := p.Info(ctx, "nothing", ver); contracts.CodeOf(err) != contracts.CodeNotFound {
			t.Fatalf("Info(nothing, %q): got %v, want not_found", ver, err)
		}
	}
	if _, err := p.Info(ctx, "tools", "bad version"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("Info of a bad version: got %v, want bad_request", err)
	}

	// Delete every version of tools, then prune: the chunk only tools
	// used goes; the one other@1 shares stays.
	deleted, err := p.Delete(ctx, "tools", "", "alice")
	if err != nil || len(deleted) != 2 || len(p.Versions("tools")) != 0 {
		t.Fatalf("Delete: %+v %v", deleted, err)
	}
	if n, _, err := p.PruneChunks(ctx); err != nil || n != 0 {
		t.Fatalf("prune within the grace period removed %d (%v)", n, err)
	}
	clock.Set(time.Now().Add(2 * DefaultPruneGrace))
	// An install on another instance finds the unused chunk while this one
	// prunes (after it read the chunk's meta), and renews it: the chunk
	// stays, though neither bucket moved.
	p.beforePrune = func(chunk string) {
		p.beforePrune = nil
		if missing, err := p.missingOf(ctx, map[string]int{chunk: len(data)}, true); err != nil || len(missing) != 0 {
			t.Errorf("an install's look-up during the prune: missing %v (%v)", missing, err)
		}
	}
	if n, _, err := p.PruneChunks(ctx); err != nil || n != 0 {
		t.Fatalf("prune removed %d (%v) of a chunk an install renewed meanwhile: want 0", n, err)
	}
	if _, err := p.ReadChunk(ctx, h); err != nil {
		t.Fatalf("the chunk an install renewed during the prune: %v", err)
	}
	// Another instance records an offer naming the unused chunk while this
	// one prunes (after it read the used chunks): the chunk stays.
	offered, _ := buildManifest("later", "1", []testFile{{path: "a", data: data}})
	body := mustJSON(t, offered)
	rec := mustJSON(t, inboxRecord{From: "CHD", Digest: contracts.ChunkHash(body), Received: time.Now(), Signed: contracts.SignedManifest{Manifest: body}})
	p.beforePrune = func(chunk string) {
		p.beforePrune = nil
		if chunk != h {
			t.Errorf("pruning %s, want %s", chunk, h)
		}
		if _, err := p.inboxKV.Put(ctx, inboxKey("CHD", "later", "1"), rec); err != nil {
			t.Error(err)
		}
	}
	if n, _, err := p.PruneChunks(ctx); err != nil || n != 0 {
		t.Fatalf("prune removed %d (%v) of a chunk an offer named meanwhile: want 0", n, err)
	}
	if _, err := p.ReadChunk(ctx, h); err != nil {
		t.Fatalf("the chunk an offer named during the prune: %v", err)
	}
	if err := p.inboxKV.Delete(ctx, inboxKey("CHD", "later", "1")); err != nil {
		t.Fatal(err)
	}
	if n, _, err := p.PruneChunks(ctx); err != nil || n != 1 {
		t.Fatalf("prune removed %d (%v): want 1", n, err)
	}
	if _, err := p.ReadChunk(ctx, h); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("the unused chunk: %v, want not_found", err)
	}
	if _, err := p.ReadChunk(ctx, contracts.ChunkHash(shared)); err != nil {
		t.Fatalf("the shared chunk: %v", err)
	}
	if _, err := p.Delete(ctx, "tools", "", "alice"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("Delete of nothing: got %v, want not_found", err)
	}
}

func TestConfigChecks(t *testing.T) {
	par := newSite(t, "PAR", nil)
	cfg := par.config()
	cfg.SiteNC = par.nc // the default inbox prefix
	if err := cfg.CheckAndSetDefaults(); err == nil || !strings.Contains(err.Error(), "inbox prefix") {
		t.Fatalf("SiteNC without the site inbox: got %v", err)
	}
	cfg = par.config()
	cfg.SiteKey = nil
	if err := cfg.CheckAndSetDefaults(); err == nil {
		t.Fatal("no site key: want an error")
	}
	cfg = par.config()
	cfg.SiteNC = nil
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.model.stop()
	if _, err := p.Distribute(context.Background(), "x", "1", []string{"CHD"}, "a"); contracts.CodeOf(err) != contracts.CodeUnavailable {
		t.Fatalf("Distribute without SiteNC: got %v, want unavailable", err)
	}
}

// TestStoreChunkOnce: two stores of one chunk that both found it missing
// leave one data message, named by its meta; a chunk removed (a deleted
// mark left in its place) is stored again.
func TestStoreChunkOnce(t *testing.T) {
	par := newSite(t, "PAR", nil)
	p := par.start()
	ctx := context.Background()
	data := randomBytes(1000)
	h := contracts.ChunkHash(data)
	dataMsgs := func() int {
		t.Helper()
		si, err := p.chunkStream.Info(ctx, jetstream.WithSubjectFilter("$O."+ChunksStore+".C.>"))
		if err != nil {
			t.Fatal(err)
		}
		return len(si.State.Subjects)
	}
	// Both looked before either stored: both write with the subject at 0.
	for range 2 {
		if err := p.putChunk(ctx, h, data, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := dataMsgs(); n != 1 {
		t.Fatalf("%d data messages after two stores of one chunk, want 1", n)
	}
	if got, err := p.chunks.GetBytes(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the chunk: %v", err)
	}
	if err := p.chunks.Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ReadChunk(ctx, h); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("a removed chunk: got %v, want not_found", err)
	}
	if err := p.storeChunk(ctx, h, data); err != nil {
		t.Fatalf("storing a removed chunk again: %v", err)
	}
	if got, err := p.ReadChunk(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the chunk stored again: %v", err)
	}
	if n := dataMsgs(); n != 1 {
		t.Fatalf("%d data messages after a removal and a store, want 1", n)
	}
}

// TestRenewRemoveRace: of a prune's removal and an install's renewal of
// one chunk, decided on the same meta, the first wins and the other sees
// it: a renewed chunk is not removed; a removed one is not renewed but
// reported missing; a corrupt meta counts as missing and is stored anew.
func TestRenewRemoveRace(t *testing.T) {
	par := newSite(t, "PAR", nil)
	p := par.start()
	ctx := context.Background()
	data := randomBytes(1000)
	h := contracts.ChunkHash(data)
	if err := p.storeChunk(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	read := func() (jetstream.ObjectInfo, metaAt, bool) {
		t.Helper()
		info, at, held, err := p.chunkMeta(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		return info, at, held
	}
	// Renewed first: the removal decided on the old meta does nothing.
	info, at, _ := read()
	if _, held, err := p.renewChunk(ctx, info, at.seq); err != nil || !held {
		t.Fatalf("renew: held %v, %v", held, err)
	}
	if removed, err := p.removeChunk(ctx, info, at.seq); err != nil || removed {
		t.Fatalf("removal of a renewed chunk: removed %v, %v", removed, err)
	}
	if got, err := p.ReadChunk(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the renewed chunk: %v", err)
	}
	// Removed first: the renewal decided on the old meta finds it gone.
	info, at, _ = read()
	if removed, err := p.removeChunk(ctx, info, at.seq); err != nil || !removed {
		t.Fatalf("removal: removed %v, %v", removed, err)
	}
	if _, held, err := p.renewChunk(ctx, info, at.seq); err != nil || held {
		t.Fatalf("renewal of a removed chunk: held %v, %v", held, err)
	}
	if missing, err := p.MissingChunks(ctx, []string{h}); err != nil || len(missing) != 1 {
		t.Fatalf("missing after the removal: %v %v", missing, err)
	}
	if _, err := p.ReadChunk(ctx, h); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("read of the removed chunk: %v, want not_found", err)
	}
	// A meta that cannot be read: missing, and a store writes it anew.
	if _, err := p.js.Publish(ctx, chunkMetaSubject(h), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if missing, err := p.MissingChunks(ctx, []string{h}); err != nil || len(missing) != 1 {
		t.Fatalf("missing with a corrupt meta: %v %v", missing, err)
	}
	if err := p.storeChunk(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	if got, err := p.ReadChunk(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the chunk stored over a corrupt meta: %v", err)
	}
}

// lostMetaAck stores a chunk's meta but answers as if its acknowledgement
// were lost.
type lostMetaAck struct{ jetstream.JetStream }

func (j lostMetaAck) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := j.JetStream.PublishMsg(ctx, m, opts...)
	if err == nil && strings.HasPrefix(m.Subject, "$O."+ChunksStore+".M.") {
		return nil, context.DeadlineExceeded
	}
	return ack, err
}

// metaReadFails fails the failAt-th read of a chunk's meta.
type metaReadFails struct {
	jetstream.Stream
	reads, failAt int
}

func (s *metaReadFails) GetLastMsgForSubject(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	if strings.HasPrefix(subj, "$O."+ChunksStore+".M.") {
		if s.reads++; s.reads == s.failAt {
			return nil, context.DeadlineExceeded
		}
	}
	return s.Stream.GetLastMsgForSubject(ctx, subj)
}

// TestLostMetaAck: the answer to a chunk's meta write is lost and reading
// the meta back fails too. The chunk's data stays (the meta may name it),
// so the retry that finds the chunk held is right, and a version made of
// it reads. The data was purged, and the chunk passed for held for good
// while every read of it failed.
func TestLostMetaAck(t *testing.T) {
	// Not running (Run's goroutines read the fields the test swaps): the
	// library's calls need only New.
	ctx := context.Background()
	svc, err := New(ctx, newSite(t, "PAR", nil).config())
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(1000)
	h := contracts.ChunkHash(data)
	js, stream := svc.js, svc.chunkStream
	svc.js = lostMetaAck{js}
	svc.chunkStream = &metaReadFails{Stream: stream, failAt: 2} // 1: the look-up before the store, 2: the read back
	if err := svc.PutChunk(ctx, h, data); err == nil {
		t.Fatal("a store whose meta write went unanswered: want an error")
	}
	svc.js, svc.chunkStream = js, stream
	if err := svc.PutChunk(ctx, h, data); err != nil { // the uploader retries
		t.Fatalf("retry: %v", err)
	}
	m, _ := buildManifest("lost", "1", []testFile{{path: "a", data: data}})
	if _, err := svc.CreateVersion(ctx, m, "alice"); err != nil {
		t.Fatal(err)
	}
	got, err := svc.ReadChunk(ctx, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the chunk of an installed version: %d bytes, %v", len(got), err)
	}
}

// TestCreateVersionChecksFiles: the site signs only files whose SHA-256
// their chunks make: a manifest that says otherwise (an uploader's defect,
// or a hostile one) is refused, naming the file, and nothing is installed.
func TestCreateVersionChecksFiles(t *testing.T) {
	svc := newSite(t, "PAR", nil).start()
	ctx := context.Background()
	m, chunks := buildManifest("lie", "1", []testFile{{path: "a", data: randomBytes(1000)}, {path: "b", data: randomBytes(3 * contracts.ChunkSize / 2)}})
	for h, c := range chunks {
		if err := svc.PutChunk(ctx, h, c); err != nil {
			t.Fatal(err)
		}
	}
	bad := m
	bad.Files = slices.Clone(m.Files)
	bad.Files[1].SHA256 = bad.Files[0].SHA256
	_, err := svc.CreateVersion(ctx, bad, "alice")
	if contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), "file b") {
		t.Fatalf("a file hash its chunks do not make: got %v, want bad_request naming file b", err)
	}
	if _, ok := svc.model.version("lie", "1"); ok {
		t.Fatal("the refused version is installed")
	}
	if _, err := svc.CreateVersion(ctx, m, "alice"); err != nil {
		t.Fatalf("the true manifest: %v", err)
	}
}
