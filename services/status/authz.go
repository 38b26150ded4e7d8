package status

import (
	"context"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// The permission each operator endpoint needs. Status messages and the
// site are site-wide objects: reading messages, their catalog and the
// summaries is StatusMessage:Read; reading and replaying the filter rules
// is Site:Read; adding and deleting them is Site:Modify, as Configuration
// Manager keeps status filter rules among the site's settings. An exec
// rule runs a command on the site as the site's user, who can read its
// keys, and a webhook sends messages anywhere: adding or deleting one is a
// Full Administrator's alone (fullOnly).
const (
	permRead      = rbac.StatusMessageRead
	permRulesRead = rbac.SiteRead
	permRulesEdit = rbac.SiteModify
)

// allowed checks that operator op may use permission p.
func (s *Service) allowed(op string, p rbac.Permission) error {
	m, err := rbac.Current(s.cfg.Authz, s.cfg.NoAuthz, "status")
	if err != nil || m == nil {
		return err
	}
	return m.Allowed(op, p, rbac.Anywhere())
}

// fullOnly checks that op may add or delete a rule of action.
func (s *Service) fullOnly(op, action string) error {
	if action != contracts.RuleExec && action != contracts.RuleWebhook {
		return nil
	}
	m, err := rbac.Current(s.cfg.Authz, s.cfg.NoAuthz, "status")
	if err != nil || m == nil {
		return err
	}
	return m.AllowedFull(op, "add or delete a status rule of action "+action)
}

// guard runs fn for operators who hold p.
func guard[Req, Resp any](s *Service, p rbac.Permission, fn func(context.Context, contracts.SubjectInfo, *Req) (*Resp, error)) func(context.Context, contracts.SubjectInfo, *Req) (*Resp, error) {
	return func(ctx context.Context, from contracts.SubjectInfo, req *Req) (*Resp, error) {
		if err := s.allowed(from.Principal, p); err != nil {
			return nil, err
		}
		return fn(ctx, from, req)
	}
}
