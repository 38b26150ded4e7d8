package rbac

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// Schema is the version of the model document this package writes. A
// document of a newer schema is refused (fail closed) rather than misread.
const Schema = 1

// AllSystems is the built-in collection of every client: an operator with
// it acts on every client, pending and blocked ones included.
var AllSystems = contracts.Named{ID: contracts.AllSystemsID, Name: contracts.AllSystemsName}

// Admin is an administrative user (Kind contracts.AdminUser: an operator
// with an NKey) or group (contracts.AdminGroup: roles and collections its
// member users get), as stored in the model document.
type Admin struct {
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Key         string            `json:"key,omitempty"`
	Description string            `json:"description,omitempty"`
	Roles       []string          `json:"roles"`
	Collections []contracts.Named `json:"collections"`
	MemberOf    []string          `json:"memberOf,omitempty"`
	Revoked     bool              `json:"revoked,omitempty"`
	Created     time.Time         `json:"created"`
	CreatedBy   string            `json:"createdBy"`
	Updated     time.Time         `json:"updated,omitzero"`
	UpdatedBy   string            `json:"updatedBy,omitempty"`
}

// IsGroup reports whether a is a group.
func (a *Admin) IsGroup() bool { return a.Kind == contracts.AdminGroup }

func (a Admin) clone() Admin {
	a.Roles = slices.Clone(a.Roles)
	a.Collections = slices.Clone(a.Collections)
	a.MemberOf = slices.Clone(a.MemberOf)
	return a
}

func (r Role) clone() Role {
	r.Permissions = slices.Clone(r.Permissions)
	return r
}

// Document is the model as stored: one JSON document under ModelKey in the
// admin-rbac bucket, changed only by compare-and-set, so every invariant
// that spans users, groups and roles (a Full Administrator remains, a role
// in use is not deleted) is checked on one consistent state.
type Document struct {
	Schema int     `json:"schema"`
	Admins []Admin `json:"admins"`
	Roles  []Role  `json:"roles"` // custom roles; built-in ones are not stored
}

// Model is an immutable, indexed snapshot of the document: what services
// authorise with. Build it with NewModel; never change one.
type Model struct {
	rev    uint64
	admins map[string]*Admin // lower-case name
	roles  map[string]*Role  // lower-case name; built-in and custom
	users  map[string]*effective
	groups map[string][]string // lower-case group name -> member user names
}

// effective is what one user may do.
type effective struct {
	name     string
	revoked  bool
	group    bool
	roles    []string
	perms    map[Permission]bool
	all      bool            // All Systems
	collIDs  map[string]bool // collection IDs
	collList []contracts.Named
}

func key(name string) string { return strings.ToLower(name) }

// NewModel checks doc and indexes it. rev is the document's revision in
// the bucket (0 for one not stored yet). Every reference must resolve: a
// role or group name that names nothing is an error, not a silent nothing.
func NewModel(doc Document, rev uint64) (*Model, error) {
	if doc.Schema > Schema {
		return nil, fmt.Errorf("the RBAC model has schema %d; this version reads up to %d", doc.Schema, Schema)
	}
	m := &Model{rev: rev, admins: map[string]*Admin{}, roles: map[string]*Role{}, users: map[string]*effective{}, groups: map[string][]string{}}
	for _, r := range BuiltinRoles() {
		m.roles[key(r.Name)] = r
	}
	for _, r := range doc.Roles {
		r := r.clone()
		if err := contracts.ValidRoleName(r.Name); err != nil {
			return nil, err
		}
		if _, dup := m.roles[key(r.Name)]; dup {
			return nil, fmt.Errorf("role %q is defined twice", r.Name)
		}
		for _, p := range r.Permissions {
			if !p.Valid() {
				return nil, fmt.Errorf("role %q has unknown permission %q", r.Name, p)
			}
		}
		r.BuiltIn = false
		r.Permissions = sortPerms(r.Permissions)
		m.roles[key(r.Name)] = &r
	}
	keys := map[string]string{}
	for _, a := range doc.Admins {
		a := a.clone()
		if err := contracts.ValidAdminName(a.Name); err != nil {
			return nil, err
		}
		if _, dup := m.admins[key(a.Name)]; dup {
			return nil, fmt.Errorf("administrator %q is defined twice", a.Name)
		}
		switch a.Kind {
		case contracts.AdminUser:
			if a.Key == "" {
				return nil, fmt.Errorf("user %q has no key", a.Name)
			}
			if other, dup := keys[a.Key]; dup {
				return nil, fmt.Errorf("users %q and %q have the same key", other, a.Name)
			}
			keys[a.Key] = a.Name
		case contracts.AdminGroup:
			if a.Key != "" || len(a.MemberOf) > 0 {
				return nil, fmt.Errorf("group %q has a key or groups", a.Name)
			}
		default:
			return nil, fmt.Errorf("administrator %q has unknown kind %q", a.Name, a.Kind)
		}
		for i, rn := range a.Roles {
			r, ok := m.roles[key(rn)]
			if !ok {
				return nil, fmt.Errorf("administrator %q has unknown role %q", a.Name, rn)
			}
			a.Roles[i] = r.Name
		}
		m.admins[key(a.Name)] = &a
	}
	for _, a := range m.admins {
		for i, gn := range a.MemberOf {
			g, ok := m.admins[key(gn)]
			if !ok || !g.IsGroup() {
				return nil, fmt.Errorf("user %q is a member of %q, which is no group", a.Name, gn)
			}
			a.MemberOf[i] = g.Name
			m.groups[key(g.Name)] = append(m.groups[key(g.Name)], a.Name)
		}
	}
	for g := range m.groups {
		slices.Sort(m.groups[g])
	}
	for k, a := range m.admins {
		m.users[k] = m.resolve(a)
	}
	return m, nil
}

// resolve computes what a may do: its own roles and collections and, for a
// user, its groups'.
func (m *Model) resolve(a *Admin) *effective {
	e := &effective{name: a.Name, revoked: a.Revoked, group: a.IsGroup(), perms: map[Permission]bool{}, collIDs: map[string]bool{}}
	sources := []*Admin{a}
	for _, g := range a.MemberOf {
		sources = append(sources, m.admins[key(g)])
	}
	for _, s := range sources {
		for _, rn := range s.Roles {
			if !slices.Contains(e.roles, rn) {
				e.roles = append(e.roles, rn)
			}
			for _, p := range m.roles[key(rn)].Permissions {
				e.perms[p] = true
			}
		}
		for _, c := range s.Collections {
			if !e.collIDs[c.ID] {
				e.collIDs[c.ID] = true
				e.collList = append(e.collList, c)
			}
			if c.ID == contracts.AllSystemsID {
				e.all = true
			}
		}
	}
	slices.Sort(e.roles)
	return e
}

// Revision is the document's revision in the bucket.
func (m *Model) Revision() uint64 {
	if m == nil {
		return 0
	}
	return m.rev
}

// Document returns a deep copy of the document, to change and store.
func (m *Model) Document() Document {
	doc := Document{Schema: Schema, Admins: []Admin{}, Roles: []Role{}}
	for _, a := range m.Admins() {
		doc.Admins = append(doc.Admins, a)
	}
	for _, r := range m.Roles() {
		if !r.BuiltIn {
			doc.Roles = append(doc.Roles, r)
		}
	}
	return doc
}

// Admin returns the administrative user or group named name (any case).
func (m *Model) Admin(name string) (Admin, bool) {
	a, ok := m.admins[key(name)]
	if !ok {
		return Admin{}, false
	}
	return a.clone(), true
}

// AdminByKey returns the user whose NKey is pub.
func (m *Model) AdminByKey(pub string) (Admin, bool) {
	for _, a := range m.admins {
		if a.Key == pub {
			return a.clone(), true
		}
	}
	return Admin{}, false
}

// Admins returns every administrative user and group, sorted by name.
func (m *Model) Admins() []Admin {
	out := make([]Admin, 0, len(m.admins))
	for _, k := range slices.Sorted(maps.Keys(m.admins)) {
		out = append(out, m.admins[k].clone())
	}
	return out
}

// Members lists the users in group.
func (m *Model) Members(group string) []string { return slices.Clone(m.groups[key(group)]) }

// Role returns the role named name (any case).
func (m *Model) Role(name string) (Role, bool) {
	r, ok := m.roles[key(name)]
	if !ok {
		return Role{}, false
	}
	return r.clone(), true
}

// Roles returns the built-in roles in their order, then custom ones by name.
func (m *Model) Roles() []Role {
	var out []Role
	for _, r := range BuiltinRoles() {
		out = append(out, *r)
	}
	for _, k := range slices.Sorted(maps.Keys(m.roles)) {
		if r := m.roles[k]; !r.BuiltIn {
			out = append(out, r.clone())
		}
	}
	return out
}

// RoleHolders lists the users and groups given role directly, sorted.
func (m *Model) RoleHolders(role string) []string {
	var out []string
	for _, a := range m.Admins() {
		if slices.ContainsFunc(a.Roles, func(r string) bool { return strings.EqualFold(r, role) }) {
			out = append(out, a.Name)
		}
	}
	return out
}

// Effective is what an administrative user may do: the union of its own
// and its groups' roles, permissions and collections. For a group it is the
// group's own.
type Effective struct {
	Roles       []string
	Permissions []Permission
	Collections []contracts.Named
	AllSystems  bool
	Revoked     bool
}

// Effective returns what name may do.
func (m *Model) Effective(name string) (Effective, bool) {
	e, ok := m.users[key(name)]
	if !ok {
		return Effective{}, false
	}
	return Effective{
		Roles:       slices.Clone(e.roles),
		Permissions: sortPerms(slices.Collect(maps.Keys(e.perms))),
		Collections: slices.Clone(e.collList),
		AllSystems:  e.all,
		Revoked:     e.revoked,
	}, true
}

// FullAdministrators lists the users who are Full Administrators over All
// Systems, not revoked: who can always repair the site. The model must
// never be left without one.
func (m *Model) FullAdministrators() []string {
	var out []string
	for _, e := range m.users {
		if !e.group && !e.revoked && e.all && slices.Contains(e.roles, contracts.RoleFullAdministrator) {
			out = append(out, e.name)
		}
	}
	slices.Sort(out)
	return out
}

// AllowedFull returns nil when operator is a Full Administrator over All
// Systems, not revoked: what is needed for what reaches past any
// permission (running a command on the site, which can read its keys).
// what names the action in the error.
func (m *Model) AllowedFull(operator, what string) error {
	e, err := m.user(operator)
	if err != nil {
		return err
	}
	if !e.all || !slices.Contains(e.roles, contracts.RoleFullAdministrator) {
		return Denied("%s: only a %s over %s may %s", e.name, contracts.RoleFullAdministrator, contracts.AllSystemsName, what)
	}
	return nil
}

// Scope says on what a permission is asked. Collection permissions are
// checked against the operator's collections; other objects are site-wide
// and ignore the scope.
type Scope struct {
	kind     scopeKind
	what     string
	coll     string
	memberOf func(collectionID string) bool
}

type scopeKind int

const (
	scopeAnywhere scopeKind = iota
	scopeEveryClient
	scopeClient
	scopeCollection
)

// Anywhere asks whether the operator has the permission at all: for a
// collection permission, on at least one collection. Use it for site-wide
// objects, and before a list that is then filtered client by client.
func Anywhere() Scope { return Scope{kind: scopeAnywhere} }

// EveryClient asks for a collection permission over every client, which
// only All Systems gives: for clients that are in no collection yet
// (pending approval, blocked). what names the object for the error text.
func EveryClient(what string) Scope { return Scope{kind: scopeEveryClient, what: what} }

// OnClient asks for a collection permission on one client; memberOf says
// whether the client is a member of the collection with that ID (the
// discovery service owns membership). what names the client for the error.
func OnClient(what string, memberOf func(collectionID string) bool) Scope {
	return Scope{kind: scopeClient, what: what, memberOf: memberOf}
}

// OnCollection asks for a collection permission on the collection c itself
// (read its definition, change or delete it): c must be one of the
// operator's collections, or the operator must have All Systems.
func OnCollection(c contracts.Named) Scope {
	return Scope{kind: scopeCollection, coll: c.ID, what: fmt.Sprintf("collection %q", c.Name)}
}

// Denied is a permission-denied error.
func Denied(format string, args ...any) error {
	return contracts.Errorf(contracts.CodePermissionDenied, "permission denied: "+format, args...)
}

// user returns the effective permissions of a user who may act now.
func (m *Model) user(op string) (*effective, error) {
	if m == nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "the authorization model is not loaded yet; try again")
	}
	e, ok := m.users[key(op)]
	switch {
	case !ok:
		return nil, Denied("%s is not an administrative user of this site", op)
	case e.group:
		return nil, Denied("%s is a group, not a user", op)
	case e.revoked:
		return nil, Denied("%s is revoked", op)
	}
	return e, nil
}

// Active returns nil when operator is a user of this site who may act
// (not revoked), whatever its permissions.
func (m *Model) Active(operator string) error {
	_, err := m.user(operator)
	return err
}

// Allowed returns nil when operator may do p on s, else a
// contracts.CodePermissionDenied error in the form
//
//	permission denied: carol lacks Create on EnrollmentToken
//
// A nil model (not loaded yet) refuses everything with CodeUnavailable.
func (m *Model) Allowed(operator string, p Permission, s Scope) error {
	e, err := m.user(operator)
	if err != nil {
		return err
	}
	if !e.perms[p] {
		return Denied("%s lacks %s on %s", e.name, p.Action(), p.Object())
	}
	if !p.Scoped() || e.all {
		return nil
	}
	switch s.kind {
	case scopeAnywhere:
		if len(e.collIDs) > 0 {
			return nil
		}
		return Denied("%s lacks %s on %s: %s has no collections", e.name, p.Action(), p.Object(), e.name)
	case scopeClient:
		for _, c := range e.collList {
			if s.memberOf != nil && s.memberOf(c.ID) {
				return nil
			}
		}
		return Denied("%s lacks %s on %s for %s: it is in none of %s's collections (%s)", e.name, p.Action(), p.Object(), s.what, e.name, names(e.collList))
	case scopeCollection:
		if e.collIDs[s.coll] {
			return nil
		}
		return Denied("%s lacks %s on %s %s: it is not one of %s's collections (%s)", e.name, p.Action(), p.Object(), s.what, e.name, names(e.collList))
	}
	return Denied("%s lacks %s on %s for %s: that needs the %s collection (%s has %s)", e.name, p.Action(), p.Object(), s.what, contracts.AllSystemsName, e.name, names(e.collList))
}

func names(cs []contracts.Named) string {
	if len(cs) == 0 {
		return "none"
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return strings.Join(out, ", ")
}

// ClientVisible reports whether operator may see the client whose
// membership memberOf answers (Collection:Read on it).
func (m *Model) ClientVisible(operator string, memberOf func(collectionID string) bool) bool {
	return m.Allowed(operator, CollectionRead, OnClient("", memberOf)) == nil
}

// ScopeSet is where an operator holds a permission: everywhere (All), or on
// the clients of the collections IDs.
type ScopeSet struct {
	All bool
	IDs []string
}

// Covers reports whether a client with membership memberOf is in the set.
func (s ScopeSet) Covers(memberOf func(collectionID string) bool) bool {
	if s.All {
		return true
	}
	for _, id := range s.IDs {
		if memberOf != nil && memberOf(id) {
			return true
		}
	}
	return false
}

// Scoped returns where operator holds p, for filtering a list: resolve the
// operator once, then call Covers per client. It is an error when the
// operator does not hold p at all. Site-wide permissions are All.
func (m *Model) Scoped(operator string, p Permission) (ScopeSet, error) {
	if err := m.Allowed(operator, p, Anywhere()); err != nil {
		return ScopeSet{}, err
	}
	e, _ := m.user(operator)
	if !p.Scoped() || e.all {
		return ScopeSet{All: true}, nil
	}
	ids := make([]string, len(e.collList))
	for i, c := range e.collList {
		ids[i] = c.ID
	}
	return ScopeSet{IDs: ids}, nil
}

// CheckGrant returns nil when actor may give roles and collections to
// someone: every permission of every role must be one the actor holds, and
// every collection must be within the actor's (All Systems covers all).
// Nobody can hand out more than they have.
func (m *Model) CheckGrant(actor string, roles []string, collections []contracts.Named) error {
	e, err := m.user(actor)
	if err != nil {
		return err
	}
	for _, rn := range roles {
		r, ok := m.roles[key(rn)]
		if !ok {
			return unknownRole(m, rn)
		}
		var missing []string
		for _, p := range r.Permissions {
			if !e.perms[p] {
				missing = append(missing, string(p))
			}
		}
		if len(missing) > 0 {
			return Denied("%s cannot grant role %q: it has permissions %s lacks (%s)", e.name, r.Name, e.name, strings.Join(missing, ", "))
		}
	}
	for _, c := range collections {
		if !e.all && !e.collIDs[c.ID] {
			return Denied("%s cannot grant collection %q: it is not within %s's collections (%s)", e.name, c.Name, e.name, names(e.collList))
		}
	}
	return nil
}

// CheckPermissions returns nil when actor holds every one of ps: what it
// may put in a role it creates or changes.
func (m *Model) CheckPermissions(actor string, ps []Permission) error {
	e, err := m.user(actor)
	if err != nil {
		return err
	}
	var missing []string
	for _, p := range ps {
		if !e.perms[p] {
			missing = append(missing, string(p))
		}
	}
	if len(missing) > 0 {
		return Denied("%s cannot grant permissions %s lacks (%s)", e.name, e.name, strings.Join(missing, ", "))
	}
	return nil
}

// CheckCovers returns nil when actor may change, revoke or delete target:
// everything target may do, the actor may do too. A Security Administrator
// cannot revoke a Full Administrator.
func (m *Model) CheckCovers(actor, target string) error {
	t, ok := m.users[key(target)]
	if !ok {
		return nil
	}
	e, err := m.user(actor)
	if err != nil {
		return err
	}
	var missing []string
	for p := range t.perms {
		if !e.perms[p] {
			missing = append(missing, string(p))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Denied("%s may not change %s, who holds permissions %s lacks (%s)", e.name, t.name, e.name, strings.Join(missing, ", "))
	}
	if !e.all {
		for id := range t.collIDs {
			if !e.collIDs[id] {
				return Denied("%s may not change %s, whose collections (%s) go beyond %s's (%s)", e.name, t.name, names(t.collList), e.name, names(e.collList))
			}
		}
	}
	return nil
}

// CheckFullAdministrator refuses a change from m to next that would leave
// the site without a Full Administrator over All Systems.
func (m *Model) CheckFullAdministrator(next *Model) error {
	before, after := m.FullAdministrators(), next.FullAdministrators()
	if len(after) > 0 || len(before) == 0 {
		return nil
	}
	return contracts.Errorf(contracts.CodeConflict, "refused: %s is the last Full Administrator over All Systems; make another one first", strings.Join(before, ", "))
}

func unknownRole(m *Model, name string) error {
	var known []string
	for _, r := range m.Roles() {
		known = append(known, r.Name)
	}
	return contracts.Errorf(contracts.CodeNotFound, "unknown role %q; roles are: %s", name, strings.Join(known, ", "))
}

// UnknownRole is the error for a role name that names no role, listing
// the roles there are.
func (m *Model) UnknownRole(name string) error { return unknownRole(m, name) }
