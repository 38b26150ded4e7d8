package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// Planning: pure functions from the current model and a request to the new
// document. The store applies them under compare-and-set and checks the
// result as a whole (a valid model that keeps a Full Administrator).

// canonicalRoles resolves role names (any case) to the roles' spelling.
func canonicalRoles(m *rbac.Model, names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		r, ok := m.Role(n)
		if !ok {
			return nil, m.UnknownRole(n)
		}
		if !slices.Contains(out, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

// canonicalGroups resolves group names (any case) to the groups.
func canonicalGroups(m *rbac.Model, names []string) ([]rbac.Admin, error) {
	var out []rbac.Admin
	for _, n := range names {
		g, ok := m.Admin(n)
		if !ok || !g.IsGroup() {
			var groups []string
			for _, a := range m.Admins() {
				if a.IsGroup() {
					groups = append(groups, a.Name)
				}
			}
			return nil, contracts.Errorf(contracts.CodeNotFound, "unknown administrator group %q; groups are: %s", n, orNone(groups))
		}
		out = append(out, g)
	}
	return out, nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// checkGrants refuses giving roles, collections or group memberships (each
// group's roles and collections) beyond the actor's own.
func checkGrants(m *rbac.Model, actor string, roles []string, colls []contracts.Named, groups []rbac.Admin) error {
	if err := m.CheckGrant(actor, roles, colls); err != nil {
		return err
	}
	for _, g := range groups {
		if err := m.CheckGrant(actor, g.Roles, g.Collections); err != nil {
			return fmt.Errorf("joining group %s: %w", g.Name, err)
		}
	}
	return nil
}

func addUnique(list []contracts.Named, add ...contracts.Named) []contracts.Named {
	for _, c := range add {
		if !slices.ContainsFunc(list, func(x contracts.Named) bool { return x.ID == c.ID }) {
			list = append(list, c)
		}
	}
	return list
}

// planAdd adds a user or group. colls are the request's collections,
// resolved.
func planAdd(m *rbac.Model, actor string, req *contracts.AdminAddRequest, colls []contracts.Named, now time.Time) (rbac.Document, rbac.Admin, error) {
	if err := m.Allowed(actor, rbac.AdministratorCreate, rbac.Anywhere()); err != nil {
		return rbac.Document{}, rbac.Admin{}, err
	}
	if a, ok := m.Admin(req.Name); ok {
		return rbac.Document{}, rbac.Admin{}, contracts.Errorf(contracts.CodeConflict, "administrator %q already exists", a.Name)
	}
	if req.Key != "" {
		if a, ok := m.AdminByKey(req.Key); ok {
			return rbac.Document{}, rbac.Admin{}, contracts.Errorf(contracts.CodeConflict, "that key is already administrator %s's", a.Name)
		}
	}
	roles, err := canonicalRoles(m, req.Roles)
	if err != nil {
		return rbac.Document{}, rbac.Admin{}, err
	}
	groups, err := canonicalGroups(m, req.MemberOf)
	if err != nil {
		return rbac.Document{}, rbac.Admin{}, err
	}
	if err := checkGrants(m, actor, roles, colls, groups); err != nil {
		return rbac.Document{}, rbac.Admin{}, err
	}
	a := rbac.Admin{
		Name: req.Name, Kind: req.Kind, Key: req.Key, Description: req.Description,
		Roles: roles, Collections: addUnique(nil, colls...), Created: now, CreatedBy: actor,
	}
	if a.Roles == nil {
		a.Roles = []string{}
	}
	if a.Collections == nil {
		a.Collections = []contracts.Named{}
	}
	for _, g := range groups {
		a.MemberOf = append(a.MemberOf, g.Name)
	}
	doc := m.Document()
	doc.Admins = append(doc.Admins, a)
	return doc, a, nil
}

// target returns the administrator the actor means to change, refusing
// one who may do more than the actor.
func target(m *rbac.Model, actor, name string) (rbac.Admin, error) {
	a, ok := m.Admin(name)
	if !ok {
		return rbac.Admin{}, contracts.Errorf(contracts.CodeNotFound, "no administrator named %q", name)
	}
	if err := m.CheckCovers(actor, a.Name); err != nil {
		return rbac.Admin{}, err
	}
	return a, nil
}

// replaceAdmin returns the document with a replaced (by name), or removed
// when a is nil.
func replaceAdmin(m *rbac.Model, name string, a *rbac.Admin) rbac.Document {
	doc := m.Document()
	doc.Admins = slices.DeleteFunc(doc.Admins, func(x rbac.Admin) bool { return strings.EqualFold(x.Name, name) })
	if a != nil {
		doc.Admins = append(doc.Admins, *a)
	}
	return doc
}

// planUpdate changes roles, collections, groups or the description.
// addColls are the request's AddCollections, resolved.
func planUpdate(m *rbac.Model, actor string, req *contracts.AdminUpdateRequest, addColls []contracts.Named, now time.Time) (rbac.Document, rbac.Admin, error) {
	fail := func(err error) (rbac.Document, rbac.Admin, error) { return rbac.Document{}, rbac.Admin{}, err }
	if err := m.Allowed(actor, rbac.AdministratorModify, rbac.Anywhere()); err != nil {
		return fail(err)
	}
	a, err := target(m, actor, req.Name)
	if err != nil {
		return fail(err)
	}
	if a.IsGroup() && (len(req.AddMemberOf) > 0 || len(req.RemoveMemberOf) > 0) {
		return fail(contracts.Errorf(contracts.CodeBadRequest, "%s is a group: groups are members of no group", a.Name))
	}
	addRoles, err := canonicalRoles(m, req.AddRoles)
	if err != nil {
		return fail(err)
	}
	addGroups, err := canonicalGroups(m, req.AddMemberOf)
	if err != nil {
		return fail(err)
	}
	if err := checkGrants(m, actor, addRoles, addColls, addGroups); err != nil {
		return fail(err)
	}
	for _, r := range addRoles {
		if !slices.Contains(a.Roles, r) {
			a.Roles = append(a.Roles, r)
		}
	}
	for _, rn := range req.RemoveRoles {
		i := slices.IndexFunc(a.Roles, func(r string) bool { return strings.EqualFold(r, rn) })
		if i < 0 {
			return fail(contracts.Errorf(contracts.CodeBadRequest, "%s has no role %q (it has: %s)", a.Name, rn, orNone(a.Roles)))
		}
		a.Roles = slices.Delete(a.Roles, i, i+1)
	}
	a.Collections = addUnique(a.Collections, addColls...)
	for _, cn := range req.RemoveCollections {
		i := slices.IndexFunc(a.Collections, func(c contracts.Named) bool { return c.ID == cn || strings.EqualFold(c.Name, cn) })
		if i < 0 {
			return fail(contracts.Errorf(contracts.CodeBadRequest, "%s has no collection %q", a.Name, cn))
		}
		a.Collections = slices.Delete(a.Collections, i, i+1)
	}
	for _, g := range addGroups {
		if !slices.Contains(a.MemberOf, g.Name) {
			a.MemberOf = append(a.MemberOf, g.Name)
		}
	}
	for _, gn := range req.RemoveMemberOf {
		i := slices.IndexFunc(a.MemberOf, func(g string) bool { return strings.EqualFold(g, gn) })
		if i < 0 {
			return fail(contracts.Errorf(contracts.CodeBadRequest, "%s is not a member of %q", a.Name, gn))
		}
		a.MemberOf = slices.Delete(a.MemberOf, i, i+1)
	}
	if req.SetDescription {
		a.Description = req.Description
	}
	a.Updated, a.UpdatedBy = now, actor
	return replaceAdmin(m, a.Name, &a), a, nil
}

// planRevoke marks a user revoked: services refuse its requests and the
// auth callout its connections.
func planRevoke(m *rbac.Model, actor, name string, now time.Time) (rbac.Document, rbac.Admin, error) {
	fail := func(err error) (rbac.Document, rbac.Admin, error) { return rbac.Document{}, rbac.Admin{}, err }
	if err := m.Allowed(actor, rbac.AdministratorDelete, rbac.Anywhere()); err != nil {
		return fail(err)
	}
	a, err := target(m, actor, name)
	if err != nil {
		return fail(err)
	}
	if a.IsGroup() {
		return fail(contracts.Errorf(contracts.CodeBadRequest, "%s is a group: delete it, or remove its members", a.Name))
	}
	if a.Revoked {
		return fail(contracts.Errorf(contracts.CodeConflict, "%s is already revoked", a.Name))
	}
	a.Revoked, a.Updated, a.UpdatedBy = true, now, actor
	return replaceAdmin(m, a.Name, &a), a, nil
}

// planDelete removes a user or group; a group's members leave it.
func planDelete(m *rbac.Model, actor, name string) (rbac.Document, rbac.Admin, error) {
	fail := func(err error) (rbac.Document, rbac.Admin, error) { return rbac.Document{}, rbac.Admin{}, err }
	if err := m.Allowed(actor, rbac.AdministratorDelete, rbac.Anywhere()); err != nil {
		return fail(err)
	}
	a, err := target(m, actor, name)
	if err != nil {
		return fail(err)
	}
	doc := replaceAdmin(m, a.Name, nil)
	for i := range doc.Admins {
		doc.Admins[i].MemberOf = slices.DeleteFunc(doc.Admins[i].MemberOf, func(g string) bool { return g == a.Name })
	}
	return doc, a, nil
}

// adminInfo is a for the wire, with what it may do.
func adminInfo(m *rbac.Model, a rbac.Admin) contracts.AdminInfo {
	info := contracts.AdminInfo{
		Name: a.Name, Kind: a.Kind, Key: a.Key, Description: a.Description,
		Roles: a.Roles, Collections: a.Collections, MemberOf: a.MemberOf,
		Revoked: a.Revoked, Created: a.Created, CreatedBy: a.CreatedBy, Updated: a.Updated, UpdatedBy: a.UpdatedBy,
	}
	if info.Roles == nil {
		info.Roles = []string{}
	}
	if info.Collections == nil {
		info.Collections = []contracts.Named{}
	}
	if a.IsGroup() {
		info.Members = m.Members(a.Name)
	}
	if e, ok := m.Effective(a.Name); ok {
		info.EffectiveRoles = e.Roles
		info.EffectiveCollections = e.Collections
		info.Permissions = rbac.Strings(e.Permissions)
	}
	return info
}

func adminResponse(m *rbac.Model, a rbac.Admin) *contracts.AdminResponse {
	return &contracts.AdminResponse{Header: contracts.NewHeader(contracts.TypeAdminResponse), Admin: adminInfo(m, a)}
}

// Operator endpoints.

func (s *Service) addAdmin(ctx context.Context, from contracts.SubjectInfo, req *contracts.AdminAddRequest) (*contracts.AdminResponse, error) {
	actor := from.Principal
	if req.Kind == contracts.AdminUser {
		if strings.HasPrefix(req.Key, "S") {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "that is a seed, a secret: never send it anywhere; give the public key (U...) that `steward admins keygen` prints")
		}
		if !nkeys.IsValidPublicUserKey(req.Key) {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "%q is not a public user NKey (U...)", req.Key)
		}
	}
	// Refuse early, before asking discovery about collections.
	if err := s.authorize(from, rbac.AdministratorCreate); err != nil {
		return nil, err
	}
	colls, err := s.resolveCollections(ctx, actor, req.Collections)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	cur, err := s.rbac.load(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, err := planAdd(cur, actor, req, colls, now); err != nil {
		return nil, err
	}
	// The identity first: until the model names it, it may connect but do
	// nothing. If the model change fails, the identity goes again.
	if req.Kind == contracts.AdminUser {
		if id, _, err := s.ids.get(ctx, req.Key); err == nil {
			return nil, contracts.Errorf(contracts.CodeConflict, "that key already belongs to %s %s", id.Kind, id.Name)
		} else if !errors.Is(err, errNoIdentity) {
			return nil, err
		}
		if err := s.ids.create(ctx, Identity{Key: req.Key, Kind: KindOperator, Name: req.Name, Created: now, Updated: now, By: actor}); err != nil {
			return nil, err
		}
	}
	var added rbac.Admin
	_, next, err := s.rbac.change(ctx, func(m *rbac.Model) (rbac.Document, error) {
		doc, a, err := planAdd(m, actor, req, colls, now)
		added = a
		return doc, err
	})
	if err != nil {
		if req.Kind == contracts.AdminUser {
			if derr := s.ids.delete(ctx, req.Key); derr != nil {
				s.cfg.Log.Error("identity left behind by a failed add", "operator", req.Name, "err", derr)
			}
		}
		return nil, err
	}
	s.audit(ctx, contracts.AuditAdminAdded, contracts.StatusOperatorAdded, actor, rbac.ObjAdministrator, added.Name, map[string]string{
		"operator": added.Name, "kind": added.Kind, "roles": strings.Join(added.Roles, ", "),
		"collections": collNames(added.Collections), "groups": strings.Join(added.MemberOf, ", "), "key": added.Key,
	})
	s.settle(ctx, next)
	return adminResponse(next, added), nil
}

func collNames(cs []contracts.Named) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return strings.Join(out, ", ")
}

func (s *Service) updateAdmin(ctx context.Context, from contracts.SubjectInfo, req *contracts.AdminUpdateRequest) (*contracts.AdminResponse, error) {
	actor := from.Principal
	if err := s.authorize(from, rbac.AdministratorModify); err != nil {
		return nil, err
	}
	if !req.SetDescription && len(req.AddRoles)+len(req.RemoveRoles)+len(req.AddCollections)+len(req.RemoveCollections)+len(req.AddMemberOf)+len(req.RemoveMemberOf) == 0 {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "nothing to change")
	}
	colls, err := s.resolveCollections(ctx, actor, req.AddCollections)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	var before, after rbac.Admin
	prev, next, err := s.rbac.change(ctx, func(m *rbac.Model) (rbac.Document, error) {
		before, _ = m.Admin(req.Name)
		doc, a, err := planUpdate(m, actor, req, colls, now)
		after = a
		return doc, err
	})
	if err != nil {
		return nil, err
	}
	oldE, _ := prev.Effective(before.Name)
	newE, _ := next.Effective(after.Name)
	s.audit(ctx, contracts.AuditAdminChanged, contracts.StatusRoleChanged, actor, rbac.ObjAdministrator, after.Name, map[string]string{
		"operator": after.Name, "old": strings.Join(oldE.Roles, ", "), "new": strings.Join(newE.Roles, ", "),
		"oldCollections": collNames(oldE.Collections), "newCollections": collNames(newE.Collections),
		"groups": strings.Join(after.MemberOf, ", "),
	})
	s.settle(ctx, next)
	return adminResponse(next, after), nil
}

func (s *Service) listAdmins(ctx context.Context, from contracts.SubjectInfo, _ *contracts.AdminListRequest) (*contracts.AdminListResponse, error) {
	if err := s.authorize(from, rbac.AdministratorRead); err != nil {
		return nil, err
	}
	m := s.model()
	out := &contracts.AdminListResponse{Header: contracts.NewHeader(contracts.TypeAdminListResponse), Admins: []contracts.AdminInfo{}}
	for _, a := range m.Admins() {
		out.Admins = append(out.Admins, adminInfo(m, a))
	}
	return out, nil
}

// showAdmin shows one administrator; every operator may see itself.
func (s *Service) showAdmin(ctx context.Context, from contracts.SubjectInfo, req *contracts.AdminRequest) (*contracts.AdminResponse, error) {
	m := s.model()
	if !strings.EqualFold(req.Name, from.Principal) {
		if err := s.authorize(from, rbac.AdministratorRead); err != nil {
			return nil, err
		}
	} else if err := m.Active(from.Principal); err != nil {
		return nil, err
	}
	a, ok := m.Admin(req.Name)
	if !ok {
		return nil, contracts.Errorf(contracts.CodeNotFound, "no administrator named %q", req.Name)
	}
	return adminResponse(m, a), nil
}

func (s *Service) revokeAdmin(ctx context.Context, from contracts.SubjectInfo, req *contracts.AdminRequest) (*contracts.AdminResponse, error) {
	actor := from.Principal
	if err := s.authorize(from, rbac.AdministratorDelete); err != nil {
		return nil, err
	}
	var revoked rbac.Admin
	_, next, err := s.rbac.change(ctx, func(m *rbac.Model) (rbac.Document, error) {
		doc, a, err := planRevoke(m, actor, req.Name, time.Now().UTC())
		revoked = a
		return doc, err
	})
	if err != nil {
		return nil, err
	}
	// The identity is revoked before anything is kicked, so the reconnect
	// that follows is refused by the callout.
	_, ierr := s.ids.update(ctx, revoked.Key, func(i *Identity) error {
		i.Revoked, i.By = true, actor
		return nil
	})
	if ierr != nil && !errors.Is(ierr, errNoIdentity) {
		return nil, fmt.Errorf("operator %s is revoked in the model but its identity could not be: %w", revoked.Name, ierr)
	}
	kicked, kerr := s.disconnect(ctx, "op:"+revoked.Name)
	s.audit(ctx, contracts.AuditAdminRevoked, contracts.StatusOperatorRevoked, actor, rbac.ObjAdministrator, revoked.Name, map[string]string{
		"operator": revoked.Name, "connections": fmt.Sprint(kicked),
	})
	s.settle(ctx, next)
	if kerr != nil {
		return nil, fmt.Errorf("operator %s is revoked but its connections could not be closed: %w", revoked.Name, kerr)
	}
	return adminResponse(next, revoked), nil
}

func (s *Service) deleteAdmin(ctx context.Context, from contracts.SubjectInfo, req *contracts.AdminRequest) (*contracts.AdminResponse, error) {
	actor := from.Principal
	if err := s.authorize(from, rbac.AdministratorDelete); err != nil {
		return nil, err
	}
	var gone rbac.Admin
	prev, next, err := s.rbac.change(ctx, func(m *rbac.Model) (rbac.Document, error) {
		doc, a, err := planDelete(m, actor, req.Name)
		gone = a
		return doc, err
	})
	if err != nil {
		return nil, err
	}
	kicked := 0
	if gone.Key != "" {
		if err := s.ids.delete(ctx, gone.Key); err != nil {
			return nil, fmt.Errorf("operator %s is deleted from the model but its identity could not be: %w", gone.Name, err)
		}
		var kerr error
		if kicked, kerr = s.disconnect(ctx, "op:"+gone.Name); kerr != nil {
			s.cfg.Log.Error("connections of a deleted operator could not be closed", "operator", gone.Name, "err", kerr)
		}
	}
	s.audit(ctx, contracts.AuditAdminDeleted, contracts.StatusOperatorDeleted, actor, rbac.ObjAdministrator, gone.Name, map[string]string{
		"operator": gone.Name, "kind": gone.Kind, "roles": strings.Join(gone.Roles, ", "), "connections": fmt.Sprint(kicked),
	})
	s.settle(ctx, next)
	return adminResponse(prev, gone), nil
}

// settle waits (briefly) until this instance's watcher has the model next,
// so that what the operator does next is authorised by what it just did.
func (s *Service) settle(ctx context.Context, next *rbac.Model) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.watch.Wait(wctx, next.Revision()); err != nil {
		s.cfg.Log.Warn("the RBAC watcher is behind", "want", next.Revision(), "err", err)
	}
}

// collectionUses answers discovery before it deletes a collection: the
// administrative users and groups that have it among their collections.
func (s *Service) collectionUses(ctx context.Context, _ contracts.SubjectInfo, req *contracts.CollectionUsesRequest) (*contracts.CollectionUsesResponse, error) {
	m, err := s.rbac.load(ctx)
	if err != nil {
		return nil, err
	}
	// Counted, not named: whoever deletes collections may not read the
	// administrators (admins list needs Administrator:Read).
	n := 0
	for _, a := range m.Admins() {
		if slices.ContainsFunc(a.Collections, func(c contracts.Named) bool { return c.ID == req.Collection }) {
			n++
		}
	}
	resp := &contracts.CollectionUsesResponse{Header: contracts.NewHeader(contracts.TypeCollectionUsesResponse), Uses: []string{}}
	if n > 0 {
		resp.Uses = append(resp.Uses, fmt.Sprintf("%d administrative users or groups have it among their collections (steward admins list)", n))
	}
	return resp, nil
}
