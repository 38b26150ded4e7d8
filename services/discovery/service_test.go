package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

const site = "LAB"

// createAdminStream creates ADMIN_EVENTS as the admin service does.
func createAdminStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	subj, err := contracts.EventAll(site, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
		Name:     EventsStream,
		Subjects: []string{subj},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("create %s: %v", EventsStream, err)
	}
}

func newJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startService runs a discovery instance until the test ends.
func startService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Site == "" {
		cfg.Site = site
	}
	if cfg.Log == nil {
		cfg.Log = quietLog()
	}
	if cfg.Authz == nil {
		cfg.NoAuthz = true // authorization is tested end to end in integration/
	}
	cfg.NoStatusMessages = true // no status service here
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if runErr != nil {
			t.Errorf("Run: %v", runErr)
		}
	})
	select {
	case <-s.Ready():
	case <-done:
		t.Fatalf("Run returned before ready")
	case <-time.After(10 * time.Second):
		t.Fatal("discovery not ready after 10s")
	}
	return s
}

type env struct {
	t     *testing.T
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	clock *natstest.Clock
}

// newEnv starts a server with the admin stream and one discovery instance.
func newEnv(t *testing.T) (*env, *Service) {
	srv := natstest.Start(t)
	e := &env{t: t, srv: srv, nc: natstest.Connect(t, srv), clock: natstest.NewClock(time.Now().UTC())}
	e.js = newJS(t, e.nc)
	createAdminStream(t, e.js)
	s := startService(t, Config{NC: natstest.Connect(t, srv), Now: e.clock.Now, SweepEvery: 10 * time.Millisecond})
	return e, s
}

func (e *env) publishEvent(action string, c contracts.Client) {
	e.t.Helper()
	subj, err := contracts.Event(site, "admin", "client")
	if err != nil {
		e.t.Fatal(err)
	}
	data, _ := json.Marshal(contracts.ClientEvent{Header: contracts.NewHeader(contracts.TypeClientEvent), Action: action, Client: c, By: "alice"})
	if _, err := e.js.Publish(context.Background(), subj, data); err != nil {
		e.t.Fatalf("publish event: %v", err)
	}
}

func (e *env) heartbeat(id string, hb contracts.Heartbeat) {
	e.t.Helper()
	subj, err := contracts.AgentUp(site, id, contracts.KindHeartbeat)
	if err != nil {
		e.t.Fatal(err)
	}
	hb.Header = contracts.NewHeader(contracts.TypeHeartbeat)
	if hb.Interval == 0 {
		hb.Interval = contracts.Duration(time.Minute)
	}
	data, _ := json.Marshal(hb)
	if err := e.nc.Publish(subj, data); err != nil {
		e.t.Fatal(err)
	}
}

// record reads the bucket directly.
func (e *env) record(id string) (record, bool) {
	e.t.Helper()
	kv, err := e.js.KeyValue(context.Background(), Bucket)
	if err != nil {
		e.t.Fatal(err)
	}
	en, err := kv.Get(context.Background(), id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(en.Value(), &r); err != nil {
		e.t.Fatal(err)
	}
	return r, true
}

// waitRecord waits until the record of id satisfies cond.
func (e *env) waitRecord(id, what string, cond func(r record, ok bool) bool) record {
	e.t.Helper()
	var r record
	natstest.Wait(e.t, 15*time.Second, what, func() bool {
		var ok bool
		r, ok = e.record(id)
		return cond(r, ok)
	})
	return r
}

func (e *env) call(kind string, req, resp any) error {
	subj, err := contracts.OpUp(site, "alice", kind)
	if err != nil {
		e.t.Fatal(err)
	}
	return rpc.Call(context.Background(), e.nc, subj, req, resp)
}

func (e *env) list(status string) []contracts.Client {
	e.t.Helper()
	var resp contracts.ClientListResponse
	if err := e.call(contracts.KindClientsList, contracts.ClientListRequest{Header: contracts.NewHeader(contracts.TypeClientListRequest), Status: status}, &resp); err != nil {
		e.t.Fatalf("list: %v", err)
	}
	return resp.Clients
}

func (e *env) show(ref string) (contracts.Client, error) {
	var resp contracts.ClientResponse
	err := e.call(contracts.KindClientsShow, contracts.ClientRequest{Header: contracts.NewHeader(contracts.TypeClientRequest), Ref: ref}, &resp)
	return resp.Client, err
}

func client(id, name string) contracts.Client {
	return contracts.Client{ID: id, Name: name, Hostname: name + ".lab", OS: "linux", Arch: "amd64", AgentVersion: "0.1.0", Capability: 1, Key: "U" + id}
}

func TestEventsKeepRecords(t *testing.T) {
	e, _ := newEnv(t)

	e.publishEvent(contracts.ClientEnrolled, client("c1", "web-01"))
	r := e.waitRecord("c1", "enrolled record", func(r record, ok bool) bool { return ok })
	if r.Status != contracts.ClientApproved || r.Name != "web-01" || r.Key != "Uc1" || r.FirstSeen.IsZero() || r.Online {
		t.Errorf("enrolled: got %+v", r.Client)
	}
	first := r.FirstSeen

	e.publishEvent(contracts.ClientQueued, client("c2", "lap-01"))
	e.waitRecord("c2", "queued record pending", func(r record, ok bool) bool { return ok && r.Status == contracts.ClientPending })
	e.publishEvent(contracts.ClientAdmitted, client("c2", "lap-01"))
	e.waitRecord("c2", "approved", func(r record, ok bool) bool { return ok && r.Status == contracts.ClientApproved })

	e.heartbeat("c1", contracts.Heartbeat{Name: "web-01", Hostname: "web-01.lab", OS: "linux", Arch: "amd64", AgentVersion: "0.1.0", Capability: 1})
	e.waitRecord("c1", "online", func(r record, ok bool) bool { return r.Online })
	e.publishEvent(contracts.ClientBlockedE, client("c1", "web-01"))
	r = e.waitRecord("c1", "blocked", func(r record, ok bool) bool { return r.Status == contracts.ClientBlocked })
	if r.Online || !r.FirstSeen.Equal(first) {
		t.Errorf("blocked: online %v, first seen %v; want offline, %v", r.Online, r.FirstSeen, first)
	}

	e.publishEvent(contracts.ClientDeleted, client("c2", "lap-01"))
	e.waitRecord("c2", "deleted", func(r record, ok bool) bool { return !ok })

	// Every event is acked: nothing is left pending on the consumer.
	natstest.Wait(t, 15*time.Second, "consumer drained", func() bool {
		ci, err := e.js.Consumer(context.Background(), EventsStream, ConsumerName)
		if err != nil {
			return false
		}
		info, err := ci.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream == 5
	})
}

func TestMalformedEventIsDropped(t *testing.T) {
	e, _ := newEnv(t)
	subj, _ := contracts.Event(site, "admin", "client")
	if _, err := e.js.Publish(context.Background(), subj, []byte(`{"type":"steward.v1.client_event","action":"exploded","client":{"id":"c9"}}`)); err != nil {
		t.Fatal(err)
	}
	// The bad event must not block the one after it (MaxAckPending is 1).
	e.publishEvent(contracts.ClientEnrolled, client("c1", "web-01"))
	e.waitRecord("c1", "the next event applied", func(r record, ok bool) bool { return ok })
	if _, ok := e.record("c9"); ok {
		t.Error("malformed event created a record")
	}
}

func TestStreamCreatedAfterDiscovery(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js := newJS(t, nc)
	startService(t, Config{NC: natstest.Connect(t, srv), Log: quietLog()})
	e := &env{t: t, srv: srv, nc: nc, js: js}

	createAdminStream(t, js) // the admin service starts later
	e.publishEvent(contracts.ClientEnrolled, client("c1", "web-01"))
	e.waitRecord("c1", "record from an event on the late stream", func(r record, ok bool) bool { return ok })
}

func TestHeartbeat(t *testing.T) {
	e, _ := newEnv(t)
	e.publishEvent(contracts.ClientEnrolled, client("c1", "web-01"))
	e.waitRecord("c1", "enrolled", func(r record, ok bool) bool { return ok })

	e.heartbeat("c1", contracts.Heartbeat{Name: "web-01", Hostname: "web-01.new", OS: "linux", Arch: "arm64", AgentVersion: "0.2.0", Capability: 2, Interval: contracts.Duration(30 * time.Second)})
	r := e.waitRecord("c1", "online", func(r record, ok bool) bool { return r.Online })
	if !r.LastSeen.Equal(e.clock.Now()) {
		t.Errorf("LastSeen = %v, want the site clock %v", r.LastSeen, e.clock.Now())
	}
	if r.Hostname != "web-01.new" || r.Arch != "arm64" || r.AgentVersion != "0.2.0" || r.Capability != 2 || time.Duration(r.Interval) != 30*time.Second {
		t.Errorf("got %+v, want the heartbeat's facts", r)
	}

	// The client is the subject's, whatever the payload says; a client
	// without a record is ignored.
	e.heartbeat("ghost", contracts.Heartbeat{Name: "web-01"})
	e.heartbeat("c1", contracts.Heartbeat{Name: "web-01", AgentVersion: "0.3.0"})
	e.waitRecord("c1", "second heartbeat", func(r record, ok bool) bool { return r.AgentVersion == "0.3.0" })
	if _, ok := e.record("ghost"); ok {
		t.Error("heartbeat of an unknown client created a record")
	}
}

func TestSweeperMarksOffline(t *testing.T) {
	e, _ := newEnv(t)
	e.publishEvent(contracts.ClientEnrolled, client("c1", "web-01"))
	e.waitRecord("c1", "enrolled", func(r record, ok bool) bool { return ok })
	iv := 20 * time.Second
	e.heartbeat("c1", contracts.Heartbeat{Name: "web-01", Interval: contracts.Duration(iv)})
	e.waitRecord("c1", "online", func(r record, ok bool) bool { return r.Online })

	e.clock.Add(3*iv + time.Second)
	e.waitRecord("c1", "offline after three missed heartbeats", func(r record, ok bool) bool { return !r.Online })

	e.heartbeat("c1", contracts.Heartbeat{Name: "web-01", Interval: contracts.Duration(iv)})
	e.waitRecord("c1", "online again", func(r record, ok bool) bool { return r.Online })
}

func TestListAndShow(t *testing.T) {
	e, _ := newEnv(t)
	if got := e.list(""); got == nil || len(got) != 0 {
		t.Errorf("empty site: got %#v, want []", got)
	}
	e.publishEvent(contracts.ClientEnrolled, client("c3", "web"))
	e.publishEvent(contracts.ClientQueued, client("c2", "db"))
	e.publishEvent(contracts.ClientEnrolled, client("c1", "web"))
	e.publishEvent(contracts.ClientEnrolled, client("c0", "app"))
	var got []contracts.Client
	natstest.Wait(t, 15*time.Second, "four clients listed", func() bool { got = e.list(""); return len(got) == 4 })
	var order []string
	for _, c := range got {
		order = append(order, c.Name+"/"+c.ID)
	}
	if fmt.Sprint(order) != "[app/c0 db/c2 web/c1 web/c3]" {
		t.Errorf("order %v, want [app/c0 db/c2 web/c1 web/c3]", order)
	}
	if p := e.list(contracts.ClientPending); len(p) != 1 || p[0].ID != "c2" {
		t.Errorf("pending: got %v, want c2", p)
	}
	var resp contracts.ClientListResponse
	err := e.call(contracts.KindClientsList, contracts.ClientListRequest{Header: contracts.NewHeader(contracts.TypeClientListRequest), Status: "gone"}, &resp)
	if contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("bad status: got %v, want bad_request", err)
	}

	if c, err := e.show("c2"); err != nil || c.Name != "db" {
		t.Errorf("show by id: got %v, %v", c, err)
	}
	if c, err := e.show("APP"); err != nil || c.ID != "c0" {
		t.Errorf("show by name: got %v, %v", c, err)
	}
	if _, err := e.show("web"); contracts.CodeOf(err) != contracts.CodeAmbiguous {
		t.Errorf("ambiguous: got %v, want ambiguous", err)
	}
	if _, err := e.show("nope"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("missing: got %v, want not_found", err)
	}
	var sresp contracts.ClientResponse
	if err := e.call(contracts.KindClientsShow, contracts.ClientRequest{Header: contracts.NewHeader(contracts.TypeClientRequest)}, &sresp); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("empty ref: got %v, want bad_request", err)
	}
}

// TestTwoInstances runs two instances against one bucket and hits every
// record from both sides at once: identity events through the shared
// consumer, heartbeats through the shared queue group. No update may be lost.
func TestTwoInstances(t *testing.T) {
	e, _ := newEnv(t)
	startService(t, Config{NC: natstest.Connect(t, e.srv), Now: e.clock.Now, Log: quietLog()})

	const n = 30
	id := func(i int) string { return fmt.Sprintf("c%02d", i) }
	for i := range n {
		e.publishEvent(contracts.ClientQueued, client(id(i), id(i)))
	}
	for i := range n {
		e.waitRecord(id(i), "queued", func(r record, ok bool) bool { return ok })
	}
	for i := range n {
		e.publishEvent(contracts.ClientAdmitted, client(id(i), id(i)))
		for v := range 5 {
			e.heartbeat(id(i), contracts.Heartbeat{Name: id(i), Hostname: fmt.Sprintf("h%d", v), AgentVersion: "0.2.0"})
		}
	}
	for i := range n {
		// A lost update (a heartbeat overwriting the approval, or the
		// reverse) would never satisfy this.
		e.waitRecord(id(i), "approved and heartbeated", func(r record, ok bool) bool {
			return r.Status == contracts.ClientApproved && r.Online && r.AgentVersion == "0.2.0"
		})
	}

	// Both instances served heartbeats (the queue group spread them).
	stats := servedHeartbeats(t, e.nc)
	if len(stats) != 2 {
		t.Fatalf("got %d instances, want 2", len(stats))
	}
	for _, s := range stats {
		if s == 0 {
			t.Errorf("an instance served no heartbeat: %v", stats)
		}
	}
}

// servedHeartbeats asks every instance ($SRV.STATS) how many heartbeats it
// handled.
func servedHeartbeats(t *testing.T, nc *nats.Conn) []int {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.STATS."+ServiceName, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []int
	for {
		m, err := sub.NextMsg(500 * time.Millisecond)
		if err != nil {
			return out
		}
		var st struct {
			Endpoints []struct {
				Name     string `json:"name"`
				Requests int    `json:"num_requests"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		for _, ep := range st.Endpoints {
			if ep.Name == "heartbeat" {
				out = append(out, ep.Requests)
			}
		}
	}
}
