package rbac

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

var (
	web = contracts.Named{ID: "c-web", Name: "Web"}
	db  = contracts.Named{ID: "c-db", Name: "DB"}
	t0  = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
)

func user(name string, roles []string, colls ...contracts.Named) Admin {
	return Admin{Name: name, Kind: contracts.AdminUser, Key: "U" + strings.ToUpper(name), Roles: roles, Collections: colls, Created: t0, CreatedBy: "test"}
}

func mustModel(t testing.TB, doc Document) *Model {
	t.Helper()
	m, err := NewModel(doc, 1)
	if err != nil {
		t.Fatalf("NewModel: %v", err)
	}
	return m
}

// everything but drop, written out so the expectations below do not lean
// on the code under test.
func allExcept(drop ...string) []string {
	var out []string
	for _, o := range []struct {
		obj     string
		actions string
	}{
		{"Collection", "Read Create Modify Delete ModifyResource DeleteResource RemoteControl ViewInventory DeploySettings DeployPackages"},
		{"ClientSettings", "Read Create Modify Delete"},
		{"Package", "Read Create Modify Delete Distribute"},
		{"StatusMessage", "Read Delete"},
		{"Site", "Read Modify"},
		{"Administrator", "Read Create Modify Delete"},
		{"SecurityRole", "Read Create Modify Delete"},
		{"EnrollmentToken", "Read Create Delete"},
		{"Account", "Read Create Modify Delete"},
		{"Session", "Read Join ViewRecording End"},
	} {
		for _, a := range strings.Fields(o.actions) {
			if p := o.obj + ":" + a; !slices.Contains(drop, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

var readOnly = []string{
	"Collection:Read", "Collection:ViewInventory", "ClientSettings:Read", "Package:Read", "StatusMessage:Read",
	"Site:Read", "Administrator:Read", "SecurityRole:Read", "EnrollmentToken:Read", "Account:Read", "Session:Read",
}

// builtinExpect is what each built-in role may do, written out by hand:
// the specification the table test holds the roles to.
var builtinExpect = map[string][]string{
	contracts.RoleFullAdministrator: allExcept(),
	contracts.RoleReadOnlyAnalyst:   readOnly,
	contracts.RoleRemoteToolsOperator: {
		"Collection:Read", "Collection:RemoteControl", "StatusMessage:Read", "Site:Read",
		"Session:Read", "Session:Join", "Session:ViewRecording",
	},
	contracts.RoleOperationsAdministrator: allExcept(
		"Administrator:Create", "Administrator:Modify", "Administrator:Delete",
		"SecurityRole:Create", "SecurityRole:Modify", "SecurityRole:Delete"),
	contracts.RoleApplicationAdministrator: {
		"Collection:Read", "Collection:ViewInventory", "Collection:DeployPackages", "ClientSettings:Read",
		"Package:Read", "Package:Create", "Package:Modify", "Package:Delete", "Package:Distribute",
		"StatusMessage:Read", "Site:Read", "Account:Read",
	},
	contracts.RoleSecurityAdministrator: append(slices.Clone(readOnly),
		"Administrator:Create", "Administrator:Modify", "Administrator:Delete",
		"SecurityRole:Create", "SecurityRole:Modify", "SecurityRole:Delete"),
}

func slug(role string) string { return strings.ToLower(strings.Fields(role)[0]) }

// tableModel has, for every built-in role, one user over All Systems
// ("<role>-all") and one over Web only ("<role>-web").
func tableModel(t testing.TB) *Model {
	var doc Document
	for _, r := range BuiltinRoles() {
		doc.Admins = append(doc.Admins,
			user(slug(r.Name)+"-all", []string{r.Name}, AllSystems),
			user(slug(r.Name)+"-web", []string{r.Name}, web))
	}
	return mustModel(t, doc)
}

// TestAllowedTable: every built-in role x object type x action x target in
// or out of the operator's collections, with the expected answer.
func TestAllowedTable(t *testing.T) {
	m := tableModel(t)
	inWeb := func(id string) bool { return id == web.ID }
	inDB := func(id string) bool { return id == db.ID }
	targets := []struct {
		name   string
		scope  Scope
		inWeb  bool // whether a Web-scoped operator reaches it
		global bool // whether only All Systems reaches it
	}{
		{"client in Web", OnClient(`client "web-01"`, inWeb), true, false},
		{"client in DB only", OnClient(`client "db-01"`, inDB), false, false},
		{"pending client (in no collection)", EveryClient(`client "new-01"`), false, true},
		{"collection Web", OnCollection(web), true, false},
		{"collection DB", OnCollection(db), false, false},
		{"anywhere", Anywhere(), true, false},
	}
	if got, want := len(builtinExpect), len(BuiltinRoles()); got != want {
		t.Fatalf("expectations for %d roles, want all %d built-in roles", got, want)
	}
	rows := 0
	for _, role := range BuiltinRoles() {
		want := builtinExpect[role.Name]
		if want == nil {
			t.Fatalf("no expectation for built-in role %q", role.Name)
		}
		for _, scoped := range []string{"all", "web"} {
			op := slug(role.Name) + "-" + scoped
			for _, p := range All() {
				for _, tg := range targets {
					expect := slices.Contains(want, string(p))
					if expect && p.Scoped() && scoped == "web" && (tg.global || !tg.inWeb) {
						expect = false
					}
					rows++
					err := m.Allowed(op, p, tg.scope)
					if (err == nil) != expect {
						t.Errorf("%s (%s) %s on %s: got %v, want allowed=%v", op, role.Name, p, tg.name, err, expect)
					}
					if err != nil && contracts.CodeOf(err) != contracts.CodePermissionDenied {
						t.Errorf("%s %s on %s: got code %v, want permission_denied", op, p, tg.name, contracts.CodeOf(err))
					}
				}
			}
		}
	}
	if rows < 6*2*40*len(targets) {
		t.Fatalf("only %d rows", rows)
	}
}

// TestBuiltinRolesExact pins each built-in role to the written expectation
// in both directions (the table above checks only what is asked).
func TestBuiltinRolesExact(t *testing.T) {
	for _, r := range BuiltinRoles() {
		got := Strings(r.Permissions)
		want := Strings(sortPerms(toPerms(builtinExpect[r.Name])))
		if !slices.Equal(got, want) {
			t.Errorf("role %s: got %v, want %v", r.Name, got, want)
		}
	}
	if got := Strings(BuiltinRoles()[0].Permissions); !slices.Equal(got, Strings(All())) {
		t.Errorf("Full Administrator: got %v, want every permission", got)
	}
}

func toPerms(ss []string) []Permission {
	out := make([]Permission, len(ss))
	for i, s := range ss {
		out[i] = Permission(s)
	}
	return out
}

func TestDeniedMessage(t *testing.T) {
	m := mustModel(t, Document{Admins: []Admin{user("carol", []string{contracts.RoleReadOnlyAnalyst}, AllSystems)}})
	err := m.Allowed("carol", EnrollmentTokenCreate, Anywhere())
	if err == nil || err.Error() != "permission denied: carol lacks Create on EnrollmentToken" {
		t.Fatalf("got %v, want exactly: permission denied: carol lacks Create on EnrollmentToken", err)
	}
	if contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("got code %v, want permission_denied", contracts.CodeOf(err))
	}
	// Any case of the name; the message uses the stored one.
	if err := m.Allowed("CAROL", EnrollmentTokenRead, Anywhere()); err != nil {
		t.Fatalf("CAROL reading tokens: got %v, want allowed", err)
	}
}

func TestAllowedWho(t *testing.T) {
	revoked := user("rita", []string{contracts.RoleFullAdministrator}, AllSystems)
	revoked.Revoked = true
	group := Admin{Name: "helpdesk", Kind: contracts.AdminGroup, Roles: []string{contracts.RoleFullAdministrator}, Collections: []contracts.Named{AllSystems}}
	nocoll := user("nora", []string{contracts.RoleRemoteToolsOperator})
	m := mustModel(t, Document{Admins: []Admin{revoked, group, nocoll}})
	var nilModel *Model
	tests := []struct {
		name, op string
		m        *Model
		p        Permission
		want     contracts.Code
		text     string
	}{
		{"model not loaded", "rita", nilModel, SiteRead, contracts.CodeUnavailable, "not loaded"},
		{"unknown operator", "zed", m, SiteRead, contracts.CodePermissionDenied, "zed is not an administrative user"},
		{"revoked operator", "rita", m, SiteRead, contracts.CodePermissionDenied, "rita is revoked"},
		{"a group cannot act", "helpdesk", m, SiteRead, contracts.CodePermissionDenied, "is a group"},
		{"collection permission without collections", "nora", m, CollectionRemoteControl, contracts.CodePermissionDenied, "no collections"},
	}
	for _, tt := range tests {
		err := tt.m.Allowed(tt.op, tt.p, Anywhere())
		if contracts.CodeOf(err) != tt.want || err == nil || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: got %v (%v), want %v containing %q", tt.name, err, contracts.CodeOf(err), tt.want, tt.text)
		}
	}
}

func TestGroupsUnion(t *testing.T) {
	helpdesk := Admin{Name: "helpdesk", Kind: contracts.AdminGroup, Roles: []string{contracts.RoleRemoteToolsOperator}, Collections: []contracts.Named{web}}
	dave := user("dave", []string{contracts.RoleReadOnlyAnalyst}, db)
	dave.MemberOf = []string{"HELPDESK"}
	m := mustModel(t, Document{Admins: []Admin{helpdesk, dave}})
	inWeb := func(id string) bool { return id == web.ID }
	inDB := func(id string) bool { return id == db.ID }
	if err := m.Allowed("dave", CollectionRemoteControl, OnClient("w", inWeb)); err != nil {
		t.Errorf("remote control through the group on Web: got %v, want allowed", err)
	}
	// Union, not pairs: the group's role reaches dave's own collection too
	// (as Configuration Manager does by default).
	if err := m.Allowed("dave", CollectionRemoteControl, OnClient("d", inDB)); err != nil {
		t.Errorf("remote control on DB: got %v, want allowed (roles and collections are unions)", err)
	}
	if err := m.Allowed("dave", CollectionRemoteControl, OnClient("x", func(string) bool { return false })); err == nil {
		t.Error("remote control on a client in neither: got allowed, want denied")
	}
	e, _ := m.Effective("dave")
	if want := []string{contracts.RoleReadOnlyAnalyst, contracts.RoleRemoteToolsOperator}; !slices.Equal(e.Roles, want) {
		t.Errorf("effective roles: got %v, want %v", e.Roles, want)
	}
	if got := m.Members("helpdesk"); !slices.Equal(got, []string{"dave"}) {
		t.Errorf("members: got %v, want [dave]", got)
	}
	a, _ := m.Admin("dave")
	if a.MemberOf[0] != "helpdesk" {
		t.Errorf("group reference: got %q, want the stored spelling helpdesk", a.MemberOf[0])
	}
}

func TestScoped(t *testing.T) {
	m := tableModel(t)
	inWeb := func(id string) bool { return id == web.ID }
	sc, err := m.Scoped("read-only-web", CollectionRead)
	if err != nil || sc.All || !sc.Covers(inWeb) || sc.Covers(func(string) bool { return false }) {
		t.Errorf("read-only-web: got %+v, %v; want Web only", sc, err)
	}
	sc, err = m.Scoped("read-only-all", CollectionRead)
	if err != nil || !sc.All || !sc.Covers(nil) {
		t.Errorf("read-only-all: got %+v, %v; want all", sc, err)
	}
	if _, err := m.Scoped("remote-web", CollectionViewInventory); err == nil {
		t.Error("remote-web has no ViewInventory: got a scope, want denied")
	}
	if !m.ClientVisible("remote-web", inWeb) || m.ClientVisible("remote-web", func(string) bool { return false }) {
		t.Error("ClientVisible: got the wrong answer for remote-web")
	}
}

func TestParsePermission(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"Collection:ViewInventory", []string{"Collection:ViewInventory"}, ""},
		{"collection:viewinventory", []string{"Collection:ViewInventory"}, ""},
		{" Session:Join ", []string{"Session:Join"}, ""},
		{"Site:*", []string{"Site:Read", "Site:Modify"}, ""},
		{"Collection:Teleport", nil, "valid are Read, Create, Modify, Delete, ModifyResource"},
		{"Printer:Read", nil, "unknown object type \"Printer\"; valid are Collection, ClientSettings"},
		{"Collection", nil, "write Object:Action"},
		{"", nil, "write Object:Action"},
	}
	for _, tt := range tests {
		got, err := ParsePermission(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePermission(%q): got %v, want an error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(Strings(got), tt.want) {
			t.Errorf("ParsePermission(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, p := range All() {
		if !p.Valid() {
			t.Errorf("%s: not valid", p)
		}
	}
}

func TestCheckGrant(t *testing.T) {
	doc := Document{Admins: []Admin{
		user("sam", []string{contracts.RoleSecurityAdministrator}, AllSystems),
		user("wes", []string{contracts.RoleSecurityAdministrator}, web),
		user("fay", []string{contracts.RoleFullAdministrator}, AllSystems),
	}}
	m := mustModel(t, doc)
	tests := []struct {
		actor string
		roles []string
		colls []contracts.Named
		ok    bool
		text  string
	}{
		{"sam", []string{contracts.RoleReadOnlyAnalyst}, []contracts.Named{web}, true, ""},
		{"sam", []string{contracts.RoleSecurityAdministrator}, []contracts.Named{AllSystems}, true, ""},
		{"sam", []string{contracts.RoleFullAdministrator}, nil, false, "cannot grant role \"Full Administrator\""},
		{"sam", []string{contracts.RoleRemoteToolsOperator}, nil, false, "Collection:RemoteControl"},
		{"wes", []string{contracts.RoleReadOnlyAnalyst}, []contracts.Named{web}, true, ""},
		{"wes", []string{contracts.RoleReadOnlyAnalyst}, []contracts.Named{AllSystems}, false, "cannot grant collection \"All Systems\""},
		{"wes", nil, []contracts.Named{db}, false, "not within wes's collections (Web)"},
		{"fay", []string{contracts.RoleFullAdministrator}, []contracts.Named{AllSystems, db}, true, ""},
		{"fay", []string{"Nonesuch"}, nil, false, "unknown role \"Nonesuch\"; roles are: Full Administrator"},
	}
	for _, tt := range tests {
		err := m.CheckGrant(tt.actor, tt.roles, tt.colls)
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), tt.text)) {
			t.Errorf("%s grants %v %v: got %v, want ok=%v (%q)", tt.actor, tt.roles, tt.colls, err, tt.ok, tt.text)
		}
	}
	if err := m.CheckCovers("sam", "fay"); err == nil {
		t.Error("a Security Administrator changing a Full Administrator: got allowed, want denied")
	}
	if err := m.CheckCovers("fay", "sam"); err != nil {
		t.Errorf("a Full Administrator changing a Security Administrator: got %v, want allowed", err)
	}
	if err := m.CheckCovers("wes", "sam"); err == nil || !strings.Contains(err.Error(), "go beyond") {
		t.Errorf("a Web-scoped admin changing an All Systems one: got %v, want denied", err)
	}
	if err := m.CheckPermissions("sam", []Permission{CollectionRemoteControl}); err == nil {
		t.Error("sam putting RemoteControl in a role: got allowed, want denied")
	}
}

func TestFullAdministrators(t *testing.T) {
	fa := []string{contracts.RoleFullAdministrator}
	grp := Admin{Name: "admins", Kind: contracts.AdminGroup, Roles: fa, Collections: []contracts.Named{AllSystems}}
	viaGroup := user("gil", nil)
	viaGroup.MemberOf = []string{"admins"}
	revoked := user("rex", fa, AllSystems)
	revoked.Revoked = true
	m := mustModel(t, Document{Admins: []Admin{user("ann", fa, AllSystems), user("web", fa, web), grp, viaGroup, revoked}})
	if got, want := m.FullAdministrators(), []string{"ann", "gil"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (not revoked, not scoped, groups counted, groups themselves not)", got, want)
	}
	only := mustModel(t, Document{Admins: []Admin{user("ann", fa, AllSystems)}})
	none := mustModel(t, Document{Admins: []Admin{user("ann", nil, AllSystems)}})
	if err := only.CheckFullAdministrator(none); contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), "ann is the last Full Administrator") {
		t.Errorf("demoting the last: got %v, want a conflict naming ann", err)
	}
	if err := m.CheckFullAdministrator(only); err != nil {
		t.Errorf("keeping one: got %v, want nil", err)
	}
}

func TestNewModelRefuses(t *testing.T) {
	dupRole := Role{Name: "full administrator", Permissions: []Permission{SiteRead}}
	badPerm := Role{Name: "Odd", Permissions: []Permission{"Site:Fly"}}
	strayGroup := user("x", nil)
	strayGroup.MemberOf = []string{"nobody"}
	tests := []struct {
		name string
		doc  Document
		text string
	}{
		{"newer schema", Document{Schema: Schema + 1}, "schema"},
		{"unknown role", Document{Admins: []Admin{user("a", []string{"Ghost"})}}, "unknown role"},
		{"duplicate name any case", Document{Admins: []Admin{user("a", nil), user("A", nil)}}, "twice"},
		{"role shadowing a built-in", Document{Roles: []Role{dupRole}}, "twice"},
		{"unknown permission", Document{Roles: []Role{badPerm}}, "unknown permission"},
		{"member of no group", Document{Admins: []Admin{strayGroup}}, "no group"},
		{"bad name", Document{Admins: []Admin{user("a.b", nil)}}, "only letters"},
	}
	for _, tt := range tests {
		if _, err := NewModel(tt.doc, 1); err == nil || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.text)
		}
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	custom := Role{Name: "Helpdesk", Permissions: []Permission{CollectionRemoteControl, CollectionRead}, CopiedFrom: contracts.RoleRemoteToolsOperator}
	m := mustModel(t, Document{Admins: []Admin{user("ann", []string{"helpdesk"}, web)}, Roles: []Role{custom}})
	back, err := Decode(Encode(m.Document()), 7)
	if err != nil {
		t.Fatal(err)
	}
	if back.Revision() != 7 {
		t.Errorf("revision: got %d, want 7", back.Revision())
	}
	a, _ := back.Admin("ann")
	if !slices.Equal(a.Roles, []string{"Helpdesk"}) {
		t.Errorf("roles: got %v, want the role's own spelling", a.Roles)
	}
	r, _ := back.Role("helpdesk")
	if got := fmt.Sprint(r.Permissions); got != "[Collection:Read Collection:RemoteControl]" {
		t.Errorf("permissions: got %s, want them in catalog order", got)
	}
	if len(back.Roles()) != len(BuiltinRoles())+1 || back.Roles()[0].Name != contracts.RoleFullAdministrator {
		t.Errorf("roles: got %d, want the built-ins first and the custom one", len(back.Roles()))
	}
}
