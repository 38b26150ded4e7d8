package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// Delivery limits of the rules consumer. Each message is acked on its own
// (AckExplicit): with several instances sharing the consumer, an AckAll
// from one would also ack what another has not done yet.
const (
	rulesAckWait    = 30 * time.Second
	rulesMaxDeliver = 20
	retryBase       = 100 * time.Millisecond
	retryMax        = 5 * time.Second
)

// job is one rule action waiting to run: the rule's name (the rule as it
// is when the job runs is used; a deleted rule's jobs are dropped) and the
// message, carried whole because a later discard may delete it from Stream.
type job struct {
	Rule    string                  `json:"rule"`
	Message contracts.StatusMessage `json:"message"`
}

// rulesConsumerConfig is the rules consumer of one stream of messages
// (each has its own, of the same name).
func (s *Service) rulesConsumerConfig(st storeStream) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       RulesConsumer,
		Description:   "status filter rules: decide store or discard, queue actions, keep client summaries",
		FilterSubject: storedSubjectAll(s.cfg.Site, st.token),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       rulesAckWait,
		MaxDeliver:    rulesMaxDeliver,
		MaxAckPending: 1024,
	}
}

// process runs the rules over every stored message of both streams, once
// site-wide (the instances share each durable consumer), until ctx ends.
func (s *Service) process(ctx context.Context) {
	var wg sync.WaitGroup
	for _, st := range s.stores {
		wg.Go(func() {
			s.consume(ctx, st.name, RulesConsumer, s.rulesConsumerConfig(st), func(m jetstream.Msg) { s.onMessage(ctx, m) })
		})
	}
	wg.Wait()
}

// storeOf is the stream of messages named name.
func (s *Service) storeOf(name string) (jetstream.Stream, error) {
	for _, st := range s.stores {
		if st.name == name {
			return st.stream, nil
		}
	}
	return nil, fmt.Errorf("no status stream %q", name)
}

// consume keeps a durable consumer running until ctx ends, recreating it
// if it is deleted under it.
func (s *Service) consume(ctx context.Context, stream, name string, ccfg jetstream.ConsumerConfig, handler jetstream.MessageHandler) {
	wait := retryBase
	for ctx.Err() == nil {
		cons, err := s.js.CreateOrUpdateConsumer(ctx, stream, ccfg)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("create consumer", "stream", stream, "consumer", name, "err", err, "retry_in", wait)
			sleep(ctx, wait)
			wait = min(wait*2, retryMax)
			continue
		}
		wait = retryBase
		lost := make(chan struct{}, 1)
		cc, err := cons.Consume(handler, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case lost <- struct{}{}:
				default:
				}
			}
		}))
		if err != nil {
			s.log.Warn("consume", "consumer", name, "err", err, "retry_in", wait)
			sleep(ctx, wait)
			continue
		}
		select {
		case <-ctx.Done():
			cc.Drain()
			<-cc.Closed()
			return
		case <-lost:
			s.log.Warn("consumer was deleted; recreating it", "consumer", name)
			cc.Stop()
			<-cc.Closed()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// onMessage runs the rules over one stored message: it queues the matching
// actions as jobs, deletes the message if a discard rule matched, notes it
// in the summaries otherwise, and acks. A failure naks it for a later try,
// with backoff; after rulesMaxDeliver tries it is given up and reported.
// Nothing here waits on an action itself.
func (s *Service) onMessage(ctx context.Context, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		s.log.Error("status message without metadata; skipped by the rules", "err", err)
		_ = m.Term()
		return
	}
	var sm contracts.StatusMessage
	if err := json.Unmarshal(m.Data(), &sm); err != nil {
		s.log.Error("stored status message unreadable; skipped by the rules", "seq", md.Sequence.Stream, "err", err)
		_ = m.TermWithReason("unreadable")
		return
	}
	d := s.rules.current().evaluate(&sm)
	for _, err := range d.errs {
		s.log.Debug("rule match failed at run time (no match)", "uuid", sm.ID, "err", err)
	}
	if err := s.apply(ctx, md.Stream, md.Sequence.Stream, &sm, d); err != nil {
		if ctx.Err() != nil {
			_ = m.Nak()
			return
		}
		if md.NumDelivered >= rulesMaxDeliver {
			s.log.Error("rules not applied to a status message; giving up", "uuid", sm.ID, "seq", md.Sequence.Stream, "attempts", md.NumDelivered, "err", err)
			s.emit.Emit(ctx, contracts.StatusServiceFailed, map[string]string{
				"service": ServiceName, "operation": "apply the status filter rules to message " + sm.ID, "error": truncate(err.Error(), 512),
			})
			_ = m.TermWithReason("gave up")
			return
		}
		s.log.Warn("rules not applied to a status message; will retry", "uuid", sm.ID, "attempt", md.NumDelivered, "err", err)
		_ = m.NakWithDelay(nakDelay(md.NumDelivered))
		return
	}
	if err := m.Ack(); err != nil {
		s.log.Warn("ack status message", "uuid", sm.ID, "err", err)
	}
}

// apply carries out decision d for the message stored at seq of stream.
// Queuing jobs is idempotent (deduplicated by uuid and rule) and so is
// deleting, so apply may run again after a failure.
func (s *Service) apply(ctx context.Context, stream string, seq uint64, sm *contracts.StatusMessage, d decision) error {
	if err := s.queueJobs(ctx, sm, d.actions); err != nil {
		return fmt.Errorf("queue rule actions: %w", err)
	}
	if !d.keep {
		st, err := s.storeOf(stream)
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		defer cancel()
		if err := st.DeleteMsg(dctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("discard (rule %s): %w", d.stopped, err)
		}
		return nil
	}
	// A message forwarded by a child site is about the child's components
	// (and clients), not this site's: it is stored and runs the rules, but
	// the summaries are this site's own.
	if sm.ForwardedFrom != "" {
		return nil
	}
	s.comps.note(sm, s.cfg.Now())
	if sm.Client != "" {
		s.clients.note(sm)
	}
	return nil
}

// queueJobs stores one job per action in ActionStream, deduplicated by
// message uuid and rule, so a redelivered message never queues twice. A
// job the queue refuses because it is full (ActionQueueJobs,
// ActionQueueBytes) is not queued: the rule's action does not run for this
// message, and that is reported (queueFull); the message itself is stored
// and the other rules apply.
func (s *Service) queueJobs(ctx context.Context, sm *contracts.StatusMessage, actions []*rule) error {
	if len(actions) == 0 {
		return nil
	}
	subj, err := contracts.Event(s.cfg.Site, "status", "action")
	if err != nil {
		return err
	}
	futs := make([]jetstream.PubAckFuture, 0, len(actions))
	for _, r := range actions {
		data, _ := json.Marshal(job{Rule: r.def.Name, Message: *sm})
		msg := nats.NewMsg(subj)
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, sm.ID+":"+r.def.Name)
		f, err := s.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("rule %s: %w", r.def.Name, err)
		}
		futs = append(futs, f)
	}
	t := time.NewTimer(s.cfg.StoreTimeout)
	defer t.Stop()
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if queueFull(err) {
				s.dropped.note(ctx, s, actions[i], sm, err)
				continue
			}
			return err
		case <-t.C:
			return errors.New("no acknowledgement from the action queue in time")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// queueFull reports whether err is ActionStream refusing a job because it
// holds as many jobs or bytes as it may (DiscardNew).
func queueFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == jsStoreFailed &&
		(strings.Contains(ae.Description, "maximum messages") || strings.Contains(ae.Description, "maximum bytes"))
}

// jsStoreFailed is JetStream's error code for a message the stream did not
// store (here: over its limits with DiscardNew).
const jsStoreFailed = 10077

// droppedJobs reports jobs the full action queue refused: at most one
// status message (4003) per rule every RateReport, with how many of its
// jobs were refused since the last, so that a flood of them cannot flood
// the site's own messages in turn.
type droppedJobs struct {
	mu     sync.Mutex
	byRule map[string]*droppedRule
}

type droppedRule struct {
	reported time.Time
	count    int // refused since the last report
}

func (d *droppedJobs) note(ctx context.Context, s *Service, r *rule, sm *contracts.StatusMessage, err error) {
	now := s.cfg.Now()
	d.mu.Lock()
	if d.byRule == nil {
		d.byRule = map[string]*droppedRule{}
	}
	dr := d.byRule[r.def.Name]
	if dr == nil {
		dr = &droppedRule{}
		d.byRule[r.def.Name] = dr
	}
	dr.count++
	report := dr.reported.IsZero() || now.Sub(dr.reported) >= s.cfg.RateReport
	n := dr.count
	if report {
		dr.reported, dr.count = now, 0
	}
	for name, o := range d.byRule { // forget rules long quiet
		if now.Sub(o.reported) > limiterIdle && o.count == 0 {
			delete(d.byRule, name)
		}
	}
	d.mu.Unlock()
	// Warn, not Error: the service's errors become status messages.
	s.log.Warn("rule action not queued: the action queue is full", "rule", r.def.Name, "action", r.def.Action, "uuid", sm.ID, "err", err)
	if !report {
		return
	}
	s.emit.Emit(ctx, contracts.StatusRuleActionGaveUp, map[string]string{
		"rule": r.def.Name, "action": r.def.Action, "message": sm.ID,
		"attempt": "0", "attempts": "0",
		"error": fmt.Sprintf("not queued: the action queue is full (at most %d jobs, %d bytes, waiting to run: is an action hanging?); %d of this rule's actions were not queued since the last report", s.cfg.ActionQueueJobs, s.cfg.ActionQueueBytes, n),
	})
}

// nakDelay is the backoff before delivery n+1.
func nakDelay(n uint64) time.Duration {
	d := retryBase
	for i := uint64(1); i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}
