package status

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// bulkyProps are the properties of a legal agent message of ~38 KB as
// stored (JSON escapes each '<' as six bytes).
func bulkyProps() map[string]string {
	props := map[string]string{}
	for i := range contracts.MaxStatusProperties {
		props[string(rune('a'+i%26))+strings.Repeat("k", i/26+1)] = strings.Repeat("<", 200)
	}
	return props
}

// TestAgentsCannotEvictSiteRecords: the store drops its oldest messages at
// its byte limit. One agent within its rate limit (100 msg/s, ~64 KB each:
// ~6 MB/s) filled the one stream of the site in minutes and every older
// message went, the site's audit records included. Agents' messages are
// stored apart now, with limits of their own: scaled here, the site's own
// stream is 4 MiB and one agent stores ~9 MB within its burst.
func TestAgentsCannotEvictSiteRecords(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBytes = 4 << 20; c.Rate = 0 /* default 100/s, burst 500 */ })
	ctx := context.Background()
	em := newTestEmitter(t, e, contracts.ComponentAdmin)
	audit := em.Message(ctx, contracts.StatusOperatorAdded, map[string]string{"operator": "mallory", "by": "alice"})
	if err := em.Publish(ctx, audit); err != nil {
		t.Fatal(err)
	}
	props := bulkyProps()
	stored := 0
	for range 25 { // 25 batches of 10: within the burst (500) of one source
		var items []contracts.OutboxItem
		for range 10 {
			items = append(items, item(t, agentMsg(10999, props)))
		}
		stored += len(e.send("c-evil", items...).Stored)
	}
	if stored != 250 {
		t.Fatalf("stored %d of the agent's 250 messages", stored)
	}
	if _, err := e.op.StatusShow(ctx, audit.ID); err != nil {
		t.Fatalf("after one agent stored %d messages (within its rate limit), the admin audit record is gone: %v", stored, err)
	}
	list, err := e.op.StatusList(ctx, contracts.StatusListRequest{Filter: contracts.StatusFilter{AuditOnly: true, Components: []string{contracts.ComponentAdmin}}})
	if err != nil || len(list.Messages) != 1 || list.Messages[0].ID != audit.ID {
		t.Errorf("list --audit: got %+v, %v; want the admin audit record", list, err)
	}
}

// TestAgentStreamLimits: the agents' stream has limits of its own: at
// them the agents' oldest messages go, the site's own stay, and queries
// read both, merged in the order they were stored.
func TestAgentStreamLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AgentMaxBytes = 2 << 20 })
	ctx := context.Background()
	em := newTestEmitter(t, e, contracts.ComponentAdmin)
	first := em.Message(ctx, contracts.StatusTokenCreated, map[string]string{"by": "alice"})
	if err := em.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	props := bulkyProps()
	var sent []string
	for range 10 {
		var items []contracts.OutboxItem
		for range 10 {
			m := agentMsg(10999, props)
			sent = append(sent, m.ID)
			items = append(items, item(t, m))
		}
		e.send(client1, items...)
	}
	last := em.Message(ctx, contracts.StatusTokenCreated, map[string]string{"by": "bob"})
	if err := em.Publish(ctx, last); err != nil {
		t.Fatal(err)
	}
	ai, err := e.svc.agents.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ai.Config.MaxBytes != 2<<20 || ai.State.Bytes > 2<<20 || ai.State.FirstSeq == 1 {
		t.Errorf("agents' stream: limit %d, holds %d bytes from sequence %d; want its oldest evicted at 2 MiB", ai.Config.MaxBytes, ai.State.Bytes, ai.State.FirstSeq)
	}
	si, err := e.svc.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.FirstSeq != 1 || si.Config.MaxBytes != DefaultMaxBytes {
		t.Errorf("site's stream: first sequence %d, limit %d; want nothing evicted", si.State.FirstSeq, si.Config.MaxBytes)
	}
	// A list pages through both in order: the first token, the agent's
	// messages still held, the last token.
	var got []string
	for after := ""; ; {
		page, err := e.op.StatusList(ctx, contracts.StatusListRequest{Limit: 7, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			if m.MsgID == contracts.StatusTokenCreated || m.MsgID == 10999 {
				got = append(got, m.ID)
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	kept := int(ai.State.Msgs)
	want := append(append([]string{first.ID}, sent[len(sent)-kept:]...), last.ID)
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("list: got %d messages, want the first token, the agent's last %d and the last token, in order; they differ from the %dth\ngot  %v\nwant %v", len(got), kept, i, short(got), short(want))
	}
}

// TestUpgradeKeepsStatusStream: a site that restarts with this version
// keeps its STATUS stream as it was (subjects, limits, what it holds,
// agents' messages included) and finds those messages as before; new
// agents' messages go to STATUS_AGENTS.
func TestUpgradeKeepsStatusStream(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The stream as the previous version made it, holding an audit
	// record and an agent's message.
	all, _ := contracts.StatusSubjectAll(site)
	old, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: Stream, Description: "Steward status messages", Subjects: []string{all},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
		MaxAge: DefaultMaxAge, MaxBytes: DefaultMaxBytes, Duplicates: DefaultDuplicates, MaxMsgSize: contracts.MaxMessageBytes,
		AllowDirect: true, AllowAtomicPublish: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	audit := contracts.NewStatus(contracts.StatusTokenCreated, map[string]string{"by": "alice"})
	audit.Site, audit.Source, audit.Instance = site, site, "steward-admin/1"
	agent := agentMsg(contracts.StatusAgentConnectionLost, nil)
	if err := fromAgent(&agent, site, client1, agent.ID, time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, m := range []contracts.StatusMessage{audit, agent} {
		subj, _ := contracts.StatusSubject(site, m.Component, m.Severity, m.Source)
		data, _ := json.Marshal(m)
		msg := nats.NewMsg(subj)
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, m.ID)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	before := old.CachedInfo().Config

	e := newEnvOn(t, srv, nil)
	fresh := agentMsg(contracts.StatusAgentConnectionRegained, nil)
	e.send(client1, item(t, fresh))

	si, err := e.svc.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.FirstSeq != 1 || si.State.Msgs < 2 || !slices.Equal(si.Config.Subjects, before.Subjects) || si.Config.MaxBytes != before.MaxBytes || si.Config.MaxAge != before.MaxAge {
		t.Errorf("STATUS after the upgrade: %+v, config %+v; want what it held and its subjects and limits", si.State, si.Config)
	}
	if raw := rawIn(t, e.js, AgentStream); len(raw) != 1 {
		t.Errorf("STATUS_AGENTS holds %d messages, want the new agent message", len(raw))
	}
	for _, id := range []string{audit.ID, agent.ID, fresh.ID} {
		if _, err := e.op.StatusShow(ctx, id); err != nil {
			t.Errorf("show %s: %v", id, err)
		}
	}
	list, err := e.op.StatusList(ctx, contracts.StatusListRequest{Filter: contracts.StatusFilter{Clients: []string{client1}}})
	if err != nil || len(list.Messages) != 2 || list.Messages[0].ID != agent.ID || list.Messages[1].ID != fresh.ID {
		t.Errorf("list --client: got %+v, %v; want the old then the new agent message", list, err)
	}
}

func short(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[len(id)-4:]
	}
	return out
}
