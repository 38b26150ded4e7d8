package admin

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

var (
	now    = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	webCol = contracts.Named{ID: "c-web", Name: "Web"}
	dbCol  = contracts.Named{ID: "c-db", Name: "DB"}
)

func userKey(t testing.TB) string {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	return pub
}

func testModel(t testing.TB) *rbac.Model {
	t.Helper()
	u := func(name, role string, colls ...contracts.Named) rbac.Admin {
		return rbac.Admin{Name: name, Kind: contracts.AdminUser, Key: userKey(t), Roles: []string{role}, Collections: colls, Created: now, CreatedBy: "test"}
	}
	doc := rbac.Document{Admins: []rbac.Admin{
		u("admin", contracts.RoleFullAdministrator, rbac.AllSystems),
		u("sam", contracts.RoleSecurityAdministrator, rbac.AllSystems),
		u("wes", contracts.RoleSecurityAdministrator, webCol),
		u("carol", contracts.RoleReadOnlyAnalyst, rbac.AllSystems),
		{Name: "helpdesk", Kind: contracts.AdminGroup, Roles: []string{contracts.RoleRemoteToolsOperator}, Collections: []contracts.Named{webCol}, Created: now, CreatedBy: "test"},
	}}
	m, err := rbac.NewModel(doc, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// apply checks a planned document as the store does: a valid model that
// keeps a Full Administrator.
func apply(m *rbac.Model, doc rbac.Document, err error) (*rbac.Model, error) {
	if err != nil {
		return nil, err
	}
	next, err := rbac.NewModel(doc, m.Revision()+1)
	if err != nil {
		return nil, err
	}
	return next, m.CheckFullAdministrator(next)
}

func wantErr(t *testing.T, what string, err error, code contracts.Code, text string) {
	t.Helper()
	if err == nil || contracts.CodeOf(err) != code || !strings.Contains(err.Error(), text) {
		t.Errorf("%s: got %v (%v), want %v containing %q", what, err, contracts.CodeOf(err), code, text)
	}
}

func TestPlanAdd(t *testing.T) {
	m := testModel(t)
	add := func(actor string, req contracts.AdminAddRequest, colls ...contracts.Named) (*rbac.Model, error) {
		if req.Kind == "" {
			req.Kind = contracts.AdminUser
		}
		if req.Kind == contracts.AdminUser && req.Key == "" {
			req.Key = userKey(t)
		}
		doc, _, err := planAdd(m, actor, &req, colls, now)
		return apply(m, doc, err)
	}
	next, err := add("admin", contracts.AdminAddRequest{Name: "alice", Roles: []string{"remote tools operator"}, MemberOf: []string{"HELPDESK"}}, webCol)
	if err != nil {
		t.Fatalf("add alice: %v", err)
	}
	a, _ := next.Admin("alice")
	if a.Roles[0] != contracts.RoleRemoteToolsOperator || a.MemberOf[0] != "helpdesk" || a.CreatedBy != "admin" {
		t.Errorf("alice: got %+v, want canonical names and CreatedBy admin", a)
	}
	_, err = add("carol", contracts.AdminAddRequest{Name: "x"})
	wantErr(t, "a read-only analyst adds someone", err, contracts.CodePermissionDenied, "permission denied: carol lacks Create on Administrator")
	_, err = add("admin", contracts.AdminAddRequest{Name: "SAM"})
	wantErr(t, "a name taken in another case", err, contracts.CodeConflict, `administrator "sam" already exists`)
	samKey, _ := m.Admin("sam")
	_, err = add("admin", contracts.AdminAddRequest{Name: "sam2", Key: samKey.Key})
	wantErr(t, "a key taken", err, contracts.CodeConflict, "already administrator sam's")
	_, err = add("admin", contracts.AdminAddRequest{Name: "x", Roles: []string{"Superuser"}})
	wantErr(t, "an unknown role", err, contracts.CodeNotFound, `unknown role "Superuser"; roles are: Full Administrator, Read-only Analyst`)
	_, err = add("admin", contracts.AdminAddRequest{Name: "x", MemberOf: []string{"nightshift"}})
	wantErr(t, "an unknown group", err, contracts.CodeNotFound, `unknown administrator group "nightshift"; groups are: helpdesk`)
	_, err = add("sam", contracts.AdminAddRequest{Name: "x", Roles: []string{contracts.RoleFullAdministrator}}, rbac.AllSystems)
	wantErr(t, "a security administrator grants Full Administrator", err, contracts.CodePermissionDenied, `sam cannot grant role "Full Administrator"`)
	_, err = add("sam", contracts.AdminAddRequest{Name: "x", MemberOf: []string{"helpdesk"}})
	wantErr(t, "a security administrator puts someone in a group with Remote Control", err, contracts.CodePermissionDenied, "joining group helpdesk")
	_, err = add("wes", contracts.AdminAddRequest{Name: "x", Roles: []string{contracts.RoleReadOnlyAnalyst}}, rbac.AllSystems)
	wantErr(t, "a Web-scoped admin grants All Systems", err, contracts.CodePermissionDenied, `wes cannot grant collection "All Systems"`)
	if _, err := add("wes", contracts.AdminAddRequest{Name: "x", Roles: []string{contracts.RoleReadOnlyAnalyst}}, webCol); err != nil {
		t.Errorf("a Web-scoped admin grants Web: got %v, want allowed", err)
	}
	if _, err := add("admin", contracts.AdminAddRequest{Name: "nightshift", Kind: contracts.AdminGroup, Roles: []string{contracts.RoleReadOnlyAnalyst}}, dbCol); err != nil {
		t.Errorf("add a group: got %v, want allowed", err)
	}
}

func TestPlanUpdateRevokeDelete(t *testing.T) {
	m := testModel(t)
	upd := func(actor string, req contracts.AdminUpdateRequest, colls ...contracts.Named) (*rbac.Model, error) {
		doc, _, err := planUpdate(m, actor, &req, colls, now)
		return apply(m, doc, err)
	}
	_, err := upd("admin", contracts.AdminUpdateRequest{Name: "admin", RemoveRoles: []string{"full administrator"}})
	wantErr(t, "demoting the last Full Administrator", err, contracts.CodeConflict, "admin is the last Full Administrator over All Systems")
	_, err = upd("admin", contracts.AdminUpdateRequest{Name: "admin", RemoveCollections: []string{"all systems"}}, webCol)
	wantErr(t, "scoping the last Full Administrator", err, contracts.CodeConflict, "last Full Administrator")
	_, err = upd("sam", contracts.AdminUpdateRequest{Name: "admin", RemoveRoles: []string{contracts.RoleFullAdministrator}})
	wantErr(t, "a security administrator demotes a full one", err, contracts.CodePermissionDenied, "sam may not change admin")
	_, err = upd("sam", contracts.AdminUpdateRequest{Name: "carol", AddRoles: []string{contracts.RoleRemoteToolsOperator}})
	wantErr(t, "granting a role beyond one's own", err, contracts.CodePermissionDenied, "Collection:RemoteControl")
	_, err = upd("admin", contracts.AdminUpdateRequest{Name: "carol", RemoveRoles: []string{"Helpdesk"}})
	wantErr(t, "removing a role not held", err, contracts.CodeBadRequest, `carol has no role "Helpdesk"`)
	_, err = upd("admin", contracts.AdminUpdateRequest{Name: "nobody", SetDescription: true})
	wantErr(t, "an unknown administrator", err, contracts.CodeNotFound, `no administrator named "nobody"`)
	_, err = upd("admin", contracts.AdminUpdateRequest{Name: "helpdesk", AddMemberOf: []string{"helpdesk"}})
	wantErr(t, "a group in a group", err, contracts.CodeBadRequest, "is a group")
	next, err := upd("admin", contracts.AdminUpdateRequest{Name: "carol", AddRoles: []string{contracts.RoleRemoteToolsOperator}, RemoveCollections: []string{"All Systems"}, AddMemberOf: []string{"helpdesk"}}, webCol)
	if err != nil {
		t.Fatalf("update carol: %v", err)
	}
	e, _ := next.Effective("carol")
	if e.AllSystems || len(e.Collections) != 1 || e.Collections[0].ID != webCol.ID || len(e.Roles) != 2 {
		t.Errorf("carol after the update: got %+v, want two roles over Web", e)
	}

	// Promote carol, then the bootstrap admin may go.
	two, err := upd("admin", contracts.AdminUpdateRequest{Name: "carol", AddRoles: []string{contracts.RoleFullAdministrator}})
	if err != nil {
		t.Fatal(err)
	}
	doc, _, err := planDelete(two, "carol", "admin")
	if _, err := apply(two, doc, err); err != nil {
		t.Errorf("deleting the bootstrap admin once another Full Administrator exists: got %v, want allowed", err)
	}

	doc, _, err = planRevoke(m, "admin", "admin", now)
	_, err = apply(m, doc, err)
	wantErr(t, "revoking the last Full Administrator", err, contracts.CodeConflict, "last Full Administrator")
	doc, _, err = planDelete(m, "admin", "admin")
	_, err = apply(m, doc, err)
	wantErr(t, "deleting the last Full Administrator", err, contracts.CodeConflict, "last Full Administrator")
	doc, _, err = planRevoke(m, "sam", "admin", now)
	_, err = apply(m, doc, err)
	wantErr(t, "a security administrator revokes a full one", err, contracts.CodePermissionDenied, "sam may not change admin")
	doc, r, err := planRevoke(m, "admin", "carol", now)
	revoked, err := apply(m, doc, err)
	if err != nil || !r.Revoked {
		t.Fatalf("revoke carol: %v", err)
	}
	if err := revoked.Allowed("carol", rbac.SiteRead, rbac.Anywhere()); err == nil {
		t.Error("a revoked operator: got allowed, want denied")
	}
	doc, _, err = planRevoke(revoked, "admin", "carol", now)
	_, err = apply(revoked, doc, err)
	wantErr(t, "revoking twice", err, contracts.CodeConflict, "already revoked")

	// Deleting a group takes its members out of it.
	withMember, _ := upd("admin", contracts.AdminUpdateRequest{Name: "carol", AddMemberOf: []string{"helpdesk"}})
	doc, _, err = planDelete(withMember, "admin", "helpdesk")
	after, err := apply(withMember, doc, err)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := after.Admin("carol"); len(c.MemberOf) != 0 {
		t.Errorf("carol's groups after the group is deleted: got %v, want none", c.MemberOf)
	}
}

func TestPlanRoles(t *testing.T) {
	m := testModel(t)
	cp := func(actor string, req contracts.RoleCopyRequest) (*rbac.Model, error) {
		doc, _, err := planCopy(m, actor, &req, now)
		return apply(m, doc, err)
	}
	next, err := cp("admin", contracts.RoleCopyRequest{From: "remote tools operator", Name: "Helpdesk", Add: []string{"Collection:ViewInventory"}, Remove: []string{"session:viewrecording"}})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	r, _ := next.Role("helpdesk")
	if !r.Has(rbac.CollectionViewInventory) || r.Has(rbac.SessionViewRecording) || !r.Has(rbac.CollectionRemoteControl) || r.CopiedFrom != contracts.RoleRemoteToolsOperator {
		t.Errorf("Helpdesk: got %+v", r)
	}
	_, err = cp("sam", contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "Eyes", Add: []string{"Collection:RemoteControl"}})
	wantErr(t, "a role with a permission the actor lacks", err, contracts.CodePermissionDenied, "Collection:RemoteControl")
	if _, err := cp("sam", contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "Eyes"}); err != nil {
		t.Errorf("copy of a role within the actor's: got %v, want allowed", err)
	}
	_, err = cp("admin", contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "read-only ANALYST"})
	wantErr(t, "a taken name", err, contracts.CodeConflict, "already exists")
	_, err = cp("admin", contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "X", Add: []string{"Collection:Fly"}})
	wantErr(t, "an unknown permission", err, contracts.CodeBadRequest, "valid are Read, Create")
	_, err = cp("admin", contracts.RoleCopyRequest{From: "Ghost", Name: "X"})
	wantErr(t, "copying an unknown role", err, contracts.CodeNotFound, `unknown role "Ghost"`)
	_, err = cp("carol", contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "X"})
	wantErr(t, "without SecurityRole:Create", err, contracts.CodePermissionDenied, "carol lacks Create on SecurityRole")

	doc, _, err := planRoleUpdate(m, "admin", &contracts.RoleUpdateRequest{Name: contracts.RoleFullAdministrator, Remove: []string{"Site:Read"}}, now)
	_, err = apply(m, doc, err)
	wantErr(t, "changing a built-in role", err, contracts.CodeBadRequest, "built-in role")
	doc, _, err = planRoleUpdate(next, "sam", &contracts.RoleUpdateRequest{Name: "Helpdesk", Add: []string{"Package:Create"}}, now)
	_, err = apply(next, doc, err)
	wantErr(t, "adding a permission the actor lacks", err, contracts.CodePermissionDenied, "Package:Create")
	doc, _, err = planRoleUpdate(next, "admin", &contracts.RoleUpdateRequest{Name: "Helpdesk", Remove: []string{"Collection:ViewInventory"}, SetDescription: true, Description: "d"}, now)
	if _, err := apply(next, doc, err); err != nil {
		t.Errorf("update Helpdesk: %v", err)
	}

	// Deleting: built-in refused; in use refused; unused fine.
	doc, _, err = planRoleDelete(m, "admin", contracts.RoleReadOnlyAnalyst)
	_, err = apply(m, doc, err)
	wantErr(t, "deleting a built-in role", err, contracts.CodeBadRequest, "built-in role")
	req := contracts.AdminUpdateRequest{Name: "carol", AddRoles: []string{"Helpdesk"}}
	doc, _, err = planUpdate(next, "admin", &req, nil, now)
	inUse, err := apply(next, doc, err)
	if err != nil {
		t.Fatal(err)
	}
	doc, _, err = planRoleDelete(inUse, "admin", "helpdesk")
	_, err = apply(inUse, doc, err)
	wantErr(t, "deleting a role in use", err, contracts.CodeConflict, "given to carol")
	doc, _, err = planRoleDelete(next, "admin", "helpdesk")
	if _, err := apply(next, doc, err); err != nil {
		t.Errorf("deleting an unused role: %v", err)
	}
}

func TestSealing(t *testing.T) {
	site, _ := nkeys.CreateCurveKeys()
	sitePub, _ := site.PublicKey()
	cli, _ := nkeys.CreateCurveKeys()
	cliPub, _ := cli.PublicKey()
	secret := []byte("correct horse battery staple")

	// The CLI seals to the site; the site opens, and seals at rest.
	sealed, err := cli.Seal(secret, sitePub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openSecret(site, sealed, cliPub)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: got %q, %v; want the secret", got, err)
	}
	atRest, err := sealAtRest(site, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret)), []byte(base64.RawURLEncoding.EncodeToString(secret))} {
		if bytes.Contains(atRest, form) || bytes.Contains(sealed, form) {
			t.Fatalf("a sealed form contains the secret (%q)", form)
		}
	}
	other, _ := nkeys.CreateCurveKeys()
	otherPub, _ := other.PublicKey()
	if _, err := openSecret(site, sealed, otherPub); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("a box from another sender: got %v, want bad request", err)
	}
	if _, err := openSecret(other, sealed, cliPub); err == nil {
		t.Error("another site's key opened the box")
	}
	empty, _ := cli.Seal(nil, sitePub)
	if _, err := openSecret(site, empty, cliPub); err == nil {
		t.Error("an empty secret: got accepted, want refused")
	}

	// A client receives it sealed to its own key, from the site's key.
	client, _ := nkeys.CreateCurveKeys()
	clientPub, _ := client.PublicKey()
	forClient, err := Reseal(site, atRest, clientPub)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := client.Open(forClient, sitePub)
	if err != nil || !bytes.Equal(opened, secret) {
		t.Fatalf("client opens: got %q, %v; want the secret", opened, err)
	}
	if _, err := other.Open(forClient, sitePub); err == nil {
		t.Error("another client opened a box sealed to this one")
	}
	if _, err := Reseal(site, atRest, userKey(t)); err == nil {
		t.Error("resealing to a user key (not a curve key): got accepted, want refused")
	}
}

func TestAddAccount(t *testing.T) {
	var d purposeDoc
	rec := func(name string, at time.Time) accountRecord {
		return accountRecord{AccountInfo: contracts.AccountInfo{Purpose: contracts.PurposeNetworkAccess, Name: name, Created: at, CreatedBy: "admin"}, Sealed: []byte(name)}
	}
	for i := range contracts.MaxAccountsPerPurpose {
		if _, err := addAccount(&d, rec(fmt.Sprintf(`LAB\svc-%d`, i), now.Add(time.Duration(i)*time.Minute)), false); err != nil {
			t.Fatalf("account %d: %v", i, err)
		}
	}
	_, err := addAccount(&d, rec("one-too-many", now), false)
	wantErr(t, "an eleventh account", err, contracts.CodeConflict, "already has 10 accounts")
	_, err = addAccount(&d, rec(`lab\SVC-3`, now), false)
	wantErr(t, "a name taken in another case", err, contracts.CodeConflict, "add a new account and remove this one later")
	_, err = addAccount(&d, rec("nobody", now), true)
	wantErr(t, "replacing a missing account", err, contracts.CodeNotFound, "no network-access account")
	info, err := addAccount(&d, rec(`LAB\svc-3`, now.Add(time.Hour)), true)
	if err != nil || !info.Rotated.Equal(now.Add(time.Hour)) || !info.Created.Equal(now.Add(3*time.Minute)) {
		t.Fatalf("replace: got %+v, %v; want Rotated set and Created kept", info, err)
	}
	ordered(d.Accounts)
	if d.Accounts[0].Name != `LAB\svc-9` || d.Accounts[9].Name != `LAB\svc-0` {
		t.Errorf("order: got %s first and %s last, want newest first", d.Accounts[0].Name, d.Accounts[9].Name)
	}
}

// TestRoleUpdateCoversHolders: what a role gains, all its holders gain, so
// adding to a role needs the right to change each holder (and each member
// of a group holding it): wes, over Web, may not give dora (All Systems)
// a permission through a role she holds, as he may not directly; he may
// when the role's holders are within Web.
func TestRoleUpdateCoversHolders(t *testing.T) {
	m := testModel(t)
	doc, _, err := planCopy(m, "admin", &contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "Eyes", Remove: []string{"Collection:ViewInventory"}}, now)
	if m, err = apply(m, doc, err); err != nil {
		t.Fatal(err)
	}
	d := m.Document()
	d.Admins = append(d.Admins, rbac.Admin{Name: "dora", Kind: contracts.AdminUser, Key: userKey(t), Roles: []string{"Eyes"}, Collections: []contracts.Named{rbac.AllSystems}, Created: now, CreatedBy: "test"})
	if m, err = rbac.NewModel(d, m.Revision()+1); err != nil {
		t.Fatal(err)
	}
	add := &contracts.RoleUpdateRequest{Name: "Eyes", Add: []string{"Collection:ViewInventory"}}
	if _, _, err := planRoleUpdate(m, "wes", add, now); contracts.CodeOf(err) != contracts.CodePermissionDenied || !strings.Contains(err.Error(), "held by dora") {
		t.Fatalf("wes adds to a role dora holds: got %v, want permission denied naming dora", err)
	}
	// Removing a permission reaches nobody's rights: allowed.
	if _, _, err := planRoleUpdate(m, "wes", &contracts.RoleUpdateRequest{Name: "Eyes", Remove: []string{"Site:Read"}}, now); err != nil {
		t.Fatalf("wes removes from the role: %v", err)
	}
	// Held within Web only: allowed.
	d = m.Document()
	for i := range d.Admins {
		if d.Admins[i].Name == "dora" {
			d.Admins[i].Collections = []contracts.Named{webCol}
		}
	}
	if m, err = rbac.NewModel(d, m.Revision()+1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := planRoleUpdate(m, "wes", add, now); err != nil {
		t.Fatalf("wes adds to a role held within Web: %v", err)
	}
	// Held by a group whose member goes beyond Web: refused.
	d = m.Document()
	d.Admins = append(d.Admins,
		rbac.Admin{Name: "eyes-group", Kind: contracts.AdminGroup, Roles: []string{"Eyes"}, Collections: []contracts.Named{webCol}, Created: now, CreatedBy: "test"},
		rbac.Admin{Name: "ed", Kind: contracts.AdminUser, Key: userKey(t), MemberOf: []string{"eyes-group"}, Collections: []contracts.Named{rbac.AllSystems}, Created: now, CreatedBy: "test"})
	if m, err = rbac.NewModel(d, m.Revision()+1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := planRoleUpdate(m, "wes", add, now); contracts.CodeOf(err) != contracts.CodePermissionDenied || !strings.Contains(err.Error(), "held by eyes-group") {
		t.Fatalf("wes adds to a role a group holds whose member ed is over All Systems: got %v, want permission denied", err)
	}
}

// TestChangePermsRemovesFirst: the documented "roles copy ... --remove
// Collection:* --add Collection:Read" keeps Read (adds went first, and the
// removal took Read away again: a role with no Collection permission).
func TestChangePermsRemovesFirst(t *testing.T) {
	base, err := rbac.ParsePermissions([]string{"Collection:*", "Site:Read"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := changePerms(base, []string{"Collection:Read"}, []string{"Collection:*"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := rbac.ParsePermissions([]string{"Site:Read", "Collection:Read"})
	if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
