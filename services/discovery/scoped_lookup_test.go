package discovery

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
)

type scopedSource struct{ m atomic.Pointer[rbac.Model] }

func (s *scopedSource) Model() *rbac.Model { return s.m.Load() }

// TestScopedLookupHidesOthers: a client sam may not read is answered as not
// found, exactly like a missing one, also when its name collides with one
// sam may read: the lookup ran over every client before the scope check,
// and its ambiguity error named the hidden client's ID and name.
func TestScopedLookupHidesOthers(t *testing.T) {
	srv := natstest.Start(t)
	e := &env{t: t, srv: srv, nc: natstest.Connect(t, srv), clock: natstest.NewClock(time.Now().UTC())}
	e.js = newJS(t, e.nc)
	createAdminStream(t, e.js)
	t0 := time.Now().UTC()
	admin := func(name string, roles []string, colls ...contracts.Named) rbac.Admin {
		return rbac.Admin{Name: name, Kind: contracts.AdminUser, Key: "U" + strings.ToUpper(name), Roles: roles, Collections: colls, Created: t0, CreatedBy: "test"}
	}
	alice := admin("alice", []string{contracts.RoleFullAdministrator}, rbac.AllSystems)
	src := &scopedSource{}
	m, err := rbac.NewModel(rbac.Document{Schema: 1, Admins: []rbac.Admin{alice}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	src.m.Store(m)
	startService(t, Config{NC: natstest.Connect(t, srv), Now: e.clock.Now, Authz: src})
	e.enroll("c1", "web-01")
	e.enroll("secret-db-7f3a", "WEB-01") // outside sam's scope
	web, err := e.create(contracts.CollectionCreateRequest{Name: "Web", Queries: []string{`name startsWith "web-"`}})
	if err != nil {
		t.Fatal(err)
	}
	sam := admin("sam", []string{contracts.RoleReadOnlyAnalyst}, contracts.Named{ID: web.ID, Name: "Web"})
	m, err = rbac.NewModel(rbac.Document{Schema: 1, Admins: []rbac.Admin{alice, sam}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	src.m.Store(m)
	e.waitMembers(5*time.Second, "Web", "web-01")

	subj, _ := contracts.OpUp(site, "sam", contracts.KindClientsShow)
	var resp contracts.ClientResponse
	err = rpc.Call(context.Background(), e.nc, subj, contracts.ClientRequest{Header: contracts.NewHeader(contracts.TypeClientRequest), Ref: "secret-db-7f3a"}, &resp)
	if contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("hidden client by id: got %v, want not_found", err)
	}
	err = rpc.Call(context.Background(), e.nc, subj, contracts.ClientRequest{Header: contracts.NewHeader(contracts.TypeClientRequest), Ref: "web-01"}, &resp)
	if err != nil || resp.Client.ID != "c1" {
		t.Errorf("sam (scoped to Web) asking for web-01: got %+v, %v; want web-01 alone (the hidden WEB-01 is not a match for sam)", resp.Client, err)
	}
	isubj, _ := contracts.OpUp(site, "sam", contracts.KindInventoryShow)
	var inv contracts.InventoryResponse
	err = rpc.Call(context.Background(), e.nc, isubj, contracts.InventoryRequest{Header: contracts.NewHeader(contracts.TypeInventoryRequest), Ref: "WEB-01"}, &inv)
	if err != nil && strings.Contains(err.Error(), "secret-db-7f3a") {
		t.Errorf("sam's inventory show of WEB-01 names the hidden client: %v", err)
	}
}
