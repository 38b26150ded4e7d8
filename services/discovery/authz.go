package discovery

import (
	"context"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// authz returns the model to decide with (see rbac.Current).
func (s *Service) authz() (*rbac.Model, error) {
	return rbac.Current(s.cfg.Authz, s.cfg.NoAuthz, "discovery")
}

// memberOf answers whether client is in a collection, for rbac scopes.
func (s *Service) memberOf(client string) func(collectionID string) bool {
	return func(collectionID string) bool {
		if collectionID == contracts.AllSystemsID {
			r, ok := s.view.get(client)
			return ok && r.Status == contracts.ClientApproved
		}
		s.model.mu.RLock()
		defer s.model.mu.RUnlock()
		return s.model.eng != nil && s.model.eng.IsMember(collectionID, client)
	}
}

// visible filters clients to those the operator may see.
func (s *Service) visible(op string, cs []contracts.Client) ([]contracts.Client, error) {
	m, err := s.authz()
	if err != nil || m == nil {
		return cs, err
	}
	sc, err := m.Scoped(op, rbac.CollectionRead)
	if err != nil {
		return nil, err
	}
	out := cs[:0:0]
	for _, c := range cs {
		if sc.Covers(s.memberOf(c.ID)) {
			out = append(out, c)
		}
	}
	return out, nil
}

// onClient checks p on the client ref names. A client the operator may not
// read is answered as not found, exactly like a missing one.
func (s *Service) onClient(op string, p rbac.Permission, ref string) error {
	m, err := s.authz()
	if err != nil || m == nil {
		return err
	}
	c, err := s.findClientFor(op, ref)
	if err != nil {
		return err
	}
	return m.Allowed(op, p, rbac.OnClient(c.Name, s.memberOf(c.ID)))
}

// findClientFor finds the client ref names among those operator op may
// read. One outside op's scope is not found, exactly like a missing one,
// and never makes a name ambiguous (the error names every match).
func (s *Service) findClientFor(op, ref string) (contracts.Client, error) {
	all := s.view.all()
	m, err := s.authz()
	if err != nil || m == nil {
		if err != nil {
			return contracts.Client{}, err
		}
		return findClient(all, ref)
	}
	c, err := findClient(all, ref)
	switch {
	case err == nil && m.ClientVisible(op, s.memberOf(c.ID)):
		return c, nil
	case err == nil:
		return contracts.Client{}, contracts.Errorf(contracts.CodeNotFound, "no client named or with id %q", ref)
	case contracts.CodeOf(err) != contracts.CodeAmbiguous:
		return contracts.Client{}, err
	}
	seen := make([]record, 0, 2)
	for _, r := range all {
		if m.ClientVisible(op, s.memberOf(r.ID)) {
			seen = append(seen, r)
		}
	}
	return findClient(seen, ref)
}

// onCollection checks p on the collection ref names ("" means All
// Systems, the default limit).
func (s *Service) onCollection(op string, p rbac.Permission, ref string) error {
	m, err := s.authz()
	if err != nil || m == nil {
		return err
	}
	named := rbac.AllSystems
	if ref != "" {
		find := func() (string, string, error) {
			s.model.mu.RLock()
			defer s.model.mu.RUnlock()
			id, err := s.model.findCollection(ref)
			return id, s.collectionName(id), err
		}
		id, name, err := find()
		if err != nil {
			// Perhaps created a moment ago through another instance:
			// catch up as the handler does. What is still not found (or
			// ambiguous) is answered so here, so that the handler never
			// acts on a collection this check did not see.
			s.syncDefs(context.Background())
			if id, name, err = find(); err != nil {
				return err
			}
		}
		named = contracts.Named{ID: id, Name: name}
	}
	return m.Allowed(op, p, rbac.OnCollection(named))
}

// guard runs check before fn.
func guard[Req, Resp any](fn func(context.Context, contracts.SubjectInfo, *Req) (*Resp, error), check func(op string, req *Req) error) func(context.Context, contracts.SubjectInfo, *Req) (*Resp, error) {
	return func(ctx context.Context, from contracts.SubjectInfo, req *Req) (*Resp, error) {
		if err := check(from.Principal, req); err != nil {
			return nil, err
		}
		return fn(ctx, from, req)
	}
}

// Checks of each operator endpoint.
func (s *Service) canInventory(op string, r *contracts.InventoryRequest) error {
	return s.onClient(op, rbac.CollectionViewInventory, r.Ref)
}

func (s *Service) canCreate(op string, r *contracts.CollectionCreateRequest) error {
	return s.onCollection(op, rbac.CollectionCreate, r.Limit)
}

// canUpdate: Modify on the collection; to change its limit or its
// membership rules, also Read on the limiting collection it will have. A
// collection's members are always within its limit, so an operator can
// never widen a collection past its own scope: one scoped to Web may
// rename Web but not add to it (Web's limit, All Systems, is not one of
// its collections), and may edit the rules of a collection limited by Web.
func (s *Service) canUpdate(op string, r *contracts.CollectionUpdateRequest) error {
	if err := s.onCollection(op, rbac.CollectionModify, r.Ref); err != nil {
		return err
	}
	if r.Limit == "" && !changesMembership(r) {
		return nil
	}
	s.model.mu.RLock()
	limit, name, ok := s.limitOf(r)
	s.model.mu.RUnlock()
	if !ok {
		return nil // the handler answers not found or ambiguous itself
	}
	if err := s.onCollection(op, rbac.CollectionRead, limit); err != nil {
		if contracts.CodeOf(err) != contracts.CodePermissionDenied {
			return err
		}
		return rbac.Denied("%s may not change the limit or membership rules of collection %q: its limiting collection %q is not one of %s's collections, and the change could reach clients outside them", op, r.Ref, name, op)
	}
	return nil
}

// limitOf is the ID and name of the limiting collection r leaves its
// collection with. Called with the model's mu held.
func (s *Service) limitOf(r *contracts.CollectionUpdateRequest) (id, name string, ok bool) {
	if r.Limit != "" {
		id, err := s.model.findCollection(r.Limit)
		if err != nil {
			return "", "", false
		}
		return id, s.collectionName(id), true
	}
	cur, err := s.model.findCollection(r.Ref)
	d, found := s.model.defs[cur]
	if err != nil || !found {
		return "", "", false
	}
	id = d.rec.Limit
	if id == "" {
		id = contracts.AllSystemsID
	}
	return id, s.collectionName(id), true
}

// changesMembership reports whether r changes the rules that decide a
// collection's members.
func changesMembership(r *contracts.CollectionUpdateRequest) bool {
	return r.SetQueries || len(r.AddInclude)+len(r.DelInclude)+len(r.AddExclude)+len(r.DelExclude)+len(r.AddDirect)+len(r.DelDirect) > 0
}

func (s *Service) canDelete(op string, r *contracts.CollectionRequest) error {
	return s.onCollection(op, rbac.CollectionDelete, r.Ref)
}

// readableCollections filters collections to those op may read.
func (s *Service) readableCollections(op string, cs []contracts.CollectionInfo) ([]contracts.CollectionInfo, error) {
	m, err := s.authz()
	if err != nil || m == nil {
		return cs, err
	}
	if err := m.Allowed(op, rbac.CollectionRead, rbac.Anywhere()); err != nil {
		return nil, err
	}
	out := cs[:0:0]
	for _, c := range cs {
		if m.Allowed(op, rbac.CollectionRead, rbac.OnCollection(contracts.Named{ID: c.ID, Name: c.Name})) == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *Service) canRead(op string, r *contracts.CollectionRequest) error {
	return s.onCollection(op, rbac.CollectionRead, r.Ref)
}

func (s *Service) canMembers(op string, r *contracts.CollectionMembersRequest) error {
	return s.onCollection(op, rbac.CollectionRead, r.Ref)
}

func (s *Service) canPreview(op string, r *contracts.CollectionPreviewRequest) error {
	return s.onCollection(op, rbac.CollectionRead, r.Limit)
}
