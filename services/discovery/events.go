package discovery

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/follow"
)

// EventsStream is the admin service's stream of domain events. The admin
// service creates it; discovery only consumes from it.
const EventsStream = "ADMIN_EVENTS"

// ConsumerName is discovery's durable consumer of client identity events.
// Never rename it: a new name would replay every event from the start and
// leave the old consumer holding messages on the server.
const ConsumerName = "discovery-client-events"

// Event delivery limits. MaxAckPending 1 keeps events of a client in order
// across every instance (an "approved" must not overtake its "enrolled");
// identity events are rare, so one at a time costs nothing.
const (
	eventMaxDeliver = 10
	eventAckWait    = 30 * time.Second
	nakBase         = 500 * time.Millisecond
	nakMax          = 30 * time.Second
	retryBase       = 100 * time.Millisecond // publishing membership events
	retryMax        = 5 * time.Second
)

// consumeEvents keeps the durable consumer of client events running until
// ctx ends: it waits (with backoff) for the admin's stream to exist, then
// consumes, and starts over if the consumer is deleted under it.
func (s *Service) consumeEvents(ctx context.Context) {
	subj, err := contracts.Event(s.cfg.Site, "admin", "client")
	if err != nil { // the site code was checked by CheckAndSetDefaults
		s.log.Error("client event subject", "err", err)
		return
	}
	ccfg := jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "discovery keeps client records from admin identity events",
		FilterSubject: subj,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       eventAckWait,
		MaxDeliver:    eventMaxDeliver,
		MaxAckPending: 1,
	}
	follow.Durable(ctx, s.log, s.js, EventsStream, ccfg, func(m jetstream.Msg) { s.onEvent(ctx, m) })
}

// onEvent applies one client event. It acks once the record is written,
// naks with backoff when the write fails, and terminates a message that can
// never apply (malformed, or failing for the last allowed time).
func (s *Service) onEvent(ctx context.Context, m jetstream.Msg) {
	var ev contracts.ClientEvent
	if err := contracts.Decode(m.Data(), contracts.TypeClientEvent, &ev); err != nil {
		s.poison(m, err)
		return
	}
	if ev.Client.ID == "" {
		s.poison(m, contracts.Errorf(contracts.CodeBadRequest, "client event without a client id"))
		return
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	now := s.cfg.Now()
	err := s.store.modify(wctx, ev.Client.ID, func(cur *record) (*record, bool, error) {
		return applyEvent(cur, &ev, now)
	})
	if err == nil && ev.Action == contracts.ClientDeleted {
		err = s.forgetInventory(wctx, ev.Client.ID)
	}
	if err != nil {
		if contracts.CodeOf(err) == contracts.CodeBadRequest {
			s.poison(m, err)
			return
		}
		n := uint64(1)
		if md, merr := m.Metadata(); merr == nil {
			n = md.NumDelivered
		}
		if n >= eventMaxDeliver {
			s.poison(m, err)
			return
		}
		s.log.Warn("client event not applied; will retry", "client", ev.Client.ID, "action", ev.Action, "delivery", n, "err", err)
		if nerr := m.NakWithDelay(nakDelay(n)); nerr != nil {
			s.log.Warn("nak client event", "err", nerr)
		}
		return
	}
	s.log.Debug("client event applied", "client", ev.Client.ID, "action", ev.Action, "by", ev.By)
	if err := m.Ack(); err != nil {
		s.log.Warn("ack client event", "client", ev.Client.ID, "err", err)
	}
}

// poison gives up on a message. A dead-letter stream will take these; for
// now the log line is the record of it.
func (s *Service) poison(m jetstream.Msg, err error) {
	seq := uint64(0)
	if md, merr := m.Metadata(); merr == nil {
		seq = md.Sequence.Stream
	}
	s.log.Error("client event dropped (dead letter)", "stream", EventsStream, "seq", seq, "subject", m.Subject(), "err", err)
	if terr := m.TermWithReason(err.Error()); terr != nil {
		s.log.Warn("term client event", "err", terr)
	}
}

// nakDelay is the backoff before delivery n+1 of a failing event.
func nakDelay(n uint64) time.Duration {
	d := nakBase
	for i := uint64(1); i < n && d < nakMax; i++ {
		d *= 2
	}
	return min(d, nakMax)
}
