package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/discovery/collections"
	"github.com/stewardhq/steward/services/internal/lookup"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// This file serves the collections endpoints. Definitions live in
// CollectionsBucket, one key per collection; every instance's model follows
// the bucket. A write is validated against the model (names resolved, the
// queries compiled, no cycle), written with compare-and-set on the key's
// revision, and answered once this instance's model has applied it, so
// the operator reads their own write.

// collectionRecord is the value kept in CollectionsBucket under a
// collection's ID. References are IDs.
type collectionRecord struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Limit       string    `json:"limit,omitempty"` // a collection ID; "" is All Systems
	Queries     []string  `json:"queries,omitempty"`
	Include     []string  `json:"include,omitempty"`
	Exclude     []string  `json:"exclude,omitempty"`
	Direct      []string  `json:"direct,omitempty"` // client IDs
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"createdBy"`
	Updated     time.Time `json:"updated"`
	UpdatedBy   string    `json:"updatedBy"`
}

func (r *collectionRecord) definition() collections.Definition {
	return collections.Definition{
		ID: r.ID, Name: r.Name, Limit: r.Limit, Queries: r.Queries,
		Include: r.Include, Exclude: r.Exclude, Direct: r.Direct,
	}
}

// syncTimeout bounds how long a request waits for this instance to catch
// up with the collections bucket.
const syncTimeout = 2 * time.Second

// syncDefs waits (briefly) until the model has applied every change of the
// collections bucket so far: a collection just created or changed through
// another instance is then seen here too. It costs one JetStream API call.
func (s *Service) syncDefs(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	st, err := s.collKV.Status(ctx)
	if err != nil {
		return
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		_ = s.model.waitDefs(ctx, bs.StreamInfo().State.LastSeq)
	}
}

// collItem is a collection as lookup sees it.
type collItem struct {
	id, name string
}

// findCollection resolves ref, a collection's name or ID, with mu held.
func (m *model) findCollection(ref string) (string, error) {
	items := make([]collItem, 0, len(m.defs)+1)
	items = append(items, collItem{contracts.AllSystemsID, contracts.AllSystemsName})
	for id, d := range m.defs {
		items = append(items, collItem{id, d.rec.Name})
	}
	it, err := lookup.One("collection", ref, items, func(c collItem) string { return c.id }, func(c collItem) string { return c.name })
	return it.id, err
}

// resolver resolves the names in one request, after catching up with the
// collections bucket once.
type resolver struct {
	s      *Service
	ctx    context.Context
	synced bool
}

func (r *resolver) collection(ref string) (string, error) {
	if !r.synced {
		// Requests may land on any instance: first catch up with writes
		// made through the others (a collection created or changed a
		// moment ago).
		r.synced = true
		r.s.syncDefs(r.ctx)
	}
	r.s.model.mu.RLock()
	id, err := r.s.model.findCollection(ref)
	r.s.model.mu.RUnlock()
	return id, err
}

func (r *resolver) collections(refs []string) ([]string, error) {
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		id, err := r.collection(ref)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

func (r *resolver) clients(refs []string) ([]string, error) {
	recs := r.s.view.all()
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		rec, err := lookup.One("client", ref, recs, func(r record) string { return r.ID }, func(r record) string { return r.Name })
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, rec.ID) {
			out = append(out, rec.ID)
		}
	}
	return out, nil
}

// limitRef stores All Systems as "".
func limitRef(id string) string {
	if id == contracts.AllSystemsID {
		return ""
	}
	return id
}

// check validates a definition to store: a unique name (case-insensitive,
// as lookups are) and rules the engine accepts. Refused rules are
// CodeBadRequest with the engine's reason (a query's error has its
// position).
func (m *model) check(rec *collectionRecord) error {
	if strings.EqualFold(rec.Name, contracts.AllSystemsName) {
		return contracts.Errorf(contracts.CodeConflict, "the name %q is taken by the built-in collection", rec.Name)
	}
	for id, d := range m.defs {
		if id != rec.ID && strings.EqualFold(d.rec.Name, rec.Name) {
			return contracts.Errorf(contracts.CodeConflict, "a collection named %q exists (%s)", d.rec.Name, id)
		}
	}
	if len(rec.Direct) > contracts.MaxDirectMembers {
		return contracts.Errorf(contracts.CodeBadRequest, "%d direct members: at most %d", len(rec.Direct), contracts.MaxDirectMembers)
	}
	if err := m.eng.Check(rec.definition()); err != nil {
		return contracts.Errorf(contracts.CodeBadRequest, "collection %q: %v", rec.Name, err)
	}
	return nil
}

// collectionCreate answers collections.create.
func (s *Service) collectionCreate(ctx context.Context, from contracts.SubjectInfo, req *contracts.CollectionCreateRequest) (*contracts.CollectionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	r := &resolver{s: s, ctx: ctx}
	limit, err := r.collection(cmp.Or(req.Limit, contracts.AllSystemsID))
	if err != nil {
		return nil, err
	}
	include, err := r.collections(req.Include)
	if err != nil {
		return nil, err
	}
	exclude, err := r.collections(req.Exclude)
	if err != nil {
		return nil, err
	}
	direct, err := r.clients(req.Direct)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	rec := collectionRecord{
		ID: uuid.NewString(), Name: req.Name, Description: req.Description,
		Limit: limitRef(limit), Queries: req.Queries, Include: include, Exclude: exclude, Direct: direct,
		Created: now, CreatedBy: from.Principal, Updated: now, UpdatedBy: from.Principal,
	}
	s.model.mu.RLock()
	err = s.model.check(&rec)
	s.model.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if err := s.reserveName(ctx, rec.Name, rec.ID); err != nil {
		return nil, err
	}
	rev, err := s.collKV.Create(ctx, rec.ID, data)
	if err != nil {
		s.releaseName(rec.Name, rec.ID)
		return nil, fmt.Errorf("store collection %s: %w", rec.ID, err)
	}
	s.log.Info("collection created", "collection", rec.ID, "name", rec.Name, "by", from.Principal)
	s.model.mu.RLock()
	limitName := s.collectionName(limit)
	s.model.mu.RUnlock()
	s.emit(ctx, contracts.StatusCollectionCreated, map[string]string{"collection": rec.Name, "id": rec.ID, "by": from.Principal, "limit": limitName})
	return s.collectionAfterWrite(ctx, rec.ID, rev)
}

// collectionAfterWrite waits for this instance to apply revision rev and
// answers with the collection.
func (s *Service) collectionAfterWrite(ctx context.Context, id string, rev uint64) (*contracts.CollectionResponse, error) {
	if err := s.model.waitDefs(ctx, rev); err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "collection stored, but this instance has not caught up yet: try again")
	}
	s.model.mu.RLock()
	defer s.model.mu.RUnlock()
	info, ok := s.collectionInfo(id)
	if !ok {
		return nil, contracts.Errorf(contracts.CodeConflict, "collection %s was deleted meanwhile", id)
	}
	return &contracts.CollectionResponse{Header: contracts.NewHeader(contracts.TypeCollectionResponse), Collection: info}, nil
}

// collectionUpdate answers collections.update: a patch applied to the
// stored definition with compare-and-set, retried when another write came
// first (unless the request names the revision it read).
func (s *Service) collectionUpdate(ctx context.Context, from contracts.SubjectInfo, req *contracts.CollectionUpdateRequest) (*contracts.CollectionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	r := &resolver{s: s, ctx: ctx}
	id, err := r.collection(req.Ref)
	if err != nil {
		return nil, err
	}
	if id == contracts.AllSystemsID {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%s is built in: it cannot be changed", contracts.AllSystemsName)
	}
	for range maxAttempts {
		// Authorised again against the definition this attempt patches:
		// its limit may have changed since the request's check (another
		// operator's write, the write that made the last attempt lose).
		if err := s.canUpdate(from.Principal, req); err != nil {
			return nil, err
		}
		s.model.mu.RLock()
		cur, ok := s.model.defs[id]
		s.model.mu.RUnlock()
		if !ok {
			return nil, contracts.Errorf(contracts.CodeNotFound, "collection %s was deleted", req.Ref)
		}
		if req.Revision != 0 && req.Revision != cur.rev {
			return nil, contracts.Errorf(contracts.CodeConflict, "collection %q changed since revision %d (now %d): read it again", cur.rec.Name, req.Revision, cur.rev)
		}
		next, err := s.patch(r, cur.rec, req)
		if err != nil {
			return nil, err
		}
		next.Updated, next.UpdatedBy = s.cfg.Now().UTC(), from.Principal
		s.model.mu.RLock()
		err = s.model.check(&next)
		s.model.mu.RUnlock()
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		renamed := !strings.EqualFold(next.Name, cur.rec.Name)
		if renamed {
			if err := s.reserveName(ctx, next.Name, id); err != nil {
				return nil, err
			}
		}
		rev, err := s.collKV.Update(ctx, id, data, cur.rev)
		if conflict(err) {
			s.syncDefs(ctx)
			continue // the reservation stays this collection's for the next attempt
		}
		if err != nil {
			if renamed {
				s.releaseName(next.Name, id)
			}
			return nil, fmt.Errorf("store collection %s: %w", id, err)
		}
		if renamed {
			s.releaseName(cur.rec.Name, id)
		}
		s.log.Info("collection updated", "collection", id, "name", next.Name, "by", from.Principal)
		s.emit(ctx, contracts.StatusCollectionChanged, map[string]string{"collection": next.Name, "id": id, "by": from.Principal, "change": collectionChange(cur.rec, next)})
		return s.collectionAfterWrite(ctx, id, rev)
	}
	return nil, contracts.Errorf(contracts.CodeConflict, "collection %s: still changing after %d attempts", req.Ref, maxAttempts)
}

// collectionChange says what an update changed, for the audit: "queries
// [a] -> [b]; direct members +1 -0".
func collectionChange(old, next collectionRecord) string {
	var parts []string
	if old.Name != next.Name {
		parts = append(parts, fmt.Sprintf("name %q -> %q", old.Name, next.Name))
	}
	if old.Description != next.Description {
		parts = append(parts, "description")
	}
	if old.Limit != next.Limit {
		parts = append(parts, fmt.Sprintf("limit %s -> %s", cmp.Or(old.Limit, contracts.AllSystemsID), cmp.Or(next.Limit, contracts.AllSystemsID)))
	}
	if !slices.Equal(old.Queries, next.Queries) {
		parts = append(parts, fmt.Sprintf("queries %q -> %q", old.Queries, next.Queries))
	}
	for _, l := range []struct {
		what      string
		old, next []string
	}{{"includes", old.Include, next.Include}, {"excludes", old.Exclude, next.Exclude}, {"direct members", old.Direct, next.Direct}} {
		var added, removed []string
		for _, id := range l.next {
			if !slices.Contains(l.old, id) {
				added = append(added, id)
			}
		}
		for _, id := range l.old {
			if !slices.Contains(l.next, id) {
				removed = append(removed, id)
			}
		}
		if len(added)+len(removed) > 0 {
			parts = append(parts, fmt.Sprintf("%s +%v -%v", l.what, added, removed))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	out := strings.Join(parts, "; ")
	if len(out) > contracts.MaxStatusPropValue {
		out = strings.ToValidUTF8(out[:contracts.MaxStatusPropValue-3], "") + "..."
	}
	return out
}

// patch applies an update request to rec.
func (s *Service) patch(r *resolver, rec collectionRecord, req *contracts.CollectionUpdateRequest) (collectionRecord, error) {
	next := rec
	next.Queries = slices.Clone(rec.Queries)
	next.Include, next.Exclude, next.Direct = slices.Clone(rec.Include), slices.Clone(rec.Exclude), slices.Clone(rec.Direct)
	if req.Name != "" {
		next.Name = req.Name
	}
	if req.Description != "" {
		next.Description = req.Description
	}
	if req.Limit != "" {
		id, err := r.collection(req.Limit)
		if err != nil {
			return rec, err
		}
		next.Limit = limitRef(id)
	}
	if req.SetQueries {
		next.Queries = slices.Clone(req.Queries)
	}
	add := func(list []string, ids []string) []string {
		for _, id := range ids {
			if !slices.Contains(list, id) {
				list = append(list, id)
			}
		}
		return list
	}
	// del removes refs from list: a ref that is an ID in the list goes as
	// it is (the collection or client may be gone), else it is resolved.
	del := func(what string, list, refs []string, resolve func([]string) ([]string, error)) ([]string, error) {
		for _, ref := range refs {
			id := ref
			if !slices.Contains(list, ref) {
				ids, err := resolve([]string{ref})
				if err != nil {
					return nil, err
				}
				id = ids[0]
			}
			if !slices.Contains(list, id) {
				return nil, contracts.Errorf(contracts.CodeBadRequest, "%q is not %s", ref, what)
			}
			list = slices.DeleteFunc(list, func(x string) bool { return x == id })
		}
		return list, nil
	}
	var err error
	steps := []struct {
		list       *[]string
		adds, dels []string
		what       string
		resolve    func([]string) ([]string, error)
	}{
		{&next.Include, req.AddInclude, req.DelInclude, "included", r.collections},
		{&next.Exclude, req.AddExclude, req.DelExclude, "excluded", r.collections},
		{&next.Direct, req.AddDirect, req.DelDirect, "a direct member", r.clients},
	}
	for _, st := range steps {
		if *st.list, err = del(st.what, *st.list, st.dels, st.resolve); err != nil {
			return rec, err
		}
		ids, err := st.resolve(st.adds)
		if err != nil {
			return rec, err
		}
		*st.list = add(*st.list, ids)
	}
	return next, nil
}

// collectionDelete answers collections.delete. A collection that others
// name in their rules is refused (CodeConflict), naming them.
func (s *Service) collectionDelete(ctx context.Context, from contracts.SubjectInfo, req *contracts.CollectionRequest) (*contracts.CollectionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	r := &resolver{s: s, ctx: ctx}
	id, err := r.collection(req.Ref)
	if err != nil {
		return nil, err
	}
	if id == contracts.AllSystemsID {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%s is built in: it cannot be deleted", contracts.AllSystemsName)
	}
	uses, err := s.usedBy(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(uses) > 0 {
		return nil, contracts.Errorf(contracts.CodeConflict, "collection %q is in use: %s; undeploy or change those first", s.collectionNameLocked(id), strings.Join(uses, "; "))
	}
	for range maxAttempts {
		s.model.mu.RLock()
		cur, ok := s.model.defs[id]
		info, _ := s.collectionInfo(id)
		deps := s.model.dependants(id)
		s.model.mu.RUnlock()
		if !ok {
			return nil, contracts.Errorf(contracts.CodeNotFound, "collection %s was deleted", req.Ref)
		}
		if len(deps) > 0 {
			return nil, contracts.Errorf(contracts.CodeConflict, "collection %q is used by %s: change or delete those first", cur.rec.Name, strings.Join(deps, ", "))
		}
		err := s.collKV.Purge(ctx, id, jetstream.LastRevision(cur.rev))
		if conflict(err) {
			s.syncDefs(ctx)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("delete collection %s: %w", id, err)
		}
		s.syncDefs(ctx)
		s.releaseName(cur.rec.Name, id)
		s.log.Info("collection deleted", "collection", id, "name", cur.rec.Name, "by", from.Principal)
		s.emit(ctx, contracts.StatusCollectionDeleted, map[string]string{"collection": cur.rec.Name, "id": id, "by": from.Principal})
		return &contracts.CollectionResponse{Header: contracts.NewHeader(contracts.TypeCollectionResponse), Collection: info}, nil
	}
	return nil, contracts.Errorf(contracts.CodeConflict, "collection %s: still changing after %d attempts", req.Ref, maxAttempts)
}

// collectionKeepers are the services that keep collections by ID, asked
// before one is deleted: policy's and replication's deployments, admin's
// administrators' collections.
var collectionKeepers = []string{"steward-policy", "steward-replication", "steward-admin"}

// usedBy is what the collectionKeepers say names collection id. A keeper
// that does not run at this site names nothing; one that runs and does
// not answer stops the delete (CodeUnavailable).
func (s *Service) usedBy(ctx context.Context, id string) ([]string, error) {
	out := []string{}
	for _, svc := range collectionKeepers {
		subj, err := contracts.Svc(s.cfg.Site, svc, contracts.SvcCollectionUses)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var resp contracts.CollectionUsesResponse
		err = rpc.Call(cctx, s.cfg.NC, subj, contracts.CollectionUsesRequest{Header: contracts.NewHeader(contracts.TypeCollectionUsesRequest), Collection: id}, &resp)
		cancel()
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			continue
		case err != nil:
			return nil, contracts.Errorf(contracts.CodeUnavailable, "%s cannot say whether it uses the collection (%v); nothing deleted, try again", svc, err)
		}
		out = append(out, resp.Uses...)
	}
	return out, nil
}

// collectionNameLocked is collectionName, taking the model's lock.
func (s *Service) collectionNameLocked(id string) string {
	s.model.mu.RLock()
	defer s.model.mu.RUnlock()
	return s.collectionName(id)
}

// dependants describes the collections whose rules name id, sorted by
// name: `"Pilot" (includes it)`. Called with mu held.
func (m *model) dependants(id string) []string {
	var out []string
	for _, dep := range m.eng.Dependants(id) {
		d, ok := m.defs[dep]
		if !ok {
			continue
		}
		var how []string
		if d.rec.Limit == id {
			how = append(how, "limited by it")
		}
		if slices.Contains(d.rec.Include, id) {
			how = append(how, "includes it")
		}
		if slices.Contains(d.rec.Exclude, id) {
			how = append(how, "excludes it")
		}
		out = append(out, fmt.Sprintf("%q (%s)", d.rec.Name, strings.Join(how, ", ")))
	}
	slices.Sort(out)
	return out
}

// collectionList answers collections.list: the collections the operator
// may read (Collection:Read on each), All Systems first, then by name.
func (s *Service) collectionList(ctx context.Context, from contracts.SubjectInfo, _ *contracts.CollectionListRequest) (*contracts.CollectionListResponse, error) {
	s.syncDefs(ctx)
	s.model.mu.RLock()
	out := make([]contracts.CollectionInfo, 0, len(s.model.defs)+1)
	for _, id := range s.model.eng.Collections() {
		if info, ok := s.collectionInfo(id); ok {
			out = append(out, info)
		}
	}
	s.model.mu.RUnlock()
	out, err := s.readableCollections(from.Principal, out)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b contracts.CollectionInfo) int {
		if a.BuiltIn != b.BuiltIn {
			if a.BuiltIn {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.ID, b.ID))
	})
	return &contracts.CollectionListResponse{Header: contracts.NewHeader(contracts.TypeCollectionListResponse), Collections: out}, nil
}

// collectionShow answers collections.show.
func (s *Service) collectionShow(ctx context.Context, _ contracts.SubjectInfo, req *contracts.CollectionRequest) (*contracts.CollectionResponse, error) {
	r := &resolver{s: s, ctx: ctx}
	id, err := r.collection(req.Ref)
	if err != nil {
		return nil, err
	}
	s.model.mu.RLock()
	defer s.model.mu.RUnlock()
	info, ok := s.collectionInfo(id)
	if !ok {
		return nil, contracts.Errorf(contracts.CodeNotFound, "collection %s was deleted", req.Ref)
	}
	return &contracts.CollectionResponse{Header: contracts.NewHeader(contracts.TypeCollectionResponse), Collection: info}, nil
}

// collectionMembers answers collections.members, a page at a time; with
// req.Clients, only those of them that are members.
func (s *Service) collectionMembers(ctx context.Context, _ contracts.SubjectInfo, req *contracts.CollectionMembersRequest) (*contracts.CollectionMembersResponse, error) {
	r := &resolver{s: s, ctx: ctx}
	id, err := r.collection(req.Ref)
	if err != nil {
		return nil, err
	}
	s.model.mu.RLock()
	ids, ok := s.model.eng.Members(id)
	if ok && len(req.Clients) > 0 {
		ids = ids[:0:0]
		for _, c := range req.Clients {
			if s.model.eng.IsMember(id, c) && !slices.Contains(ids, c) {
				ids = append(ids, c)
			}
		}
	}
	coll := contracts.Named{ID: id, Name: s.collectionName(id)}
	s.model.mu.RUnlock()
	if !ok {
		return nil, contracts.Errorf(contracts.CodeNotFound, "collection %s was deleted", req.Ref)
	}
	all := s.named(ids)
	page := cmp.Or(req.Max, contracts.MaxMembersPage)
	resp := &contracts.CollectionMembersResponse{
		Header:     contracts.NewHeader(contracts.TypeCollectionMembersResponse),
		Collection: coll,
		Total:      len(all),
	}
	resp.Members, resp.Next = pageOf(all, req.Offset, page)
	return resp, nil
}

// collectionPreview answers collections.preview.
func (s *Service) collectionPreview(ctx context.Context, _ contracts.SubjectInfo, req *contracts.CollectionPreviewRequest) (*contracts.CollectionPreviewResponse, error) {
	r := &resolver{s: s, ctx: ctx}
	limit, err := r.collection(cmp.Or(req.Limit, contracts.AllSystemsID))
	if err != nil {
		return nil, err
	}
	include, err := r.collections(req.Include)
	if err != nil {
		return nil, err
	}
	exclude, err := r.collections(req.Exclude)
	if err != nil {
		return nil, err
	}
	direct, err := r.clients(req.Direct)
	if err != nil {
		return nil, err
	}
	def := collections.Definition{Name: "preview", Limit: limitRef(limit), Queries: req.Queries, Include: include, Exclude: exclude, Direct: direct}
	s.model.mu.RLock()
	ids, err := s.model.eng.Preview(def)
	s.model.mu.RUnlock()
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	all := s.named(ids)
	return &contracts.CollectionPreviewResponse{
		Header:  contracts.NewHeader(contracts.TypeCollectionPreviewResponse),
		Total:   len(all),
		Members: all[:min(len(all), cmp.Or(req.Max, contracts.MaxMembersPage))],
	}, nil
}

// named returns clients by ID and name, sorted by name then ID.
func (s *Service) named(ids []string) []contracts.Named {
	out := make([]contracts.Named, 0, len(ids))
	for _, id := range ids {
		r, _ := s.view.get(id)
		out = append(out, contracts.Named{ID: id, Name: r.Name})
	}
	slices.SortFunc(out, func(a, b contracts.Named) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// collectionName names a collection ("" when unknown). Called with the
// model's mu held.
func (s *Service) collectionName(id string) string {
	if id == contracts.AllSystemsID {
		return contracts.AllSystemsName
	}
	return s.model.defs[id].rec.Name
}

// collectionInfo is collection id as the API shows it. Called with the
// model's mu held.
func (s *Service) collectionInfo(id string) (contracts.CollectionInfo, bool) {
	ev, ok := s.model.eng.Info(id)
	if !ok {
		return contracts.CollectionInfo{}, false
	}
	info := contracts.CollectionInfo{MemberCount: ev.Count}
	if ev.Err != nil {
		info.Error = ev.Err.Error()
	}
	if id == contracts.AllSystemsID {
		info.Collection = contracts.Collection{ID: id, Name: contracts.AllSystemsName, BuiltIn: true, Description: "every approved client"}
		return info, true
	}
	d, ok := s.model.defs[id]
	if !ok {
		return contracts.CollectionInfo{}, false
	}
	refs := func(ids []string) []contracts.Named {
		var out []contracts.Named
		for _, id := range ids {
			out = append(out, contracts.Named{ID: id, Name: s.collectionName(id)})
		}
		return out
	}
	limit := cmp.Or(d.rec.Limit, contracts.AllSystemsID)
	info.Collection = contracts.Collection{
		ID: id, Name: d.rec.Name, Description: d.rec.Description,
		Limit:   contracts.Named{ID: limit, Name: s.collectionName(limit)},
		Queries: d.rec.Queries, Include: refs(d.rec.Include), Exclude: refs(d.rec.Exclude),
		Created: d.rec.Created, CreatedBy: d.rec.CreatedBy, Updated: d.rec.Updated, UpdatedBy: d.rec.UpdatedBy,
		Revision: d.rev,
	}
	for _, cid := range d.rec.Direct {
		r, _ := s.view.get(cid)
		info.Direct = append(info.Direct, contracts.Named{ID: cid, Name: r.Name})
	}
	return info, true
}
