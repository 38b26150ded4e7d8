package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

func roleInfo(m *rbac.Model, r rbac.Role) contracts.RoleInfo {
	return contracts.RoleInfo{
		Name: r.Name, Description: r.Description, BuiltIn: r.BuiltIn, Permissions: rbac.Strings(r.Permissions),
		CopiedFrom: r.CopiedFrom, Created: r.Created, CreatedBy: r.CreatedBy, Updated: r.Updated, UpdatedBy: r.UpdatedBy,
		Admins: m.RoleHolders(r.Name),
	}
}

// planCopy makes a custom role from a copy of another, changed. The new
// role may hold only permissions the actor holds.
func planCopy(m *rbac.Model, actor string, req *contracts.RoleCopyRequest, now time.Time) (rbac.Document, rbac.Role, error) {
	fail := func(err error) (rbac.Document, rbac.Role, error) { return rbac.Document{}, rbac.Role{}, err }
	if err := m.Allowed(actor, rbac.SecurityRoleCreate, rbac.Anywhere()); err != nil {
		return fail(err)
	}
	from, ok := m.Role(req.From)
	if !ok {
		return fail(m.UnknownRole(req.From))
	}
	if r, ok := m.Role(req.Name); ok {
		return fail(contracts.Errorf(contracts.CodeConflict, "role %q already exists", r.Name))
	}
	perms, err := changePerms(from.Permissions, req.Add, req.Remove)
	if err != nil {
		return fail(err)
	}
	if err := m.CheckPermissions(actor, perms); err != nil {
		return fail(err)
	}
	desc := req.Description
	if desc == "" {
		desc = "Copy of " + from.Name + "."
	}
	r := rbac.Role{Name: req.Name, Description: desc, Permissions: perms, CopiedFrom: from.Name, Created: now, CreatedBy: actor}
	doc := m.Document()
	doc.Roles = append(doc.Roles, r)
	return doc, r, nil
}

// changePerms removes, then adds permissions (Object:Action or Object:*):
// "--remove Collection:* --add Collection:Read" keeps Read alone (adds
// first removed it again).
func changePerms(perms []rbac.Permission, add, remove []string) ([]rbac.Permission, error) {
	adds, err := rbac.ParsePermissions(add)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	removes, err := rbac.ParsePermissions(remove)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	out := slices.DeleteFunc(slices.Clone(perms), func(p rbac.Permission) bool { return slices.Contains(removes, p) })
	for _, p := range adds {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if out == nil {
		out = []rbac.Permission{}
	}
	return out, nil
}

// customRole returns the custom role name for a change; built-in roles
// are read-only.
func customRole(m *rbac.Model, name string) (rbac.Role, error) {
	r, ok := m.Role(name)
	if !ok {
		return rbac.Role{}, m.UnknownRole(name)
	}
	if r.BuiltIn {
		return rbac.Role{}, contracts.Errorf(contracts.CodeBadRequest, "%q is a built-in role and cannot be changed or deleted; copy it (steward roles copy) and change the copy", r.Name)
	}
	return r, nil
}

// planRoleUpdate changes a custom role. Every permission it adds must be
// the actor's: it is granted to everyone who holds the role.
func planRoleUpdate(m *rbac.Model, actor string, req *contracts.RoleUpdateRequest, now time.Time) (rbac.Document, rbac.Role, error) {
	fail := func(err error) (rbac.Document, rbac.Role, error) { return rbac.Document{}, rbac.Role{}, err }
	if err := m.Allowed(actor, rbac.SecurityRoleModify, rbac.Anywhere()); err != nil {
		return fail(err)
	}
	r, err := customRole(m, req.Name)
	if err != nil {
		return fail(err)
	}
	if !req.SetDescription && len(req.Add)+len(req.Remove) == 0 {
		return fail(contracts.Errorf(contracts.CodeBadRequest, "nothing to change"))
	}
	perms, err := changePerms(r.Permissions, req.Add, req.Remove)
	if err != nil {
		return fail(err)
	}
	var added []rbac.Permission
	for _, p := range perms {
		if !slices.Contains(r.Permissions, p) {
			added = append(added, p)
		}
	}
	if err := m.CheckPermissions(actor, added); err != nil {
		return fail(err)
	}
	// What a role gains, everyone holding it gains: the actor must be one
	// who may change each of them (and each member of a group holding it),
	// as a direct change of theirs would require.
	if len(added) > 0 {
		for _, h := range m.RoleHolders(r.Name) {
			for _, who := range append([]string{h}, m.Members(h)...) {
				if err := m.CheckCovers(actor, who); err != nil {
					return fail(fmt.Errorf("adding to role %q, held by %s: %w", r.Name, h, err))
				}
			}
		}
	}
	r.Permissions = perms
	if req.SetDescription {
		r.Description = req.Description
	}
	r.Updated, r.UpdatedBy = now, actor
	doc := m.Document()
	for i := range doc.Roles {
		if doc.Roles[i].Name == r.Name {
			doc.Roles[i] = r
		}
	}
	return doc, r, nil
}

// planRoleDelete deletes a custom role nobody holds.
func planRoleDelete(m *rbac.Model, actor, name string) (rbac.Document, rbac.Role, error) {
	fail := func(err error) (rbac.Document, rbac.Role, error) { return rbac.Document{}, rbac.Role{}, err }
	if err := m.Allowed(actor, rbac.SecurityRoleDelete, rbac.Anywhere()); err != nil {
		return fail(err)
	}
	r, err := customRole(m, name)
	if err != nil {
		return fail(err)
	}
	if holders := m.RoleHolders(r.Name); len(holders) > 0 {
		return fail(contracts.Errorf(contracts.CodeConflict, "role %q is given to %s; take it from them first", r.Name, strings.Join(holders, ", ")))
	}
	doc := m.Document()
	doc.Roles = slices.DeleteFunc(doc.Roles, func(x rbac.Role) bool { return x.Name == r.Name })
	return doc, r, nil
}

// Operator endpoints.

func (s *Service) listRoles(ctx context.Context, from contracts.SubjectInfo, _ *contracts.RoleListRequest) (*contracts.RoleListResponse, error) {
	if err := s.authorize(from, rbac.SecurityRoleRead); err != nil {
		return nil, err
	}
	m := s.model()
	out := &contracts.RoleListResponse{Header: contracts.NewHeader(contracts.TypeRoleListResponse), Roles: []contracts.RoleInfo{}}
	for _, r := range m.Roles() {
		out.Roles = append(out.Roles, roleInfo(m, r))
	}
	return out, nil
}

func (s *Service) showRole(ctx context.Context, from contracts.SubjectInfo, req *contracts.RoleRequest) (*contracts.RoleResponse, error) {
	if err := s.authorize(from, rbac.SecurityRoleRead); err != nil {
		return nil, err
	}
	m := s.model()
	r, ok := m.Role(req.Name)
	if !ok {
		return nil, m.UnknownRole(req.Name)
	}
	return &contracts.RoleResponse{Header: contracts.NewHeader(contracts.TypeRoleResponse), Role: roleInfo(m, r)}, nil
}

func (s *Service) copyRole(ctx context.Context, from contracts.SubjectInfo, req *contracts.RoleCopyRequest) (*contracts.RoleResponse, error) {
	var made rbac.Role
	_, next, err := s.rbac.change(ctx, func(m *rbac.Model) (rbac.Document, error) {
		doc, r, err := planCopy(m, from.Principal, req, time.Now().UTC())
		made = r
		return doc, err
	})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditRoleCreated, contracts.StatusRoleCreated, from.Principal, rbac.ObjSecurityRole, made.Name, map[string]string{
		"role": made.Name, "from": made.CopiedFrom, "permissions": strings.Join(rbac.Strings(made.Permissions), ", "),
	})
	s.settle(ctx, next)
	return &contracts.RoleResponse{Header: contracts.NewHeader(contracts.TypeRoleResponse), Role: roleInfo(next, made)}, nil
}

func (s *Service) updateRole(ctx context.Context, from contracts.SubjectInfo, req *contracts.RoleUpdateRequest) (*contracts.RoleResponse, error) {
	var old, changed rbac.Role
	_, next, err := s.rbac.change(ctx, func(m *rbac.Model) (rbac.Document, error) {
		old, _ = m.Role(req.Name)
		doc, r, err := planRoleUpdate(m, from.Principal, req, time.Now().UTC())
		changed = r
		return doc, err
	})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditRoleChanged, contracts.StatusRoleModified, from.Principal, rbac.ObjSecurityRole, changed.Name, map[string]string{
		"role": changed.Name, "old": strings.Join(rbac.Strings(old.Permissions), ", "), "new": strings.Join(rbac.Strings(changed.Permissions), ", "),
		"holders": strings.Join(next.RoleHolders(changed.Name), ", "),
	})
	s.settle(ctx, next)
	return &contracts.RoleResponse{Header: contracts.NewHeader(contracts.TypeRoleResponse), Role: roleInfo(next, changed)}, nil
}

func (s *Service) deleteRole(ctx context.Context, from contracts.SubjectInfo, req *contracts.RoleRequest) (*contracts.RoleResponse, error) {
	var gone rbac.Role
	prev, next, err := s.rbac.change(ctx, func(m *rbac.Model) (rbac.Document, error) {
		doc, r, err := planRoleDelete(m, from.Principal, req.Name)
		gone = r
		return doc, err
	})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditRoleDeleted, contracts.StatusRoleDeleted, from.Principal, rbac.ObjSecurityRole, gone.Name, map[string]string{
		"role": gone.Name, "permissions": strings.Join(rbac.Strings(gone.Permissions), ", "),
	})
	s.settle(ctx, next)
	return &contracts.RoleResponse{Header: contracts.NewHeader(contracts.TypeRoleResponse), Role: roleInfo(prev, gone)}, nil
}
