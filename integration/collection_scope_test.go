package integration

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// TestCollectionScope: an operator scoped to collections cannot widen
// them (a collection's members are within its limit, and only an operator
// holding the limit may change the rules), and lists only the collections
// it may read.
func TestCollectionScope(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	tok := rs.token(t, 10, time.Hour)
	if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Web", Queries: []string{`name startsWith "web-"`}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Pilot", Limit: "Web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Finance", Queries: []string{`name startsWith "db-"`}}); err != nil {
		t.Fatal(err)
	}
	webID := enrollNamed(t, rs.URL(), "LAB", tok, "web-01").ClientID
	dbID := enrollNamed(t, rs.URL(), "LAB", tok, "db-01").ClientID
	wait(t, 20*time.Second, "web-01 in Web", func() bool { return slices.Contains(members(t, admin, "Web"), webID) })

	dan := rs.addOperator(t, admin, "dan", []string{contracts.RoleOperationsAdministrator}, []string{"Web", "Pilot"})
	nobody := rs.addOperator(t, admin, "nobody", nil, []string{contracts.AllSystemsName})

	// Web is limited by All Systems, which dan does not hold: he may
	// rename it, not change who is in it.
	for what, req := range map[string]contracts.CollectionUpdateRequest{
		"add db-01 directly":   {Ref: "Web", AddDirect: []string{dbID}},
		"query everything":     {Ref: "Web", SetQueries: true, Queries: []string{"true"}},
		"include Finance":      {Ref: "Web", AddInclude: []string{"Finance"}},
		"limit by All Systems": {Ref: "Pilot", Limit: contracts.AllSystemsName},
	} {
		_, err := dan.CollectionsUpdate(ctx(t), req)
		if contracts.CodeOf(err) != contracts.CodePermissionDenied || !strings.Contains(err.Error(), "All Systems") {
			t.Errorf("dan: %s: got %v, want permission denied naming All Systems", what, err)
		}
	}
	if _, err := dan.CollectionsUpdate(ctx(t), contracts.CollectionUpdateRequest{Ref: "Web", Description: "the web farm"}); err != nil {
		t.Errorf("dan renames Web's description: %v", err)
	}
	// Pilot is limited by Web: dan may change its rules, and what he adds
	// stays within Web.
	if _, err := dan.CollectionsUpdate(ctx(t), contracts.CollectionUpdateRequest{Ref: "Pilot", AddDirect: []string{webID, dbID}}); err != nil {
		t.Fatalf("dan adds to Pilot: %v", err)
	}
	wait(t, 20*time.Second, "web-01 in Pilot", func() bool { return slices.Contains(members(t, admin, "Pilot"), webID) })
	if got := members(t, admin, "Pilot"); slices.Contains(got, dbID) {
		t.Errorf("db-01 is in Pilot (%v): outside its limit, Web", got)
	}
	if _, err := dan.ClientsBlock(ctx(t), dbID); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("dan blocks db-01: got %v, want not_found", err)
	}
	if got := members(t, admin, "Web"); slices.Contains(got, dbID) {
		t.Errorf("db-01 is in Web: %v", got)
	}

	// The list: dan sees his collections; nobody (no role) sees nothing.
	list, err := dan.CollectionsList(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"Pilot", "Web"}) {
		t.Errorf("dan's collections list: %v, want [Pilot Web]", names)
	}
	if _, err := nobody.CollectionsList(ctx(t)); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Errorf("collections list without Collection:Read: got %v, want permission denied", err)
	}
	if list, err := admin.CollectionsList(ctx(t)); err != nil || len(list) != 4 || list[0].ID != contracts.AllSystemsID {
		t.Errorf("the administrator's list: %d collections (%v), want All Systems and 3 more", len(list), err)
	}

	// Every change of a collection is audited, naming who made it.
	if _, err := admin.CollectionsDelete(ctx(t), "Finance"); err != nil {
		t.Fatal(err)
	}
	want := map[int]string{contracts.StatusCollectionCreated: "admin", contracts.StatusCollectionChanged: "dan", contracts.StatusCollectionDeleted: "admin"}
	wait(t, 20*time.Second, "the collections' audit messages", func() bool {
		resp, err := admin.StatusList(ctx(t), contracts.StatusListRequest{Filter: contracts.StatusFilter{AuditOnly: true, MsgIDs: []int{2010, 2011, 2012}}})
		if err != nil {
			return false
		}
		seen := map[int]bool{}
		for _, m := range resp.Messages {
			if m.Properties["by"] == want[m.MsgID] {
				seen[m.MsgID] = true
			}
		}
		return len(seen) == 3
	})
	// A scoped operator's checks read the collections while they change
	// (run with -race: the check once read them without the lock).
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 10 {
			if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: fmt.Sprintf("Churn %d", i), Limit: "Web"}); err != nil {
				t.Errorf("create Churn %d: %v", i, err)
			}
		}
	})
	for range 10 {
		if _, err := dan.CollectionsUpdate(ctx(t), contracts.CollectionUpdateRequest{Ref: "Pilot", AddDirect: []string{webID}}); err != nil {
			t.Errorf("dan updates Pilot while collections change: %v", err)
		}
	}
	wg.Wait()
}
