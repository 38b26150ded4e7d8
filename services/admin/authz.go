package admin

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
)

// CollectionResolver turns a collection as an operator wrote it (name or
// ID) into the collection, when an operator gives someone a collection. The
// discovery service owns collections.
type CollectionResolver interface {
	ResolveCollection(ctx context.Context, operator, ref string) (contracts.Named, error)
}

// Membership says whether a client is a member of a collection, asked on
// behalf of an operator. The discovery service owns membership.
type Membership interface {
	IsMember(ctx context.Context, operator, collectionID, clientID string) (bool, error)
}

// BusCollections resolves collections by asking the discovery service
// (collections.show) on the granting operator's own subject: the same
// question the operator could ask, answered within the operator's scope.
type BusCollections struct {
	NC   *nats.Conn
	Site string
}

// ResolveCollection implements CollectionResolver.
func (b BusCollections) ResolveCollection(ctx context.Context, operator, ref string) (contracts.Named, error) {
	subj, err := contracts.OpUp(b.Site, operator, contracts.KindCollectionsShow)
	if err != nil {
		return contracts.Named{}, err
	}
	var resp contracts.CollectionResponse
	req := contracts.CollectionRequest{Header: contracts.NewHeader(contracts.TypeCollectionRequest), Ref: ref}
	err = rpc.Call(ctx, b.NC, subj, req, &resp)
	if err == nil {
		return contracts.Named{ID: resp.Collection.ID, Name: resp.Collection.Name}, nil
	}
	switch contracts.CodeOf(err) {
	case contracts.CodeNotFound:
		return contracts.Named{}, contracts.Errorf(contracts.CodeNotFound, "unknown collection %q (steward collections list shows them)", ref)
	case contracts.CodeUnavailable:
		return contracts.Named{}, contracts.Errorf(contracts.CodeUnavailable, "collection %q cannot be checked: the discovery service does not answer collections.show", ref)
	}
	return contracts.Named{}, err
}

// BusMembership asks the discovery service for a collection's members
// (collections.members, page by page) on the operator's own subject. It is
// the default for a service that does not share a process with discovery;
// actions on clients are rare, so one question per collection is cheap
// enough.
type BusMembership struct {
	NC   *nats.Conn
	Site string
}

// IsMember implements Membership.
func (b BusMembership) IsMember(ctx context.Context, operator, collectionID, clientID string) (bool, error) {
	subj, err := contracts.OpUp(b.Site, operator, contracts.KindCollectionsMembers)
	if err != nil {
		return false, err
	}
	for offset := 0; ; {
		req := contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: collectionID, Offset: offset}
		var resp contracts.CollectionMembersResponse
		if err := rpc.Call(ctx, b.NC, subj, req, &resp); err != nil {
			return false, err
		}
		for _, m := range resp.Members {
			if m.ID == clientID {
				return true, nil
			}
		}
		if resp.Next <= offset {
			return false, nil
		}
		offset = resp.Next
	}
}

// model is the current RBAC snapshot; nil (refuse everything) until loaded.
func (s *Service) model() *rbac.Model { return s.watch.Model() }

// authorize checks a site-wide permission (or a collection permission
// anywhere) of the operator the subject names.
func (s *Service) authorize(from contracts.SubjectInfo, p rbac.Permission) error {
	return s.model().Allowed(from.Principal, p, rbac.Anywhere())
}

// memberOf answers membership of one client for the model, asking the
// Membership source once per collection, and only when an operator's
// scope needs it. A failure to ask is "not a member": it fails closed.
func (s *Service) memberOf(ctx context.Context, operator, clientID string) func(string) bool {
	known := map[string]bool{}
	return func(id string) bool {
		in, ok := known[id]
		if !ok {
			var err error
			if in, err = s.cfg.Membership.IsMember(ctx, operator, id, clientID); err != nil {
				s.cfg.Log.Warn("collection membership unavailable; treating the client as not in it", "client", clientID, "collection", id, "err", err)
				in = false
			}
			known[id] = in
		}
		return in
	}
}

// clientFor resolves ref to a client the operator may do p to. An operator
// without p anywhere is refused before anything is looked up; a client the
// operator cannot see (Collection:Read) is not found, as it would be in a
// list; one it sees but may not do p to is refused. everyClient says the
// action needs All Systems (clients pending approval, or blocked, are in
// no collection).
func (s *Service) clientFor(ctx context.Context, from contracts.SubjectInfo, ref string, p rbac.Permission, everyClient bool) (Identity, error) {
	m, op := s.model(), from.Principal
	scope := rbac.Anywhere()
	if everyClient {
		scope = rbac.EveryClient("clients pending approval or blocked")
	}
	if err := m.Allowed(op, p, scope); err != nil {
		return Identity{}, err
	}
	target, err := s.ids.client(ctx, ref)
	if err != nil || everyClient {
		return target, err
	}
	member := s.memberOf(ctx, op, target.ClientID)
	if !m.ClientVisible(op, member) {
		return Identity{}, contracts.Errorf(contracts.CodeNotFound, "no client named or with id %q", ref)
	}
	return target, m.Allowed(op, p, rbac.OnClient(fmt.Sprintf("client %q", target.Name), member))
}

// resolveCollections turns the collections an operator wrote into
// collections: All Systems by name or ID here, the rest through the
// resolver (discovery).
func (s *Service) resolveCollections(ctx context.Context, operator string, refs []string) ([]contracts.Named, error) {
	var out []contracts.Named
	for _, ref := range refs {
		if strings.EqualFold(ref, contracts.AllSystemsName) || strings.EqualFold(ref, contracts.AllSystemsID) {
			out = append(out, rbac.AllSystems)
			continue
		}
		if s.cfg.Collections == nil {
			return nil, contracts.Errorf(contracts.CodeUnavailable, "collection %q cannot be checked: this admin service has no collection resolver", ref)
		}
		c, err := s.cfg.Collections.ResolveCollection(ctx, operator, ref)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
