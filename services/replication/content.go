package replication

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
)

// Agents download content from their own site: content.list (what the
// client should hold, signed by the site key), content.manifest and
// content.chunk (only of a version deployed to a collection holding the
// client), content.report (what became of it, kept in ClientsBucket).

// maxReportError bounds the error text kept from a client's report.
const maxReportError = 1024

// clientRecord is a client's last report on a version (ClientsBucket).
type clientRecord struct {
	Client   string    `json:"client"`
	Package  string    `json:"package"`
	Version  string    `json:"version"`
	Digest   string    `json:"digest,omitempty"`
	State    string    `json:"state"`
	Bytes    int64     `json:"bytes,omitempty"`
	Error    string    `json:"error,omitempty"`
	Reported time.Time `json:"reported"`
}

// agentClient is the client ID of an agent subject.
func agentClient(from contracts.SubjectInfo) (string, error) {
	if from.Space != "agent" || from.Principal == "" {
		return "", contracts.Errorf(contracts.CodeBadRequest, "content requests come from agent subjects")
	}
	return from.Principal, nil
}

// contentList answers an agent with its signed content list: every
// installed version deployed to a collection holding it. Membership is
// asked afresh (and refreshes the cache the downloads are checked with).
func (s *Service) contentList(ctx context.Context, from contracts.SubjectInfo, _ *contracts.ContentListRequest) (*contracts.ContentListResponse, error) {
	client, err := agentClient(from)
	if err != nil {
		return nil, err
	}
	cols, err := s.members.collections(ctx, client, true)
	if err != nil {
		return nil, membershipError(err)
	}
	now := s.now()
	list := contracts.ContentList{Header: contracts.NewHeader(contracts.TypeContentList), Site: s.cfg.Site, Client: client,
		Issued: now, Expires: now.Add(s.cfg.ListValidity), Packages: s.assignments(cols)}
	body, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	return &contracts.ContentListResponse{Header: contracts.NewHeader(contracts.TypeContentListResponse),
		List: body, Signature: s.key.Sign(contracts.ContentListSigningInput(body)), Key: s.key.PublicKey()}, nil
}

// assignments lists the installed versions deployed to any of cols, by
// package and version.
func (s *Service) assignments(cols []string) []contracts.ContentAssignment {
	in := map[string]bool{}
	for _, c := range cols {
		in[c] = true
	}
	seen := map[string]bool{}
	out := []contracts.ContentAssignment{}
	for _, d := range s.model.deploymentList("", "") {
		k := versionKey(d.Package, d.Version)
		if !in[d.Collection.ID] || seen[k] {
			continue
		}
		v, ok := s.model.version(d.Package, d.Version)
		if !ok {
			continue
		}
		seen[k] = true
		out = append(out, contracts.ContentAssignment{Package: v.Package, Version: v.Version, Digest: v.Digest, Size: v.Size})
	}
	slices.SortFunc(out, func(a, b contracts.ContentAssignment) int {
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// membershipError is how a failure to learn a client's collections is
// answered.
func membershipError(err error) error {
	switch contracts.CodeOf(err) {
	case contracts.CodeNotFound:
		return contracts.Errorf(contracts.CodePermissionDenied, "this client is not known to the site")
	case contracts.CodeUnavailable:
		return contracts.Errorf(contracts.CodeUnavailable, "the collections of this client cannot be read now: retry later")
	}
	return err
}

// mayRead checks that client may download pkg@version: the version is
// deployed to a collection holding the client. A refusal does not say
// whether the version exists.
func (s *Service) mayRead(ctx context.Context, client, pkg, version string) error {
	if contracts.ValidPackageName(pkg) != nil || contracts.ValidPackageVersion(version) != nil {
		return contracts.Errorf(contracts.CodeBadRequest, "invalid package %q or version %q", clip(pkg, 64), clip(version, 64))
	}
	denied := contracts.Errorf(contracts.CodePermissionDenied, "%s is not deployed to a collection holding this client", contracts.PackageKey(pkg, version))
	ds := s.model.deploymentList(pkg, version)
	if len(ds) == 0 {
		return denied
	}
	cols, err := s.members.collections(ctx, client, false)
	if err != nil {
		return membershipError(err)
	}
	for _, d := range ds {
		if slices.Contains(cols, d.Collection.ID) {
			return nil
		}
	}
	return denied
}

// contentManifest answers an agent with a version's manifest, signed by
// this site.
func (s *Service) contentManifest(ctx context.Context, from contracts.SubjectInfo, req *contracts.ContentManifestRequest) (*contracts.ContentManifestResponse, error) {
	client, err := agentClient(from)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(ctx, client, req.Package, req.Version); err != nil {
		return nil, err
	}
	sv, err := s.servedVersion(ctx, req.Package, req.Version)
	if err != nil {
		return nil, err
	}
	signed := sv.manifest
	signed.Header = contracts.NewHeader(contracts.TypeSignedManifest)
	return &contracts.ContentManifestResponse{Header: contracts.NewHeader(contracts.TypeContentManifestResp), Manifest: signed}, nil
}

// contentChunk answers an agent with one chunk's bytes (header
// HeaderChunk), of a version it may read and that names the chunk.
func (s *Service) contentChunk(ctx context.Context, from contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
	client, err := agentClient(from)
	if err != nil {
		return nil, nil, err
	}
	var req contracts.ContentChunkRequest
	if err := contracts.Decode(r.Data(), contracts.TypeContentChunkRequest, &req); err != nil {
		return nil, nil, err
	}
	if err := contracts.ValidHash(req.Hash); err != nil {
		return nil, nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	if err := s.mayRead(ctx, client, req.Package, req.Version); err != nil {
		return nil, nil, err
	}
	sv, err := s.servedVersion(ctx, req.Package, req.Version)
	if err != nil {
		return nil, nil, err
	}
	if !sv.chunks[req.Hash] {
		return nil, nil, contracts.Errorf(contracts.CodeNotFound, "chunk %s is not in %s", req.Hash, contracts.PackageKey(req.Package, req.Version))
	}
	data, err := s.ReadChunk(ctx, req.Hash)
	if err != nil {
		return nil, nil, err
	}
	h := nats.Header{}
	h.Set(contracts.HeaderPackage, req.Package)
	h.Set(contracts.HeaderVersion, req.Version)
	h.Set(contracts.HeaderChunk, req.Hash)
	return data, h, nil
}

// servedVersions caches, by version key, what agents are served of the
// versions they download: read and signed once per version, not per
// request (a manifest can be most of a megabyte, and every client of a
// deployment asks for it at once).
type servedVersions struct {
	mu      sync.Mutex
	m       map[string]*servedVersion
	loading map[string]chan struct{} // closed when the key's read ends
}

// servedVersion is an installed version as agents are served it.
type servedVersion struct {
	digest   string
	chunks   map[string]bool
	manifest contracts.SignedManifest // signed by this site (ed25519 is deterministic: signing again gives the same bytes)
}

// maxServedVersions bounds the cache; past it, it starts over.
const maxServedVersions = 64

// servedVersion is the installed version pkg@version as agents are served
// it, read again when the version's digest changed (deleted and made
// again). Requests that find it being read wait for that read.
func (s *Service) servedVersion(ctx context.Context, pkg, version string) (*servedVersion, error) {
	info, ok := s.model.version(pkg, version)
	if !ok {
		return nil, contracts.Errorf(contracts.CodeNotFound, "no package %s", contracts.PackageKey(pkg, version))
	}
	key := versionKey(pkg, version)
	for {
		s.served.mu.Lock()
		if sv, ok := s.served.m[key]; ok && sv.digest == info.Digest {
			s.served.mu.Unlock()
			return sv, nil
		}
		wait, busy := s.served.loading[key]
		if !busy {
			if s.served.loading == nil {
				s.served.loading = map[string]chan struct{}{}
			}
			wait = make(chan struct{})
			s.served.loading[key] = wait
		}
		s.served.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		sv, err := s.readServed(ctx, pkg, version)
		s.served.mu.Lock()
		if err == nil {
			if s.served.m == nil || len(s.served.m) >= maxServedVersions {
				s.served.m = map[string]*servedVersion{}
			}
			s.served.m[key] = sv
		}
		delete(s.served.loading, key)
		close(wait)
		s.served.mu.Unlock()
		return sv, err // a newer record than the model has is served as read
	}
}

// readServed reads and signs pkg@version for agents.
func (s *Service) readServed(ctx context.Context, pkg, version string) (*servedVersion, error) {
	v, err := s.readVersion(ctx, pkg, version)
	if err != nil {
		return nil, err
	}
	sv := &servedVersion{digest: v.Info.Digest, chunks: map[string]bool{}, manifest: s.sign(v.Signed.Manifest)}
	for _, c := range v.Manifest.Chunks() {
		sv.chunks[c] = true
	}
	return sv, nil
}

// contentReport records what a client says became of a version: only of
// a version it may read, with the version's current digest (reports.go).
// A refusal other than CodeUnavailable is for good: the agent does not
// send that report again.
func (s *Service) contentReport(ctx context.Context, from contracts.SubjectInfo, req *contracts.ContentReport) (*contracts.ContentReportAck, error) {
	client, err := agentClient(from)
	if err != nil {
		return nil, err
	}
	if contracts.ValidPackageName(req.Package) != nil || contracts.ValidPackageVersion(req.Version) != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "invalid package %q or version %q", clip(req.Package, 64), clip(req.Version, 64))
	}
	if req.State != contracts.ContentInstalled && req.State != contracts.ContentFailed {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "state %q: want %s or %s", clip(req.State, 32), contracts.ContentInstalled, contracts.ContentFailed)
	}
	if err := contracts.ValidHash(req.Digest); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "digest: %v", err)
	}
	v, err := s.checkReport(ctx, client, req)
	if err != nil {
		return nil, err
	}
	rec := clientRecord{Client: client, Package: req.Package, Version: req.Version, Digest: req.Digest, State: req.State,
		Bytes: min(max(req.Bytes, 0), v.Size), Error: reportText(req.Error), Reported: s.now()}
	b, err := encodeReport(rec)
	if err != nil {
		return nil, err
	}
	key := clientKey(client, req.Package, req.Version)
	if _, err := s.clientsKV.Put(ctx, key, b); err != nil {
		s.log.Warn("a client's report not recorded", "client", client, "package", contracts.PackageKey(req.Package, req.Version), "err", err)
		return nil, contracts.Errorf(contracts.CodeUnavailable, "record the report: %v", err)
	}
	if err := s.confirmReport(ctx, client, req); err != nil {
		if perr := s.purgeReports(ctx, key); perr != nil {
			s.log.Warn("a withdrawn report not removed", "client", client, "package", contracts.PackageKey(req.Package, req.Version), "err", perr)
		}
		return nil, err
	}
	return &contracts.ContentReportAck{Header: contracts.NewHeader(contracts.TypeContentReportAck)}, nil
}

// ClientStates lists what clients reported of pkg's version, by client ID.
// A report of other content than the version's now (a version deleted and
// made again under its name) is pending: the client does not hold this
// content. Client names are left for the caller to fill (discovery owns
// them).
func (s *Service) ClientStates(ctx context.Context, pkg, version string) ([]contracts.PackageClientStatus, error) {
	if contracts.ValidPackageName(pkg) != nil || contracts.ValidPackageVersion(version) != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "invalid package %q or version %q", pkg, version)
	}
	current, ok := s.model.version(pkg, version)
	if !ok {
		return nil, contracts.Errorf(contracts.CodeNotFound, "no package %s", contracts.PackageKey(pkg, version))
	}
	lister, err := s.clientsKV.ListKeysFiltered(ctx, "*."+versionKey(pkg, version))
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "client reports: %v", err)
	}
	out := []contracts.PackageClientStatus{}
	for k := range lister.Keys() {
		e, err := s.clientsKV.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, contracts.Errorf(contracts.CodeUnavailable, "client reports: %v", err)
		}
		var rec clientRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			continue
		}
		if rec.Digest != current.Digest {
			out = append(out, contracts.PackageClientStatus{Client: contracts.Named{ID: rec.Client}, State: contracts.ContentPending})
			continue
		}
		out = append(out, contracts.PackageClientStatus{Client: contracts.Named{ID: rec.Client}, State: rec.State,
			Bytes: rec.Bytes, Error: rec.Error, Updated: rec.Reported})
	}
	slices.SortFunc(out, func(a, b contracts.PackageClientStatus) int { return strings.Compare(a.Client.ID, b.Client.ID) })
	return out, nil
}
