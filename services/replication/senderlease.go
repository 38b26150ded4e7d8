package replication

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SendersBucket holds which instance sends to each destination site now:
// key the site code. An entry lives Config.Lease unless its holder renews
// it, so a route's rate limit and schedule hold for the route, not per
// instance: any number of instances may run, one sends to a site at a
// time.
const SendersBucket = "replication-senders"

// destLease is this instance's hold on sending to one destination.
type destLease struct {
	kv    jetstream.KeyValue
	key   string
	value []byte
	rev   uint64
}

// senderRecord is a SendersBucket entry.
type senderRecord struct {
	Instance string    `json:"instance"`
	Since    time.Time `json:"since"`
}

// leaseDest takes dest for this instance; ok is false when another
// instance holds it.
func (snd *sender) leaseDest(ctx context.Context, dest string) (l *destLease, ok bool, err error) {
	b, _ := json.Marshal(senderRecord{Instance: snd.s.instance, Since: snd.s.now()})
	rev, err := snd.s.sendersKV.Create(ctx, dest, b)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return &destLease{kv: snd.s.sendersKV, key: dest, value: b, rev: rev}, true, nil
}

// hold renews l every third of lease until ctx ends, and calls lost (then
// returns) if it cannot: the entry expired and another instance took it,
// or the store is away past the lease.
func (l *destLease) hold(ctx context.Context, lease time.Duration, lost func()) {
	t := time.NewTicker(lease / 3)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rev, err := l.kv.Update(ctx, l.key, l.value, l.rev)
		switch {
		case err == nil:
			l.rev, renewed = rev, time.Now()
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), time.Since(renewed) > lease:
			// Expired and taken (or deleted) since, or away too long.
			lost()
			return
		}
	}
}

// release lets dest go for the next instance.
func (l *destLease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}
