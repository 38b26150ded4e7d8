package status

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// largeProps are the properties of a legal agent message of ~20 KB (far
// under the 64 KiB limit of one message).
func largeProps() map[string]string {
	props := map[string]string{}
	for i := range contracts.MaxStatusProperties {
		props[string(rune('a'+i%26))+strings.Repeat("k", i/26+1)] = strings.Repeat("v", 600)
	}
	return props
}

// storeLarge has n clients (one, with clients false) store n large legal
// messages and returns their uuids in order.
func storeLarge(t *testing.T, e *env, n int, clients bool) []string {
	t.Helper()
	props := largeProps()
	var ids []string
	for i := range n { // one per batch: a batch is at most 900 KiB
		from := "c-noisy"
		if clients {
			from = "c-" + strings.Repeat("x", i+1)
		}
		m := agentMsg(10999, props) // an unknown agent-block ID: stored, flagged
		if ack := e.send(from, item(t, m)); len(ack.Stored) != 1 {
			t.Fatalf("not stored: %+v", ack.Rejected)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// TestListPageByteBudget: 60 legal messages of ~20 KB made the default page
// (100 messages) larger than the server carries; the answer failed to send
// and every operator's `status list` timed out. A page now ends at a byte
// budget, and Next goes on from there: every message once, in order.
func TestListPageByteBudget(t *testing.T) {
	e := newEnv(t, nil)
	ids := storeLarge(t, e, 60, false)
	var got []string
	pages := 0
	for after := ""; ; pages++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := e.op.StatusList(ctx, contracts.StatusListRequest{Filter: contracts.StatusFilter{Clients: []string{"c-noisy"}}, After: after})
		cancel()
		if err != nil {
			t.Fatalf("status list (default page) failed: %v", err)
		}
		b, _ := json.Marshal(resp)
		if len(b) > maxPageBytes+64<<10 {
			t.Errorf("page %d is %d bytes", pages, len(b))
		}
		for _, m := range resp.Messages {
			got = append(got, m.ID)
		}
		if resp.Next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		after = resp.Next
	}
	if pages < 1 || strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("got %d messages in %d pages, want the %d in order over at least two pages", len(got), pages+1, len(ids))
	}
}

// TestClientsTrimmedToFit: `status clients` answers every client's
// summary, each with its whole last message, in one message: 60 clients
// whose last message is ~20 KB made it unanswerable. Past the budget the
// last messages are trimmed to what the table shows.
func TestClientsTrimmedToFit(t *testing.T) {
	e := newEnv(t, nil)
	ids := storeLarge(t, e, 60, true)
	e.caughtUp()
	e.waitFor("the client summaries", func() bool {
		sums, err := e.op.StatusClients(context.Background(), "c-x")
		return err == nil && len(sums) == 1
	})
	e.waitFor("every client's summary", func() bool {
		n := 0
		_ = readAll(context.Background(), e.svc.clients.kv, func(string, []byte) error { n++; return nil })
		return n == len(ids)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sums, err := e.op.StatusClients(ctx, "")
	if err != nil {
		t.Fatalf("status clients failed: %v", err)
	}
	if len(sums) != len(ids) {
		t.Fatalf("got %d summaries, want %d", len(sums), len(ids))
	}
	last := map[string]bool{}
	for _, s := range sums {
		last[s.Last.ID] = true
		if s.Info+s.Warning+s.Error != 1 || s.Last.Text == "" || len(s.Last.Properties) != 0 || len([]rune(s.Last.Text)) > trimmedText+1 {
			t.Errorf("summary of %s: %d messages, text %d characters, %d properties; want 1, trimmed, none", s.Client, s.Info+s.Warning+s.Error, len(s.Last.Text), len(s.Last.Properties))
		}
	}
	for _, id := range ids {
		if !last[id] {
			t.Errorf("no summary has last message %s", id)
		}
	}
	// One client's summary is whole.
	one, err := e.op.StatusClients(ctx, "c-x")
	if err != nil || len(one) != 1 || len(one[0].Last.Properties) != contracts.MaxStatusProperties {
		t.Errorf("one client: got %+v, %v; want its whole last message", one, err)
	}
}

// TestRulesTestByteBudget: a replay's results stop at the byte budget as
// they stop at the limit; Matched counts them all.
func TestRulesTestByteBudget(t *testing.T) {
	e := newEnv(t, nil)
	storeLarge(t, e, 60, false)
	e.caughtUp()
	e.addRule(contracts.StatusRule{Name: "noisy", Match: `client == "c-noisy"`, Action: contracts.RuleStore})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.op.StatusRulesTest(ctx, contracts.StatusRuleTestRequest{Name: "noisy"})
	if err != nil {
		t.Fatalf("rules test failed: %v", err)
	}
	if resp.Matched != 60 || len(resp.Results) == 0 || len(resp.Results) >= 60 {
		t.Errorf("got %d matched, %d results; want 60 matched and fewer results than that", resp.Matched, len(resp.Results))
	}
}

// TestClientsPaged: past one answer, `status clients` goes on in pages
// (newest first, then by client); it stopped at what fitted in one, and
// the clients that reported longest ago were left out without a word.
func TestClientsPaged(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) { o.MaxPayload = 64 << 10 })
	e := newEnvOn(t, srv, nil)
	const n = 400
	for i := range n {
		m := agentMsg(10999, nil)
		m.Text = strings.Repeat("t", 150)
		if ack := e.send(fmt.Sprintf("c-%03d", i), item(t, m)); len(ack.Stored) != 1 {
			t.Fatalf("not stored: %+v", ack.Rejected)
		}
	}
	e.caughtUp()
	e.waitFor("every client's summary", func() bool {
		k := 0
		_ = readAll(context.Background(), e.svc.clients.kv, func(string, []byte) error { k++; return nil })
		return k == n
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := e.svc.clientStatus(ctx, contracts.SubjectInfo{}, &contracts.StatusClientsRequest{})
	if err != nil || first.Next == "" || len(first.Clients) >= n {
		t.Fatalf("first page: %d summaries, next %q, %v; want fewer than %d and a cursor", len(first.Clients), first.Next, err, n)
	}
	sums, err := e.op.StatusClients(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, s := range sums {
		if seen[s.Client] {
			t.Fatalf("%s listed twice", s.Client)
		}
		seen[s.Client] = true
		if i > 0 && s.Last.Time.After(sums[i-1].Last.Time) {
			t.Fatalf("summary %d (%s) is newer than the one before", i, s.Client)
		}
	}
	if len(seen) != n {
		t.Fatalf("got %d clients over every page, want %d", len(seen), n)
	}
	if _, err := e.svc.clientStatus(ctx, contracts.SubjectInfo{}, &contracts.StatusClientsRequest{After: "yesterday"}); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("a cursor not given by the service: %v, want bad_request", err)
	}
}
