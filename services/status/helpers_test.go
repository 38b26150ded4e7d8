package status

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

const site = "LAB"

func quietLog() *slog.Logger {
	if os.Getenv("STEWARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is a server with one status instance, an operator client and a raw
// connection that plays the agents.
type env struct {
	t   testing.TB
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	op  *client.Client
	svc *Service
}

// testConfig is fast to retry and wide open on rate.
func testConfig(nc *nats.Conn) Config {
	return Config{
		NC:             nc,
		Site:           site,
		Log:            quietLog(),
		Rate:           -1,
		NoAuthz:        true, // authorization is tested with a model in authz_test.go
		ActionAttempts: 3,
		ActionBackoff:  []time.Duration{10 * time.Millisecond},
	}
}

func newEnv(t testing.TB, tweak func(*Config)) *env {
	t.Helper()
	srv := natstest.Start(t)
	return newEnvOn(t, srv, tweak)
}

func newEnvOn(t testing.TB, srv *server.Server, tweak func(*Config)) *env {
	t.Helper()
	e := &env{t: t, srv: srv, nc: natstest.Connect(t, srv)}
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	e.op = client.New(natstest.Connect(t, srv), site, "alice")
	cfg := testConfig(natstest.Connect(t, srv))
	if tweak != nil {
		tweak(&cfg)
	}
	e.svc = startService(t, cfg)
	return e
}

func startService(t testing.TB, cfg Config) *Service {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	natstest.RunService(t, s)
	return s
}

// agentMsg is a status message as an agent makes it.
func agentMsg(id int, props map[string]string) contracts.StatusMessage {
	return contracts.NewStatus(id, props)
}

// item wraps a message into an outbox item, as the agent's outbox does.
func item(t testing.TB, m contracts.StatusMessage) contracts.OutboxItem {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return contracts.OutboxItem{ID: m.ID, Type: contracts.TypeStatusMessage, Time: m.Time, Data: data}
}

// send sends items as client's outbox batch and returns the site's ack.
func (e *env) send(clientID string, items ...contracts.OutboxItem) contracts.OutboxAck {
	e.t.Helper()
	ack, err := e.trySend(clientID, items...)
	if err != nil {
		e.t.Fatalf("send batch: %v", err)
	}
	return ack
}

func (e *env) trySend(clientID string, items ...contracts.OutboxItem) (contracts.OutboxAck, error) {
	subj, err := contracts.AgentUp(site, clientID, contracts.KindStatus)
	if err != nil {
		return contracts.OutboxAck{}, err
	}
	batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: items}
	var ack contracts.OutboxAck
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = rpc.Call(ctx, e.nc, subj, batch, &ack)
	return ack, err
}

// stored reads every message in the stream, in order.
func (e *env) stored() []contracts.StatusMessage {
	e.t.Helper()
	return storedIn(e.t, e.js)
}

// storedIn reads every message of both status streams (a stream that does
// not exist holds none), merged in the order they were stored.
func storedIn(t testing.TB, js jetstream.JetStream) []contracts.StatusMessage {
	t.Helper()
	type stored struct {
		at time.Time
		m  contracts.StatusMessage
	}
	var all []stored
	for _, name := range []string{Stream, AgentStream} {
		for _, raw := range rawIn(t, js, name) {
			var m contracts.StatusMessage
			if err := json.Unmarshal(raw.Data(), &m); err != nil {
				t.Fatalf("stored message unreadable: %v", err)
			}
			md, _ := raw.Metadata()
			all = append(all, stored{md.Timestamp, m})
		}
	}
	slices.SortStableFunc(all, func(a, b stored) int { return a.at.Compare(b.at) })
	out := []contracts.StatusMessage{}
	for _, s := range all {
		out = append(out, s.m)
	}
	return out
}

// rawIn reads every message of stream, in order.
func rawIn(t testing.TB, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	if info.NumPending == 0 {
		return out
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			t.Fatalf("read stream %s: %v", stream, err)
		}
		out = append(out, msg)
		md, _ := msg.Metadata()
		if md.NumPending == 0 {
			return out
		}
	}
}

// find returns the stored messages with catalog ID id.
func (e *env) find(id int) []contracts.StatusMessage {
	var out []contracts.StatusMessage
	for _, m := range e.stored() {
		if m.MsgID == id {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	natstest.Wait(e.t, 15*time.Second, what, cond)
}

// addRule adds a rule as the operator.
func (e *env) addRule(r contracts.StatusRule) contracts.StatusRule {
	e.t.Helper()
	got, err := e.op.StatusRulesAdd(context.Background(), r)
	if err != nil {
		e.t.Fatalf("add rule %s: %v", r.Name, err)
	}
	return got
}

// caughtUp waits until the rules processor has handled every stored
// message.
func (e *env) caughtUp() {
	e.t.Helper()
	e.waitFor("the rules processor", func() bool {
		for _, stream := range []string{Stream, AgentStream} {
			cons, err := e.js.Consumer(context.Background(), stream, RulesConsumer)
			if err != nil {
				return false
			}
			ci := cons.CachedInfo()
			if ci.NumPending != 0 || ci.NumAckPending != 0 {
				return false
			}
		}
		return true
	})
}
