package discovery

import (
	"context"
	"sync"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// Heartbeats are written behind. The handler only notes the latest
// heartbeat of each client in memory (so a flood of heartbeats is taken at
// memory speed), and a flusher writes the notes to the bucket: at once when
// one changes the record in a way others must see (the client comes online,
// or its name, OS, version... changed), else coalesced every FlushEvery, so
// a client costs at most one write per flush however often it beats. The
// sweeper consults the notes not yet written.

// DefaultFlushEvery is how often coalesced heartbeats are written.
const DefaultFlushEvery = 2 * time.Second

// flushWorkers bounds the concurrent writes of one flush.
const flushWorkers = 32

// beat is a heartbeat not yet written.
type beat struct {
	hb   contracts.Heartbeat
	seen time.Time // site clock
}

// beats is the notes of one instance.
type beats struct {
	mu      sync.Mutex
	pending map[string]beat
	urgent  chan struct{} // buffered 1: flush now
}

func newBeats() *beats {
	return &beats{pending: map[string]beat{}, urgent: make(chan struct{}, 1)}
}

// note keeps b as client id's latest heartbeat; urgent asks for a flush now.
func (bs *beats) note(id string, b beat, urgent bool) {
	bs.mu.Lock()
	if cur, ok := bs.pending[id]; !ok || !b.seen.Before(cur.seen) {
		bs.pending[id] = b
	}
	bs.mu.Unlock()
	if urgent {
		select {
		case bs.urgent <- struct{}{}:
		default:
		}
	}
}

// lastSeen returns the newest unwritten heartbeat time of id.
func (bs *beats) lastSeen(id string) (time.Time, bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.pending[id]
	return b.seen, ok
}

// take removes and returns every note.
func (bs *beats) take() map[string]beat {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := bs.pending
	bs.pending = make(map[string]beat, len(out))
	return out
}

// significant reports whether hb changes more of the record than its
// last-seen time: such a change is written at once.
func significant(cur record, hb *contracts.Heartbeat) bool {
	next, write := applyHeartbeat(cur, hb, cur.LastSeen)
	next.LastSeen = cur.LastSeen
	return write && next != cur
}

// flushBeats writes the notes every FlushEvery and whenever one is urgent,
// and once more when ctx ends.
func (s *Service) flushBeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			s.flushOnce(fctx)
			cancel()
			return
		case <-t.C:
		case <-s.beats.urgent:
		}
		s.flushOnce(ctx)
	}
}

// flushOnce writes every note with bounded concurrency. Each write is a
// compare-and-set of the heartbeat onto the current record; a failed one is
// noted again for the next flush unless a newer heartbeat came meanwhile.
func (s *Service) flushOnce(ctx context.Context) {
	notes := s.beats.take()
	if len(notes) == 0 {
		return
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(flushWorkers, len(notes)) {
		wg.Go(func() {
			for id := range work {
				b := notes[id]
				wctx, cancel := context.WithTimeout(ctx, writeTimeout)
				err := s.store.modify(wctx, id, func(cur *record) (*record, bool, error) {
					if cur == nil || cur.LastSeen.After(b.seen) {
						return nil, false, nil // deleted meanwhile, or a newer write won
					}
					r, write := applyHeartbeat(*cur, &b.hb, b.seen)
					return &r, write, nil
				})
				cancel()
				if err != nil && ctx.Err() == nil {
					s.log.Warn("heartbeat not written; retrying at the next flush", "client", id, "err", err)
					s.beats.note(id, b, false)
				}
			}
		})
	}
	for id := range notes {
		work <- id
	}
	close(work)
	wg.Wait()
}
