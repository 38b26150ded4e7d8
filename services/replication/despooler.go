package replication

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
)

// The despooler receives versions from peer sites on
// steward.<this site>.site.<from>.repl.{offer,chunk,commit}. The sending
// site is the subject's token (the leaf connection lets a site publish only
// as itself). An offer is verified (verify.go) against the key pinned for
// that site and recorded in InboxBucket; chunks must belong to a recorded
// offer; a commit that finds every chunk stored installs the version.

// inboxRecord is a verified offer waiting for its commit (InboxBucket).
type inboxRecord struct {
	From     string                   `json:"from"`
	Digest   string                   `json:"digest"`
	Received time.Time                `json:"received"`
	Signed   contracts.SignedManifest `json:"signed"`
}

// peerSite is the sending site of a request on a site subject addressed
// to this site.
func (s *Service) peerSite(from contracts.SubjectInfo) (string, error) {
	if from.Space != "site" || from.Site != s.cfg.Site || from.Principal == "" {
		return "", contracts.Errorf(contracts.CodeBadRequest, "replication requests come on steward.%s.site.<from>.<kind>", s.cfg.Site)
	}
	if from.Principal == s.cfg.Site {
		return "", contracts.Errorf(contracts.CodeBadRequest, "site %s cannot send to itself", s.cfg.Site)
	}
	return from.Principal, nil
}

// pinnedKey is the signing key pinned for the parent site from. A site
// that is not a linked parent is a rejection (content flows down the
// hierarchy); a peer list that cannot be read is CodeUnavailable.
func (s *Service) pinnedKey(ctx context.Context, from string) (string, error) {
	p, err := s.cfg.Peers.Peer(ctx, from)
	switch {
	case contracts.CodeOf(err) == contracts.CodeNotFound:
		return "", reject(contracts.CodePermissionDenied, "site %s is not linked to this site", from)
	case err != nil:
		return "", contracts.Errorf(contracts.CodeUnavailable, "the peers of site %s cannot be read: %v", s.cfg.Site, err)
	case p.Role != contracts.PeerParent:
		return "", reject(contracts.CodePermissionDenied, "site %s is this site's %s: content comes only from the parent", from, p.Role)
	case p.SigningKey == "":
		return "", reject(contracts.CodePermissionDenied, "no signing key is pinned for site %s", from)
	}
	return p.SigningKey, nil
}

// handleOffer verifies an offer and answers which chunks are missing.
func (s *Service) handleOffer(ctx context.Context, from contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
	site, err := s.peerSite(from)
	if err != nil {
		return nil, nil, err
	}
	reply, err := s.receiveOffer(ctx, site, r.Data())
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(reply)
	return b, nil, err
}

// receiveOffer is handleOffer's domain: verify, record, answer.
func (s *Service) receiveOffer(ctx context.Context, site string, data []byte) (*contracts.ReplicationOfferReply, error) {
	entry := QuarantineEntry{QuarantineInfo: contracts.QuarantineInfo{What: QuarantineOffer, From: site}}
	pinned, err := s.pinnedKey(ctx, site)
	if rej, ok := asRejection(err); ok {
		// Not a site content comes from: what it sent is recorded, its
		// bytes are not kept (a child could fill the quarantine with them).
		describeOffer(&entry, data)
		return nil, s.quarantine(ctx, entry, rej, data, false)
	}
	if err != nil {
		return nil, err
	}
	o, err := verifyOffer(data, site, pinned)
	if rej, ok := asRejection(err); ok {
		describeOffer(&entry, data)
		return nil, s.quarantine(ctx, entry, rej, data, true)
	}
	if err != nil {
		return nil, err
	}
	m := &o.Manifest
	entry.Package, entry.Version, entry.Digest = m.Package, m.Version, o.Digest
	name := contracts.PackageKey(m.Package, m.Version)
	reply := &contracts.ReplicationOfferReply{Header: contracts.NewHeader(contracts.TypeReplicationOfferReply)}
	if v, ok := s.model.version(m.Package, m.Version); ok {
		if v.Digest == o.Digest {
			reply.Installed = true
			return reply, nil
		}
		return nil, s.quarantine(ctx, entry, reject(contracts.CodeConflict,
			"%s is installed here with digest %s; versions never change (delete it here first to replace it)", name, v.Digest), data, true)
	}
	s.libMu.RLock()
	defer s.libMu.RUnlock()
	missing, err := s.missingOf(ctx, o.Sizes, false)
	if contracts.CodeOf(err) == contracts.CodeBadRequest {
		return nil, s.quarantine(ctx, entry, reject(contracts.CodeBadRequest, "%v", err), data, true)
	}
	if err != nil {
		return nil, s.storeFailed(ctx, name, site, err)
	}
	// The chunks still missing (and the offer's record) must fit on the
	// disk with DiskReserve to spare: a store that meets a full disk stays
	// broken until its server restarts.
	need := int64(len(data))
	for _, h := range missing {
		need += int64(o.Sizes[h])
	}
	if err := s.checkDisk(need); err != nil {
		return nil, s.noDisk(ctx, name, site, err)
	}
	rec, _ := json.Marshal(inboxRecord{From: site, Digest: o.Digest, Received: s.now(), Signed: o.Signed})
	if o.rev, err = s.inboxKV.Put(ctx, inboxKey(site, m.Package, m.Version), rec); err != nil {
		return nil, s.storeFailed(ctx, name, site, contracts.Errorf(contracts.CodeUnavailable, "record the offer: %v", err))
	}
	s.offers.put(inboxKey(site, m.Package, m.Version), o)
	reply.Missing = missing
	s.log.Info("offer received", "from", site, "package", m.Package, "version", m.Version, "digest", o.Digest,
		"chunks", len(o.Sizes), "missing", len(missing))
	return reply, nil
}

// describeOffer fills what can be read of a rejected offer into e,
// trusting none of it.
func describeOffer(e *QuarantineEntry, data []byte) {
	if len(data) > maxOfferBytes {
		return
	}
	var o contracts.ReplicationOffer
	if json.Unmarshal(data, &o) != nil {
		return
	}
	e.Digest = o.Manifest.Digest()
	var m struct{ Package, Version string }
	if json.Unmarshal(o.Manifest.Manifest, &m) == nil &&
		contracts.ValidPackageName(m.Package) == nil && contracts.ValidPackageVersion(m.Version) == nil {
		e.Package, e.Version = m.Package, m.Version
	}
}

// storeFailed reports a failure to store what a peer sent (status 6003)
// and returns it as CodeUnavailable: the sender retries, and nothing is
// installed half.
func (s *Service) storeFailed(ctx context.Context, name, from string, err error) error {
	s.log.Error("despooler cannot store", "package", name, "from", from, "err", err)
	s.emit(ctx, contracts.StatusPackageStoreFailed, map[string]string{"package": name, "from": from, "error": err.Error()})
	if contracts.CodeOf(err) == contracts.CodeUnavailable {
		return err
	}
	return contracts.Errorf(contracts.CodeUnavailable, "site %s cannot store %s now: %v", s.cfg.Site, name, err)
}

// handleChunk verifies and stores one chunk of an offered version.
func (s *Service) handleChunk(ctx context.Context, from contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
	site, err := s.peerSite(from)
	if err != nil {
		return nil, nil, err
	}
	return nil, nil, s.receiveChunk(ctx, site, nats.Header(r.Headers()), r.Data())
}

// receiveChunk is handleChunk's domain.
func (s *Service) receiveChunk(ctx context.Context, site string, h nats.Header, data []byte) error {
	entry := QuarantineEntry{QuarantineInfo: contracts.QuarantineInfo{What: QuarantineChunk, From: site}}
	ref, err := chunkHeaders(h)
	entry.Package, entry.Version, entry.Chunk = ref.Package, ref.Version, ref.Hash
	if rej, ok := asRejection(err); ok {
		if contracts.ValidPackageName(ref.Package) != nil || contracts.ValidPackageVersion(ref.Version) != nil {
			entry.Package, entry.Version = "", ""
		}
		entry.Chunk = clip(ref.Hash, 64)
		return s.quarantine(ctx, entry, rej, data, false)
	}
	o, err := s.lookupOffer(ctx, site, ref.Package, ref.Version, ref.Hash)
	if err != nil {
		return err
	}
	entry.Digest = o.Digest
	if err := verifyChunk(ref, data, o); err != nil {
		if rej, ok := asRejection(err); ok {
			return s.quarantine(ctx, entry, rej, data, false)
		}
		return err
	}
	if err := s.storeChunk(ctx, ref.Hash, data); err != nil {
		var nd *noDiskError
		if errors.As(err, &nd) {
			return s.noDisk(ctx, contracts.PackageKey(ref.Package, ref.Version), site, err)
		}
		return s.storeFailed(ctx, contracts.PackageKey(ref.Package, ref.Version), site, err)
	}
	o.markHeld(ref.Hash)
	return nil
}

// lookupOffer returns the recorded offer of pkg@version from site, read
// again from the inbox when the cached one does not name hash (the offer
// may have been replaced).
func (s *Service) lookupOffer(ctx context.Context, site, pkg, version, hash string) (*offer, error) {
	key := inboxKey(site, pkg, version)
	if o, ok := s.offers.get(key); ok {
		if _, named := o.Sizes[hash]; named || hash == "" {
			return o, nil
		}
	}
	e, err := s.inboxKV.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, contracts.Errorf(contracts.CodeNotFound, "site %s has no offer of %s from site %s: offer it first", s.cfg.Site, contracts.PackageKey(pkg, version), site)
	case err != nil:
		return nil, contracts.Errorf(contracts.CodeUnavailable, "read the offer of %s: %v", contracts.PackageKey(pkg, version), err)
	}
	o, err := decodeInbox(e.Value())
	if err != nil {
		return nil, err
	}
	o.rev = e.Revision()
	s.offers.put(key, o)
	return o, nil
}

// decodeInbox reads a recorded offer (verified when it was recorded).
func decodeInbox(b []byte) (*offer, error) {
	var rec inboxRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	o := &offer{From: rec.From, Signed: rec.Signed, Digest: rec.Digest}
	if err := json.Unmarshal(rec.Signed.Manifest, &o.Manifest); err != nil {
		return nil, err
	}
	sizes, err := o.Manifest.ChunkSizes()
	if err != nil {
		return nil, err
	}
	o.Sizes = sizes
	return o, nil
}

// handleCommit installs an offered version whose every chunk is stored.
func (s *Service) handleCommit(ctx context.Context, from contracts.SubjectInfo, req *contracts.ReplicationCommit) (*contracts.ReplicationCommitAck, error) {
	site, err := s.peerSite(from)
	if err != nil {
		return nil, err
	}
	return s.commit(ctx, site, req)
}

// commit is handleCommit's domain.
func (s *Service) commit(ctx context.Context, site string, req *contracts.ReplicationCommit) (*contracts.ReplicationCommitAck, error) {
	if err := contracts.ValidPackageName(req.Package); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	if err := contracts.ValidPackageVersion(req.Version); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	if err := contracts.ValidHash(req.Digest); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "digest: %v", err)
	}
	name := contracts.PackageKey(req.Package, req.Version)
	ack := func(v contracts.PackageInfo) *contracts.ReplicationCommitAck {
		return &contracts.ReplicationCommitAck{Header: contracts.NewHeader(contracts.TypeReplicationCommitAck), Digest: v.Digest, Bytes: v.Size}
	}
	if v, ok := s.model.version(req.Package, req.Version); ok && v.Digest == req.Digest {
		return ack(v), nil // a commit again, after its answer was lost
	}
	key := inboxKey(site, req.Package, req.Version)
	e, err := s.inboxKV.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, contracts.Errorf(contracts.CodeNotFound, "site %s has no offer of %s from site %s: offer it first", s.cfg.Site, name, site)
	case err != nil:
		return nil, s.storeFailed(ctx, name, site, contracts.Errorf(contracts.CodeUnavailable, "read the offer: %v", err))
	}
	o, err := decodeInbox(e.Value())
	if err != nil {
		return nil, err
	}
	if o.Digest != req.Digest {
		return nil, contracts.Errorf(contracts.CodeConflict, "the offer of %s from site %s has digest %s, not %s: offer again", name, site, o.Digest, req.Digest)
	}
	// Only the chunks this instance has not stored for the offer are
	// looked up (each look-up reads the store).
	want := o.Sizes
	if cached, ok := s.offers.get(key); ok && cached.Digest == o.Digest && cached.rev == e.Revision() {
		want = cached.unheld()
	}
	s.libMu.RLock()
	defer s.libMu.RUnlock()
	missing, err := s.missingOf(ctx, want, true)
	if err != nil {
		return nil, s.storeFailed(ctx, name, site, err)
	}
	if len(missing) > 0 {
		return nil, contracts.Errorf(contracts.CodeConflict, "%d chunks of %s are missing at site %s, such as %s: offer again", len(missing), name, s.cfg.Site, missing[0])
	}
	info := newInfo(&o.Manifest, &o.Signed, site)
	if err := s.install(ctx, &info, o.Signed); err != nil {
		if contracts.CodeOf(err) == contracts.CodeUnavailable {
			return nil, s.storeFailed(ctx, name, site, err)
		}
		return nil, err
	}
	if err := s.inboxKV.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
		s.log.Warn("offer not removed from the inbox after its install", "package", name, "from", site, "err", err)
	}
	s.offers.drop(key)
	s.log.Info("version installed", "package", req.Package, "version", req.Version, "from", site, "digest", info.Digest)
	s.emit(ctx, contracts.StatusPackageStored, map[string]string{"package": req.Package, "version": req.Version, "from": site})
	return ack(info), nil
}

// offerCache keeps the decoded offers chunks are checked against, the
// most recently used ones.
type offerCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of string keys, front = newest
	items map[string]*list.Element
	vals  map[string]*offer
}

func newOfferCache(n int) *offerCache {
	return &offerCache{max: n, order: list.New(), items: map[string]*list.Element{}, vals: map[string]*offer{}}
}

func (c *offerCache) get(key string) (*offer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return c.vals[key], true
}

func (c *offerCache) put(key string, o *offer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		c.vals[key] = o
		return
	}
	c.items[key] = c.order.PushFront(key)
	c.vals[key] = o
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(string)
		delete(c.items, old)
		delete(c.vals, old)
	}
}

func (c *offerCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
		delete(c.vals, key)
	}
}
