package discovery

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
)

// TestCollectionDeleteAsksKeepers: before deleting a collection discovery
// asks the services that keep collections by ID. A use refuses the delete,
// naming it; a keeper that runs and fails stops it (nothing deleted); a
// keeper that does not run names nothing.
func TestCollectionDeleteAsksKeepers(t *testing.T) {
	e, _ := newEnv(t)
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "Lab"}); err != nil {
		t.Fatal(err)
	}
	subj, _ := contracts.Svc(site, "steward-policy", contracts.SvcCollectionUses)
	var fail atomic.Bool
	sub, err := e.nc.Subscribe(subj, func(m *nats.Msg) {
		if fail.Load() {
			r := nats.NewMsg(m.Reply)
			r.Header.Set(micro.ErrorHeader, "the settings catalog cannot be read")
			r.Header.Set(micro.ErrorCodeHeader, contracts.CodeUnavailable.String())
			_ = m.RespondMsg(r)
			return
		}
		var req contracts.CollectionUsesRequest
		_ = json.Unmarshal(m.Data, &req)
		b, _ := json.Marshal(contracts.CollectionUsesResponse{Header: contracts.NewHeader(contracts.TypeCollectionUsesResponse), Uses: []string{`settings "Base" are deployed to it`}})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.collection(contracts.KindCollectionsDelete, "Lab"); contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), `settings "Base" are deployed to it`) {
		t.Fatalf("delete of a collection in use: %v, want conflict naming the use", err)
	}
	fail.Store(true)
	if _, err := e.collection(contracts.KindCollectionsDelete, "Lab"); contracts.CodeOf(err) != contracts.CodeUnavailable || !strings.Contains(err.Error(), "nothing deleted") {
		t.Fatalf("delete while a keeper fails: %v, want unavailable", err)
	}
	if _, err := e.collection(contracts.KindCollectionsShow, "Lab"); err != nil {
		t.Fatalf("the collection after refused deletes: %v", err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.collection(contracts.KindCollectionsDelete, "Lab"); err != nil {
		t.Fatalf("delete with no keeper running: %v", err)
	}
}
