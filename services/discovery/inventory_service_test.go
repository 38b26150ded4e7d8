package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// fullReport is a full inventory report of a Linux web server.
func fullReport(seq uint64) contracts.InventoryReport {
	return contracts.InventoryReport{
		Header: contracts.NewHeader(contracts.TypeInventoryReport),
		Seq:    seq, Full: true, Collected: time.Now().UTC().Truncate(time.Millisecond),
		Inventory: contracts.Inventory{
			OS:       contracts.OSInfo{Name: "Debian GNU/Linux", Version: "12", Family: "linux", Kernel: "6.1.0-18-amd64"},
			Arch:     "amd64",
			CPU:      contracts.CPUInfo{Model: "EPYC", Cores: 4},
			Memory:   contracts.MemoryInfo{Total: 8 << 30},
			Disks:    []contracts.Disk{{Device: "/dev/sda1", Mount: "/", FSType: "ext4", Total: 100 << 30, Free: 60 << 30}},
			Networks: []contracts.NetIface{{Name: "eth0", MAC: "52:54:00:AB:CD:EF", Addrs: []string{"10.1.2.3/24", "fe80::1/64"}}},
			Software: []contracts.Software{{Name: "openssl", Version: "3.0.11", Source: "dpkg"}, {Name: "nginx", Version: "1.22.1", Source: "dpkg"}},
			Users:    []string{"alice"},
			Admins:   []string{"root"},
			Labels:   map[string]string{"role": "web"},
		},
	}
}

// delta is a delta report of the sections in changed.
func delta(seq, base uint64, inv contracts.Inventory, changed ...string) contracts.InventoryReport {
	return contracts.InventoryReport{
		Header: contracts.NewHeader(contracts.TypeInventoryReport),
		Seq:    seq, Base: base, Collected: time.Now().UTC().Truncate(time.Millisecond),
		Inventory: inv, Changed: changed,
	}
}

// item wraps a report as an outbox item with the given ID.
func item(t *testing.T, id string, rep any) contracts.OutboxItem {
	t.Helper()
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return contracts.OutboxItem{ID: id, Type: contracts.TypeInventoryReport, Time: time.Now().UTC(), Data: data}
}

// send sends items as client id's outbox batch and returns the ack.
func (e *env) send(id string, items ...contracts.OutboxItem) contracts.OutboxAck {
	e.t.Helper()
	subj, err := contracts.AgentUp(site, id, contracts.KindInventory)
	if err != nil {
		e.t.Fatal(err)
	}
	var ack contracts.OutboxAck
	batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: items}
	if err := rpc.Call(context.Background(), e.nc, subj, batch, &ack); err != nil {
		e.t.Fatalf("send inventory of %s: %v", id, err)
	}
	return ack
}

func (e *env) inventory(ref string) (contracts.InventoryResponse, error) {
	var resp contracts.InventoryResponse
	err := e.call(contracts.KindInventoryShow, contracts.InventoryRequest{Header: contracts.NewHeader(contracts.TypeInventoryRequest), Ref: ref}, &resp)
	return resp, err
}

func (e *env) history(ref string, since time.Time) []contracts.InventoryChange {
	e.t.Helper()
	var resp contracts.InventoryHistoryResponse
	if err := e.call(contracts.KindInventoryHistory, contracts.InventoryRequest{Header: contracts.NewHeader(contracts.TypeInventoryRequest), Ref: ref, Since: since}, &resp); err != nil {
		e.t.Fatalf("history of %s: %v", ref, err)
	}
	return resp.Changes
}

// enroll creates an approved client record and waits for it.
func (e *env) enroll(id, name string) {
	e.t.Helper()
	e.publishEvent(contracts.ClientEnrolled, client(id, name))
	e.waitRecord(id, "enrolled "+name, func(r record, ok bool) bool { return ok })
	// The record is written before the service's view and the client's
	// membership of All Systems (which scopes what alice sees) catch up:
	// wait until the service answers for the client by name.
	natstest.Wait(e.t, 15*time.Second, name+" known to the service", func() bool {
		_, err := e.inventory(name)
		return err == nil || !strings.Contains(err.Error(), "no client named")
	})
}

// listen subscribes to a client's down subject of kind.
func (e *env) listen(id, kind string) *nats.Subscription {
	e.t.Helper()
	subj, err := contracts.AgentDown(site, id, kind)
	if err != nil {
		e.t.Fatal(err)
	}
	sub, err := e.nc.SubscribeSync(subj)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return sub
}

func nextRefresh(t *testing.T, sub *nats.Subscription) contracts.InventoryRefresh {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no inventory refresh on %s: %v", sub.Subject, err)
	}
	var r contracts.InventoryRefresh
	if err := contracts.Decode(m.Data, contracts.TypeInventoryRefresh, &r); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return r
}

func wantAck(t *testing.T, what string, ack contracts.OutboxAck, stored []string, rejected map[string]contracts.Code) {
	t.Helper()
	if !slices.Equal(ack.Stored, stored) && !(len(ack.Stored) == 0 && len(stored) == 0) {
		t.Errorf("%s: stored %v, want %v", what, ack.Stored, stored)
	}
	got := map[string]contracts.Code{}
	for _, r := range ack.Rejected {
		got[r.ID] = r.Code
	}
	if len(got) != len(rejected) {
		t.Errorf("%s: rejected %+v, want %v", what, ack.Rejected, rejected)
	}
	for id, code := range rejected {
		if got[id] != code {
			t.Errorf("%s: item %s: got code %v, want %v (rejected: %+v)", what, id, got[id], code, ack.Rejected)
		}
	}
}

func TestInventoryFullThenDelta(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	start := time.Now().UTC()

	full := fullReport(1)
	wantAck(t, "full", e.send("c1", item(t, "i1", full)), []string{"i1"}, nil)
	got, err := e.inventory("web-01")
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	if got.Client.ID != "c1" || got.Seq != 1 || !got.Collected.Equal(full.Collected) || got.Received.IsZero() {
		t.Errorf("show: got client %s seq %d collected %v received %v", got.Client.ID, got.Seq, got.Collected, got.Received)
	}
	if fmt.Sprint(got.Inventory) != fmt.Sprint(full.Inventory) {
		t.Errorf("show: got %+v, want %+v", got.Inventory, full.Inventory)
	}

	// A delta of the software section only, then the same item again (a
	// resend after a lost ack) and a report older than the stored one.
	var d contracts.Inventory
	d.Software = []contracts.Software{{Name: "openssl", Version: "3.0.13", Source: "dpkg"}, {Name: "curl", Version: "7.88.1", Source: "dpkg"}}
	rep2 := delta(2, 1, d, "software")
	// Collected later than the full report, even within its millisecond
	// (history "since the first report" counts what came after it).
	rep2.Collected = full.Collected.Add(time.Millisecond)
	wantAck(t, "delta", e.send("c1", item(t, "i2", rep2)), []string{"i2"}, nil)
	wantAck(t, "resend", e.send("c1", item(t, "i2", rep2), item(t, "i1", full)), []string{"i2", "i1"}, nil)

	got, _ = e.inventory("c1")
	if got.Seq != 2 || !slices.Equal(got.Inventory.Software, d.Software) || got.Inventory.OS != full.Inventory.OS || len(got.Inventory.Disks) != 1 {
		t.Errorf("after the delta: got seq %d, software %v, os %v; want seq 2, the delta's software, the full report's os", got.Seq, got.Inventory.Software, got.Inventory.OS)
	}

	// History: the first report, then what the delta changed, once.
	h := e.history("web-01", time.Time{})
	var lines []string
	for _, c := range h {
		lines = append(lines, fmt.Sprintf("%d %s %s %s %s>%s", c.Seq, c.Section, c.Change, c.Item, c.From, c.To))
	}
	want := []string{
		"1 inventory added first inventory >",
		"2 software added curl >7.88.1",
		"2 software removed nginx 1.22.1>",
		"2 software changed openssl 3.0.11>3.0.13",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("history:\n got %q\nwant %q", lines, want)
	}
	if h[1].Time != rep2.Collected {
		t.Errorf("change time: got %v, want the report's collection time %v", h[1].Time, rep2.Collected)
	}
	if got := e.history("web-01", start.Add(-time.Hour)); len(got) != 4 {
		t.Errorf("history since an hour ago: got %d changes, want 4", len(got))
	}
	if got := e.history("web-01", rep2.Collected); len(got) != 0 {
		t.Errorf("history since the last report: got %v, want none", got)
	}
	if got := e.history("web-01", full.Collected); len(got) != 3 {
		t.Errorf("history since the first report: got %d changes, want 3", len(got))
	}

	// Errors of show.
	if _, err := e.inventory("nope"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("show of an unknown client: got %v, want not_found", err)
	}
	e.enroll("c2", "db-01")
	if _, err := e.inventory("db-01"); contracts.CodeOf(err) != contracts.CodeNotFound || !strings.Contains(err.Error(), "not reported") {
		t.Errorf("show of a client without inventory: got %v, want not_found", err)
	}
}

// TestInventoryIdentityFromSubject: the client is the subject's. A payload
// that names another client (a field the report does not have, but an agent
// could add) is stored under the subject's client all the same.
func TestInventoryIdentityFromSubject(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	e.enroll("c2", "db-01")
	rep := fullReport(1)
	data, _ := json.Marshal(rep)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	m["clientId"], m["client"] = "c2", map[string]string{"id": "c2"}
	wantAck(t, "report claiming c2", e.send("c1", item(t, "i1", m)), []string{"i1"}, nil)
	if got, err := e.inventory("c1"); err != nil || got.Client.ID != "c1" {
		t.Errorf("c1: got %+v, %v; want the report", got.Client, err)
	}
	if _, err := e.inventory("c2"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("c2: got %v, want no inventory", err)
	}
}

func TestInventoryBadReports(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")

	malformed := contracts.OutboxItem{ID: "m1", Type: contracts.TypeInventoryReport, Time: time.Now(), Data: json.RawMessage(`{"type":"steward.v1.inventory_report","seq":"one"}`)}
	wrongType := item(t, "m2", fullReport(1))
	wrongType.Type = contracts.TypeHeartbeat
	wrongInner := fullReport(1)
	wrongInner.Type = contracts.TypeHeartbeat
	noSeq := fullReport(0)
	badDelta := delta(3, 3, contracts.Inventory{}, "os")
	huge := fullReport(1)
	huge.Inventory.Labels = map[string]string{"blob": strings.Repeat("x", maxReportBytes)}
	tooMany := fullReport(1)
	for i := range maxSoftware + 1 {
		tooMany.Inventory.Software = append(tooMany.Inventory.Software, contracts.Software{Name: fmt.Sprint("p", i)})
	}
	longString := fullReport(1)
	longString.Inventory.OS.Name = strings.Repeat("n", maxString+1)

	ack := e.send("c1", malformed, wrongType, item(t, "m3", wrongInner), item(t, "m4", noSeq), item(t, "m5", badDelta), item(t, "m7", longString))
	wantAck(t, "bad reports", ack, nil, map[string]contracts.Code{
		"m1": contracts.CodeBadRequest, "m2": contracts.CodeBadRequest, "m3": contracts.CodeBadRequest,
		"m4": contracts.CodeBadRequest, "m5": contracts.CodeBadRequest, "m7": contracts.CodeTooLarge,
	})
	wantAck(t, "oversized", e.send("c1", item(t, "m6", huge)), nil, map[string]contracts.Code{"m6": contracts.CodeTooLarge})
	wantAck(t, "too many packages", e.send("c1", item(t, "m8", tooMany)), nil, map[string]contracts.Code{"m8": contracts.CodeTooLarge})
	if _, err := e.inventory("c1"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("after bad reports only: got %v, want no inventory", err)
	}

	// A client the site has no record of yet: left in the outbox (neither
	// stored nor refused), stored once the record exists.
	ack = e.send("c9", item(t, "g1", fullReport(1)))
	wantAck(t, "unknown client", ack, nil, nil)
	e.enroll("c9", "late-09")
	wantAck(t, "unknown client, resent", e.send("c9", item(t, "g1", fullReport(1))), []string{"g1"}, nil)
}

func TestInventoryDeltaWithoutBaseAsksForFull(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	sub := e.listen("c1", contracts.KindInventoryRefresh)

	// The site has nothing: it stores the delta's section and asks for a
	// full report.
	var d contracts.Inventory
	d.Labels = map[string]string{"role": "db"}
	wantAck(t, "delta without base", e.send("c1", item(t, "d1", delta(5, 4, d, "labels", "future-section"))), []string{"d1"}, nil)
	if r := nextRefresh(t, sub); !r.Full {
		t.Errorf("refresh: got %+v, want a full report asked for", r)
	}
	got, err := e.inventory("c1")
	if err != nil || got.Seq != 5 || got.Inventory.Labels["role"] != "db" {
		t.Errorf("partial inventory: got %+v, %v", got, err)
	}

	// The full report arrives; a delta on it needs nothing more.
	wantAck(t, "full", e.send("c1", item(t, "f6", fullReport(6))), []string{"f6"}, nil)
	wantAck(t, "delta on the full", e.send("c1", item(t, "d7", delta(7, 6, d, "labels"))), []string{"d7"}, nil)
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("a refresh after a delta on its base: %s", m.Data)
	}
	// A delta on a base the site never got (a lost report) asks again.
	wantAck(t, "delta on a gap", e.send("c1", item(t, "d9", delta(9, 8, d, "labels"))), []string{"d9"}, nil)
	if r := nextRefresh(t, sub); !r.Full {
		t.Errorf("refresh after a gap: got %+v, want full", r)
	}
}

func TestInventoryRefreshAndDelete(t *testing.T) {
	e, _ := newEnv(t)
	e.enroll("c1", "web-01")
	sub := e.listen("c1", contracts.KindInventoryRefresh)
	var resp contracts.ClientResponse
	if err := e.call(contracts.KindInventoryRefreshOp, contracts.InventoryRequest{Header: contracts.NewHeader(contracts.TypeInventoryRequest), Ref: "web-01"}, &resp); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if resp.Client.ID != "c1" {
		t.Errorf("refresh answered %+v, want c1", resp.Client)
	}
	if r := nextRefresh(t, sub); r.Full {
		t.Errorf("operator refresh: got %+v, want a delta (full false)", r)
	}
	e.publishEvent(contracts.ClientQueued, client("c2", "lap-02"))
	e.waitRecord("c2", "pending", func(r record, ok bool) bool { return ok })
	// The service answers from its view, which follows the bucket a moment
	// later: wait for the answer, not for the bucket.
	var err error
	natstest.Wait(t, 15*time.Second, "refresh of a pending client refused", func() bool {
		err = e.call(contracts.KindInventoryRefreshOp, contracts.InventoryRequest{Header: contracts.NewHeader(contracts.TypeInventoryRequest), Ref: "lap-02"}, &resp)
		return contracts.CodeOf(err) != contracts.CodeNotFound
	})
	if contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("refresh of a pending client: got %v, want bad_request", err)
	}

	// Deleting the client forgets its inventory and history.
	wantAck(t, "full", e.send("c1", item(t, "i1", fullReport(1))), []string{"i1"}, nil)
	if _, ok, _ := e.svcInventory("c1"); !ok || e.historyCount("c1") != 1 {
		t.Fatalf("before the deletion: got no inventory or history")
	}
	e.publishEvent(contracts.ClientDeleted, client("c1", "web-01"))
	e.waitRecord("c1", "deleted", func(r record, ok bool) bool { return !ok })
	natstest.Wait(t, 15*time.Second, "inventory and history purged", func() bool {
		_, ok, _ := e.svcInventory("c1")
		return !ok && e.historyCount("c1") == 0
	})
}

// svcInventory reads the inventory bucket directly: ok false when absent.
func (e *env) svcInventory(id string) (storedInventory, bool, error) {
	kv, err := e.js.KeyValue(context.Background(), InventoryBucket)
	if err != nil {
		return storedInventory{}, false, err
	}
	en, err := kv.Get(context.Background(), id)
	if err != nil {
		return storedInventory{}, false, nil
	}
	var inv storedInventory
	return inv, true, json.Unmarshal(en.Value(), &inv)
}

func (e *env) historyCount(id string) uint64 {
	e.t.Helper()
	st, err := e.js.Stream(context.Background(), HistoryStream)
	if err != nil {
		e.t.Fatal(err)
	}
	subj, _ := contracts.InventorySubject(site, id)
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

// TestInventoryOfDeletedClient: clients are deleted while their inventory
// reports are being stored. The record was checked once before the write,
// so a write after the deletion's purge (a retry's Create) stored the
// deleted client's inventory and history again, for good.
func TestInventoryOfDeletedClient(t *testing.T) {
	e, s := newEnv(t)
	const n = 40
	for i := range n {
		id := fmt.Sprint("c", i)
		e.enroll(id, "n"+id)
		wantAck(t, "full", e.send(id, item(t, "f"+id, fullReport(1))), []string{"f" + id}, nil)
	}
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprint("c", i)
		wg.Go(func() {
			for seq := uint64(2); seq < 40; seq++ {
				d := fullReport(seq)
				d.Inventory.Labels = map[string]string{"role": fmt.Sprint(seq)}
				e.send(id, item(t, fmt.Sprint("g", id, "-", seq), d))
			}
		})
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
			e.publishEvent(contracts.ClientDeleted, client(id, "n"+id))
		})
	}
	wg.Wait()
	for i := range n {
		e.waitRecord(fmt.Sprint("c", i), "deleted", func(r record, ok bool) bool { return !ok })
	}
	time.Sleep(500 * time.Millisecond)
	var orphans []string
	for i := range n {
		id := fmt.Sprint("c", i)
		_, err := s.invKV.Get(context.Background(), id)
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			orphans = append(orphans, id)
		}
	}
	if len(orphans) > 0 {
		t.Errorf("%d deleted clients still have a stored inventory: %v", len(orphans), orphans)
	}
}
