package discovery

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stewardhq/steward/contracts"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func event(action string, c contracts.Client) *contracts.ClientEvent {
	h := contracts.NewHeader(contracts.TypeClientEvent)
	h.Time = t0
	return &contracts.ClientEvent{Header: h, Action: action, Client: c, By: "alice"}
}

var enrolledClient = contracts.Client{
	ID: "c1", Name: "web-01", Hostname: "web-01.lab", OS: "linux", Arch: "amd64",
	AgentVersion: "0.1.0", Capability: 1, Key: "UAKEY1",
}

func TestApplyEvent(t *testing.T) {
	now := t0.Add(time.Hour)
	seen := record{Client: enrolledClient, Interval: contracts.Duration(time.Minute)}
	seen.Status, seen.Online, seen.FirstSeen, seen.LastSeen = contracts.ClientApproved, true, t0, now
	seen.AgentVersion = "0.2.0" // from a later heartbeat

	tests := []struct {
		name       string
		cur        *record
		action     string
		wantWrite  bool
		wantNil    bool
		wantStatus string
		wantOnline bool
		check      func(t *testing.T, r *record)
	}{
		{name: "enrolled creates approved", action: contracts.ClientEnrolled, wantWrite: true, wantStatus: contracts.ClientApproved,
			check: func(t *testing.T, r *record) {
				if r.ID != "c1" || r.Name != "web-01" || r.Hostname != "web-01.lab" || r.Key != "UAKEY1" || r.Capability != 1 {
					t.Errorf("got %+v, want the event's client", r.Client)
				}
				if !r.FirstSeen.Equal(t0) {
					t.Errorf("FirstSeen = %v, want the event time %v", r.FirstSeen, t0)
				}
			}},
		{name: "queued creates pending", action: contracts.ClientQueued, wantWrite: true, wantStatus: contracts.ClientPending},
		{name: "approved on pending", cur: &record{Client: contracts.Client{ID: "c1", Name: "web-01", Status: contracts.ClientPending, FirstSeen: t0}},
			action: contracts.ClientAdmitted, wantWrite: true, wantStatus: contracts.ClientApproved},
		{name: "approved without record creates it", action: contracts.ClientAdmitted, wantWrite: true, wantStatus: contracts.ClientApproved},
		{name: "blocked goes offline", cur: &seen, action: contracts.ClientBlockedE, wantWrite: true, wantStatus: contracts.ClientBlocked, wantOnline: false},
		{name: "deleted removes", cur: &seen, action: contracts.ClientDeleted, wantWrite: true, wantNil: true},
		{name: "deleted without record is a no-op", action: contracts.ClientDeleted, wantWrite: false, wantNil: true},
		{name: "approved again changes nothing", cur: &seen, action: contracts.ClientAdmitted, wantWrite: false, wantStatus: contracts.ClientApproved, wantOnline: true},
		{name: "enrolled redelivered keeps heartbeat facts and FirstSeen", cur: &seen, action: contracts.ClientEnrolled, wantWrite: false,
			wantStatus: contracts.ClientApproved, wantOnline: true,
			check: func(t *testing.T, r *record) {
				if r.AgentVersion != "0.2.0" || !r.FirstSeen.Equal(t0) || !r.LastSeen.Equal(now) {
					t.Errorf("got %+v, want the heartbeat's facts kept", r.Client)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before record
			if tt.cur != nil {
				before = *tt.cur
			}
			got, write, err := applyEvent(tt.cur, event(tt.action, enrolledClient), now)
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if tt.cur != nil && *tt.cur != before {
				t.Errorf("applyEvent modified its input")
			}
			if write != tt.wantWrite {
				t.Errorf("write = %v, want %v", write, tt.wantWrite)
			}
			if (got == nil) != tt.wantNil {
				t.Fatalf("got %+v, want nil %v", got, tt.wantNil)
			}
			if got == nil {
				return
			}
			if got.Status != tt.wantStatus || got.Online != tt.wantOnline {
				t.Errorf("status, online = %s, %v; want %s, %v", got.Status, got.Online, tt.wantStatus, tt.wantOnline)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}

	if _, _, err := applyEvent(nil, event("renamed", enrolledClient), now); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("unknown action: got %v, want a bad_request error", err)
	}
}

func TestApplyHeartbeat(t *testing.T) {
	now := t0.Add(time.Minute)
	hb := &contracts.Heartbeat{Name: "web-01b", Hostname: "h2", OS: "windows", Arch: "arm64", AgentVersion: "0.3.0", Capability: 2, Interval: contracts.Duration(30 * time.Second)}
	cur := record{Client: contracts.Client{ID: "c1", Name: "web-01", Status: contracts.ClientApproved, FirstSeen: t0, Key: "UAKEY1"}}

	got, write := applyHeartbeat(cur, hb, now)
	if !write {
		t.Fatal("write = false, want true")
	}
	want := record{Client: contracts.Client{ID: "c1", Name: "web-01b", Hostname: "h2", OS: "windows", Arch: "arm64", AgentVersion: "0.3.0",
		Capability: 2, Status: contracts.ClientApproved, Online: true, FirstSeen: t0, LastSeen: now, Key: "UAKEY1"},
		Interval: contracts.Duration(30 * time.Second)}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	cur.Status = contracts.ClientBlocked
	if got, write := applyHeartbeat(cur, hb, now); write || got.Online {
		t.Errorf("blocked client: got write %v online %v, want no change", write, got.Online)
	}
}

func TestApplyDisconnect(t *testing.T) {
	seen := t0
	on := record{Client: contracts.Client{ID: "c1", Online: true, LastSeen: seen}}
	tests := []struct {
		name  string
		cur   record
		stop  time.Time
		write bool
	}{
		{"stop after last heartbeat: offline", on, seen.Add(time.Second), true},
		{"stop equal to last heartbeat: offline", on, seen, true},
		{"heartbeat after stop (reconnected): stays online", on, seen.Add(-time.Second), false},
		{"already offline", record{Client: contracts.Client{ID: "c1", LastSeen: seen}}, seen.Add(time.Second), false},
	}
	for _, tt := range tests {
		got, write := applyDisconnect(tt.cur, tt.stop)
		if write != tt.write {
			t.Errorf("%s: write = %v, want %v", tt.name, write, tt.write)
		}
		if write && got.Online {
			t.Errorf("%s: still online", tt.name)
		}
		if !write && got != tt.cur {
			t.Errorf("%s: changed without write", tt.name)
		}
	}
}

func TestStale(t *testing.T) {
	iv := 10 * time.Second
	r := record{Client: contracts.Client{Online: true, LastSeen: t0}, Interval: contracts.Duration(iv)}
	if stale(r, t0.Add(3*iv)) {
		t.Error("stale at exactly 3 intervals, want not yet")
	}
	if !stale(r, t0.Add(3*iv+time.Millisecond)) {
		t.Error("not stale after 3 intervals, want stale")
	}
	r.Online = false
	if stale(r, t0.Add(time.Hour)) {
		t.Error("offline record stale, want not")
	}
	r = record{Client: contracts.Client{Online: true, LastSeen: t0}}
	if stale(r, t0.Add(3*defaultInterval)) || !stale(r, t0.Add(3*defaultInterval+time.Second)) {
		t.Error("a record without interval must use the default interval")
	}
}

func TestListClients(t *testing.T) {
	recs := []record{
		{Client: contracts.Client{ID: "3", Name: "b", Status: contracts.ClientApproved}},
		{Client: contracts.Client{ID: "2", Name: "a", Status: contracts.ClientPending}},
		{Client: contracts.Client{ID: "1", Name: "b", Status: contracts.ClientBlocked}},
		{Client: contracts.Client{ID: "0", Name: "c", Status: contracts.ClientApproved}},
	}
	ids := func(cs []contracts.Client) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID)
		}
		return strings.Join(s, ",")
	}
	got, err := listClients(recs, "")
	if err != nil || ids(got) != "2,1,3,0" {
		t.Errorf("all: got %s, %v; want 2,1,3,0", ids(got), err)
	}
	got, _ = listClients(recs, contracts.ClientApproved)
	if ids(got) != "3,0" {
		t.Errorf("approved: got %s, want 3,0", ids(got))
	}
	got, err = listClients(nil, "")
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty: got %#v, %v; want an empty, non-nil slice", got, err)
	}
	if _, err := listClients(recs, "online"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Errorf("bad status: got %v, want bad_request", err)
	}
}

func TestFindClient(t *testing.T) {
	recs := []record{
		{Client: contracts.Client{ID: "1", Name: "web"}},
		{Client: contracts.Client{ID: "2", Name: "db"}},
		{Client: contracts.Client{ID: "3", Name: "DB"}},
	}
	tests := []struct {
		ref, want string
		code      contracts.Code
	}{
		{"1", "1", 0},
		{"WEB", "1", 0},
		{"db", "", contracts.CodeAmbiguous},
		{"nope", "", contracts.CodeNotFound},
	}
	for _, tt := range tests {
		got, err := findClient(recs, tt.ref)
		if tt.code != 0 {
			if contracts.CodeOf(err) != tt.code {
				t.Errorf("%q: got %v, want code %s", tt.ref, err, tt.code)
			}
			continue
		}
		if err != nil || got.ID != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.ref, got.ID, err, tt.want)
		}
	}
}

// TestParseDisconnect reads advisories as the server marshals them.
func TestParseDisconnect(t *testing.T) {
	stop := t0.Add(time.Minute)
	adv := func(ci server.ClientInfo) []byte {
		b, err := json.Marshal(server.DisconnectEventMsg{
			TypedEvent: server.TypedEvent{Type: server.DisconnectEventMsgType, ID: "x", Time: stop.Add(time.Millisecond)},
			Client:     ci,
			Reason:     "Client Closed",
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		want    disconnect
		wantErr bool
	}{
		{"key only (the account name tag is no agent)", adv(server.ClientInfo{User: "UAKEY1", NameTag: "STEWARD", Stop: &stop}),
			disconnect{Key: "UAKEY1", Stop: stop}, false},
		{"auth callout user name (as nats-server 2.15 reports it)", adv(server.ClientInfo{User: "agent:c1", NameTag: "STEWARD", Stop: &stop}),
			disconnect{ClientID: "c1", Stop: stop}, false},
		{"enrolling key is no agent", adv(server.ClientInfo{User: "enroll:UAKEY1", NameTag: "STEWARD", Stop: &stop}),
			disconnect{Key: "enroll:UAKEY1", Stop: stop}, false},
		{"agent tag", adv(server.ClientInfo{User: "UAKEY1", Tags: []string{"x", "agent:c1"}, Stop: &stop}),
			disconnect{ClientID: "c1", Stop: stop}, false},
		{"agent name tag", adv(server.ClientInfo{NameTag: "agent:c1", Stop: &stop}),
			disconnect{ClientID: "c1", Stop: stop}, false},
		{"no stop: the event time", adv(server.ClientInfo{User: "UAKEY1"}),
			disconnect{Key: "UAKEY1", Stop: stop.Add(time.Millisecond)}, false},
		{"nobody", adv(server.ClientInfo{Stop: &stop}), disconnect{}, true},
		{"malformed", []byte("{"), disconnect{}, true},
	}
	for _, tt := range tests {
		got, err := parseDisconnect(tt.data)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if !got.Stop.Equal(tt.want.Stop) || got.ClientID != tt.want.ClientID || got.Key != tt.want.Key {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestNakDelay(t *testing.T) {
	for _, tt := range []struct {
		n    uint64
		want time.Duration
	}{{1, 500 * time.Millisecond}, {2, time.Second}, {3, 2 * time.Second}, {9, nakMax}, {100, nakMax}} {
		if got := nakDelay(tt.n); got != tt.want {
			t.Errorf("nakDelay(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestClientPage(t *testing.T) {
	all := make([]contracts.Client, 2500)
	for i := range all {
		all[i].ID = fmt.Sprint(i)
	}
	p := clientPage(all, 0, 0)
	if len(p.Clients) != contracts.MaxClientsPage || p.Next != 1000 || p.Total != 2500 {
		t.Fatalf("first page: got %d clients, next %d, total %d", len(p.Clients), p.Next, p.Total)
	}
	p = clientPage(all, 2000, 0)
	if len(p.Clients) != 500 || p.Next != 0 || p.Clients[0].ID != "2000" {
		t.Fatalf("last page: got %d clients from %s, next %d", len(p.Clients), p.Clients[0].ID, p.Next)
	}
	if p = clientPage(all, 3000, 10); len(p.Clients) != 0 || p.Clients == nil || p.Next != 0 {
		t.Fatalf("past the end: got %+v", p)
	}
	if p = clientPage(all, 100, 50); len(p.Clients) != 50 || p.Next != 150 {
		t.Fatalf("max 50: got %d, next %d", len(p.Clients), p.Next)
	}
}
