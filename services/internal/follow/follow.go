// Package follow keeps a service's durable JetStream consumer of another
// service's events running: it waits, with backoff, for the owner to create
// its stream (a service never creates another's), consumes, and starts over
// when the consumer is deleted under it.
package follow

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Backoff between attempts to create the consumer.
const (
	retryBase = 100 * time.Millisecond
	retryMax  = 5 * time.Second
)

// Durable runs consumer cfg on stream, passing every message to handle,
// until ctx ends; then it drains what is in flight. handle acks, naks or
// terminates each message itself.
func Durable(ctx context.Context, log *slog.Logger, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, handle func(jetstream.Msg)) {
	log = log.With("stream", stream, "consumer", cfg.Durable)
	wait, told := retryBase, false
	for ctx.Err() == nil {
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				if !told {
					log.Info("waiting for the stream to be created by its owner")
					told = true
				}
			} else {
				log.Warn("create consumer", "err", err, "retry_in", wait)
			}
			if !sleep(ctx, wait) {
				return
			}
			wait = min(wait*2, retryMax)
			continue
		}
		wait, told = retryBase, false
		lost := make(chan struct{}, 1)
		cc, err := cons.Consume(handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case lost <- struct{}{}:
				default:
				}
			}
		}))
		if err != nil {
			log.Warn("consume", "err", err, "retry_in", wait)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		log.Info("consuming")
		select {
		case <-ctx.Done():
			cc.Drain()
			<-cc.Closed()
			return
		case <-lost:
			log.Warn("consumer was deleted; recreating it")
			cc.Stop()
			<-cc.Closed()
		}
	}
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
