package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

func (e *env) create(req contracts.CollectionCreateRequest) (contracts.CollectionInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeCollectionCreateRequest)
	var resp contracts.CollectionResponse
	err := e.call(contracts.KindCollectionsCreate, req, &resp)
	return resp.Collection, err
}

func (e *env) update(req contracts.CollectionUpdateRequest) (contracts.CollectionInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeCollectionUpdateRequest)
	var resp contracts.CollectionResponse
	err := e.call(contracts.KindCollectionsUpdate, req, &resp)
	return resp.Collection, err
}

func (e *env) collection(kind, ref string) (contracts.CollectionInfo, error) {
	var resp contracts.CollectionResponse
	err := e.call(kind, contracts.CollectionRequest{Header: contracts.NewHeader(contracts.TypeCollectionRequest), Ref: ref}, &resp)
	return resp.Collection, err
}

// members returns the names of a collection's members.
func (e *env) members(ref string) []string {
	e.t.Helper()
	var resp contracts.CollectionMembersResponse
	if err := e.call(contracts.KindCollectionsMembers, contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: ref}, &resp); err != nil {
		e.t.Fatalf("members of %s: %v", ref, err)
	}
	names := []string{}
	for _, m := range resp.Members {
		names = append(names, m.Name)
	}
	return names
}

func (e *env) waitMembers(within time.Duration, ref string, want ...string) {
	e.t.Helper()
	if want == nil {
		want = []string{}
	}
	var got []string
	natstest.Wait(e.t, within, fmt.Sprintf("members of %s to be %v (last: %v)", ref, want, got), func() bool {
		got = e.members(ref)
		return slices.Equal(got, want)
	})
}

// membershipEvents reads every event of DISCOVERY_EVENTS.
func (e *env) membershipEvents() []contracts.MembershipChanged {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, DiscoveryEventsStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []contracts.MembershipChanged
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		var ev contracts.MembershipChanged
		if err := contracts.Decode(m.Data, contracts.TypeMembershipChanged, &ev); err != nil {
			e.t.Fatalf("event %d: %v", seq, err)
		}
		out = append(out, ev)
	}
	return out
}

// eventLines renders events as "collection +added -removed (cause)".
func eventLines(evs []contracts.MembershipChanged) []string {
	var out []string
	for _, ev := range evs {
		l := ev.Collection.Name
		for _, a := range ev.Added {
			l += " +" + a
		}
		for _, r := range ev.Removed {
			l += " -" + r
		}
		out = append(out, l+" ("+ev.Cause+")")
	}
	return out
}

func TestCollectionsCRUDAndBadInput(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	e.enroll("c2", "db-01")

	// All Systems is there from the start.
	var list contracts.CollectionListResponse
	if err := e.call(contracts.KindCollectionsList, contracts.CollectionListRequest{Header: contracts.NewHeader(contracts.TypeCollectionListRequest)}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Collections) != 1 || list.Collections[0].ID != contracts.AllSystemsID || !list.Collections[0].BuiltIn {
		t.Fatalf("list on a new site: got %+v, want All Systems", list.Collections)
	}
	e.waitMembers(time.Second, contracts.AllSystemsName, "db-01", "web-01")

	lw, err := e.create(contracts.CollectionCreateRequest{Name: "Linux web", Description: "web servers", Queries: []string{`os.family == "linux" && name startsWith "web-"`}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if lw.Limit.ID != contracts.AllSystemsID || lw.Limit.Name != contracts.AllSystemsName || lw.CreatedBy != "alice" || lw.Revision == 0 || lw.Created.IsZero() {
		t.Errorf("created: got %+v", lw)
	}
	// The records' OS (from enrollment) stands in until an inventory comes.
	e.waitMembers(time.Second, "Linux web", "web-01")

	pilot, err := e.create(contracts.CollectionCreateRequest{Name: "Pilot"})
	if err != nil {
		t.Fatalf("create Pilot: %v", err)
	}
	servers, err := e.create(contracts.CollectionCreateRequest{Name: "Servers", Queries: []string{`name startsWith "db-"`}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot", AddDirect: []string{"db-01"}}); err != nil {
		t.Fatalf("add direct member: %v", err)
	}
	e.waitMembers(time.Second, "Pilot", "db-01")
	p, err := e.update(contracts.CollectionUpdateRequest{Ref: "pilot", AddInclude: []string{"Linux web"}, AddExclude: []string{"Servers"}})
	if err != nil {
		t.Fatalf("include and exclude: %v", err)
	}
	if len(p.Include) != 1 || p.Include[0].Name != "Linux web" || len(p.Exclude) != 1 || p.Exclude[0].ID != servers.ID || len(p.Direct) != 1 || p.Direct[0].Name != "db-01" {
		t.Errorf("Pilot: got %+v", p.Collection)
	}
	if p.MemberCount != 1 {
		t.Errorf("Pilot count: got %d, want 1 (web-01; db-01 excluded)", p.MemberCount)
	}
	e.waitMembers(time.Second, "Pilot", "web-01")

	// Bad input, each refused with its code and a reason.
	bad := []struct {
		name string
		do   func() error
		code contracts.Code
		msg  string
	}{
		{"query that does not compile", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "X", Queries: []string{`os.family == "linux" &&`}})
			return err
		}, contracts.CodeBadRequest, "line 1, column"},
		{"unknown field", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "X", Queries: []string{`os.family == "linux" && nme startsWith "web-"`}})
			return err
		}, contracts.CodeBadRequest, "query 1: line 1, column 25: unknown name nme"},
		{"unknown nested field", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "X", Queries: []string{"true", "cpu.speed > 2"}})
			return err
		}, contracts.CodeBadRequest, "query 2: line 1, column 5"},
		{"not a bool", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "X", Queries: []string{`cpu.cores`}})
			return err
		}, contracts.CodeBadRequest, "expected bool"},
		{"duplicate name", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "linux WEB"})
			return err
		}, contracts.CodeConflict, "exists"},
		{"the built-in name", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "All Systems"})
			return err
		}, contracts.CodeConflict, "built-in"},
		{"bad name", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "tab\there"})
			return err
		}, contracts.CodeBadRequest, "control character"},
		{"unknown limit", func() error {
			_, err := e.create(contracts.CollectionCreateRequest{Name: "X", Limit: "Nope"})
			return err
		}, contracts.CodeNotFound, `no collection named or with id "Nope"`},
		{"unknown client", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot", AddDirect: []string{"ghost"}})
			return err
		}, contracts.CodeNotFound, "client"},
		{"limited by itself", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot", Limit: "Pilot"})
			return err
		}, contracts.CodeBadRequest, "cannot be limited by itself"},
		{"includes itself", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Servers", AddInclude: []string{"Servers"}})
			return err
		}, contracts.CodeBadRequest, "cannot include itself"},
		{"cycle", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Linux web", Limit: "Pilot"})
			return err
		}, contracts.CodeBadRequest, `cycle: "Linux web" is limited by "Pilot", which includes "Linux web"`},
		{"both included and excluded", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot", AddInclude: []string{"Servers"}})
			return err
		}, contracts.CodeBadRequest, "both included and excluded"},
		{"remove what is not there", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot", DelInclude: []string{"Servers"}})
			return err
		}, contracts.CodeBadRequest, "is not included"},
		{"stale revision", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot", Revision: pilot.Revision, Description: "x"})
			return err
		}, contracts.CodeConflict, "changed since revision"},
		{"change All Systems", func() error {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "All Systems", Description: "x"})
			return err
		}, contracts.CodeBadRequest, "built in"},
		{"delete All Systems", func() error {
			_, err := e.collection(contracts.KindCollectionsDelete, contracts.AllSystemsID)
			return err
		}, contracts.CodeBadRequest, "built in"},
		{"delete what others use", func() error {
			_, err := e.collection(contracts.KindCollectionsDelete, "Servers")
			return err
		}, contracts.CodeConflict, `"Servers" is used by "Pilot" (excludes it)`},
		{"empty ref", func() error {
			_, err := e.collection(contracts.KindCollectionsShow, "")
			return err
		}, contracts.CodeBadRequest, "required"},
		{"preview of nothing", func() error {
			var resp contracts.CollectionPreviewResponse
			return e.call(contracts.KindCollectionsPreview, contracts.CollectionPreviewRequest{Header: contracts.NewHeader(contracts.TypeCollectionPreviewRequest)}, &resp)
		}, contracts.CodeBadRequest, "needs a query"},
	}
	for _, b := range bad {
		err := b.do()
		if contracts.CodeOf(err) != b.code || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("%s: got %v (%v), want %v containing %q", b.name, err, contracts.CodeOf(err), b.code, b.msg)
		}
	}

	// Limited by another collection; renamed; updated; shown.
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "Pilot DB", Limit: "Servers", Queries: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	e.waitMembers(time.Second, "Pilot DB", "db-01")
	if _, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot DB", Name: "DB pilot", SetQueries: true, Queries: []string{`name == "nope"`}}); err != nil {
		t.Fatal(err)
	}
	e.waitMembers(time.Second, "DB pilot")
	got, err := e.collection(contracts.KindCollectionsShow, "db PILOT")
	if err != nil || got.Limit.Name != "Servers" || !slices.Equal(got.Queries, []string{`name == "nope"`}) || got.UpdatedBy != "alice" {
		t.Errorf("show: got %+v, %v", got, err)
	}

	// Deleting in the right order works; a deleted collection is gone.
	if _, err := e.update(contracts.CollectionUpdateRequest{Ref: "Pilot", DelExclude: []string{servers.ID}}); err != nil {
		t.Fatalf("remove the exclude rule by id: %v", err)
	}
	for _, name := range []string{"DB pilot", "Servers"} {
		del, err := e.collection(contracts.KindCollectionsDelete, name)
		if err != nil || del.Name != name {
			t.Fatalf("delete %s: got %+v, %v", name, del, err)
		}
	}
	if _, err := e.collection(contracts.KindCollectionsShow, "Servers"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("show of a deleted collection: got %v, want not_found", err)
	}
	e.waitMembers(time.Second, "Pilot", "db-01", "web-01")

	// Preview: who would match, before creating.
	var prev contracts.CollectionPreviewResponse
	err = e.call(contracts.KindCollectionsPreview, contracts.CollectionPreviewRequest{Header: contracts.NewHeader(contracts.TypeCollectionPreviewRequest),
		Queries: []string{`name endsWith "-01"`}, Exclude: []string{"Linux web"}}, &prev)
	if err != nil || prev.Total != 1 || len(prev.Members) != 1 || prev.Members[0].Name != "db-01" {
		t.Errorf("preview: got %+v, %v; want db-01", prev, err)
	}
	err = e.call(contracts.KindCollectionsPreview, contracts.CollectionPreviewRequest{Header: contracts.NewHeader(contracts.TypeCollectionPreviewRequest), Queries: []string{`nme == 1`}}, &prev)
	if contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), "line 1, column 1") {
		t.Errorf("preview of a bad query: got %v", err)
	}
}

// TestIncrementalMembership: an inventory change moves the client in and
// out of exactly the collections it affects, within a second of the
// report, and publishes one event per change.
func TestIncrementalMembership(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	e.enroll("c2", "web-02")
	e.enroll("c3", "db-01")
	for i, id := range []string{"c1", "c2", "c3"} {
		wantAck(t, "full "+id, e.send(id, item(t, fmt.Sprint("f", i), fullReport(1))), []string{fmt.Sprint("f", i)}, nil)
	}
	mk := func(req contracts.CollectionCreateRequest) {
		t.Helper()
		if _, err := e.create(req); err != nil {
			t.Fatalf("create %s: %v", req.Name, err)
		}
	}
	mk(contracts.CollectionCreateRequest{Name: "Linux web", Queries: []string{`os.family == "linux" && name startsWith "web-"`}})
	mk(contracts.CollectionCreateRequest{Name: "Old OpenSSL", Queries: []string{`any(software, .name == "openssl" && versionCompare(.version, "3.0.13") < 0)`}})
	mk(contracts.CollectionCreateRequest{Name: "Big", Queries: []string{`memory.total >= 16 * 1024 * 1024 * 1024`}})
	mk(contracts.CollectionCreateRequest{Name: "Patched web", Include: []string{"Linux web"}, Exclude: []string{"Old OpenSSL"}})
	mk(contracts.CollectionCreateRequest{Name: "Subnet", Queries: []string{`any(ips, inSubnet(#, "10.1.0.0/16"))`}})
	e.waitMembers(time.Second, "Linux web", "web-01", "web-02")
	e.waitMembers(time.Second, "Old OpenSSL", "db-01", "web-01", "web-02")
	e.waitMembers(time.Second, "Patched web")
	e.waitMembers(time.Second, "Subnet", "db-01", "web-01", "web-02")

	// All Systems gained each client; Linux web, Old OpenSSL and Subnet
	// their members (Big and Patched web have none).
	natstest.Wait(t, 15*time.Second, "six events", func() bool { return len(e.membershipEvents()) == 6 })
	before := len(e.membershipEvents())

	// web-01 upgrades openssl: it leaves "Old OpenSSL" and so joins
	// "Patched web"; nothing else changes.
	var d contracts.Inventory
	d.Software = []contracts.Software{{Name: "openssl", Version: "3.0.13"}, {Name: "nginx", Version: "1.22.1"}}
	wantAck(t, "delta", e.send("c1", item(t, "d1", delta(2, 1, d, "software"))), []string{"d1"}, nil)
	e.waitMembers(time.Second, "Patched web", "web-01")
	e.waitMembers(time.Second, "Old OpenSSL", "db-01", "web-02")
	var evs []contracts.MembershipChanged
	natstest.Wait(t, 15*time.Second, "two events", func() bool { evs = e.membershipEvents()[before:]; return len(evs) >= 2 })
	want := []string{"Old OpenSSL -c1 (inventory)", "Patched web +c1 (inventory)"}
	if got := eventLines(evs); !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}

	// A heartbeat changes no query field: no event. Changing the name
	// does.
	e.heartbeat("c3", contracts.Heartbeat{Name: "db-01", OS: "linux"})
	e.heartbeat("c2", contracts.Heartbeat{Name: "app-02", OS: "linux"})
	e.waitMembers(time.Second, "Linux web", "web-01")
	natstest.Wait(t, 15*time.Second, "the rename's event", func() bool { return len(e.membershipEvents()) == before+3 })
	if got := eventLines(e.membershipEvents()[before+2:]); !slices.Equal(got, []string{"Linux web -c2 (client)"}) {
		t.Errorf("rename events: got %v", got)
	}

	// Blocking a client takes it out of everything.
	e.publishEvent(contracts.ClientBlockedE, client("c3", "db-01"))
	e.waitMembers(time.Second, contracts.AllSystemsName, "app-02", "web-01")
	e.waitMembers(time.Second, "Subnet", "app-02", "web-01")

	// A definition change re-evaluates that collection and its dependants.
	if _, err := e.update(contracts.CollectionUpdateRequest{Ref: "Linux web", SetQueries: true, Queries: []string{`os.family == "linux"`}}); err != nil {
		t.Fatal(err)
	}
	e.waitMembers(time.Second, "Linux web", "app-02", "web-01")
	e.waitMembers(time.Second, "Patched web", "web-01") // app-02 still has the old openssl
}

// TestTwoInstancesCollections: two instances share the buckets. A
// collection created through one is served by both, memberships agree,
// and each membership change is in the stream once although both
// evaluated it.
func TestTwoInstancesCollections(t *testing.T) {
	e, _ := newEnv(t)
	startService(t, Config{NC: natstest.Connect(t, e.srv), Now: e.clock.Now, Log: quietLog()})
	for i := range 6 {
		e.enroll(fmt.Sprint("c", i), fmt.Sprintf("web-%02d", i))
		wantAck(t, "full", e.send(fmt.Sprint("c", i), item(t, fmt.Sprint("f", i), fullReport(1))), []string{fmt.Sprint("f", i)}, nil)
	}
	// Create then immediately use, many times: each request may land on
	// either instance.
	for i := range 6 {
		name := fmt.Sprint("Coll ", i)
		if _, err := e.create(contracts.CollectionCreateRequest{Name: name, Queries: []string{fmt.Sprintf(`name == "web-%02d"`, i)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.update(contracts.CollectionUpdateRequest{Ref: name, AddDirect: []string{"web-05"}}); err != nil {
			t.Fatalf("update right after create: %v", err)
		}
		if i < 5 {
			for range 4 { // both instances answer the same
				if got := e.members(name); !slices.Equal(got, []string{fmt.Sprintf("web-%02d", i), "web-05"}) {
					t.Fatalf("members of %s: got %v", name, got)
				}
			}
		}
	}
	// Concurrent updates through both instances lose nothing.
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			_, err := e.update(contracts.CollectionUpdateRequest{Ref: "Coll 0", AddDirect: []string{fmt.Sprintf("web-%02d", i%5)}})
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent update: %v", err)
		}
	}
	e.waitMembers(time.Second, "Coll 0", "web-00", "web-01", "web-02", "web-03", "web-04", "web-05")

	// Every membership change once: All Systems gaining each client, each
	// collection's creation, web-05 added to the first five (Coll 5 held
	// it already), the four more of Coll 0.
	const want = 6 + 6 + 5 + 4
	natstest.Wait(t, 15*time.Second, "events", func() bool { return len(e.membershipEvents()) >= want })
	evs := e.membershipEvents()
	seen := map[string]int{}
	for _, l := range eventLines(evs) {
		seen[l]++
	}
	for l, n := range seen {
		if n > 1 {
			t.Errorf("event %q stored %d times", l, n)
		}
	}
	if len(evs) != want {
		t.Errorf("got %d events, want one per change:\n%s", len(evs), strings.Join(eventLines(evs), "\n"))
	}
}

// TestMembershipAfterRestart: a new instance rebuilds memberships from the
// buckets.
func TestMembershipAfterRestart(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	wantAck(t, "full", e.send("c1", item(t, "f1", fullReport(1))), []string{"f1"}, nil)
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "Web", Queries: []string{`labels.role == "web"`}}); err != nil {
		t.Fatal(err)
	}
	s2 := startService(t, Config{NC: natstest.Connect(t, e.srv), Now: e.clock.Now, Log: quietLog()})
	s2.model.mu.RLock()
	defer s2.model.mu.RUnlock()
	id, err := s2.model.findCollection("Web")
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := s2.model.eng.Members(id); !slices.Equal(ids, []string{"c1"}) {
		t.Errorf("members on a new instance: got %v, want [c1]", ids)
	}
}

func TestMembersPaging(t *testing.T) {
	e, _ := newEnv(t)
	for i := range 7 {
		e.enroll(fmt.Sprint("c", i), fmt.Sprintf("n%d", i))
	}
	e.waitMembers(time.Second, contracts.AllSystemsName, "n0", "n1", "n2", "n3", "n4", "n5", "n6")
	var names []string
	offset := 0
	for pages := 0; ; pages++ {
		var resp contracts.CollectionMembersResponse
		err := e.call(contracts.KindCollectionsMembers, contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: contracts.AllSystemsID, Offset: offset, Max: 3}, &resp)
		if err != nil || resp.Total != 7 || pages > 3 {
			t.Fatalf("page at %d: got %+v, %v", offset, resp, err)
		}
		for _, m := range resp.Members {
			names = append(names, m.Name)
		}
		if resp.Next == 0 {
			break
		}
		offset = resp.Next
	}
	if !slices.Equal(names, []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6"}) {
		t.Errorf("paged members: got %v", names)
	}
	var check contracts.CollectionMembersResponse
	err := e.call(contracts.KindCollectionsMembers, contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: contracts.AllSystemsID,
		Clients: []string{"c3", "ghost", "c1"}}, &check)
	if err != nil || check.Total != 2 || len(check.Members) != 2 || check.Members[0].ID != "c1" || check.Members[1].ID != "c3" {
		t.Errorf("membership check: got %+v, %v; want c1 and c3", check, err)
	}
	var resp contracts.CollectionMembersResponse
	err = e.call(contracts.KindCollectionsMembers, contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: contracts.AllSystemsID, Offset: 50}, &resp)
	if err != nil || resp.Members == nil || len(resp.Members) != 0 {
		data, _ := json.Marshal(resp)
		t.Errorf("past the end: got %s, %v; want an empty list", data, err)
	}
}

// TestMembersPageBounds: an offset past the end, up to the largest int,
// is an empty page (offset+page overflowed and the slice panicked, which
// took down every service of the site's process).
func TestMembersPageBounds(t *testing.T) {
	e, s := newEnv(t)
	e.enroll("c1", "web-01")
	e.enroll("c2", "web-02")
	e.waitMembers(5*time.Second, contracts.AllSystemsName, "web-01", "web-02")
	from := contracts.SubjectInfo{Site: site, Space: "op", Principal: "alice"}
	for _, c := range []struct{ offset, max, want, next int }{{0, 1, 1, 1}, {1, 1, 1, 0}, {2, 1, 0, 0}, {math.MaxInt, 0, 0, 0}, {math.MaxInt - 1, 5, 0, 0}} {
		req := &contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: contracts.AllSystemsID, Offset: c.offset, Max: c.max}
		if err := req.Validate(); err != nil {
			t.Fatal(err)
		}
		resp, err := s.collectionMembers(context.Background(), from, req)
		if err != nil {
			t.Fatalf("offset %d: %v", c.offset, err)
		}
		if len(resp.Members) != c.want || resp.Next != c.next || resp.Total != 2 || resp.Members == nil {
			t.Fatalf("offset %d max %d: got %d members, next %d, total %d; want %d, next %d", c.offset, c.max, len(resp.Members), resp.Next, resp.Total, c.want, c.next)
		}
	}
}

// TestCollectionNamesAcrossInstances: two instances creating one name at
// once store one collection, the other is refused (each checked its own
// model, found the name free and stored a collection of it); a rename to a
// name being created is refused the same way; a delete or rename gives the
// old name back.
func TestCollectionNamesAcrossInstances(t *testing.T) {
	e, s1 := newEnv(t)
	s2 := startService(t, Config{NC: natstest.Connect(t, e.srv), Now: e.clock.Now, Log: quietLog()})
	from := contracts.SubjectInfo{Site: site, Space: "op", Principal: "alice"}
	for i := range 10 {
		name := fmt.Sprint("Dup ", i)
		req := &contracts.CollectionCreateRequest{Header: contracts.NewHeader(contracts.TypeCollectionCreateRequest), Name: name, Queries: []string{`true`}}
		errs := make(chan error, 2)
		for _, s := range []*Service{s1, s2} {
			go func() { _, err := s.collectionCreate(context.Background(), from, req); errs <- err }()
		}
		var ok, refused int
		for range 2 {
			switch err := <-errs; {
			case err == nil:
				ok++
			case contracts.CodeOf(err) == contracts.CodeConflict:
				refused++
			default:
				t.Fatalf("create %q: %v", name, err)
			}
		}
		if ok != 1 || refused != 1 {
			t.Fatalf("create %q on two instances at once: %d stored, %d refused; want 1 and 1", name, ok, refused)
		}
		if _, err := e.collection(contracts.KindCollectionsShow, name); err != nil {
			t.Fatalf("show %q: %v", name, err)
		}
	}
	// A rename and a create of one name at once: one of them.
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "Old", Queries: []string{`true`}}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		_, err := s1.collectionUpdate(context.Background(), from, &contracts.CollectionUpdateRequest{Header: contracts.NewHeader(contracts.TypeCollectionUpdateRequest), Ref: "Old", Name: "Taken"})
		errs <- err
	}()
	go func() {
		_, err := s2.collectionCreate(context.Background(), from, &contracts.CollectionCreateRequest{Header: contracts.NewHeader(contracts.TypeCollectionCreateRequest), Name: "taken", Queries: []string{`true`}})
		errs <- err
	}()
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("rename to Taken and create taken at once: %v and %v; want one refused", e1, e2)
	}
	// Names given back: by a delete, by a rename.
	if _, err := e.update(contracts.CollectionUpdateRequest{Ref: "Dup 0", Name: "Renamed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "dup 0", Queries: []string{`true`}}); err != nil {
		t.Fatalf("create the name a rename gave back: %v", err)
	}
	del := &contracts.CollectionRequest{Header: contracts.NewHeader(contracts.TypeCollectionRequest), Ref: "Dup 1"}
	if _, err := s1.collectionDelete(context.Background(), from, del); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(contracts.CollectionCreateRequest{Name: "Dup 1", Queries: []string{`true`}}); err != nil {
		t.Fatalf("create the name a delete gave back: %v", err)
	}
}
