package policy

import (
	"strings"

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

// mayChange checks that op may change the policy of every client the
// settings object info reaches: Collection:DeploySettings on every
// collection it is deployed to and, for the built-in Default Client
// Settings (every client), on All Systems. Changing or deleting an object
// deploys new settings to its collections: without this an operator
// scoped to one collection could rewrite the policy of clients outside it.
// deleting words the refusal for a delete, which undeploys.
func (s *Service) mayChange(op string, info *contracts.SettingsInfo, deleting bool) error {
	m, err := s.authz()
	if err != nil || m == nil {
		return err
	}
	reach := make([]contracts.Named, 0, len(info.Deployments)+1)
	if info.BuiltIn {
		reach = append(reach, rbac.AllSystems)
	}
	for _, d := range info.Deployments {
		reach = append(reach, d.Collection)
	}
	for _, c := range reach {
		err := m.Allowed(op, rbac.CollectionDeploySettings, rbac.OnCollection(c))
		if contracts.CodeOf(err) != contracts.CodePermissionDenied {
			if err != nil {
				return err
			}
			continue
		}
		why := strings.TrimPrefix(err.Error(), "permission denied: ")
		switch {
		case info.BuiltIn:
			return rbac.Denied("changing the %s changes the policy of every client (collection %q): %s", info.Name, c.Name, why)
		case deleting:
			return rbac.Denied("deleting settings object %q undeploys it from collection %q: %s", info.Name, c.Name, why)
		}
		return rbac.Denied("changing settings object %q changes the policy of collection %q, where it is deployed: %s", info.Name, c.Name, why)
	}
	return nil
}
