package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/admin"
)

func loadKey(t testing.TB, path string) nkeys.KeyPair {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		t.Fatalf("key %s: %v", path, err)
	}
	return kp
}

// TestBusIsolation: two agents enroll; each key reaches only its own
// subjects; an unknown key reaches only enrollment; an operator only its own.
func TestBusIsolation(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	op := rs.operator(t)
	tok := rs.token(t, 2, time.Hour)
	a := startAgent(t, rs.URL(), tok, t.TempDir(), "alpha")
	b := startAgent(t, rs.URL(), tok, t.TempDir(), "bravo")
	wait(t, 15*time.Second, "both agents enrolled", func() bool { return a.ClientID() != "" && b.ClientID() != "" })
	waitOnline(t, op, a.ClientID(), true)
	waitOnline(t, op, b.ClientID(), true)
	A, B := a.ClientID(), b.ClientID()
	svc := rs.serviceConn(t)

	aKey := loadKey(t, seedOf(t, a.dir))
	unknown, _ := nkeys.CreateUser()
	unknownPub, _ := unknown.PublicKey()
	otherUnknown, _ := nkeys.CreateUser()
	otherUnknownPub, _ := otherUnknown.PublicKey()
	adminKey := loadKey(t, rs.AdminIdentity())

	type row struct {
		sub     bool   // a subscription (else a publish)
		subject string // what is published or subscribed
		sample  string // for subscriptions: what the service publishes
		allowed bool
	}
	principals := []struct {
		name  string
		kp    nkeys.KeyPair
		inbox string
		rows  []row
	}{
		{"agent A", aKey, A, []row{
			{false, "steward.LAB.agent." + A + ".up.heartbeat", "", true},
			{false, "steward.LAB.agent." + A + ".up.anything.else", "", true},
			{true, "steward.LAB.agent." + A + ".down.>", "steward.LAB.agent." + A + ".down.x", true},
			{true, "_INBOX." + A + ".>", "_INBOX." + A + ".r1", true},
			{false, "steward.LAB.agent." + B + ".up.heartbeat", "", false},
			{true, "steward.LAB.agent." + B + ".up.>", "steward.LAB.agent." + B + ".up.heartbeat", false},
			{true, "steward.LAB.agent." + B + ".down.>", "steward.LAB.agent." + B + ".down.x", false},
			{false, "steward.LAB.agent." + B + ".down.x", "", false},
			{true, ">", "probe.any", false},
			{true, "_INBOX.>", "_INBOX.someone.r1", false},
			{true, "_INBOX." + B + ".>", "_INBOX." + B + ".r1", false},
			{false, "$JS.API.INFO", "", false},
			{true, "$JS.API.>", "$JS.API.PROBE", false},
			{true, "$SYS.>", "$SYS.PROBE", false},
			{false, "$SYS.REQ.SERVER.PING", "", false},
			{false, "steward.LAB.svc.admin.probe", "", false},
			{true, "steward.LAB.svc.>", "steward.LAB.svc.admin.probe", false},
			{true, "steward.LAB.event.>", "steward.LAB.event.admin.client", false},
			{false, "steward.LAB.event.admin.client", "", false},
			{false, "steward.LAB.op.admin.up.clients.list", "", false},
			{true, "steward.LAB.op.admin.down.>", "steward.LAB.op.admin.down.x", false},
			{true, "steward.LAB.agent.*.up.heartbeat", "steward.LAB.agent." + B + ".up.heartbeat", false},
		}},
		{"unknown key", unknown, unknownPub, []row{
			{false, "steward.LAB.enroll." + unknownPub, "", true},
			{true, "_INBOX." + unknownPub + ".>", "_INBOX." + unknownPub + ".r1", true},
			{false, "steward.LAB.enroll." + otherUnknownPub, "", false},
			{false, "steward.LAB.agent." + A + ".up.heartbeat", "", false},
			{true, "steward.LAB.agent." + A + ".down.>", "steward.LAB.agent." + A + ".down.x", false},
			{true, ">", "probe.any", false},
			{true, "_INBOX.>", "_INBOX.someone.r1", false},
			{false, "$JS.API.INFO", "", false},
			{true, "$SYS.>", "$SYS.PROBE", false},
			{false, "steward.LAB.op.admin.up.clients.list", "", false},
		}},
		{"operator admin", adminKey, "admin", []row{
			{false, "steward.LAB.op.admin.up.probe", "", true},
			{true, "steward.LAB.op.admin.down.>", "steward.LAB.op.admin.down.x", true},
			{true, "_INBOX.admin.>", "_INBOX.admin.r1", true},
			{false, "steward.LAB.op.alice.up.clients.list", "", false},
			{true, "steward.LAB.op.alice.down.>", "steward.LAB.op.alice.down.x", false},
			{false, "steward.LAB.agent." + A + ".down.x", "", false},
			{true, "steward.LAB.agent." + A + ".up.>", "steward.LAB.agent." + A + ".up.heartbeat", false},
			{true, ">", "probe.any", false},
			{true, "_INBOX.>", "_INBOX.someone.r1", false},
			{false, "$JS.API.INFO", "", false},
			{true, "$SYS.>", "$SYS.PROBE", false},
			{true, "steward.LAB.event.>", "steward.LAB.event.admin.client", false},
		}},
	}
	for _, p := range principals {
		pr := newProbe(t, rs.URL(), p.kp, p.inbox)
		for _, r := range p.rows {
			verb := "publish"
			if r.sub {
				verb = "subscribe"
			}
			t.Run(p.name+"/"+verb+"/"+r.subject, func(t *testing.T) {
				var got bool
				if r.sub {
					got = pr.canSubscribe(t, svc, r.subject, r.sample)
				} else {
					got = pr.canPublish(t, svc, r.subject)
				}
				if got != r.allowed {
					t.Fatalf("%s %s %s: got allowed=%v, want %v", p.name, verb, r.subject, got, r.allowed)
				}
			})
		}
	}
}

// TestBlockDisconnects: a blocked client is disconnected within 2 s and
// cannot reconnect; the others stay online.
func TestBlockDisconnects(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	op := rs.operator(t)
	tok := rs.token(t, 2, time.Hour)
	a := startAgent(t, rs.URL(), tok, t.TempDir(), "alpha")
	b := startAgent(t, rs.URL(), tok, t.TempDir(), "bravo")
	wait(t, 15*time.Second, "agents enrolled", func() bool { return a.ClientID() != "" && b.ClientID() != "" })
	waitOnline(t, op, a.ClientID(), true)
	waitOnline(t, op, b.ClientID(), true)

	// A raw connection with B's key, to watch the server close it.
	closed := make(chan struct{})
	raw := connectWithSeedFile(t, rs.URL(), seedOf(t, b.dir), b.ClientID(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))

	got, err := op.ClientsBlock(ctx(t), "bravo")
	if err != nil {
		t.Fatalf("block: %v", err)
	}
	if got.Status != contracts.ClientBlocked {
		t.Fatalf("got status %q, want blocked", got.Status)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("blocked client's connection still open after 2s")
	}
	if raw.IsConnected() {
		t.Fatal("raw connection still connected")
	}
	wait(t, 2*time.Second, "agent B sees the disconnect", func() bool { return !b.Status().Connected })

	// It cannot come back.
	kp := loadKey(t, seedOf(t, b.dir))
	pub, _ := kp.PublicKey()
	if nc, err := nats.Connect(rs.URL(), nats.Nkey(pub, kp.Sign), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("blocked key connected again")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("got %v, want an authorization error", err)
	}
	waitOnline(t, op, b.ClientID(), false)
	// The server's disconnect advisory may mark it offline before the
	// identity event reaches discovery: wait for the status too.
	wait(t, 15*time.Second, "discovery shows B blocked", func() bool {
		cl, _ := clientByID(t, op, b.ClientID())
		return cl.Status == contracts.ClientBlocked
	})
	if cl, _ := clientByID(t, op, a.ClientID()); !cl.Online {
		t.Fatal("agent A went offline when B was blocked")
	}
}

// TestBlockedElsewhereDisconnects: a block another admin instance wrote
// (here straight into the identity bucket, without this instance's own
// kick) closes the client's connections all the same: every instance that
// sees an approved agent blocked sweeps its connections shortly after, so
// one admitted by an instance whose cache lagged does not stay.
func TestBlockedElsewhereDisconnects(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	op := rs.operator(t)
	tok := rs.token(t, 1, time.Hour)
	b := startAgent(t, rs.URL(), tok, t.TempDir(), "bravo")
	wait(t, 15*time.Second, "agent enrolled", func() bool { return b.ClientID() != "" })
	waitOnline(t, op, b.ClientID(), true)
	closed := make(chan struct{})
	raw := connectWithSeedFile(t, rs.URL(), seedOf(t, b.dir), b.ClientID(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))

	js, err := jetstream.New(rs.serviceConn(t))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx(t), admin.IdentityBucket)
	if err != nil {
		t.Fatal(err)
	}
	setStatus := func(status string) {
		t.Helper()
		e, err := kv.Get(ctx(t), b.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		var id map[string]any
		if err := json.Unmarshal(e.Value(), &id); err != nil {
			t.Fatalf("identity %s: %v", e.Value(), err)
		}
		id["status"] = status
		data, _ := json.Marshal(id)
		if _, err := kv.Update(ctx(t), b.PublicKey(), data, e.Revision()); err != nil {
			t.Fatal(err)
		}
	}
	// Blocked and approved again at once: by the sweep it is approved, and
	// its connection stays.
	setStatus(contracts.ClientBlocked)
	setStatus(contracts.ClientApproved)
	select {
	case <-closed:
		t.Fatal("a client approved again within the sweep's delay was disconnected")
	case <-time.After(4 * time.Second):
	}
	setStatus(contracts.ClientBlocked)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a client blocked elsewhere still connected after 10s")
	}
	if raw.IsConnected() {
		t.Fatal("raw connection still connected")
	}
	wait(t, 5*time.Second, "the agent sees the disconnect", func() bool { return !b.Status().Connected })
}

// TestPendingThenApproved: an agent without a token waits as pending until
// an operator approves it, then comes online by itself.
func TestPendingThenApproved(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	op := rs.operator(t)
	a := startAgent(t, rs.URL(), "", t.TempDir(), "nottoken")
	var pending contracts.Client
	wait(t, 15*time.Second, "pending client listed", func() bool {
		list, err := op.ClientsList(ctx(t), contracts.ClientPending)
		if err != nil || len(list) != 1 {
			return false
		}
		pending = list[0]
		return true
	})
	if pending.Name != "nottoken" || pending.Online || !strings.Contains(pending.PendingReason, "no enrollment token") {
		t.Fatalf("got %+v, want pending offline client named nottoken, pending for want of a token", pending)
	}
	if a.ClientID() != "" {
		t.Fatal("agent has a client ID before approval")
	}
	if _, err := op.ClientsApprove(ctx(t), "nottoken"); err != nil {
		t.Fatalf("approve: %v", err)
	}
	wait(t, 15*time.Second, "agent admitted", func() bool { return a.ClientID() == pending.ID })
	waitOnline(t, op, pending.ID, true)
	if c, err := op.ClientsShow(ctx(t), pending.ID); err != nil || c.PendingReason != "" {
		t.Fatalf("approved: got %+v, %v; want no pending reason", c, err)
	}
	if _, err := op.ClientsApprove(ctx(t), pending.ID); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("approve twice: got %v, want conflict", err)
	}
}

// TestBadTokens: spent, revoked, expired and foreign tokens leave the agent
// pending with the precise reason; nothing is admitted.
func TestBadTokens(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	other := startSite(t, t.TempDir(), freePort(t), "CHD")
	op := rs.operator(t)

	spent := rs.token(t, 1, time.Hour)
	first := startAgent(t, rs.URL(), spent, t.TempDir(), "first")
	wait(t, 15*time.Second, "first agent enrolled", func() bool { return first.ClientID() != "" })

	revoked := rs.token(t, 5, time.Hour)
	toks, err := op.TokensList(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.TokensRevoke(ctx(t), toks[0].ID); err != nil {
		t.Fatal(err)
	}
	expired := rs.token(t, 5, time.Second)
	parsed, _ := contracts.ParseEnrollmentToken(expired)
	wait(t, 5*time.Second, "token expiry", func() bool {
		list, _ := op.TokensList(ctx(t))
		for _, tk := range list {
			if tk.ID == parsed.ID {
				return time.Now().After(tk.Expires)
			}
		}
		return false
	})
	foreign := other.token(t, 5, time.Hour)
	// A token naming this site but carrying another site's key.
	fakeSite, _ := contracts.ParseEnrollmentToken(foreign)
	fakeSite.Site = "LAB"

	cases := []struct {
		name, token string
		reason      contracts.Code
	}{
		{"spent", spent, contracts.CodeTokenSpent},
		{"revoked", revoked, contracts.CodeTokenRevoked},
		{"expired", expired, contracts.CodeTokenExpired},
		{"another site's key", fakeSite.String(), contracts.CodeTokenForeignSite},
		{"damaged", "STW1-bm90IGEgdG9rZW4", contracts.CodeTokenInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := enrollRaw(t, rs.URL(), "LAB", c.token)
			if resp.Status != contracts.EnrollPending || resp.Reason != c.reason {
				t.Fatalf("got status %q reason %v (%s), want pending %v", resp.Status, resp.Reason, resp.Message, c.reason)
			}
			if resp.Message == "" || resp.ClientID == "" {
				t.Fatalf("got %+v, want a message and a pending client id", resp)
			}
		})
	}

	// A token of another site sends the agent to a site this server does
	// not serve: nobody answers, and the agent says so.
	lost := startAgent(t, rs.URL(), foreign, t.TempDir(), "lost")
	wait(t, 15*time.Second, "agent reports the foreign site", func() bool {
		return strings.Contains(lost.Status().Message, "CHD")
	})
	if lost.ClientID() != "" {
		t.Fatal("agent with a foreign token was admitted")
	}
}

// enrollRaw sends one enrollment request as a fresh key and returns the answer.
func enrollRaw(t testing.TB, url, site, token string) contracts.EnrollResponse {
	t.Helper()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	nc := connectKey(t, url, kp, pub)
	subj, _ := contracts.Enroll(site, pub)
	req := contracts.EnrollRequest{Header: contracts.NewHeader(contracts.TypeEnrollRequest), Token: token, Name: "raw", Hostname: "raw", OS: "linux", Arch: "amd64", AgentVersion: "test", Capability: 1}
	data, _ := json.Marshal(req)
	msg, err := nc.Request(subj, data, 5*time.Second)
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("enroll: error %s %s", code, msg.Header.Get(micro.ErrorHeader))
	}
	var resp contracts.EnrollResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestMalformedEnrollment: garbage, oversized and wrong-type payloads get a
// coded error and create nothing.
func TestMalformedEnrollment(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	op := rs.operator(t)
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	nc := connectKey(t, rs.URL(), kp, pub)
	subj, _ := contracts.Enroll("LAB", pub)
	good := contracts.EnrollRequest{Header: contracts.NewHeader(contracts.TypeEnrollRequest), Name: "x", Capability: 1}
	wrongType := good
	wrongType.Type = contracts.TypeHeartbeat
	badName := good
	badName.Name = "has space"
	enc := func(v any) []byte { b, _ := json.Marshal(v); return b }
	cases := []struct {
		name string
		data []byte
		want contracts.Code
	}{
		{"not json", []byte("{{{"), contracts.CodeBadRequest},
		{"empty", nil, contracts.CodeBadRequest},
		{"oversized", []byte(`{"pad":"` + strings.Repeat("x", contracts.MaxMessageBytes) + `"}`), contracts.CodeTooLarge},
		{"wrong type", enc(wrongType), contracts.CodeBadRequest},
		{"invalid name", enc(badName), contracts.CodeBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := nc.Request(subj, c.data, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := contracts.ParseCode(msg.Header.Get(micro.ErrorCodeHeader)); got != c.want {
				t.Fatalf("got code %v (%s), want %v", got, msg.Header.Get(micro.ErrorHeader), c.want)
			}
		})
	}
	list, err := op.ClientsList(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("got %d clients after malformed enrollments, want 0", len(list))
	}
}

// TestRestart: the site stops and starts on the same data dir; clients are
// still known and agents come back online by themselves, without enrolling
// again.
func TestRestart(t *testing.T) {
	dir, listen := t.TempDir(), freePort(t)
	rs := startSite(t, dir, listen, "LAB")
	tok := rs.token(t, 2, time.Hour)
	a := startAgent(t, rs.URL(), tok, t.TempDir(), "alpha")
	b := startAgent(t, rs.URL(), tok, t.TempDir(), "bravo")
	op := rs.operator(t)
	wait(t, 15*time.Second, "agents enrolled", func() bool { return a.ClientID() != "" && b.ClientID() != "" })
	waitOnline(t, op, a.ClientID(), true)
	waitOnline(t, op, b.ClientID(), true)
	ids := []string{a.ClientID(), b.ClientID()}
	siteKey := rs.Info.SiteKey

	rs.stop()
	wait(t, 10*time.Second, "agents notice the site is gone", func() bool { return !a.Status().Connected && !b.Status().Connected })
	restartedAt := time.Now()

	rs2 := startSite(t, dir, listen, "LAB")
	if rs2.Info.SiteKey != siteKey {
		t.Fatal("site key changed across restart")
	}
	op2 := rs2.operator(t)
	for _, id := range ids {
		wait(t, 15*time.Second, "client "+id+" heard from after the restart", func() bool {
			cl, ok := clientByID(t, op2, id)
			return ok && cl.Online && cl.LastSeen.After(restartedAt)
		})
	}
	if a.ClientID() != ids[0] || b.ClientID() != ids[1] {
		t.Fatal("agents enrolled again after the restart")
	}
	list, _ := op2.ClientsList(ctx(t), "")
	if len(list) != 2 {
		t.Fatalf("got %d clients after restart, want 2", len(list))
	}
	// The same data dir under another site code is refused.
	if _, err := os.Stat(filepath.Join(dir, "site.json")); err != nil {
		t.Fatal(err)
	}
}
