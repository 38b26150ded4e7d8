// Package jsbatch writes messages to one JetStream stream many at once.
//
// The site's server syncs every write to disk, so a message stored on its
// own costs a disk sync. A Writer gathers what its callers submit (from any
// number of goroutines) and commits it as one JetStream atomic batch, which
// a single-replica stream syncs once: a thousand writes cost one sync
// instead of a thousand. A batch whose compare-and-set fails is split in
// halves until the conflicting writes are alone; they fail with ErrConflict
// and the rest commit. A batch the server answers with any other error (a
// message ID it has seen, too many batches in flight, more messages than
// its max_batch_size, one message it refused, which leaves the batch
// incomplete) is written one message at a time, so that each write gets
// its own outcome. So is every batch for a while after the stream refuses
// atomic batches (a server before 2.12, or another instance updating the
// stream's configuration at that moment).
package jsbatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/services/internal/cas"
)

// ErrConflict is a compare-and-set that lost: the subject's last sequence
// was not the one expected.
var ErrConflict = errors.New("the key changed since it was read")

// Write is one message to store. With CAS it is stored only if its
// subject's last sequence in the stream is Last (0: no message yet).
type Write struct {
	Msg  *nats.Msg
	CAS  bool
	Last uint64
}

// Result is one write's outcome: the stream sequence it was stored at (for
// a duplicate message ID, the original's), or why it was not stored.
type Result struct {
	Seq uint64
	Err error
}

// Server limits of atomic batches: messages in one batch, batches in
// flight on one stream (the server allows 50; a few are enough for one is
// staged while another waits for its disk sync).
const (
	MaxBatch    = 1000
	maxInflight = 4
	// minAtomic: a batch this small is published message by message; an
	// atomic batch stages its messages in a store of its own first, which
	// costs about what a few single writes do.
	minAtomic = 4
)

// Writer commits writes to one stream. Run must be running for writes to
// complete.
type Writer struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string
	atomic atomic.Bool
	// retryAtomic is when to try atomic batches again after a refusal.
	retryAtomic atomic.Int64
	log         *slog.Logger
	timeout     time.Duration

	mu      sync.Mutex
	queue   []*pending
	wake    chan struct{}
	stopped chan struct{}
}

type pending struct {
	w    Write
	done chan Result
}

// New returns a writer to stream (used in messages only) over nc and js.
// atomicBatches says whether the stream takes atomic batches (see
// EnableAtomic); if the server refuses one anyway the writer stops trying.
// timeout bounds the wait for the stream's acknowledgement of a batch.
func New(nc *nats.Conn, js jetstream.JetStream, stream string, atomicBatches bool, timeout time.Duration, log *slog.Logger) *Writer {
	w := &Writer{nc: nc, js: js, stream: stream, log: log, timeout: timeout,
		wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	w.atomic.Store(atomicBatches)
	return w
}

// EnableAtomic turns on atomic batch publishing on a stream.
func EnableAtomic(ctx context.Context, js jetstream.JetStream, stream string) error {
	st, err := js.Stream(ctx, stream)
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

// Pending is submitted writes on their way to the stream.
type Pending struct {
	w  *Writer
	ps []*pending
}

// Wait returns each write's result, or ctx's error for those not done.
func (p Pending) Wait(ctx context.Context) []Result {
	out := make([]Result, len(p.ps))
	for i, q := range p.ps {
		select {
		case r := <-q.done:
			out[i] = r
			continue
		case <-ctx.Done():
			out[i] = Result{Err: ctx.Err()}
		case <-p.w.stopped:
			select {
			case out[i] = <-q.done:
			default:
				out[i] = Result{Err: fmt.Errorf("the writer to %s has stopped", p.w.stream)}
			}
		}
	}
	return out
}

// Write commits ws and returns each write's result.
func (w *Writer) Write(ctx context.Context, ws ...Write) []Result {
	return w.Submit(ws...).Wait(ctx)
}

// Submit queues ws behind what is queued already and returns at once.
func (w *Writer) Submit(ws ...Write) Pending {
	ps := make([]*pending, len(ws))
	for i, kw := range ws {
		ps[i] = &pending{w: kw, done: make(chan Result, 1)}
	}
	w.mu.Lock()
	w.queue = append(w.queue, ps...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return Pending{w, ps}
}

// Run commits until ctx ends; writes still queued then fail with ctx's
// error.
func (w *Writer) Run(ctx context.Context) {
	inflight := make(chan struct{}, maxInflight)
	fail := func() {
		w.mu.Lock()
		q := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, p := range q {
			p.done <- Result{Err: ctx.Err()}
		}
	}
	defer func() {
		for range maxInflight { // wait for the batches in flight
			inflight <- struct{}{}
		}
		close(w.stopped)
	}()
	for {
		select {
		case <-ctx.Done():
			fail()
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			n := min(len(w.queue), MaxBatch)
			batch := w.queue[:n:n]
			w.queue = w.queue[n:]
			w.mu.Unlock()
			if n == 0 {
				break
			}
			inflight <- struct{}{}
			wait := w.send(ctx, batch)
			go func() {
				defer func() { <-inflight }()
				wait()
			}()
		}
	}
}

// refusedFor is how long a writer writes one message at a time after the
// stream refused an atomic batch.
const refusedFor = 30 * time.Second

// commit writes batch, atomically where it can, and waits for it.
func (w *Writer) commit(ctx context.Context, batch []*pending) { w.send(ctx, batch)() }

// send publishes batch now, atomically where it can, and returns what
// waits for its outcome. Batches are published in the order their writes
// were submitted (Run sends one after the other; only the waiting runs
// alongside), so two writes of one key in two batches are stored in the
// order submitted. A batch the server refuses is written again after the
// batches sent meanwhile.
func (w *Writer) send(ctx context.Context, batch []*pending) func() {
	if len(batch) < minAtomic || !w.atomic.Load() || time.Now().UnixNano() < w.retryAtomic.Load() {
		return w.publishEach(ctx, batch)
	}
	fut, err := w.publishAtomic(batch)
	if err != nil {
		return func() {
			for _, p := range batch {
				p.done <- Result{Err: err}
			}
		}
	}
	return func() {
		seqs, err := w.atomicOutcome(ctx, fut, len(batch))
		switch {
		case err == nil:
			for i, p := range batch {
				p.done <- Result{Seq: seqs[i]}
			}
		case errors.Is(err, ErrConflict):
			half := len(batch) / 2
			w.commit(ctx, batch[:half])
			w.commit(ctx, batch[half:])
		case errors.Is(err, errRefused):
			w.log.Warn("atomic batch publish refused by the server; writing one message at a time for a while", "stream", w.stream, "err", err, "retry_in", refusedFor)
			w.retryAtomic.Store(time.Now().Add(refusedFor).UnixNano())
			w.commit(ctx, batch)
		case errors.Is(err, errOneByOne):
			w.publishEach(ctx, batch)()
		default:
			for _, p := range batch {
				p.done <- Result{Err: err}
			}
		}
	}
}

var (
	errRefused  = errors.New("atomic batch publish is not available")
	errOneByOne = errors.New("the batch must be written one message at a time")
)

// codeDisabled is nats-server's JSAtomicPublishDisabled error.
const codeDisabled = 10174

// publishAtomic publishes batch as one atomic batch: every message but
// the last without waiting, the last (the commit) asynchronously for the
// ack. The callers' messages are not changed.
func (w *Writer) publishAtomic(batch []*pending) (jetstream.PubAckFuture, error) {
	id := uuid.NewString()
	for i, p := range batch {
		m := copyMsg(p.w.Msg)
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if p.w.CAS {
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(p.w.Last, 10))
		}
		if i < len(batch)-1 {
			if err := w.nc.PublishMsg(m); err != nil {
				return nil, err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		return w.js.PublishMsgAsync(m)
	}
	return nil, errors.New("an empty batch")
}

// atomicOutcome waits for the ack of an atomic batch of n messages and
// returns their sequences.
func (w *Writer) atomicOutcome(ctx context.Context, fut jetstream.PubAckFuture, n int) ([]uint64, error) {
	tctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	select {
	case ack := <-fut.Ok():
		seqs := make([]uint64, n)
		for j := range seqs {
			seqs[j] = ack.Sequence - uint64(n-1-j)
		}
		return seqs, nil
	case err := <-fut.Err():
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			return nil, fmt.Errorf("commit batch of %d writes to %s: %w", n, w.stream, err)
		}
		// The server looked at the batch and refused it whole. Most
		// often one message is at fault (a seen message ID; one too
		// large, refused without an answer, which leaves the batch
		// incomplete, 10176), or the batch (too many in flight, 10210;
		// too many messages, 10199): one at a time, each write gets its
		// own outcome.
		switch code := apiErr.ErrorCode; {
		case cas.LostCode(code):
			return nil, ErrConflict
		case code == codeDisabled:
			return nil, fmt.Errorf("%w: %s", errRefused, apiErr.Description)
		}
		return nil, fmt.Errorf("%w: %s (%d)", errOneByOne, apiErr.Description, apiErr.ErrorCode)
	case <-tctx.Done():
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("commit batch of %d writes to %s: no acknowledgement in %s", n, w.stream, w.timeout)
	}
}

// publishEach publishes one message at a time (pipelined) and returns what
// waits for their acks.
func (w *Writer) publishEach(ctx context.Context, batch []*pending) func() {
	futs := make([]jetstream.PubAckFuture, len(batch))
	for i, p := range batch {
		var opts []jetstream.PublishOpt
		if p.w.CAS {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(p.w.Last))
		}
		f, err := w.js.PublishMsgAsync(copyMsg(p.w.Msg), opts...)
		if err != nil {
			p.done <- Result{Err: err}
			continue
		}
		futs[i] = f
	}
	return func() { w.waitEach(ctx, batch, futs) }
}

// waitEach waits for the acks of publishEach.
func (w *Writer) waitEach(ctx context.Context, batch []*pending, futs []jetstream.PubAckFuture) {
	tctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	for i, p := range batch {
		f := futs[i]
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			p.done <- Result{Seq: ack.Sequence}
		case err := <-f.Err():
			if cas.Lost(err) {
				err = ErrConflict
			}
			p.done <- Result{Err: err}
		case <-tctx.Done():
			err := ctx.Err()
			if err == nil {
				err = fmt.Errorf("no acknowledgement from %s in %s", w.stream, w.timeout)
			}
			p.done <- Result{Err: err}
		}
	}
}

// copyMsg is m with a header of its own: publishing adds headers, and the
// caller's message stays as it was.
func copyMsg(m *nats.Msg) *nats.Msg {
	h := make(nats.Header, len(m.Header)+4)
	for k, v := range m.Header {
		h[k] = v
	}
	return &nats.Msg{Subject: m.Subject, Data: m.Data, Header: h}
}
