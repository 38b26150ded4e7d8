package replication

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestDiskFullAtDestination: a child whose disk cannot hold the chunks it
// lacks with DiskReserve to spare refuses the offer before it records or
// stores anything; the parent's job says so ("site CHD: not enough disk")
// and is retried, not failed; the child sends status 6003 once, not on
// every offer; once space is freed the version installs. (The despooler
// took the offer and JetStream failed its writes with "no space left on
// device" until the server restarted, the job showing "record the offer:
// context deadline exceeded".)
func TestDiskFullAtDestination(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chd := newSite(t, "CHD", par)
	var free atomic.Int64
	free.Store(DefaultDiskReserve + 1<<20) // 1 MiB over the reserve
	chd.cfg = func(c *Config) { c.FreeSpace = func() (int64, error) { return free.Load(), nil } }
	p, c := par.start(), chd.start()
	ctx := context.Background()
	info, chunks := createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(4 * contracts.ChunkSize)}})
	chd.waitInterest("steward.CHD.site.PAR.repl.offer")
	par.waitInterest("steward.CHD.site.PAR.repl.offer")

	if _, err := p.Distribute(ctx, "tools", "1.0", []string{"CHD"}, "alice"); err != nil {
		t.Fatal(err)
	}
	var j contracts.PackageSiteStatus
	natstest.Wait(t, waitFor, "the job retried for want of disk", func() bool {
		j, _ = jobOf(p, "tools", "1.0", "CHD")
		return j.Attempts >= 3 && strings.Contains(j.Error, "site CHD: not enough disk: needs 258.0 MiB") // 2 MiB of chunks, the offer, the reserve
	})
	if j.State != contracts.ContentSending {
		t.Fatalf("job %+v: want it still sending (retried), not %s", j, j.State)
	}
	if !strings.Contains(j.Error, "has 257.0 MiB free") {
		t.Fatalf("job error %q: want the free space", j.Error)
	}
	if n := par.emit.count(contracts.StatusSendFailed); n != 0 {
		t.Fatalf("%d status 7002: the job failed for good", n)
	}
	if n := chd.emit.count(contracts.StatusPackageStoreFailed); n != 1 {
		t.Fatalf("%d status 6003 at CHD after %d offers: want 1", n, j.Attempts)
	}
	if m, ok := chd.emit.last(contracts.StatusPackageStoreFailed); !ok || !strings.Contains(m.Properties["error"], "not enough disk") {
		t.Fatalf("status 6003 %+v: want it to say not enough disk", m)
	}
	// Nothing was recorded, stored or installed.
	if keys := inboxKeys(t, c); len(keys) != 0 {
		t.Fatalf("inbox holds %v", keys)
	}
	hashes := make([]string, 0, len(chunks))
	for h := range chunks {
		hashes = append(hashes, h)
	}
	if missing, err := c.MissingChunks(ctx, hashes); err != nil || len(missing) != len(hashes) {
		t.Fatalf("CHD lacks %d of %d chunks (%v): want none stored", len(missing), len(hashes), err)
	}
	if _, err := c.Version(ctx, "tools", "1.0"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("CHD version: %v, want not found", err)
	}

	// Space freed: the next attempt installs it.
	free.Store(1 << 40)
	j = waitJob(t, p, "tools", "1.0", "CHD", contracts.ContentInstalled)
	if j.Verified != info.Digest {
		t.Fatalf("job %+v: want verified %s", j, info.Digest)
	}
}

// TestDiskFullMidTransfer: the disk fills after an offer was taken (other
// offers, other data): each chunk is stored only if it fits with
// DiskReserve to spare, so the store never meets a full disk; the refusal
// is CodeUnavailable (retried), and an operator's upload is refused alike.
func TestDiskFullMidTransfer(t *testing.T) {
	chd := newSite(t, "CHD", nil)
	parKey, _ := nkeys.CreateServer()
	parPub, _ := parKey.PublicKey()
	chd.peers["PAR"] = contracts.SitePeer{Site: "PAR", Role: contracts.PeerParent, SigningKey: parPub}
	var free atomic.Int64
	free.Store(1 << 40)
	chd.cfg = func(c *Config) { c.FreeSpace = func() (int64, error) { return free.Load(), nil } }
	c := chd.start()
	ctx := context.Background()
	m, chunks := manifestFor("tools", "1", []testFile{{path: "a", data: randomBytes(2 * contracts.ChunkSize)}})
	body := mustJSON(t, m)
	r, err := offerReply(t, chd.nc, "PAR", offerBytes(t, parKey, parPub, body))
	if err != nil || len(r.Missing) != 2 {
		t.Fatalf("offer: %+v, %v", r, err)
	}
	h0, h1 := m.Files[0].Chunks[0], m.Files[0].Chunks[1]
	if _, err := send(t, chd.nc, "PAR", contracts.KindReplChunk, chunks[h0], chunkHeader("tools", "1", h0)); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	free.Store(DefaultDiskReserve + 10)
	_, err = send(t, chd.nc, "PAR", contracts.KindReplChunk, chunks[h1], chunkHeader("tools", "1", h1))
	if contracts.CodeOf(err) != contracts.CodeUnavailable || !strings.Contains(err.Error(), "site CHD: not enough disk") {
		t.Fatalf("a chunk with the disk full: got %v, want unavailable, not enough disk", err)
	}
	if missing, err := c.MissingChunks(ctx, []string{h0, h1}); err != nil || len(missing) != 1 || missing[0] != h1 {
		t.Fatalf("missing %v, %v: want only the refused chunk", missing, err)
	}
	if _, err := commitReq(t, chd.nc, "PAR", contracts.ReplicationCommit{Package: "tools", Version: "1", Digest: contracts.ChunkHash(body)}); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("commit with a chunk refused: got %v, want conflict (offer again)", err)
	}
	other := randomBytes(100)
	if err := c.PutChunk(ctx, contracts.ChunkHash(other), other); contracts.CodeOf(err) != contracts.CodeUnavailable || !strings.Contains(err.Error(), "not enough disk") {
		t.Fatalf("an operator's upload with the disk full: got %v, want unavailable, not enough disk", err)
	}
	if _, err := c.Version(ctx, "tools", "1"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("installed half: %v", err)
	}
}
