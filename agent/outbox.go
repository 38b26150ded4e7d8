package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// DefaultOutboxMax is how many messages the outbox keeps while the site is
// away before Enqueue refuses more.
const DefaultOutboxMax = 100_000

// batchOverhead leaves room in a batch for its own JSON around the items.
const batchOverhead = 4 << 10

// Enqueue writes a message for the site into the outbox: it is durable on
// disk when Enqueue returns, sent in batches on AgentUp(site, id, kind) while
// the site is reachable, and removed only when the site acknowledges it.
// typ is the message type of v. The message keeps the time it was written.
func (a *Agent) Enqueue(kind, typ string, v any) error {
	entry, err := newEntry(kind, typ, v)
	if err != nil {
		return err
	}
	if _, err := a.store.Enqueue(a.cfg.OutboxMax, entry); err != nil {
		return err
	}
	a.wakeOutbox()
	return nil
}

func newEntry(kind, typ string, v any) (state.Entry, error) {
	for _, tok := range strings.Split(kind, ".") { // a kind may be several tokens ("policy.ack")
		if err := contracts.ValidToken(tok); err != nil {
			return state.Entry{}, fmt.Errorf("outbox kind %q: %w", kind, err)
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return state.Entry{}, fmt.Errorf("outbox: encode %s: %w", typ, err)
	}
	if len(data) > contracts.MaxBatchBytes-batchOverhead {
		return state.Entry{}, fmt.Errorf("outbox: %s of %d bytes is larger than a batch may be (%d)", typ, len(data), contracts.MaxBatchBytes-batchOverhead)
	}
	// Item IDs are time-ordered (UUIDv7): the site stores a status message
	// under its item ID, and finds one by ID quickly when it is.
	return state.Entry{Kind: kind, Item: contracts.OutboxItem{ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Time: time.Now().UTC(), Data: data}}, nil
}

// outboxReconnected tells the sender the connection is back: every kind
// is tried at once.
func (a *Agent) outboxReconnected() {
	select {
	case a.outboxUp <- struct{}{}:
	default:
	}
}

// wakeOutbox tells the sender there is something to send (coalesced).
func (a *Agent) wakeOutbox() {
	select {
	case a.outboxWake <- struct{}{}:
	default:
	}
}

// OutboxLen is the number of messages waiting for the site.
func (a *Agent) OutboxLen() int {
	n, _ := a.store.OutboxLen()
	return n
}

// sendOutbox drains the outbox whenever woken (a new message, a
// reconnect). A kind whose service does not take its messages is tried
// again with backoff, each kind on its own: one that took part of a batch
// (a rate limit) after the shortest wait, one that took nothing after a
// wait that grows. A reconnect tries every kind at once.
func (a *Agent) sendOutbox(ctx context.Context, nc *nats.Conn, id state.Identity) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	type wait struct {
		failures int
		until    time.Time
	}
	waits := map[string]*wait{} // by kind
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.outboxUp:
			clear(waits)
		case <-a.outboxWake:
		case <-retry.C:
		}
		if !nc.IsConnected() {
			continue // the reconnect wakes us again
		}
		now := time.Now()
		var skip []string
		for kind, w := range waits {
			if now.Before(w.until) {
				skip = append(skip, kind)
			}
		}
		results, err := a.drain(ctx, nc, id, skip)
		if err != nil { // the state store
			a.log.Error("outbox not read", "err", err)
			results = map[string]kindResult{"": {err: err}}
		}
		for kind, r := range results {
			if r.err == nil {
				delete(waits, kind)
				continue
			}
			w := waits[kind]
			if w == nil {
				w = &wait{}
				waits[kind] = w
			}
			if r.progress {
				w.failures = 1 // it is taking them: no longer than the shortest wait
			} else {
				w.failures++
			}
			d := backoff(w.failures, time.Second, a.cfg.RetryMax)
			w.until = now.Add(d)
			if r.progress {
				a.log.Debug("outbox partly delivered; the rest follows", "kind", kind, "err", r.err, "retry_in", d.Round(time.Millisecond))
			} else {
				a.log.Warn("outbox not delivered; will retry", "kind", kind, "err", r.err, "retry_in", d.Round(time.Millisecond), "waiting", a.OutboxLen())
			}
		}
		var next time.Time
		for _, w := range waits {
			if next.IsZero() || w.until.Before(next) {
				next = w.until
			}
		}
		retry.Stop()
		if !next.IsZero() {
			retry.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// kindResult is what a drain did for one kind: whether any of its
// messages left the outbox, and why some did not.
type kindResult struct {
	progress bool
	err      error
}

// drain sends everything in the outbox but the kinds in skip, a batch at a
// time, oldest first within each kind. Kinds go to different services: one
// that does not answer, or takes only part of a batch (a rate limit), is
// left for this round so the others still flow. The error is the state
// store's.
func (a *Agent) drain(ctx context.Context, nc *nats.Conn, id state.Identity, skip []string) (map[string]kindResult, error) {
	stuck := slices.Clone(skip)
	results := map[string]kindResult{}
	for ctx.Err() == nil {
		pending, err := a.store.Pending(contracts.MaxBatchItems, stuck...)
		if err != nil {
			return results, err
		}
		if len(pending) == 0 {
			break
		}
		batch := nextBatch(pending)
		kind := batch[0].Kind
		r := results[kind]
		done, err := a.sendBatch(ctx, nc, id, batch)
		if err == nil && len(done) == 0 {
			err = fmt.Errorf("the site stored none of %d %s messages", len(batch), kind)
		}
		if err != nil {
			stuck, r.err = append(stuck, kind), err
			results[kind] = r
			continue
		}
		if err := a.store.Remove(done...); err != nil {
			return results, err
		}
		r.progress = true
		if len(done) < len(batch) {
			stuck, r.err = append(stuck, kind), fmt.Errorf("the site took %d of %d %s messages; the rest wait", len(done), len(batch), kind)
		}
		results[kind] = r
	}
	return results, nil
}

// nextBatch takes the oldest run of entries of one kind that fits a batch.
func nextBatch(pending []state.Entry) []state.Entry {
	size := 0
	for i, e := range pending {
		size += len(e.Item.Data) + 256
		if e.Kind != pending[0].Kind || i == contracts.MaxBatchItems || (i > 0 && size > contracts.MaxBatchBytes-batchOverhead) {
			return pending[:i]
		}
	}
	return pending
}

// sendBatch sends one batch and returns the sequence numbers the site has
// stored or refused for good (both leave the outbox).
func (a *Agent) sendBatch(ctx context.Context, nc *nats.Conn, id state.Identity, batch []state.Entry) ([]uint64, error) {
	subject, err := contracts.AgentUp(id.Site, id.ClientID, batch[0].Kind)
	if err != nil {
		return nil, err
	}
	ctx, span := telemetry.Tracer(tracerName).Start(ctx, "agent.outbox.send")
	defer span.End()
	req := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: make([]contracts.OutboxItem, len(batch))}
	seqOf := make(map[string]uint64, len(batch))
	for i, e := range batch {
		req.Items[i] = e.Item
		seqOf[e.Item.ID] = e.Seq
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	telemetry.Inject(ctx, msg.Header)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(rctx, msg)
	if err != nil {
		if err == nats.ErrNoResponders {
			return nil, fmt.Errorf("no site service takes %s messages yet", batch[0].Kind)
		}
		return nil, fmt.Errorf("send %d %s messages: %w", len(batch), batch[0].Kind, err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		return nil, fmt.Errorf("the site refused the batch: %s (%s)", reply.Header.Get("Nats-Service-Error"), contracts.ParseCode(code))
	}
	var ack contracts.OutboxAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return nil, fmt.Errorf("malformed outbox ack: %w", err)
	}
	var done []uint64
	for _, id := range ack.Stored {
		if seq, ok := seqOf[id]; ok {
			done = append(done, seq)
		}
	}
	for _, r := range ack.Rejected {
		if seq, ok := seqOf[r.ID]; ok {
			a.log.Error("the site refused an outbox message for good; dropping it", "id", r.ID, "code", r.Code.String(), "reason", r.Message)
			done = append(done, seq)
		}
	}
	return done, nil
}
