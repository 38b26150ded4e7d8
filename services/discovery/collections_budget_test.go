package discovery

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// A collection stored by another instance with an include of a collection
// deleted at the same moment is in error; an inventory matching its query
// arrives; the operator removes the dangling include. Its query is
// evaluated again: the client is a member.
func TestStaleQueriesAfterErrorClears(t *testing.T) {
	e, s := newEnv(t)
	e.enroll("c1", "web-01")
	gone := uuid.NewString()
	rec := collectionRecord{ID: uuid.NewString(), Name: "Web", Queries: []string{`labels.role == "web"`}, Include: []string{gone}}
	data, _ := json.Marshal(rec)
	if _, err := s.collKV.Create(context.Background(), rec.ID, data); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 5*time.Second, "collection applied", func() bool {
		info, err := e.collection(contracts.KindCollectionsShow, "Web")
		return err == nil && info.Error != ""
	})
	// web-01 reports labels role=web.
	wantAck(t, "full", e.send("c1", item(t, "f1", fullReport(1))), []string{"f1"}, nil)
	natstest.Wait(t, 5*time.Second, "inventory applied", func() bool {
		s.model.mu.RLock()
		defer s.model.mu.RUnlock()
		return s.model.invs["c1"] != nil
	})
	if _, err := e.update(contracts.CollectionUpdateRequest{Ref: "Web", DelInclude: []string{gone}}); err != nil {
		t.Fatal(err)
	}
	info, _ := e.collection(contracts.KindCollectionsShow, "Web")
	if got := e.members("Web"); !slices.Equal(got, []string{"web-01"}) || info.Error != "" {
		t.Errorf("members of Web (query labels.role == \"web\", error %q): %v, want [web-01] and no error", info.Error, got)
	}
}

// A query that would cost a client more than a query's budget is refused
// when the collection is created, saying where; one that fits is
// evaluated over the members of the collection's limit.
func TestExpensiveQueryRefused(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	e.enroll("c2", "db-01")
	e.waitMembers(5*time.Second, contracts.AllSystemsName, "db-01", "web-01")
	for _, q := range []string{
		`len(sortBy(map(1..900000, {string(-#)}), #)) > 0`,
		`len(sortBy(map(1..90000, {string(-#)}), #)) > 0`,
		`any(software, any(software, any(software, .name == "x")))`,
	} {
		_, err := e.create(contracts.CollectionCreateRequest{Name: "Heavy", Queries: []string{`name == "x"`, q}})
		if contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), "query 2: line 1, column ") {
			t.Errorf("create with %s: got %v, want bad_request naming query 2's place", q, err)
		}
	}
	if _, err := e.collection(contracts.KindCollectionsShow, "Heavy"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("a refused collection is shown: %v", err)
	}
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "Pilot", Queries: []string{`name == "web-01"`}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "Pilot web", Limit: "Pilot", Queries: []string{`any(software, .name == "openssl" && versionCompare(.version, "3.0.13") < 0) || name != ""`}}); err != nil {
		t.Fatal(err)
	}
	e.waitMembers(5*time.Second, "Pilot web", "web-01")
}
