package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/rbac"
)

// enrollNamed enrolls a fresh key as client name (pending without a token)
// and returns the answer.
func enrollNamed(t testing.TB, url, site, token, name string) contracts.EnrollResponse {
	t.Helper()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	nc := connectKey(t, url, kp, pub)
	subj, _ := contracts.Enroll(site, pub)
	req := contracts.EnrollRequest{Header: contracts.NewHeader(contracts.TypeEnrollRequest), Token: token, Name: name, Hostname: name, OS: "linux", Arch: "amd64", AgentVersion: "test", Capability: 1}
	data, _ := json.Marshal(req)
	msg, err := nc.Request(subj, data, 5*time.Second)
	if err != nil {
		t.Fatalf("enroll %s: %v", name, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("enroll %s: error %s %s", name, code, msg.Header.Get(micro.ErrorHeader))
	}
	var resp contracts.EnrollResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	return resp
}

// members returns the client IDs in collection ref.
func members(t testing.TB, c *client.Client, ref string) []string {
	_, list, err := c.CollectionsMembers(ctx(t), ref)
	if err != nil {
		t.Logf("members of %s: %v", ref, err)
		return nil
	}
	var ids []string
	for _, m := range list {
		ids = append(ids, m.ID)
	}
	return ids
}

// purposeOf spreads the table's accounts over the purposes (each holds
// 10): n is the row's sequence number.
func purposeOf(n int) string {
	p := contracts.AccountPurposes()
	return p[n%len(p)]
}

func slug(role string) string { return strings.ToLower(strings.Fields(role)[0]) }

// endpoint is one operator request the table tries.
type endpoint struct {
	name  string
	perm  rbac.Permission
	scope string // "site": not scoped; "every": needs All Systems; "in": a client in Web; "out": a client not in Web
	// prepare makes what the call acts on (as the bootstrap admin); call
	// makes the request as the operator.
	prepare func(t *testing.T, n int) string
	call    func(c *client.Client, target string) error
}

// TestRBACEndpoints runs the authorization table through the real site:
// for every built-in role, an operator over All Systems and one over the
// collection Web; every operator endpoint the site serves today, on a
// target inside and outside Web, with the expected answer.
func TestRBACEndpoints(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	tok := rs.token(t, 1000, time.Hour)
	if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Web", Queries: []string{`name startsWith "web-"`}}); err != nil {
		t.Fatalf("create collection Web: %v", err)
	}
	seq := 0
	next := func() int { seq++; return seq }
	enrolled := func(prefix string) func(t *testing.T, n int) string {
		return func(t *testing.T, n int) string {
			return enrollNamed(t, rs.URL(), "LAB", tok, fmt.Sprintf("%s-%d", prefix, n)).ClientID
		}
	}
	throwawayUser := func(t *testing.T, n int) string {
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		name := fmt.Sprintf("t%d", n)
		if _, err := admin.AdminsAdd(ctx(t), contracts.AdminAddRequest{Name: name, Kind: contracts.AdminUser, Key: pub}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	throwawayRole := func(t *testing.T, n int) string {
		name := fmt.Sprintf("Empty %d", n)
		if _, err := admin.RolesCopy(ctx(t), contracts.RoleCopyRequest{From: contracts.RoleRemoteToolsOperator, Name: name, Remove: []string{"Collection:*", "Session:*", "Site:*", "StatusMessage:*"}}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	none := func(*testing.T, int) string { return "" }
	endpoints := []endpoint{
		{"tokens list", rbac.EnrollmentTokenRead, "site", none, func(c *client.Client, _ string) error { _, err := c.TokensList(ctx(t)); return err }},
		{"tokens create", rbac.EnrollmentTokenCreate, "site", none, func(c *client.Client, _ string) error {
			_, _, err := c.TokensCreate(ctx(t), time.Hour, 1, "")
			return err
		}},
		{"tokens revoke", rbac.EnrollmentTokenDelete, "site", func(t *testing.T, n int) string {
			_, info, err := admin.TokensCreate(ctx(t), time.Hour, 1, "")
			if err != nil {
				t.Fatal(err)
			}
			return info.ID
		}, func(c *client.Client, id string) error { _, err := c.TokensRevoke(ctx(t), id); return err }},
		{"site services", rbac.SiteRead, "site", none, func(c *client.Client, _ string) error { _, err := c.SiteServices(ctx(t)); return err }},
		{"admins list", rbac.AdministratorRead, "site", none, func(c *client.Client, _ string) error { _, err := c.AdminsList(ctx(t)); return err }},
		{"admins show another", rbac.AdministratorRead, "site", none, func(c *client.Client, _ string) error { _, err := c.AdminsShow(ctx(t), "admin"); return err }},
		{"admins add", rbac.AdministratorCreate, "site", func(t *testing.T, n int) string { return fmt.Sprintf("n%d", n) }, func(c *client.Client, name string) error {
			kp, _ := nkeys.CreateUser()
			pub, _ := kp.PublicKey()
			_, err := c.AdminsAdd(ctx(t), contracts.AdminAddRequest{Name: name, Kind: contracts.AdminUser, Key: pub})
			return err
		}},
		{"admins update", rbac.AdministratorModify, "site", throwawayUser, func(c *client.Client, name string) error {
			_, err := c.AdminsUpdate(ctx(t), contracts.AdminUpdateRequest{Name: name, SetDescription: true, Description: "changed"})
			return err
		}},
		{"admins revoke", rbac.AdministratorDelete, "site", throwawayUser, func(c *client.Client, name string) error { _, err := c.AdminsRevoke(ctx(t), name); return err }},
		{"admins delete", rbac.AdministratorDelete, "site", throwawayUser, func(c *client.Client, name string) error { _, err := c.AdminsDelete(ctx(t), name); return err }},
		{"roles list", rbac.SecurityRoleRead, "site", none, func(c *client.Client, _ string) error { _, err := c.RolesList(ctx(t)); return err }},
		{"roles show", rbac.SecurityRoleRead, "site", none, func(c *client.Client, _ string) error {
			_, err := c.RolesShow(ctx(t), contracts.RoleReadOnlyAnalyst)
			return err
		}},
		{"roles copy", rbac.SecurityRoleCreate, "site", func(t *testing.T, n int) string { return fmt.Sprintf("Copy %d", n) }, func(c *client.Client, name string) error {
			_, err := c.RolesCopy(ctx(t), contracts.RoleCopyRequest{From: contracts.RoleReadOnlyAnalyst, Name: name})
			return err
		}},
		{"roles update", rbac.SecurityRoleModify, "site", throwawayRole, func(c *client.Client, name string) error {
			_, err := c.RolesUpdate(ctx(t), contracts.RoleUpdateRequest{Name: name, SetDescription: true, Description: "changed"})
			return err
		}},
		{"roles delete", rbac.SecurityRoleDelete, "site", throwawayRole, func(c *client.Client, name string) error { _, err := c.RolesDelete(ctx(t), name); return err }},
		{"accounts list", rbac.AccountRead, "site", none, func(c *client.Client, _ string) error { _, err := c.AccountsList(ctx(t), ""); return err }},
		{"accounts add", rbac.AccountCreate, "site", func(t *testing.T, n int) string {
			return purposeOf(n) + "|" + fmt.Sprintf(`LAB\svc-%d`, n)
		}, func(c *client.Client, target string) error {
			purpose, name, _ := strings.Cut(target, "|")
			_, err := c.AccountsAdd(ctx(t), purpose, name, []byte("pw"), false)
			return err
		}},
		{"accounts remove", rbac.AccountDelete, "site", func(t *testing.T, n int) string {
			name := fmt.Sprintf(`LAB\old-%d`, n)
			if _, err := admin.AccountsAdd(ctx(t), purposeOf(n), name, []byte("pw"), false); err != nil {
				t.Fatal(err)
			}
			return purposeOf(n) + "|" + name
		}, func(c *client.Client, target string) error {
			purpose, name, _ := strings.Cut(target, "|")
			_, err := c.AccountsRemove(ctx(t), purpose, name)
			return err
		}},
		{"clients approve (pending)", rbac.CollectionModifyResource, "every", func(t *testing.T, n int) string {
			return enrollNamed(t, rs.URL(), "LAB", "", fmt.Sprintf("web-new-%d", n)).ClientID
		}, func(c *client.Client, id string) error { _, err := c.ClientsApprove(ctx(t), id); return err }},
		{"clients block in Web", rbac.CollectionModifyResource, "in", enrolled("web-b"), func(c *client.Client, id string) error { _, err := c.ClientsBlock(ctx(t), id); return err }},
		{"clients block outside Web", rbac.CollectionModifyResource, "out", enrolled("db-b"), func(c *client.Client, id string) error { _, err := c.ClientsBlock(ctx(t), id); return err }},
		{"clients delete in Web", rbac.CollectionDeleteResource, "in", enrolled("web-d"), func(c *client.Client, id string) error { _, err := c.ClientsDelete(ctx(t), id); return err }},
		{"clients delete outside Web", rbac.CollectionDeleteResource, "out", enrolled("db-d"), func(c *client.Client, id string) error { _, err := c.ClientsDelete(ctx(t), id); return err }},
	}

	type row struct {
		op     string
		role   *rbac.Role
		scoped bool
		ep     endpoint
		target string
	}
	var rows []row
	var inWeb []string
	ops := map[string]*client.Client{}
	for _, role := range rbac.BuiltinRoles() {
		for _, scope := range []string{"all", "web"} {
			coll := contracts.AllSystemsName
			if scope == "web" {
				coll = "Web"
			}
			name := slug(role.Name) + "-" + scope
			ops[name] = rs.addOperator(t, admin, name, []string{role.Name}, []string{coll})
			for _, ep := range endpoints {
				target := ep.prepare(t, next())
				if ep.scope == "in" {
					inWeb = append(inWeb, target)
				}
				rows = append(rows, row{op: name, role: role, scoped: scope == "web", ep: ep, target: target})
			}
		}
	}
	// Membership is discovery's, evaluated as the clients' records arrive.
	wait(t, 20*time.Second, fmt.Sprintf("%d clients in Web", len(inWeb)), func() bool {
		got := members(t, admin, "Web")
		for _, id := range inWeb {
			if !slices.Contains(got, id) {
				return false
			}
		}
		return true
	})

	for _, r := range rows {
		c := ops[r.op]
		t.Run(r.op+"/"+r.ep.name, func(t *testing.T) {
			has := r.role.Has(r.ep.perm)
			want := has
			switch r.ep.scope {
			case "every", "out":
				want = has && !r.scoped
			}
			err := r.ep.call(c, r.target)
			if want {
				if err != nil {
					t.Fatalf("%s (%s) %s: got %v, want allowed", r.op, r.role.Name, r.ep.name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s (%s) %s: got allowed, want denied (%s)", r.op, r.role.Name, r.ep.name, r.ep.perm)
			}
			code := contracts.CodeOf(err)
			switch {
			case !has:
				if wantText := fmt.Sprintf("permission denied: %s lacks %s on %s", r.op, r.ep.perm.Action(), r.ep.perm.Object()); err.Error() != wantText || code != contracts.CodePermissionDenied {
					t.Fatalf("%s %s: got %v (%v), want exactly %q", r.op, r.ep.name, err, code, wantText)
				}
			case r.ep.scope == "out":
				// Out of the operator's collections: not even there.
				if code != contracts.CodeNotFound {
					t.Fatalf("%s %s: got %v (%v), want not_found", r.op, r.ep.name, err, code)
				}
			default:
				if code != contracts.CodePermissionDenied || !strings.Contains(err.Error(), "All Systems") {
					t.Fatalf("%s %s: got %v (%v), want permission denied naming All Systems", r.op, r.ep.name, err, code)
				}
			}
		})
	}
}

// auditEvents reads every audit event the site has recorded so far.
func auditEvents(t testing.TB, rs *runningSite) []contracts.AuditEvent {
	t.Helper()
	js, err := jetstream.New(rs.serviceConn(t))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := contracts.AuditSubject("LAB")
	cons, err := js.OrderedConsumer(ctx(t), "ADMIN_EVENTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		t.Fatal(err)
	}
	var out []contracts.AuditEvent
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			var ev contracts.AuditEvent
			if err := contracts.Decode(msg.Data(), contracts.TypeAuditEvent, &ev); err != nil {
				t.Fatalf("audit event: %v", err)
			}
			out = append(out, ev)
		}
		if n == 0 {
			return out
		}
	}
}
