package policy

import (
	"context"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// authz returns the model to decide with (see rbac.Current).
func (s *Service) authz() (*rbac.Model, error) {
	return rbac.Current(s.cfg.Authz, s.cfg.NoAuthz, "policy")
}

// allowed checks a site-wide permission (ClientSettings:*).
func (s *Service) allowed(op string, p rbac.Permission) error {
	m, err := s.authz()
	if err != nil || m == nil {
		return err
	}
	return m.Allowed(op, p, rbac.Anywhere())
}

// allowedOn checks a collection permission on the collection c itself.
func (s *Service) allowedOn(op string, p rbac.Permission, c contracts.Named) error {
	m, err := s.authz()
	if err != nil || m == nil {
		return err
	}
	return m.Allowed(op, p, rbac.OnCollection(c))
}

// visibleFilter returns which clients the operator may see (Collection:Read
// on a collection holding them): nil means all. The members of the
// operator's collections come from discovery.
func (s *Service) visibleFilter(ctx context.Context, op string) (func(id string) bool, error) {
	m, err := s.authz()
	if err != nil || m == nil {
		return nil, err
	}
	sc, err := m.Scoped(op, rbac.CollectionRead)
	if err != nil {
		return nil, err
	}
	if sc.All {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, id := range sc.IDs {
		members, err := s.cfg.Directory.Members(ctx, op, id)
		if err != nil {
			return nil, err
		}
		for _, c := range members {
			seen[c.ID] = true
		}
	}
	return func(id string) bool { return seen[id] }, nil
}
