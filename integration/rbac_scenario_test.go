package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/cli"
	"github.com/stewardhq/steward/services/client"
)

// steward runs the steward CLI against rs as the operator in identity,
// with stdin, and returns what it printed.
func steward(t testing.TB, rs *runningSite, identity, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := cli.NewRoot(&out, &errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--server", rs.URL(), "--identity", identity}, args...))
	err := root.ExecuteContext(ctx(t))
	return out.String(), errb.String(), err
}

// TestRBACScenario is the walk-through, through the CLI: operators
// with their roles and collections, a denial in the words of the model,
// roles copied, accounts kept.
func TestRBACScenario(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Web", Queries: []string{`name startsWith "web-"`}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	adm := rs.AdminIdentity()
	run := func(identity, stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := steward(t, rs, identity, stdin, args...)
		if err != nil {
			t.Fatalf("steward %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}

	alice := filepath.Join(dir, "alice.nk")
	carol := filepath.Join(dir, "carol.nk")
	run(adm, "", "admins", "add", "alice", "--role", "Remote Tools Operator", "--collection", "Web", "--out", alice)
	run(adm, "", "admins", "add", "carol", "--role", "Read-only Analyst", "--collection", "All Systems", "--out", carol)
	for _, f := range []string{alice, carol} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
		id, err := client.ReadIdentity(f)
		if err != nil || id.Site != "LAB" {
			t.Fatalf("%s: got %+v, %v; want a LAB identity", f, id, err)
		}
	}
	// --out never replaces a file.
	if _, _, err := steward(t, rs, adm, "", "admins", "add", "alice2", "--out", alice); err == nil {
		t.Fatal("admins add --out over an existing file: got success, want refused")
	}

	// erin makes her key on her own machine; only the public key travels.
	erin := filepath.Join(dir, "erin.nk")
	pub := strings.TrimSpace(run(adm, "", "admins", "keygen", "--out", erin, "--site", "LAB", "--operator", "erin"))
	if !nkeys.IsValidPublicUserKey(pub) {
		t.Fatalf("keygen printed %q, want a public user key", pub)
	}
	run(adm, "", "admins", "add", "erin", "--role", "Full Administrator", "--collection", "All Systems", "--public-key", pub)
	seed, _ := client.ReadIdentity(erin)
	if _, _, err := steward(t, rs, adm, "", "admins", "add", "mallory", "--public-key", string(seed.Seed)); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("a seed given as --public-key: got %v, want refused as a seed", err)
	}

	// carol reads, and may not create tokens: the model's words.
	run(carol, "", "tokens", "list")
	_, _, err := steward(t, rs, carol, "", "tokens", "create")
	if err == nil || err.Error() != "permission denied: carol lacks Create on EnrollmentToken" {
		t.Fatalf("carol tokens create: got %v, want: permission denied: carol lacks Create on EnrollmentToken", err)
	}
	// alice runs remote tools; she blocks nothing.
	tok := rs.token(t, 10, time.Hour)
	web := enrollNamed(t, rs.URL(), "LAB", tok, "web-01").ClientID
	db := enrollNamed(t, rs.URL(), "LAB", tok, "db-01").ClientID
	wait(t, 15*time.Second, "web-01 in Web", func() bool { return slices.Contains(members(t, admin, "Web"), web) })
	wait(t, 15*time.Second, "db-01 in All Systems", func() bool {
		return slices.Contains(members(t, admin, contracts.AllSystemsName), db)
	})
	if _, _, err := steward(t, rs, alice, "", "clients", "block", "web-01"); err == nil || err.Error() != "permission denied: alice lacks ModifyResource on Collection" {
		t.Fatalf("alice (remote tools) blocks a client in Web: got %v, want denied for lack of ModifyResource", err)
	}
	// alice sees only the clients in Web; carol (All Systems) sees both.
	listed := func(identity string) []string {
		t.Helper()
		var cs []contracts.Client
		if err := json.Unmarshal([]byte(run(identity, "", "clients", "list", "-o", "json")), &cs); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		slices.Sort(names)
		return names
	}
	if got := listed(alice); !slices.Equal(got, []string{"web-01"}) {
		t.Fatalf("alice clients list: got %v, want only [web-01]", got)
	}
	if got := listed(carol); !slices.Equal(got, []string{"db-01", "web-01"}) {
		t.Fatalf("carol clients list: got %v, want [db-01 web-01]", got)
	}
	if _, _, err := steward(t, rs, alice, "", "clients", "show", "db-01"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("alice clients show db-01 (outside Web): got %v, want not found", err)
	}
	if _, _, err := steward(t, rs, alice, "", "inventory", "show", "web-01"); err == nil || !strings.Contains(err.Error(), "lacks ViewInventory") {
		t.Fatalf("alice (no ViewInventory) inventory show: got %v, want denied", err)
	}
	// dan operates Web: he blocks there, and sees nothing elsewhere.
	dan := filepath.Join(dir, "dan.nk")
	run(adm, "", "admins", "add", "dan", "--role", "Operations Administrator", "--collection", "Web", "--out", dan)
	if _, _, err := steward(t, rs, dan, "", "clients", "block", "db-01"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("dan blocks a client outside Web: got %v, want not found", err)
	}
	run(dan, "", "clients", "block", "web-01")
	if _, _, err := steward(t, rs, dan, "", "clients", "approve", "web-01"); err == nil || !strings.Contains(err.Error(), "needs the All Systems collection") {
		t.Fatalf("dan approves (unblocks) a client: got %v, want it to need All Systems", err)
	}

	// Listing and showing.
	var list []contracts.AdminInfo
	if err := json.Unmarshal([]byte(run(erin, "", "admins", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"admin", "alice", "carol", "dan", "erin"}) {
		t.Fatalf("admins list: got %v", names)
	}
	var me contracts.AdminInfo
	if err := json.Unmarshal([]byte(run(alice, "", "admins", "show", "-o", "json")), &me); err != nil {
		t.Fatal(err)
	}
	if me.Name != "alice" || !slices.Contains(me.Permissions, "Collection:RemoteControl") || me.EffectiveCollections[0].Name != "Web" {
		t.Fatalf("alice shows herself: got %+v", me)
	}
	if _, _, err := steward(t, rs, alice, "", "admins", "show", "carol"); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("alice shows carol: got %v, want permission denied", err)
	}

	// Roles.
	out := run(adm, "", "roles", "list")
	for _, r := range []string{"Full Administrator", "Read-only Analyst", "Remote Tools Operator", "Operations Administrator", "Application Administrator", "Security Administrator"} {
		if !strings.Contains(out, r) {
			t.Fatalf("roles list lacks %s:\n%s", r, out)
		}
	}
	run(adm, "", "roles", "copy", "Remote Tools Operator", "--name", "Helpdesk", "--add", "Collection:ViewInventory")
	var helpdesk contracts.RoleInfo
	if err := json.Unmarshal([]byte(run(adm, "", "roles", "show", "helpdesk", "-o", "json")), &helpdesk); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(helpdesk.Permissions, "Collection:ViewInventory") || helpdesk.CopiedFrom != "Remote Tools Operator" || helpdesk.BuiltIn {
		t.Fatalf("Helpdesk: got %+v", helpdesk)
	}
	run(adm, "", "admins", "update", "alice", "--add-role", "Helpdesk", "--remove-role", "Remote Tools Operator")
	if _, _, err := steward(t, rs, adm, "", "roles", "delete", "Helpdesk", "--yes"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("deleting a role in use: got %v, want conflict", err)
	}
	if _, _, err := steward(t, rs, adm, "", "roles", "update", "Full Administrator", "--remove", "Site:Read"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("changing a built-in role: got %v, want bad request", err)
	}

	// Accounts.
	run(adm, "s3cret-one\n", "accounts", "add", "network-access", `LAB\svc-content`, "--password-stdin")
	run(adm, "s3cret-two\n", "accounts", "add", "network-access", `LAB\svc-old`, "--password-stdin")
	if _, _, err := steward(t, rs, adm, "", "accounts", "add", "network-access", `LAB\svc-x`); err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("accounts add without --password-stdin: got %v, want told to use it", err)
	}
	raw := run(adm, "", "accounts", "list", "-o", "json")
	var accts []map[string]any
	if err := json.Unmarshal([]byte(raw), &accts); err != nil {
		t.Fatal(err)
	}
	if len(accts) != 2 || accts[0]["name"] != `LAB\svc-old` {
		t.Fatalf("accounts list: got %s, want two, newest first", raw)
	}
	for _, a := range accts {
		for _, k := range []string{"name", "purpose", "created"} {
			if _, ok := a[k]; !ok {
				t.Fatalf("accounts list entry %v lacks %s", a, k)
			}
		}
		if _, ok := a["sealed"]; ok {
			t.Fatalf("accounts list entry %v carries the sealed secret", a)
		}
	}
	if strings.Contains(raw, "s3cret") {
		t.Fatal("accounts list shows a secret")
	}
	run(adm, "", "accounts", "remove", "network-access", `LAB\svc-old`)
	if _, _, err := steward(t, rs, adm, "", "accounts", "remove", "network-access", `LAB\svc-old`); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("removing twice: got %v, want not found", err)
	}
}

// TestRevokeOperator: a revoked operator is disconnected within 2 s, its
// reconnects are refused, and so would its requests be.
func TestRevokeOperator(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	if _, err := admin.AdminsAdd(ctx(t), contracts.AdminAddRequest{Name: "alice", Kind: contracts.AdminUser, Key: pub, Roles: []string{contracts.RoleReadOnlyAnalyst}, Collections: []string{"All Systems"}}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	raw := connectKey(t, rs.URL(), kp, "alice", nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	alice := client.New(raw, "LAB", "alice")
	if _, err := alice.TokensList(ctx(t)); err != nil {
		t.Fatalf("alice before the revocation: %v", err)
	}

	start := time.Now()
	got, err := admin.AdminsRevoke(ctx(t), "alice")
	if err != nil || !got.Revoked {
		t.Fatalf("revoke: got %+v, %v", got, err)
	}
	select {
	case <-closed:
	case <-time.After(2*time.Second - time.Since(start)):
		t.Fatal("revoked operator's connection still open after 2s")
	}
	if _, err := nats.Connect(rs.URL(), nats.Nkey(pub, kp.Sign), nats.NoReconnect()); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("reconnect as revoked alice: got %v, want an authorization error", err)
	}
	// The CLI says what happened, not only the server's words.
	seed, _ := kp.Seed()
	path := filepath.Join(t.TempDir(), "alice.nk")
	if err := client.WriteIdentity(path, client.Identity{Site: "LAB", Operator: "alice", Seed: seed}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Connect(context.Background(), client.Options{Server: rs.URL(), Identity: path}); err == nil || !strings.Contains(err.Error(), "site LAB refused this identity (the operator was deleted, or its key revoked") {
		t.Fatalf("the CLI connecting as revoked alice: got %v, want the identity refused, explained", err)
	}
	info, err := admin.AdminsShow(ctx(t), "alice")
	if err != nil || !info.Revoked {
		t.Fatalf("alice after the revocation: got %+v, %v; want listed as revoked", info, err)
	}
	if _, err := admin.AdminsRevoke(ctx(t), "alice"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("revoking twice: got %v, want conflict", err)
	}
	// Deleted, the key is forgotten: it is only an unknown key again.
	if _, err := admin.AdminsDelete(ctx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AdminsShow(ctx(t), "alice"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("alice after delete: got %v, want not found", err)
	}
}

// TestLastFullAdministrator: the site keeps a Full Administrator over All
// Systems; the bootstrap admin may go once another exists.
func TestLastFullAdministrator(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	for _, try := range []struct {
		name string
		do   func() error
	}{
		{"delete", func() error { _, err := admin.AdminsDelete(ctx(t), "admin"); return err }},
		{"revoke", func() error { _, err := admin.AdminsRevoke(ctx(t), "admin"); return err }},
		{"demote", func() error {
			_, err := admin.AdminsUpdate(ctx(t), contracts.AdminUpdateRequest{Name: "admin", RemoveRoles: []string{contracts.RoleFullAdministrator}})
			return err
		}},
		{"narrow to a collection", func() error {
			_, err := admin.AdminsUpdate(ctx(t), contracts.AdminUpdateRequest{Name: "admin", RemoveCollections: []string{contracts.AllSystemsName}})
			return err
		}},
	} {
		if err := try.do(); contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), "last Full Administrator") {
			t.Errorf("%s the last Full Administrator: got %v, want refused", try.name, err)
		}
	}
	erinKey, _ := nkeys.CreateUser()
	erinPub, _ := erinKey.PublicKey()
	if _, err := admin.AdminsAdd(ctx(t), contracts.AdminAddRequest{Name: "erin", Kind: contracts.AdminUser, Key: erinPub, Roles: []string{contracts.RoleFullAdministrator}, Collections: []string{"All Systems"}}); err != nil {
		t.Fatal(err)
	}
	erin := rs.connectOperator(t, erinKey, "erin")
	if _, err := erin.AdminsDelete(ctx(t), "admin"); err != nil {
		t.Fatalf("erin deletes the bootstrap admin: %v", err)
	}
	if _, err := erin.AdminsDelete(ctx(t), "erin"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("erin deletes herself, the last: got %v, want refused", err)
	}
	// The bootstrap admin does not come back with a restart: its key is
	// an unknown key, which may only ask to enroll.
	rs.stop()
	rs2 := startSite(t, rs.dir, rs.listen, "LAB")
	kp := loadKey(t, rs2.AdminIdentity())
	p := newProbe(t, rs2.URL(), kp, "admin")
	if p.canPublish(t, rs2.serviceConn(t), "steward.LAB.op.admin.up.tokens.list") {
		t.Fatal("the deleted bootstrap admin may publish as an operator after a restart")
	}
	erin2 := rs2.connectOperator(t, erinKey, "erin")
	if _, err := erin2.AdminsShow(ctx(t), "admin"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("the bootstrap admin after a restart: got %v, want not found", err)
	}
}

// TestGrantEscalation: nobody gives more than they have.
func TestGrantEscalation(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Web"}); err != nil {
		t.Fatal(err)
	}
	sam := rs.addOperator(t, admin, "sam", []string{contracts.RoleSecurityAdministrator}, []string{"All Systems"})
	wes := rs.addOperator(t, admin, "wes", []string{contracts.RoleSecurityAdministrator}, []string{"Web"})
	add := func(c *client.Client, name string, roles, colls []string) error {
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		_, err := c.AdminsAdd(ctx(t), contracts.AdminAddRequest{Name: name, Kind: contracts.AdminUser, Key: pub, Roles: roles, Collections: colls})
		return err
	}
	cases := []struct {
		name string
		err  error
		text string
	}{
		{"a Security Administrator grants Full Administrator", add(sam, "x1", []string{contracts.RoleFullAdministrator}, []string{"All Systems"}), `sam cannot grant role "Full Administrator"`},
		{"a Security Administrator grants Remote Control", add(sam, "x2", []string{contracts.RoleRemoteToolsOperator}, nil), "Collection:RemoteControl"},
		{"a Web-scoped administrator grants All Systems", add(wes, "x3", []string{contracts.RoleReadOnlyAnalyst}, []string{"All Systems"}), `wes cannot grant collection "All Systems"`},
		{"a Security Administrator demotes a Full Administrator", func() error {
			_, err := sam.AdminsUpdate(ctx(t), contracts.AdminUpdateRequest{Name: "admin", SetDescription: true, Description: "x"})
			return err
		}(), "sam may not change admin"},
		{"a role with more than its maker has", func() error {
			_, err := sam.RolesCopy(ctx(t), contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "Eyes", Add: []string{"Collection:RemoteControl"}})
			return err
		}(), "Collection:RemoteControl"},
	}
	for _, c := range cases {
		if contracts.CodeOf(c.err) != contracts.CodePermissionDenied || !strings.Contains(c.err.Error(), c.text) {
			t.Errorf("%s: got %v, want permission denied containing %q", c.name, c.err, c.text)
		}
	}
	if err := add(sam, "ok1", []string{contracts.RoleReadOnlyAnalyst}, []string{"All Systems"}); err != nil {
		t.Errorf("a Security Administrator grants Read-only Analyst: %v", err)
	}
	if err := add(wes, "ok2", []string{contracts.RoleReadOnlyAnalyst}, []string{"Web"}); err != nil {
		t.Errorf("a Web-scoped administrator grants Web: %v", err)
	}
	// The refused operators were not created.
	for _, n := range []string{"x1", "x2", "x3"} {
		if _, err := admin.AdminsShow(ctx(t), n); contracts.CodeOf(err) != contracts.CodeNotFound {
			t.Errorf("%s after a refused add: got %v, want not found", n, err)
		}
	}
}

// TestUnknownNames: unknown roles, permissions, collections and groups are
// refused with what is valid.
func TestUnknownNames(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	add := func(req contracts.AdminAddRequest) error {
		req.Kind, req.Key = contracts.AdminUser, pub
		_, err := admin.AdminsAdd(ctx(t), req)
		return err
	}
	cases := []struct {
		name string
		err  error
		code contracts.Code
		text string
	}{
		{"role", add(contracts.AdminAddRequest{Name: "x", Roles: []string{"Superuser"}}), contracts.CodeNotFound, `unknown role "Superuser"; roles are: Full Administrator, Read-only Analyst`},
		{"collection", add(contracts.AdminAddRequest{Name: "x", Collections: []string{"Nowhere"}}), contracts.CodeNotFound, `unknown collection "Nowhere"`},
		{"group", add(contracts.AdminAddRequest{Name: "x", MemberOf: []string{"night"}}), contracts.CodeNotFound, `unknown administrator group "night"`},
		{"name", add(contracts.AdminAddRequest{Name: "al.ice"}), contracts.CodeBadRequest, "only letters"},
		{"permission", func() error {
			_, err := admin.RolesCopy(ctx(t), contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "X", Add: []string{"Collection:Teleport"}})
			return err
		}(), contracts.CodeBadRequest, "valid are Read, Create, Modify, Delete, ModifyResource"},
		{"role to copy", func() error {
			_, err := admin.RolesCopy(ctx(t), contracts.RoleCopyRequest{From: "Ghost", Name: "X"})
			return err
		}(), contracts.CodeNotFound, `unknown role "Ghost"`},
		{"administrator", func() error { _, err := admin.AdminsRevoke(ctx(t), "nobody"); return err }(), contracts.CodeNotFound, `no administrator named "nobody"`},
		{"account purpose", func() error { _, err := admin.AccountsList(ctx(t), "coffee"); return err }(), contracts.CodeBadRequest, "network-access"},
	}
	for _, c := range cases {
		if contracts.CodeOf(c.err) != c.code || !strings.Contains(c.err.Error(), c.text) {
			t.Errorf("unknown %s: got %v (%v), want %v containing %q", c.name, c.err, contracts.CodeOf(c.err), c.code, c.text)
		}
	}
	// No identity was left behind by the refused adds: the key is unknown.
	if _, err := admin.AdminsAdd(ctx(t), contracts.AdminAddRequest{Name: "x", Kind: contracts.AdminUser, Key: pub}); err != nil {
		t.Fatalf("adding with the key of the refused adds: %v", err)
	}
	if _, _, err := steward(t, rs, rs.AdminIdentity(), "", "roles", "copy", "Read-only Analyst", "--name", "Y", "--add", "Printer:Read"); err == nil || !strings.Contains(err.Error(), "valid are Collection, ClientSettings") {
		t.Fatalf("the CLI with an unknown object type: got %v, want the valid ones listed", err)
	}
}

// TestAuditTrail: every change to administrators, roles, accounts, tokens
// and clients is an audit event on ADMIN_EVENTS, with who did it.
func TestAuditTrail(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	rs.addOperator(t, admin, "alice", []string{contracts.RoleReadOnlyAnalyst}, []string{"All Systems"})
	steps := []func() error{
		func() error {
			_, err := admin.AdminsUpdate(ctx(t), contracts.AdminUpdateRequest{Name: "alice", AddRoles: []string{contracts.RoleRemoteToolsOperator}})
			return err
		},
		func() error { _, err := admin.AdminsRevoke(ctx(t), "alice"); return err },
		func() error { _, err := admin.AdminsDelete(ctx(t), "alice"); return err },
		func() error {
			_, err := admin.RolesCopy(ctx(t), contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: "Auditor"})
			return err
		},
		func() error {
			_, err := admin.RolesUpdate(ctx(t), contracts.RoleUpdateRequest{Name: "Auditor", Remove: []string{"Account:Read"}})
			return err
		},
		func() error { _, err := admin.RolesDelete(ctx(t), "Auditor"); return err },
		func() error {
			_, err := admin.AccountsAdd(ctx(t), contracts.PurposeSMTP, "mailer", []byte("pw"), false)
			return err
		},
		func() error {
			_, err := admin.AccountsAdd(ctx(t), contracts.PurposeSMTP, "mailer", []byte("pw2"), true)
			return err
		},
		func() error { _, err := admin.AccountsRemove(ctx(t), contracts.PurposeSMTP, "mailer"); return err },
		func() error {
			_, info, err := admin.TokensCreate(ctx(t), time.Hour, 1, "")
			if err == nil {
				_, err = admin.TokensRevoke(ctx(t), info.ID)
			}
			return err
		},
		func() error {
			resp := enrollNamed(t, rs.URL(), "LAB", "", "pending-1")
			_, err := admin.ClientsApprove(ctx(t), resp.ClientID)
			if err == nil {
				_, err = admin.ClientsBlock(ctx(t), resp.ClientID)
			}
			if err == nil {
				_, err = admin.ClientsDelete(ctx(t), resp.ClientID)
			}
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []string{
		contracts.AuditAdminAdded, contracts.AuditAdminChanged, contracts.AuditAdminRevoked, contracts.AuditAdminDeleted,
		contracts.AuditRoleCreated, contracts.AuditRoleChanged, contracts.AuditRoleDeleted,
		contracts.AuditAccountAdded, contracts.AuditAccountReplaced, contracts.AuditAccountRemoved,
		contracts.AuditTokenCreated, contracts.AuditTokenRevoked,
		contracts.AuditClientApproved, contracts.AuditClientBlocked, contracts.AuditClientDeleted,
	}
	var evs []contracts.AuditEvent
	wait(t, 10*time.Second, "every audit event", func() bool {
		evs = auditEvents(t, rs)
		return len(evs) >= len(want)
	})
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Action)
		if ev.By != "admin" || ev.Properties["by"] != "admin" || ev.Target == "" || ev.Object == "" {
			t.Errorf("audit event %s: got by %q target %q object %q, want admin and a target", ev.Action, ev.By, ev.Target, ev.Object)
		}
		if ev.StatusID != 0 {
			def, ok := contracts.LookupStatus(ev.StatusID)
			if !ok || !def.Audit {
				t.Errorf("audit event %s: status ID %d is not an audit entry of the catalog", ev.Action, ev.StatusID)
				continue
			}
			for _, p := range def.Params() {
				if _, ok := ev.Properties[p]; !ok {
					t.Errorf("audit event %s: lacks insertion string %q of status %d", ev.Action, p, ev.StatusID)
				}
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit actions:\ngot  %v\nwant %v", got, want)
	}
}

// TestAccountSecretNeverStored: an account's secret, given to the CLI on
// stdin, is found nowhere in the site's data directory (JetStream files
// included), in the site's logs or in what the CLI printed: not as text,
// not in base64.
func TestAccountSecretNeverStored(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	rs := startSiteLog(t, dir, freePort(t), "LAB", log)
	secrets := []string{"Tr0ub4dor&3-never-written", "correct-horse-battery-staple-42"}
	var printed bytes.Buffer
	for i, args := range [][]string{
		{"accounts", "add", "network-access", `LAB\svc-content`, "--password-stdin"},
		{"accounts", "add", "network-access", `LAB\svc-content`, "--password-stdin", "--replace"},
	} {
		out, errOut, err := steward(t, rs, rs.AdminIdentity(), secrets[i]+"\n", args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut)
		}
		printed.WriteString(out + errOut)
	}
	for _, args := range [][]string{{"accounts", "list"}, {"accounts", "list", "-o", "json"}} {
		out, errOut, err := steward(t, rs, rs.AdminIdentity(), "", args...)
		if err != nil {
			t.Fatal(err)
		}
		printed.WriteString(out + errOut)
	}
	// The site still has what it needs: the secret opens for a client.
	rs.stop()

	forms := func(s string) [][]byte {
		b := []byte(s)
		return [][]byte{b,
			[]byte(base64.StdEncoding.EncodeToString(b)), []byte(base64.RawStdEncoding.EncodeToString(b)),
			[]byte(base64.URLEncoding.EncodeToString(b)), []byte(base64.RawURLEncoding.EncodeToString(b))}
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range secrets {
			for _, f := range forms(s) {
				if bytes.Contains(data, f) {
					t.Errorf("%s holds the secret (as %q)", path, f)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("searched %d files, want the whole data directory", files)
	}
	for name, data := range map[string][]byte{"the site's logs": logs.Bytes(), "the CLI's output": printed.Bytes()} {
		if len(data) == 0 {
			t.Fatalf("%s are empty: the search would prove nothing", name)
		}
		for _, s := range secrets {
			for _, f := range forms(s) {
				if bytes.Contains(data, f) {
					t.Errorf("%s hold the secret (as %q)", name, f)
				}
			}
		}
	}
	if !bytes.Contains(logs.Bytes(), []byte(contracts.AuditAccountReplaced)) {
		t.Error("the logs do not show the account changes at all")
	}
}

// TestExposedIdentityWarning: a seed file others can read gets a warning.
func TestExposedIdentityWarning(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	data, err := os.ReadFile(rs.AdminIdentity())
	if err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(t.TempDir(), "admin.nk")
	if err := os.WriteFile(open, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := steward(t, rs, open, "", "tokens", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "warning: identity file") || !strings.Contains(errOut, "chmod 600") {
		t.Fatalf("stderr: got %q, want a warning about the file's mode", errOut)
	}
	_, errOut, _ = steward(t, rs, rs.AdminIdentity(), "", "tokens", "list")
	if strings.Contains(errOut, "warning") {
		t.Fatalf("a 0600 identity: got %q, want no warning", errOut)
	}
}
