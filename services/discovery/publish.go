package discovery

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// publishAttempts bounds the tries of one membership event before it is
// dropped (and logged): a stream that refuses it for that long is broken.
const publishAttempts = 12

// publish sends the model's membership events to DiscoveryEventsStream, in
// order, until ctx ends. Each waits for the server's acknowledgement and is
// retried with its Nats-Msg-Id, so it is stored once.
func (s *Service) publish(ctx context.Context) {
	subj, err := contracts.MembershipSubject(s.cfg.Site)
	if err != nil { // the site code was checked by CheckAndSetDefaults
		s.log.Error("membership subject", "err", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.events:
			s.publishEvent(ctx, subj, e)
		}
	}
}

func (s *Service) publishEvent(ctx context.Context, subj string, e *pendingEvent) {
	data, err := json.Marshal(e.ev)
	if err != nil {
		s.log.Error("membership event unencodable", "err", err)
		return
	}
	wait := retryBase
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, writeTimeout)
		_, err := s.js.PublishMsg(pctx, &nats.Msg{Subject: subj, Data: data}, jetstream.WithMsgID(e.msgID))
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt == publishAttempts {
			s.log.Error("membership event dropped", "collection", e.ev.Collection.ID, "added", len(e.ev.Added), "removed", len(e.ev.Removed), "err", err)
			return
		}
		s.log.Warn("publish membership event", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, retryMax)
	}
}
