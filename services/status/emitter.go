package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"go.opentelemetry.io/otel/trace"
)

// EmitterConfig configures an Emitter.
type EmitterConfig struct {
	// NC is the service's connection to the site account.
	NC *nats.Conn
	// Site is the site code; it is the messages' Site and Source.
	Site string
	// Component is the sender's component (contracts.Component*), used for
	// the generic catalog entries (service started, stopping, failed).
	Component string
	// Instance names the sending instance: "<service name>/<instance id>".
	Instance string
	// Log receives what cannot be emitted.
	Log *slog.Logger
	// Buffer is how many messages may wait to be stored. Default 1024.
	Buffer int
	// Timeout bounds one attempt to store a message. Default 5s.
	Timeout time.Duration
}

// Emitter sends a service's status messages to the site's status stream.
// Emit never blocks: the message is queued and stored in the background,
// retried with the same Nats-Msg-Id (its uuid) until the stream has it, so a
// retry never stores it twice. Publish waits for the stream instead. Both
// fill in Site, Source (the site code), Instance, Component and the trace of
// ctx. Use one Emitter per service instance; it is safe for concurrent use.
type Emitter struct {
	cfg     EmitterConfig
	js      jetstream.JetStream
	queue   chan contracts.StatusMessage
	done    chan struct{}
	closing chan struct{}
	once    sync.Once
	dropped atomic.Int64
	// ctx ends retries once Close's deadline passes.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewEmitter checks cfg and starts the emitter's background sender.
func NewEmitter(cfg EmitterConfig) (*Emitter, error) {
	if cfg.NC == nil {
		return nil, errors.New("status emitter: a NATS connection is required")
	}
	if err := contracts.ValidToken(cfg.Site); err != nil {
		return nil, fmt.Errorf("status emitter: site: %w", err)
	}
	if err := contracts.ValidToken(cfg.Component); err != nil {
		return nil, fmt.Errorf("status emitter: component: %w", err)
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	js, err := jetstream.New(cfg.NC)
	if err != nil {
		return nil, fmt.Errorf("status emitter: %w", err)
	}
	e := &Emitter{
		cfg:     cfg,
		js:      js,
		queue:   make(chan contracts.StatusMessage, cfg.Buffer),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	go e.run()
	return e, nil
}

// Message builds the status message of catalog entry id with props as this
// emitter sends it, without sending it.
func (e *Emitter) Message(ctx context.Context, id int, props map[string]string) contracts.StatusMessage {
	m := contracts.NewStatus(id, props)
	e.stamp(ctx, &m)
	return m
}

func (e *Emitter) stamp(ctx context.Context, m *contracts.StatusMessage) {
	if m.Component == "" || contracts.ValidToken(m.Component) != nil {
		m.Component = e.cfg.Component
	}
	m.Site, m.Source, m.Client, m.Instance = e.cfg.Site, e.cfg.Site, "", e.cfg.Instance
	if m.TraceID == "" {
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			m.TraceID = sc.TraceID().String()
		}
	}
}

// Sink is what a service sends its status messages to: an *Emitter, or a
// test's recorder.
type Sink interface {
	Emit(ctx context.Context, id int, props map[string]string) contracts.StatusMessage
}

var _ Sink = (*Emitter)(nil)

// Emit queues the message of catalog entry id and returns it (its ID is the
// uuid it will be stored under). It never blocks: when the queue is full
// the message is dropped and logged at error level.
func (e *Emitter) Emit(ctx context.Context, id int, props map[string]string) contracts.StatusMessage {
	m := e.Message(ctx, id, props)
	e.EmitMessage(m)
	return m
}

// EmitMessage queues m as it is (see Message); it never blocks.
func (e *Emitter) EmitMessage(m contracts.StatusMessage) {
	select {
	case <-e.closing:
		e.lost(m, "emitter closed")
		return
	default:
	}
	select {
	case e.queue <- m:
	default:
		e.lost(m, "queue full")
	}
}

func (e *Emitter) lost(m contracts.StatusMessage, why string) {
	n := e.dropped.Add(1)
	e.cfg.Log.Error("status message not sent", "why", why, "msg_id", m.MsgID, "uuid", m.ID, "text", m.Text, "audit", m.Audit, "dropped_total", n)
}

// Publish stores m (built with Message) and returns once the stream has it,
// retrying until ctx ends.
func (e *Emitter) Publish(ctx context.Context, m contracts.StatusMessage) error {
	wait := 50 * time.Millisecond
	for {
		err := e.publish(ctx, m)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("status message %d (%s) not stored: %w", m.MsgID, m.ID, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

func (e *Emitter) publish(ctx context.Context, m contracts.StatusMessage) error {
	msg, err := storeMsg(siteToken, m, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	_, err = e.js.PublishMsg(ctx, msg)
	return err
}

// storeMsg is m as the stream of token (siteToken: Stream, the site's
// services'; agentsToken: AgentStream) stores it: on its subject, with its
// uuid as Nats-Msg-Id, received now if not yet.
func storeMsg(token string, m contracts.StatusMessage, now time.Time) (*nats.Msg, error) {
	if m.Received.IsZero() {
		m.Received = now.UTC()
	}
	subj, err := storedSubject(token, m.Site, m.Component, m.Severity, m.Source)
	if err != nil {
		return nil, fmt.Errorf("status message %d: %w", m.MsgID, err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	// The stored form can be several times what was sent (JSON escapes
	// "<" as six bytes): the stream would refuse it.
	if len(data)+storedHeaderRoom > contracts.MaxMessageBytes {
		return nil, contracts.Errorf(contracts.CodeTooLarge, "status message %d is %d bytes as stored, over the %d-byte limit (its text and properties are too long)", m.MsgID, len(data), contracts.MaxMessageBytes-storedHeaderRoom)
	}
	msg := nats.NewMsg(subj)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, m.ID)
	return msg, nil
}

// storedHeaderRoom is left in a stored message for its headers.
const storedHeaderRoom = 256

// run stores queued messages until Close, then what is still queued.
func (e *Emitter) run() {
	defer close(e.done)
	for {
		select {
		case m := <-e.queue:
			e.deliver(m)
		case <-e.closing:
			for {
				select {
				case m := <-e.queue:
					e.deliver(m)
				default:
					return
				}
			}
		}
	}
}

// deliver stores m, retrying with backoff until it is stored or Close's
// deadline passes.
func (e *Emitter) deliver(m contracts.StatusMessage) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := e.publish(e.ctx, m)
		if err == nil {
			return
		}
		if e.ctx.Err() != nil {
			e.lost(m, "not stored before close: "+err.Error())
			return
		}
		if attempt == 1 || attempt%20 == 0 {
			e.cfg.Log.Warn("status message not stored yet; retrying", "msg_id", m.MsgID, "uuid", m.ID, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// Close stops accepting messages and stores the queued ones until ctx
// ends; what is left then is dropped and logged.
func (e *Emitter) Close(ctx context.Context) error {
	e.once.Do(func() { close(e.closing) })
	defer e.cancel()
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		e.cancel()
		<-e.done
		return ctx.Err()
	}
}

// Dropped is how many messages were dropped (queue full, or not stored
// before Close).
func (e *Emitter) Dropped() int64 { return e.dropped.Load() }
