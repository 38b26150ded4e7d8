package replication

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
)

// The content library: chunks in the object store ChunksStore, each
// stored once however many versions use it, and one record per installed
// version in PackagesBucket. A version is installed by one create-only
// write of its record, after every chunk it names is stored, so a version
// is visible complete or not at all.

// versionRecord is the value of a version's key in PackagesBucket.
type versionRecord struct {
	Info   contracts.PackageInfo    `json:"info"`
	Signed contracts.SignedManifest `json:"signed"` // as installed: signed by the site it came from
	// Deleting marks a version whose deletion has begun: it may get no
	// new deployment or distribution (see Delete).
	Deleting bool `json:"deleting,omitempty"`
}

// versionInfoOnly decodes a record's summary alone.
type versionInfoOnly struct {
	Info     contracts.PackageInfo `json:"info"`
	Deleting bool                  `json:"deleting,omitempty"`
}

// Version is one installed version, whole.
type Version struct {
	Info contracts.PackageInfo
	// Signed is the manifest as installed, signed by the site that made it
	// (made here) or the site it came from.
	Signed   contracts.SignedManifest
	Manifest contracts.Manifest
}

// chunkQueryWorkers bounds the parallel object-store lookups of one query.
const chunkQueryWorkers = 16

// MissingChunks returns the hashes the library lacks, in the order given,
// each once. A hash that is not a lowercase hex SHA-256 is CodeBadRequest;
// a store that does not answer is CodeUnavailable.
func (s *Service) MissingChunks(ctx context.Context, hashes []string) ([]string, error) {
	for _, h := range hashes {
		if err := contracts.ValidHash(h); err != nil {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
		}
	}
	sizes, err := s.chunkSizes(ctx, hashes, false)
	if err != nil {
		return nil, err
	}
	out := []string{}
	seen := map[string]bool{}
	for _, h := range hashes {
		if _, ok := sizes[h]; !ok && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// PutChunk stores data as the chunk hash after checking that hash is its
// SHA-256 (CodeBadRequest otherwise) and that it is at most ChunkSize. A
// chunk already stored is left as it is. A full or unavailable store, or
// a disk without room for the chunk and DiskReserve, is CodeUnavailable.
func (s *Service) PutChunk(ctx context.Context, hash string, data []byte) error {
	if err := checkChunkData(hash, data); err != nil {
		return contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	return s.storeChunk(ctx, hash, data)
}

// checkChunkData checks a chunk's bytes against its name.
func checkChunkData(hash string, data []byte) error {
	if err := contracts.ValidHash(hash); err != nil {
		return err
	}
	if len(data) == 0 || len(data) > contracts.ChunkSize {
		return fmt.Errorf("chunk %s: %d bytes: want 1 to %d", hash, len(data), contracts.ChunkSize)
	}
	if got := contracts.ChunkHash(data); got != hash {
		return fmt.Errorf("chunk %s: the data's SHA-256 is %s", hash, got)
	}
	return nil
}

// storeChunk puts a verified chunk unless the store holds it, if it fits
// on the disk with DiskReserve to spare (a *noDiskError otherwise).
func (s *Service) storeChunk(ctx context.Context, hash string, data []byte) error {
	// The chunk's meta message, if any: held (nothing to do), or the
	// deleted mark a removal leaves, which the new meta replaces.
	_, last, held, err := s.chunkMeta(ctx, hash)
	switch {
	case err != nil:
		return contracts.Errorf(contracts.CodeUnavailable, "content library: look up chunk %s: %v", hash, err)
	case held:
		return nil
	}
	if err := s.checkDisk(int64(len(data))); err != nil {
		return err
	}
	if err := s.putChunk(ctx, hash, data, last.seq); err != nil {
		return contracts.Errorf(contracts.CodeUnavailable, "content library: store chunk %s: %v", hash, err)
	}
	return nil
}

// metaAt is where a chunk's meta message is: its sequence (0: none) and
// when it was written.
type metaAt struct {
	seq  uint64
	time time.Time
}

// chunkMeta reads chunk hash's meta message. held is false when there is
// none, it is the deleted mark a removal leaves, or it cannot be read (a
// store of the chunk then writes it anew).
func (s *Service) chunkMeta(ctx context.Context, hash string) (info jetstream.ObjectInfo, at metaAt, held bool, err error) {
	m, err := s.chunkStream.GetLastMsgForSubject(ctx, chunkMetaSubject(hash))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return info, at, false, nil
	}
	if err != nil {
		return info, at, false, err
	}
	at = metaAt{seq: m.Sequence, time: m.Time}
	if json.Unmarshal(m.Data, &info) != nil || info.Name != hash {
		return jetstream.ObjectInfo{}, at, false, nil
	}
	return info, at, !info.Deleted, nil
}

// writeMeta writes info as its chunk's meta message if the subject is
// still at last (0: none); a lost race is cas.Lost.
func (s *Service) writeMeta(ctx context.Context, info jetstream.ObjectInfo, last uint64) error {
	info.ModTime = time.Time{} // the message's time is the object's
	meta := nats.NewMsg(chunkMetaSubject(info.Name))
	meta.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	meta.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
	var err error
	if meta.Data, err = json.Marshal(info); err != nil {
		return err
	}
	_, err = s.js.PublishMsg(ctx, meta)
	return err
}

// chunkMetaSubject is the subject of the object store's meta message of
// chunk hash.
func chunkMetaSubject(hash string) string {
	return "$O." + ChunksStore + ".M." + base64.URLEncoding.EncodeToString([]byte(hash))
}

// chunkDataSubject is the subject of the object store's data messages of
// the object whose meta names nuid.
func chunkDataSubject(nuid string) string { return "$O." + ChunksStore + ".C." + nuid }

// putChunk writes a verified chunk as the object store's Put does, one
// stream message per chunk (Put's default would cut it in four) and then
// the meta message naming it, without Put's second SHA-256 of the bytes:
// the chunk's name is its SHA-256, which is the object's digest. The meta
// is written only if the chunk's meta subject is still at last (0: none):
// of two stores of one chunk at once, one names its data and the other
// removes its own, so no data message is left that nothing names.
func (s *Service) putChunk(ctx context.Context, hash string, data []byte, last uint64) error {
	sum, err := hex.DecodeString(hash)
	if err != nil || len(sum) != sha256.Size {
		return fmt.Errorf("chunk name %q is not a SHA-256", hash)
	}
	id := nuid.Next()
	chunkSubj := chunkDataSubject(id)
	info := jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: hash, Opts: &jetstream.ObjectMetaOptions{ChunkSize: contracts.ChunkSize}},
		Bucket:     ChunksStore, NUID: id, Size: uint64(len(data)), Chunks: 1,
		Digest: "SHA-256=" + base64.URLEncoding.EncodeToString(sum),
	}
	dropData := func() {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.chunkStream.Purge(pctx, jetstream.WithPurgeSubject(chunkSubj))
	}
	// The chunk first, the meta once the chunk is stored: a meta never
	// names a chunk that is not there (a full store refuses the chunk, and
	// might still take the small meta).
	if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: chunkSubj, Data: data}); err != nil {
		dropData() // stored or not (a lost acknowledgement), it names nothing
		return err
	}
	err = s.writeMeta(ctx, info, last)
	if err == nil {
		return nil
	}
	// Not named by this meta: another store came first (its data is
	// named; ours is dropped), or the answer was lost (the meta may be
	// there, naming ours).
	beaten := cas.Lost(err)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now, _, held, gerr := s.chunkMeta(rctx, hash)
	switch {
	case gerr != nil:
		// Whether the meta names ours is unknown: the data stays. A data
		// message nothing names only takes its space; a meta naming data
		// that was purged would pass for the chunk for good (a retry
		// finds it held, and a version installs that cannot be read).
		return err
	case held && now.NUID == id:
		return nil
	}
	dropData()
	if held && beaten {
		return nil
	}
	return err
}

// ReadChunk returns the chunk hash (CodeNotFound when the library lacks it).
func (s *Service) ReadChunk(ctx context.Context, hash string) ([]byte, error) {
	if err := contracts.ValidHash(hash); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	data, err := s.readChunk(ctx, hash)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, contracts.Errorf(contracts.CodeNotFound, "chunk %s is not in the content library", hash)
	case err != nil:
		return nil, contracts.Errorf(contracts.CodeUnavailable, "content library: read chunk %s: %v", hash, err)
	}
	return data, nil
}

// readChunk reads a chunk stored as one message (storeChunk's way) with
// two direct reads, its info and its message, instead of GetBytes's
// consumer per object; anything else (stored in several messages) through
// GetBytes. Readers check the bytes against the hash themselves.
func (s *Service) readChunk(ctx context.Context, hash string) ([]byte, error) {
	info, _, held, err := s.chunkMeta(ctx, hash)
	if err != nil {
		return nil, err
	}
	if !held {
		return nil, jetstream.ErrObjectNotFound
	}
	if info.Chunks != 1 {
		return s.chunks.GetBytes(ctx, hash)
	}
	m, err := s.chunkStream.GetLastMsgForSubject(ctx, chunkDataSubject(info.NUID))
	if err != nil {
		return nil, err
	}
	if uint64(len(m.Data)) != info.Size {
		return nil, fmt.Errorf("chunk %s: %d bytes stored, its info says %d", hash, len(m.Data), info.Size)
	}
	return m.Data, nil
}

// chunkSizes returns the stored size of each of hashes the store holds.
// With renew (an install about to rely on them), a held chunk whose meta
// is older than half the prune's grace is written again first (see
// renewChunk).
func (s *Service) chunkSizes(ctx context.Context, hashes []string, renew bool) (map[string]int, error) {
	uniq := slices.Compact(slices.Sorted(slices.Values(hashes)))
	out := make(map[string]int, len(uniq))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan string)
	)
	for range min(chunkQueryWorkers, len(uniq)) {
		wg.Go(func() {
			for h := range next {
				info, at, held, err := s.chunkMeta(ctx, h)
				if err == nil && held && renew && at.time.Before(s.now().Add(-s.cfg.PruneGrace/2)) {
					info, held, err = s.renewChunk(ctx, info, at.seq)
				}
				mu.Lock()
				switch {
				case err != nil && firstErr == nil:
					firstErr = err
				case err == nil && held:
					out[h] = int(info.Size)
				}
				mu.Unlock()
			}
		})
	}
	for _, h := range uniq {
		next <- h
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "content library: look up chunks: %v", firstErr)
	}
	return out, nil
}

// renewChunk writes a held chunk's meta again, unchanged, if it is still
// at seq: an install that found the chunk renews it before relying on it.
// A prune removes only a chunk whose meta is older than its grace, and
// only if the meta is still the one it read (removeChunk), so a chunk an
// install renewed survives any prune that decided on the old meta, and
// one the prune removed first is found missing here. held is whether the
// chunk is there after all.
func (s *Service) renewChunk(ctx context.Context, info jetstream.ObjectInfo, seq uint64) (jetstream.ObjectInfo, bool, error) {
	err := s.writeMeta(ctx, info, seq)
	if err == nil {
		return info, true, nil
	}
	if !cas.Lost(err) {
		return info, false, err
	}
	// Written meanwhile: removed, stored again or renewed by another.
	info, _, held, err := s.chunkMeta(ctx, info.Name)
	return info, held, err
}

// missingOf returns the chunks of want (hash -> size) the store lacks, in
// sorted order; a stored chunk of another size is an error (a manifest
// that lies about its chunks, or a damaged store). With renew, the held
// ones are renewed for an install (chunkSizes).
func (s *Service) missingOf(ctx context.Context, want map[string]int, renew bool) ([]string, error) {
	hashes := make([]string, 0, len(want))
	for h := range want {
		hashes = append(hashes, h)
	}
	have, err := s.chunkSizes(ctx, hashes, renew)
	if err != nil {
		return nil, err
	}
	var missing []string
	for h, size := range want {
		got, ok := have[h]
		if !ok {
			missing = append(missing, h)
			continue
		}
		if got != size {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "chunk %s is %d bytes, but the manifest says %d", h, got, size)
		}
	}
	slices.Sort(missing)
	return missing, nil
}

// CreateVersion makes a version of this site from m, whose every chunk
// must be in the library already: it fills in what is the site's to fill
// (header, Site, Created, CreatedBy = by, ChunkSize, Size when 0, files and
// links sorted by path), validates it, signs it with the site key and
// installs it. Errors: CodeBadRequest (an invalid manifest), CodeTooLarge
// (a manifest over MaxManifestBytes), CodeConflict (the version exists,
// chunks are missing, or the package has MaxPackageVersions versions),
// CodeUnavailable (the store).
func (s *Service) CreateVersion(ctx context.Context, m contracts.Manifest, by string) (contracts.PackageInfo, error) {
	now := s.now()
	if m.Site != "" && m.Site != s.cfg.Site {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeBadRequest, "a version made here belongs to site %s, not %s", s.cfg.Site, m.Site)
	}
	m.Header = contracts.NewHeader(contracts.TypeManifest)
	m.Header.Time = now
	m.Site = s.cfg.Site
	if m.Created.IsZero() {
		m.Created = now
	}
	m.CreatedBy = by
	if m.ChunkSize == 0 {
		m.ChunkSize = contracts.ChunkSize
	}
	if m.Size == 0 {
		for _, f := range m.Files {
			m.Size += f.Size
		}
	}
	slices.SortFunc(m.Files, func(a, b contracts.ManifestFile) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(m.Links, func(a, b contracts.ManifestLink) int { return strings.Compare(a.Path, b.Path) })
	if err := m.Validate(); err != nil {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeBadRequest, "invalid package %s: %v", contracts.PackageKey(m.Package, m.Version), err)
	}
	sizes, err := m.ChunkSizes()
	if err != nil {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeBadRequest, "invalid package %s: %v", contracts.PackageKey(m.Package, m.Version), err)
	}
	body, err := json.Marshal(&m)
	if err != nil {
		return contracts.PackageInfo{}, err
	}
	if len(body) > contracts.MaxManifestBytes {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeTooLarge,
			"the manifest of %s is %d bytes, at most %d: make the package of fewer or larger files, or split it",
			contracts.PackageKey(m.Package, m.Version), len(body), contracts.MaxManifestBytes)
	}
	if _, ok := s.model.version(m.Package, m.Version); ok {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeConflict, "%s exists (versions never change: make a new version)", contracts.PackageKey(m.Package, m.Version))
	}
	if n := len(s.model.versionList(m.Package)); n >= contracts.MaxPackageVersions {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeConflict, "package %s has %d versions, at most %d: delete old ones first", m.Package, n, contracts.MaxPackageVersions)
	}
	s.libMu.RLock()
	defer s.libMu.RUnlock()
	missing, err := s.missingOf(ctx, sizes, true)
	if err != nil {
		return contracts.PackageInfo{}, err
	}
	if len(missing) > 0 {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeConflict, "%d chunks of %s are not in the library (upload them first), such as %s",
			len(missing), contracts.PackageKey(m.Package, m.Version), missing[0])
	}
	if err := s.checkFileHashes(ctx, &m); err != nil {
		return contracts.PackageInfo{}, err
	}
	signed := s.sign(body)
	info := newInfo(&m, &signed, "")
	if err := s.install(ctx, &info, signed); err != nil {
		return contracts.PackageInfo{}, err
	}
	s.log.Info("version created", "package", m.Package, "version", m.Version, "digest", info.Digest, "size", m.Size, "by", by)
	s.emit(ctx, contracts.StatusPackageCreated, map[string]string{"package": m.Package, "version": m.Version, "digest": info.Digest, "bytes": strconv.FormatInt(m.Size, 10), "by": by})
	return info, nil
}

// checkFileHashes reads every file of m back from the library and checks
// its SHA-256 against the manifest's, before the site signs it: the site
// vouches for the files, not only for their chunks. A manifest whose file
// hash its chunks do not make would be downloaded in full by every agent,
// refused at the end and fetched again at every sync. Files are hashed
// side by side, one per CPU.
func (s *Service) checkFileHashes(ctx context.Context, m *contracts.Manifest) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	files := make(chan *contracts.ManifestFile)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for f := range files {
				if err := s.checkFileHash(ctx, m, f); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range m.Files {
		select {
		case files <- &m.Files[i]:
		case <-ctx.Done():
			break feed
		}
	}
	close(files)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func (s *Service) checkFileHash(ctx context.Context, m *contracts.Manifest, f *contracts.ManifestFile) error {
	h := sha256.New()
	for _, c := range f.Chunks {
		data, err := s.readChunk(ctx, c)
		if err != nil {
			return contracts.Errorf(contracts.CodeUnavailable, "content library: read chunk %s of %s: %v", c, f.Path, err)
		}
		h.Write(data)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return contracts.Errorf(contracts.CodeBadRequest, "invalid package %s: file %s: its chunks make SHA-256 %s, the manifest says %s",
			contracts.PackageKey(m.Package, m.Version), f.Path, got, f.SHA256)
	}
	return nil
}

// sign signs a manifest's JSON with the site key.
func (s *Service) sign(body []byte) contracts.SignedManifest {
	return contracts.SignedManifest{
		Header:   contracts.NewHeader(contracts.TypeSignedManifest),
		Manifest: body, Signature: s.key.Sign(contracts.ManifestSigningInput(body)), Key: s.key.PublicKey(),
	}
}

// newInfo summarises a version received from site from ("" made here).
func newInfo(m *contracts.Manifest, signed *contracts.SignedManifest, from string) contracts.PackageInfo {
	return contracts.PackageInfo{
		Package: m.Package, Version: m.Version, Digest: signed.Digest(), Site: m.Site, From: from,
		Size: m.Size, Files: len(m.Files), Chunks: len(m.Chunks()), Created: m.Created, CreatedBy: m.CreatedBy,
	}
}

// install writes a version's record, create-only: the moment the version
// becomes visible. Installing the same digest again is done; another
// digest under the same version is CodeConflict. It sets info.Installed.
func (s *Service) install(ctx context.Context, info *contracts.PackageInfo, signed contracts.SignedManifest) error {
	info.Installed = s.now()
	data, err := json.Marshal(versionRecord{Info: *info, Signed: signed})
	if err != nil {
		return err
	}
	key := versionKey(info.Package, info.Version)
	rev, err := s.packagesKV.Create(ctx, key, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		cur, gerr := s.readVersion(ctx, info.Package, info.Version)
		if gerr == nil && cur.Info.Digest == info.Digest {
			return nil
		}
		return contracts.Errorf(contracts.CodeConflict, "%s is installed with another digest", contracts.PackageKey(info.Package, info.Version))
	}
	if err != nil {
		return contracts.Errorf(contracts.CodeUnavailable, "content library: install %s: %v", contracts.PackageKey(info.Package, info.Version), err)
	}
	return s.model.wait(ctx, PackagesBucket, rev)
}

// Version returns an installed version; version "" is the package's newest.
func (s *Service) Version(ctx context.Context, pkg, version string) (*Version, error) {
	if version == "" {
		vs := s.model.versionList(pkg)
		if len(vs) == 0 {
			return nil, contracts.Errorf(contracts.CodeNotFound, "no package %q", pkg)
		}
		version = vs[len(vs)-1].Version
	}
	return s.readVersion(ctx, pkg, version)
}

// Info returns an installed version's summary (version "": the package's
// newest) from memory, without reading and decoding its manifest, which
// for a large package is megabytes: status and distribution need only
// this. A version this instance has not seen yet is read from the bucket.
func (s *Service) Info(ctx context.Context, pkg, version string) (contracts.PackageInfo, error) {
	if version == "" {
		vs := s.model.versionList(pkg)
		if len(vs) == 0 {
			return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeNotFound, "no package %q", pkg)
		}
		return vs[len(vs)-1], nil
	}
	if info, ok := s.model.version(pkg, version); ok {
		return info, nil
	}
	v, err := s.readVersion(ctx, pkg, version)
	if err != nil {
		return contracts.PackageInfo{}, err
	}
	return v.Info, nil
}

// readVersion reads a version's record and decodes its manifest.
func (s *Service) readVersion(ctx context.Context, pkg, version string) (*Version, error) {
	if err := contracts.ValidPackageName(pkg); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	if err := contracts.ValidPackageVersion(version); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	e, err := s.packagesKV.Get(ctx, versionKey(pkg, version))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, contracts.Errorf(contracts.CodeNotFound, "no package %s", contracts.PackageKey(pkg, version))
	case err != nil:
		return nil, contracts.Errorf(contracts.CodeUnavailable, "content library: read %s: %v", contracts.PackageKey(pkg, version), err)
	}
	var rec versionRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("record of %s: %w", contracts.PackageKey(pkg, version), err)
	}
	v := &Version{Info: rec.Info, Signed: rec.Signed}
	if err := json.Unmarshal(rec.Signed.Manifest, &v.Manifest); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", contracts.PackageKey(pkg, version), err)
	}
	return v, nil
}

// Versions lists the installed versions of pkg ("" every package), by
// package then creation (a package's newest last).
func (s *Service) Versions(pkg string) []contracts.PackageInfo { return s.model.versionList(pkg) }

// Delete removes a version (version "": every version of pkg) from the
// library and drops its jobs and its clients' reports; chunks no other version uses are removed by
// the next prune, which Delete starts. A deployed version is CodeConflict:
// undeploy it first. It returns what was deleted.
func (s *Service) Delete(ctx context.Context, pkg, version, by string) ([]contracts.PackageInfo, error) {
	var victims []contracts.PackageInfo
	if version == "" {
		victims = s.model.versionList(pkg)
	} else if v, ok := s.model.version(pkg, version); ok {
		victims = []contracts.PackageInfo{v}
	}
	if len(victims) == 0 {
		return nil, contracts.Errorf(contracts.CodeNotFound, "no package %s", contracts.PackageKey(pkg, version))
	}
	// The versions are marked first, then their deployments and jobs are
	// read: a deployment or distribution written before a mark is seen
	// here, and one written after it sees the mark and withdraws
	// (stillInstalled), so none outlives its version.
	if err := s.checkDeployed(victims); err != nil {
		return nil, err
	}
	for i, v := range victims {
		if err := s.markDeleting(ctx, v, true); err != nil {
			s.unmarkDeleting(ctx, victims[:i])
			return nil, err
		}
	}
	err := s.syncModel(ctx, s.deployKV, DeploymentsBucket)
	if err == nil {
		err = s.checkDeployed(victims)
	}
	if err == nil {
		err = s.syncModel(ctx, s.jobsKV, JobsBucket)
	}
	if err != nil {
		s.unmarkDeleting(ctx, victims)
		return nil, err
	}
	for _, v := range victims {
		for _, e := range s.model.jobList(func(j job) bool { return j.Package == v.Package && j.Version == v.Version }) {
			if err := s.jobsKV.Delete(ctx, jobKey(v.Package, v.Version, e.job.Site)); err != nil {
				return nil, contracts.Errorf(contracts.CodeUnavailable, "delete the jobs of %s: %v", contracts.PackageKey(v.Package, v.Version), err)
			}
		}
		// Its clients' reports go first: a report written after the mark
		// withdraws itself (confirmReport), and a failure here leaves the
		// version marked, for packages delete to finish.
		if err := s.dropVersionReports(ctx, v.Package, v.Version); err != nil {
			return nil, err
		}
		if err := s.packagesKV.Purge(ctx, versionKey(v.Package, v.Version)); err != nil {
			return nil, contracts.Errorf(contracts.CodeUnavailable, "delete %s: %v", contracts.PackageKey(v.Package, v.Version), err)
		}
		s.log.Info("version deleted", "package", v.Package, "version", v.Version, "by", by)
		s.emit(ctx, contracts.StatusPackageDeleted, map[string]string{"package": v.Package, "version": v.Version, "by": by})
	}
	if err := s.syncModel(ctx, s.packagesKV, PackagesBucket); err != nil {
		return nil, err
	}
	select {
	case s.pruneNow <- struct{}{}:
	default:
	}
	return victims, nil
}

// checkDeployed refuses the deletion of versions deployed to a collection.
func (s *Service) checkDeployed(victims []contracts.PackageInfo) error {
	for _, v := range victims {
		if ds := s.model.deploymentList(v.Package, v.Version); len(ds) > 0 {
			return contracts.Errorf(contracts.CodeConflict, "%s is deployed to collection %s: undeploy it first",
				contracts.PackageKey(v.Package, v.Version), ds[0].Collection.Name)
		}
	}
	return nil
}

// markDeleting sets (or clears) the Deleting mark of v's record. A
// version already deleted is CodeNotFound.
func (s *Service) markDeleting(ctx context.Context, v contracts.PackageInfo, deleting bool) error {
	key := versionKey(v.Package, v.Version)
	for range 5 {
		e, err := s.packagesKV.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return contracts.Errorf(contracts.CodeNotFound, "no package %s", contracts.PackageKey(v.Package, v.Version))
		}
		if err != nil {
			return contracts.Errorf(contracts.CodeUnavailable, "content library: read %s: %v", contracts.PackageKey(v.Package, v.Version), err)
		}
		var rec versionRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("content library: record of %s: %w", contracts.PackageKey(v.Package, v.Version), err)
		}
		if rec.Deleting == deleting {
			return nil
		}
		rec.Deleting = deleting
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = s.packagesKV.Update(ctx, key, data, e.Revision())
		if err == nil {
			return nil
		}
		if !cas.Lost(err) {
			return contracts.Errorf(contracts.CodeUnavailable, "content library: mark %s: %v", contracts.PackageKey(v.Package, v.Version), err)
		}
	}
	return contracts.Errorf(contracts.CodeUnavailable, "content library: the record of %s kept changing", contracts.PackageKey(v.Package, v.Version))
}

// unmarkDeleting clears the marks of a deletion refused after it marked
// versions. A mark left (the store did not answer) holds off deployments
// and distributions until the version is deleted (packages delete again)
// or, failing that, is logged.
func (s *Service) unmarkDeleting(ctx context.Context, versions []contracts.PackageInfo) {
	for _, v := range versions {
		if err := s.markDeleting(ctx, v, false); err != nil && contracts.CodeOf(err) != contracts.CodeNotFound {
			s.log.Error("a refused deletion left its mark: the version takes no deployment or distribution until it is deleted", "package", v.Package, "version", v.Version, "err", err)
		}
	}
}

// versionNow is pkg's version as the packages bucket holds it now, and
// whether its deletion has begun (its Deleting mark): this instance's view
// is first brought up to the bucket's last write (a stream-info request,
// not a read of the record, which holds the whole manifest). Run after a
// deployment, job or report is written, it sees a deletion that began
// before the write, and a deletion that begins after it sees the write.
// A version gone is CodeNotFound.
func (s *Service) versionNow(ctx context.Context, pkg, version string) (contracts.PackageInfo, bool, error) {
	if err := s.syncModel(ctx, s.packagesKV, PackagesBucket); err != nil {
		return contracts.PackageInfo{}, false, err
	}
	v, ok, deleting := s.model.versionState(pkg, version)
	if !ok {
		return v, false, contracts.Errorf(contracts.CodeNotFound, "no package %s: it was deleted", contracts.PackageKey(pkg, version))
	}
	return v, deleting, nil
}

// stillInstalled refuses a deployment or distribution just written of a
// version gone or being deleted (versionNow).
func (s *Service) stillInstalled(ctx context.Context, pkg, version string) error {
	_, deleting, err := s.versionNow(ctx, pkg, version)
	if err == nil && deleting {
		err = contracts.Errorf(contracts.CodeConflict, "%s is being deleted (if that deletion was interrupted, run packages delete again)", contracts.PackageKey(pkg, version))
	}
	return err
}

// syncModel waits until the view of bucket holds everything written to it
// so far.
func (s *Service) syncModel(ctx context.Context, kv jetstream.KeyValue, bucket string) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return contracts.Errorf(contracts.CodeUnavailable, "bucket %s: %v", bucket, err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return fmt.Errorf("bucket %s: status of type %T", bucket, st)
	}
	return s.model.wait(ctx, bucket, bs.StreamInfo().State.LastSeq)
}
