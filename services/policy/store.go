package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/services/internal/cas"
)

// clientRecord is what the site holds for one client (ClientsBucket, key
// the client ID): the collections with settings deployed that it is a
// member of, and its current policy revision with the hash of what that
// revision says and the catalog revision it was computed from.
type clientRecord struct {
	ID          string    `json:"id"`
	Collections []string  `json:"collections,omitempty"` // sorted collection IDs
	Revision    uint64    `json:"revision,omitempty"`
	Hash        string    `json:"hash,omitempty"`
	Catalog     uint64    `json:"catalog,omitempty"`
	Issued      time.Time `json:"issued,omitzero"`
}

// complianceRecord is what a client last reported (ComplianceBucket, key
// the client ID).
type complianceRecord struct {
	AppliedRevision  uint64    `json:"appliedRevision"`
	AppliedAt        time.Time `json:"appliedAt,omitzero"` // the agent's clock
	Reported         time.Time `json:"reported"`           // the site's clock
	RejectedRevision uint64    `json:"rejectedRevision,omitempty"`
	Code             string    `json:"code,omitempty"`
	Reason           string    `json:"reason,omitempty"`
	RejectedAt       time.Time `json:"rejectedAt,omitzero"`
}

// errConflict is a compare-and-set that lost: someone wrote the key first.
var errConflict = errors.New("the key changed since it was read")

// kvWrite is one put to a bucket: with cas, only if the key is still at
// revision last (0: only if it does not exist).
type kvWrite struct {
	key   string
	value []byte
	cas   bool
	last  uint64
}

// writer puts entries into one KV bucket, many at once. Callers block in
// Write; a single flusher takes everything queued (up to maxBatch) and
// commits it as one JetStream atomic batch, so a thousand writes cost one
// disk sync instead of a thousand (the site's server syncs every write).
// A batch whose compare-and-set fails is split in halves until the
// conflicting writes are alone; they fail with errConflict and the rest
// commit. Without atomic batches (a server before 2.12, or the stream
// refusing them) every write is an ordinary pipelined publish.
type writer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	bucket  string
	atomic  atomic.Bool
	log     *slog.Logger
	timeout time.Duration

	mu      sync.Mutex
	queue   []*pending
	wake    chan struct{}
	stopped chan struct{}
}

// maxBatch is the server's default limit of messages in an atomic batch.
const maxBatch = 1000

type pending struct {
	w    kvWrite
	done chan result
}

type result struct {
	rev uint64
	err error
}

func newWriter(nc *nats.Conn, js jetstream.JetStream, bucket string, atomicBatches bool, log *slog.Logger) *writer {
	w := &writer{nc: nc, js: js, bucket: bucket, log: log, timeout: 10 * time.Second,
		wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	w.atomic.Store(atomicBatches)
	return w
}

// enableAtomic turns on atomic batch publishing on the bucket's stream.
func enableAtomic(ctx context.Context, js jetstream.JetStream, bucket string) error {
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	if cfg.AllowAtomicPublish {
		return nil
	}
	cfg.AllowAtomicPublish = true
	_, err = js.UpdateStream(ctx, cfg)
	return err
}

// run flushes until ctx ends; writes still queued then fail.
func (w *writer) run(ctx context.Context) {
	inflight := make(chan struct{}, maxInflight)
	defer func() {
		for range maxInflight { // wait for the batches in flight
			inflight <- struct{}{}
		}
		close(w.stopped)
	}()
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			q := w.queue
			w.queue = nil
			w.mu.Unlock()
			for _, p := range q {
				p.done <- result{err: ctx.Err()}
			}
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			n := min(len(w.queue), maxBatch)
			batch := w.queue[:n:n]
			w.queue = w.queue[n:]
			w.mu.Unlock()
			if n == 0 {
				break
			}
			// A few batches in flight at once: one is staged while another
			// waits for its disk sync. Records are compare-and-set, so two
			// batches writing one record cannot both win; a client's
			// reports come one outbox batch at a time.
			inflight <- struct{}{}
			go func() {
				defer func() { <-inflight }()
				w.commit(ctx, batch)
			}()
		}
	}
}

// maxInflight bounds the batches committing at once (the server allows 50
// per stream).
const maxInflight = 4

// Write commits ws and returns each write's new revision or error
// (errConflict for a compare-and-set that lost).
func (w *writer) Write(ctx context.Context, ws []kvWrite) []result {
	return w.collect(ctx, w.submit(ws))
}

// submit queues ws for the flusher, behind what is queued already.
func (w *writer) submit(ws []kvWrite) []*pending {
	ps := make([]*pending, len(ws))
	for i, kw := range ws {
		ps[i] = &pending{w: kw, done: make(chan result, 1)}
	}
	w.mu.Lock()
	w.queue = append(w.queue, ps...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return ps
}

// collect waits for the results of submitted writes.
func (w *writer) collect(ctx context.Context, ps []*pending) []result {
	out := make([]result, len(ps))
	for i, p := range ps {
		select {
		case r := <-p.done:
			out[i] = r
		case <-ctx.Done():
			out[i] = result{err: ctx.Err()}
		case <-w.stopped:
			out[i] = result{err: errors.New("the policy service is stopping")}
		}
	}
	return out
}

// commit writes batch, splitting on a lost compare-and-set.
func (w *writer) commit(ctx context.Context, batch []*pending) {
	if !w.atomic.Load() {
		w.publishEach(ctx, batch)
		return
	}
	revs, err := w.atomicBatch(ctx, batch)
	switch {
	case err == nil:
		for i, p := range batch {
			p.done <- result{rev: revs[i]}
		}
	case errors.Is(err, errConflict) && len(batch) == 1:
		batch[0].done <- result{err: errConflict}
	case errors.Is(err, errConflict):
		half := len(batch) / 2
		w.commit(ctx, batch[:half])
		w.commit(ctx, batch[half:])
	case errors.Is(err, errAtomicRefused):
		w.log.Warn("atomic batch publish refused by the server; writing one message at a time", "bucket", w.bucket, "err", err)
		w.atomic.Store(false)
		w.publishEach(ctx, batch)
	default:
		for _, p := range batch {
			p.done <- result{err: err}
		}
	}
}

var errAtomicRefused = errors.New("atomic batch publish is not available")

func (w *writer) subject(key string) string { return "$KV." + w.bucket + "." + key }

// atomicBatch publishes batch as one atomic batch: every message but the
// last without waiting, the last (the commit) as a request for the ack.
func (w *writer) atomicBatch(ctx context.Context, batch []*pending) ([]uint64, error) {
	id := uuid.NewString()
	for i, p := range batch {
		m := nats.NewMsg(w.subject(p.w.key))
		m.Data = p.w.value
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if p.w.cas {
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(p.w.last, 10))
		}
		if i < len(batch)-1 {
			if err := w.nc.PublishMsg(m); err != nil {
				return nil, err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		rctx, cancel := context.WithTimeout(ctx, w.timeout)
		reply, err := w.nc.RequestMsgWithContext(rctx, m)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("commit batch of %d writes to %s: %w", len(batch), w.bucket, err)
		}
		var ack struct {
			Seq   uint64 `json:"seq"`
			Count int    `json:"count"`
			Error *struct {
				Code        int    `json:"code"`
				ErrCode     int    `json:"err_code"`
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return nil, fmt.Errorf("batch ack from %s: %w", w.bucket, err)
		}
		if e := ack.Error; e != nil {
			switch {
			case cas.LostCode(jetstream.ErrorCode(e.ErrCode)):
				return nil, errConflict
			case strings.Contains(strings.ToLower(e.Description), "atomic publish") && strings.Contains(strings.ToLower(e.Description), "disabled"):
				return nil, errAtomicRefused
			}
			return nil, fmt.Errorf("batch of %d writes to %s refused: %s (%d)", len(batch), w.bucket, e.Description, e.ErrCode)
		}
		revs := make([]uint64, len(batch))
		for j := range batch {
			revs[j] = ack.Seq - uint64(len(batch)-1-j)
		}
		return revs, nil
	}
	return nil, nil
}

// publishEach writes one message at a time (pipelined), for servers
// without atomic batches.
func (w *writer) publishEach(ctx context.Context, batch []*pending) {
	futs := make([]jetstream.PubAckFuture, len(batch))
	for i, p := range batch {
		m := nats.NewMsg(w.subject(p.w.key))
		m.Data = p.w.value
		var opts []jetstream.PublishOpt
		if p.w.cas {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(p.w.last))
		}
		f, err := w.js.PublishMsgAsync(m, opts...)
		if err != nil {
			p.done <- result{err: err}
			continue
		}
		futs[i] = f
	}
	t := time.NewTimer(w.timeout)
	defer t.Stop()
	for i, p := range batch {
		f := futs[i]
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			p.done <- result{rev: ack.Sequence}
		case err := <-f.Err():
			if cas.Lost(err) {
				err = errConflict
			}
			p.done <- result{err: err}
		case <-t.C:
			p.done <- result{err: fmt.Errorf("no acknowledgement from %s in %s", w.bucket, w.timeout)}
		case <-ctx.Done():
			p.done <- result{err: ctx.Err()}
		}
	}
}
