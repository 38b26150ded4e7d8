package status

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

const (
	client1 = "0195a3c4-0000-7000-8000-0000000000c1"
	client2 = "0195a3c4-0000-7000-8000-0000000000c2"
)

// TestIngest sends one batch holding every kind of item and checks each
// item's fate: stored with the subject's source, the agent's time kept and
// the site's catalog applied; unknown IDs stored and flagged; malformed
// ones rejected with a code.
func TestIngest(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UTC()

	// An agent reporting after an outage: the message is an hour old. It
	// claims another source, site and instance, a wrong text, severity and
	// audit mark: the site takes none of them.
	lost := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "nats://x", "error": "eof"})
	lost.Time = now.Add(-time.Hour).Truncate(time.Millisecond)
	lost.Source, lost.Client, lost.Site, lost.Instance = client2, client2, "OTHER", "steward-admin/x"
	lost.Text, lost.Severity, lost.Audit, lost.Component = "forged", contracts.SeverityError, true, contracts.ComponentAdmin

	unknown := agentMsg(9001, map[string]string{"disk": "/var"})
	unknown.Severity, unknown.Text = contracts.SeverityError, "disk almost full"

	future := agentMsg(contracts.StatusAgentConnectionRegained, map[string]string{"duration": "5m"})
	future.Time = now.Add(48 * time.Hour)

	forged := agentMsg(contracts.StatusClientBlocked, map[string]string{"client": client2, "by": "mallory"})

	noTime := agentMsg(contracts.StatusAgentConnectionLost, nil)
	noTime.Time = time.Time{}

	badSeverity := agentMsg(9002, nil)
	badSeverity.Severity = "panic"

	longText := agentMsg(9003, nil)
	longText.Text = strings.Repeat("x", contracts.MaxStatusText+1)

	wrongType := agentMsg(contracts.StatusAgentConnectionLost, nil)
	wrongType.Type = contracts.TypeHeartbeat

	// Within every limit as sent, but JSON escapes each "<" as six bytes:
	// stored, it would be over the stream's message size. It is refused
	// alone; the batch's other messages are stored.
	escaped := agentMsg(9004, nil)
	escaped.Text = strings.Repeat("<", contracts.MaxStatusText)
	escaped.Properties = map[string]string{}
	for i := range 32 {
		escaped.Properties[fmt.Sprintf("p%02d", i)] = strings.Repeat("<", 1024)
	}

	another := agentMsg(9005, map[string]string{"disk": "/home"})

	items := []contracts.OutboxItem{
		item(t, lost), item(t, unknown), item(t, future), item(t, forged), item(t, noTime),
		item(t, badSeverity), item(t, longText), item(t, wrongType), item(t, escaped), item(t, another),
		{ID: "not-json", Type: contracts.TypeStatusMessage, Time: now, Data: json.RawMessage(`{"type":"steward.v1.status_message","msgId":"seven"}`)},
		{ID: "other-type", Type: contracts.TypeHeartbeat, Time: now, Data: json.RawMessage(`{}`)},
	}
	ack := e.send(client1, items...)

	wantStored := []string{lost.ID, unknown.ID, future.ID, another.ID}
	if !slices.Equal(ack.Stored, wantStored) {
		t.Errorf("stored: got %v, want %v", ack.Stored, wantStored)
	}
	rejected := map[string]contracts.Code{}
	for _, r := range ack.Rejected {
		rejected[r.ID] = r.Code
	}
	for _, id := range []string{forged.ID, noTime.ID, badSeverity.ID, longText.ID, wrongType.ID, "not-json", "other-type"} {
		if rejected[id] != contracts.CodeBadRequest {
			t.Errorf("item %s: got rejection %v, want bad_request", id, rejected[id])
		}
	}
	if rejected[escaped.ID] != contracts.CodeTooLarge {
		t.Errorf("item stored over the size limit: got rejection %v, want too_large", rejected[escaped.ID])
	}

	got := map[string]contracts.StatusMessage{}
	for _, m := range e.stored() {
		if m.Source == client1 {
			got[m.ID] = m
		}
	}
	if len(got) != 4 {
		t.Fatalf("stored from %s: got %d messages, want 4: %+v", client1, len(got), got)
	}

	m := got[lost.ID]
	if m.Source != client1 || m.Client != client1 || m.Site != site || m.Instance != "" {
		t.Errorf("source: got source %q client %q site %q instance %q, want the subject's %s at %s", m.Source, m.Client, m.Site, m.Instance, client1, site)
	}
	if !m.Time.Equal(lost.Time) {
		t.Errorf("time: got %v, want the agent's %v", m.Time, lost.Time)
	}
	if m.Received.Before(now.Add(-time.Minute)) {
		t.Errorf("received: got %v, want about now", m.Received)
	}
	if m.Component != contracts.ComponentAgent || m.Severity != contracts.SeverityWarning || m.Audit || m.Unknown {
		t.Errorf("catalog: got component %q severity %q audit %v unknown %v, want agent warning, not audit", m.Component, m.Severity, m.Audit, m.Unknown)
	}
	if want := "The agent lost its connection to site LAB (nats://x): eof"; m.Text != want {
		t.Errorf("text: got %q, want %q", m.Text, want)
	}

	u := got[unknown.ID]
	if !u.Unknown || u.Severity != contracts.SeverityError || !strings.Contains(u.Text, "disk almost full") || !strings.Contains(u.Text, "9001") {
		t.Errorf("unknown id: got %+v, want flagged, severity kept, text naming the id and keeping the sender's text", u)
	}

	f := got[future.ID]
	if f.Time.After(now.Add(time.Hour)) {
		t.Errorf("future time: got %v, want re-dated to when it was received", f.Time)
	}

	// A resend of the same items (the ack was lost) stores nothing twice
	// (the server refuses their atomic batch; one at a time, each is a
	// known duplicate).
	again := e.send(client1, item(t, lost), item(t, unknown), item(t, future), item(t, another))
	if len(again.Stored) != 4 {
		t.Errorf("resend: got stored %v, want all four acknowledged", again.Stored)
	}
	n := 0
	for _, m := range e.stored() {
		if m.Source == client1 {
			n++
		}
	}
	if n != 4 {
		t.Errorf("after resend: got %d stored messages from %s, want 4", n, client1)
	}
}

func TestFromAgent(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		msg     contracts.StatusMessage
		wantErr bool
		check   func(t *testing.T, m contracts.StatusMessage)
	}{
		{
			name: "agent id", msg: contracts.StatusMessage{MsgID: contracts.StatusAgentOutboxOverflow, Header: contracts.Header{Time: now.Add(-time.Hour)}},
			check: func(t *testing.T, m contracts.StatusMessage) {
				if m.Severity != contracts.SeverityError || m.Component != contracts.ComponentAgent || !m.Time.Equal(now.Add(-time.Hour)) {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "generic id", msg: contracts.StatusMessage{MsgID: contracts.StatusServiceStarted, Component: "discovery", Header: contracts.Header{Time: now}},
			check: func(t *testing.T, m contracts.StatusMessage) {
				if m.Component != contracts.ComponentAgent {
					t.Errorf("component: got %q, want agent", m.Component)
				}
			},
		},
		{name: "another component's id", msg: contracts.StatusMessage{MsgID: contracts.StatusSessionStarted, Header: contracts.Header{Time: now}}, wantErr: true},
		{
			name: "bad trace id dropped", msg: contracts.StatusMessage{MsgID: 10001, TraceID: "zz", Header: contracts.Header{Time: now}},
			check: func(t *testing.T, m contracts.StatusMessage) {
				if m.TraceID != "" {
					t.Errorf("trace id: got %q, want dropped", m.TraceID)
				}
			},
		},
		{
			name: "future re-dated", msg: contracts.StatusMessage{MsgID: 10001, Header: contracts.Header{Time: now.Add(time.Hour)}},
			check: func(t *testing.T, m contracts.StatusMessage) {
				if !m.Time.Equal(now) {
					t.Errorf("time: got %v, want %v", m.Time, now)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg
			err := fromAgent(&m, site, client1, "item-1", now, time.Minute)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if contracts.CodeOf(err) != contracts.CodeBadRequest {
					t.Errorf("code: got %v, want bad_request", contracts.CodeOf(err))
				}
				return
			}
			if m.ID != "item-1" || m.Source != client1 || m.Client != client1 || m.Site != site {
				t.Errorf("identity: got id %q source %q client %q site %q", m.ID, m.Source, m.Client, m.Site)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

// TestRateLimit floods the site from one client: the items over the
// bucket are left for a resend (neither stored nor rejected), one "source
// rate-limited" message says so, and another client is not affected.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Rate, c.Burst, c.RateReport = 0.001, 5, time.Hour })
	var items []contracts.OutboxItem
	for range 20 {
		items = append(items, item(t, agentMsg(contracts.StatusAgentConnectionLost, nil)))
	}
	ack := e.send(client1, items...)
	if len(ack.Stored) != 5 || len(ack.Rejected) != 0 {
		t.Fatalf("flood: got %d stored and %d rejected, want 5 stored (the burst) and none rejected", len(ack.Stored), len(ack.Rejected))
	}
	// The rest, resent, are still over the limit.
	ack = e.send(client1, items[5:]...)
	if len(ack.Stored) != 0 {
		t.Errorf("resend during the flood: got %d stored, want 0", len(ack.Stored))
	}
	// One report for the source within the report period, not one per item.
	e.waitFor("a rate-limited message", func() bool { return len(e.find(contracts.StatusRateLimited)) > 0 })
	reports := e.find(contracts.StatusRateLimited)
	if len(reports) != 1 {
		t.Errorf("rate-limited messages: got %d, want 1", len(reports))
	}
	if r := reports[0]; r.Properties["source"] != client1 || r.Component != contracts.ComponentStatus || r.Severity != contracts.SeverityWarning {
		t.Errorf("rate-limited message: got %+v, want a status warning naming %s", r, client1)
	}
	// Another client has its own bucket.
	if ack := e.send(client2, item(t, agentMsg(contracts.StatusAgentConnectionLost, nil))); len(ack.Stored) != 1 {
		t.Errorf("other client: got stored %v, want its item stored", ack.Stored)
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(1, 2)
	now := time.Unix(1000, 0)
	steps := []struct {
		after      time.Duration
		ok, report bool
	}{
		{0, true, false},
		{0, true, false},
		{0, false, true},           // over: first refusal is reported
		{0, false, false},          // within the report period: quiet
		{time.Second, true, false}, // a token came back
		{0, false, false},          // over again, still quiet
		{time.Minute + time.Second, true, false},
		{0, true, false},
		{0, false, true}, // a new period: reported again
	}
	for i, s := range steps {
		now = now.Add(s.after)
		ok, report := l.allow("c1", now, time.Minute)
		if ok != s.ok || report != s.report {
			t.Errorf("step %d: got ok=%v report=%v, want ok=%v report=%v", i, ok, report, s.ok, s.report)
		}
	}
	if ok, _ := newLimiter(-1, 1).allow("c1", now, time.Minute); !ok {
		t.Errorf("limit off: got refused, want allowed")
	}
}
