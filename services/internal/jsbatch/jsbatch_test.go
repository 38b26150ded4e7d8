package jsbatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// setup starts a server and creates stream S on subjects s.>, taking
// atomic batches if atomic (turned on by EnableAtomic).
func setup(t *testing.T, atomicBatches bool) (*nats.Conn, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc, js, st := setupOn(t, natstest.Start(t), jetstream.StreamConfig{})
	if atomicBatches {
		if err := EnableAtomic(context.Background(), js, "S"); err != nil {
			t.Fatal(err)
		}
	}
	return nc, js, st
}

// setupOn creates stream S on subjects s.> on srv, configured as cfg
// otherwise.
func setupOn(t *testing.T, srv *server.Server, cfg jetstream.StreamConfig) (*nats.Conn, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.Subjects, cfg.Storage, cfg.Duplicates = "S", []string{"s.>"}, jetstream.FileStorage, time.Minute
	st, err := js.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, st
}

// started is a writer to S, told it takes atomic batches, running until
// the test ends.
func started(t *testing.T, nc *nats.Conn, js jetstream.JetStream) *Writer {
	w := New(nc, js, "S", true, 5*time.Second, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// writes are n messages on s.<prefix><i>, with message IDs <prefix><i>
// if ids.
func writes(prefix string, n int, ids bool) []Write {
	var ws []Write
	for i := range n {
		id := ""
		if ids {
			id = fmt.Sprintf("%s%d", prefix, i)
		}
		ws = append(ws, Write{Msg: msg(fmt.Sprintf("s.%s%d", prefix, i), id)})
	}
	return ws
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func msg(subject, id string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte("v")
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	return m
}

func msgs(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestSplitsConflicts commits a batch in which some writes lose their
// compare-and-set: those fail alone, the rest commit at the sequences the
// writer reports.
func TestSplitsConflicts(t *testing.T) {
	nc, js, st := setup(t, true)
	ctx := context.Background()
	for _, k := range []string{"k3", "k7"} {
		if _, err := js.Publish(ctx, "s."+k, []byte("there first")); err != nil {
			t.Fatal(err)
		}
	}
	w := started(t, nc, js)
	ws := writes("k", 10, false)
	for i := range ws {
		ws[i].CAS = true
	}
	for i, r := range w.Write(ctx, ws...) {
		wantConflict := i == 3 || i == 7
		if (r.Err != nil) != wantConflict || (wantConflict && r.Err != ErrConflict) {
			t.Fatalf("write %d: got %v, want conflict %v", i, r.Err, wantConflict)
		}
		if r.Err == nil {
			m, err := st.GetLastMsgForSubject(ctx, fmt.Sprintf("s.k%d", i))
			if err != nil || m.Sequence != r.Seq || string(m.Data) != "v" {
				t.Fatalf("write %d: stored %+v (%v), writer said sequence %d", i, m, err, r.Seq)
			}
		}
	}
	if got := msgs(t, st); got != 10 {
		t.Fatalf("stream holds %d messages, want 10", got)
	}
	if w.retryAtomic.Load() != 0 {
		t.Fatal("conflicts turned atomic batches off")
	}
}

// TestDuplicates: a batch carrying a message ID the stream has seen is
// refused whole by the server; the writer stores the rest one by one, and
// the duplicate reports the original's sequence without a second copy.
func TestDuplicates(t *testing.T) {
	nc, js, st := setup(t, true)
	ctx := context.Background()
	first, err := js.PublishMsg(ctx, msg("s.m3", "m3"))
	if err != nil {
		t.Fatal(err)
	}
	w := started(t, nc, js)
	ws := writes("m", 10, true)
	res := w.Write(ctx, ws...)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("write %d: %v", i, r.Err)
		}
	}
	if res[3].Seq != first.Sequence {
		t.Fatalf("the duplicate reports sequence %d, the original is at %d", res[3].Seq, first.Sequence)
	}
	if got := msgs(t, st); got != 10 {
		t.Fatalf("stream holds %d messages, want 10 (no second copy of m3)", got)
	}
	// The callers' messages carry no batch headers after the refused try.
	if h := ws[0].Msg.Header.Get("Nats-Batch-Id"); h != "" {
		t.Fatalf("the caller's message was changed: Nats-Batch-Id %q", h)
	}
	// Without duplicates the next batch is atomic again: same result.
	for i, r := range w.Write(ctx, writes("n", 10, true)...) {
		if r.Err != nil || r.Seq != first.Sequence+uint64(10+i) {
			t.Fatalf("write %d: sequence %d, err %v", 10+i, r.Seq, r.Err)
		}
	}
}

// TestRefused: a stream that does not take atomic batches gets every
// write one at a time, and the writer stops trying.
func TestRefused(t *testing.T) {
	nc, js, st := setup(t, false)
	w := started(t, nc, js)
	ws := writes("r", 10, false)
	for i, r := range w.Write(context.Background(), ws...) {
		if r.Err != nil || r.Seq != uint64(i+1) {
			t.Fatalf("write %d: sequence %d, err %v", i, r.Seq, r.Err)
		}
	}
	if time.Now().UnixNano() >= w.retryAtomic.Load() {
		t.Fatal("the writer tries atomic batches again at once on a stream that refuses them")
	}
	if got := msgs(t, st); got != 10 {
		t.Fatalf("stream holds %d messages, want 10", got)
	}
}

// TestConcurrentCallers: writes submitted from many goroutines at once
// each get their own message's sequence.
func TestConcurrentCallers(t *testing.T) {
	nc, js, st := setup(t, true)
	w := started(t, nc, js)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			subj := fmt.Sprintf("s.c%d", i)
			r := w.Write(context.Background(), Write{Msg: msg(subj, "")})[0]
			if r.Err != nil {
				errs <- r.Err
				return
			}
			m, err := st.GetMsg(context.Background(), r.Seq)
			if err != nil || m.Subject != subj {
				errs <- fmt.Errorf("%s: sequence %d holds %v (%v)", subj, r.Seq, m, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := msgs(t, st); got != n {
		t.Fatalf("stream holds %d messages, want %d", got, n)
	}
}

// TestStopped: a write to a writer that has stopped fails instead of
// waiting forever.
func TestStopped(t *testing.T) {
	nc, js, _ := setup(t, true)
	w := New(nc, js, "S", true, 5*time.Second, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	cancel()
	<-done
	r := w.Write(context.Background(), Write{Msg: msg("s.x", "")})[0]
	if r.Err == nil {
		t.Fatal("a stopped writer reported a write stored")
	}
}

// TestServerBatchLimit: a server that allows fewer messages in a batch
// than the writer gathers refuses the batch; its writes are stored one at
// a time instead of failing.
func TestServerBatchLimit(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		JetStreamLimits: server.JSLimitOpts{MaxBatchSize: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, js, st := setupOn(t, srv, jetstream.StreamConfig{AllowAtomicPublish: true})
	ctx := context.Background()
	w := started(t, nc, js)
	ws := writes("b", 10, false)
	for i, r := range w.Write(ctx, ws...) {
		if r.Err != nil || r.Seq != uint64(i+1) {
			t.Fatalf("write %d: sequence %d, err %v", i, r.Seq, r.Err)
		}
	}
	if got := msgs(t, st); got != 10 {
		t.Fatalf("stream holds %d messages, want 10", got)
	}
}

// TestOneRefusedMessage: a message the stream refuses (over its size
// limit) fails alone; the others of its batch are stored. (The server
// answers the batch as incomplete, refusing every message in it.)
func TestOneRefusedMessage(t *testing.T) {
	nc, js, st := setupOn(t, natstest.Start(t), jetstream.StreamConfig{MaxMsgSize: 1024, AllowAtomicPublish: true})
	ctx := context.Background()
	w := started(t, nc, js)
	ws := writes("o", 10, false)
	ws[4].Msg.Data = make([]byte, 4096)
	for i, r := range w.Write(ctx, ws...) {
		if (r.Err != nil) != (i == 4) {
			t.Fatalf("write %d: %v (only the large one should fail)", i, r.Err)
		}
	}
	if got := msgs(t, st); got != 9 {
		t.Fatalf("stream holds %d messages, want 9", got)
	}
}

// TestSubmitOrder: writes are stored in the order they were submitted,
// however the writer cuts them into batches. Batches were committed by
// goroutines of their own, so a batch could reach the server before the
// one before it: two reports of one client in one outbox batch, stored
// in the wrong order, left the older one as the client's record.
func TestSubmitOrder(t *testing.T) {
	nc, js, st := setup(t, true)
	w := started(t, nc, js)
	const n = 2000
	pend := make([]Pending, 0, n)
	for i := range n {
		m := nats.NewMsg("s.key")
		m.Data = []byte(strconv.Itoa(i))
		pend = append(pend, w.Submit(Write{Msg: m}))
		if i%7 == 0 {
			time.Sleep(50 * time.Microsecond) // batches of every size
		}
	}
	for _, p := range pend {
		if r := p.Wait(context.Background())[0]; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	cons, err := st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for m := range batch.Messages() {
		if got, _ := strconv.Atoi(string(m.Data())); got != want {
			t.Fatalf("stored %d-th: write %d, want %d", want, got, want)
		}
		want++
	}
	if want != n {
		t.Fatalf("read %d of %d", want, n)
	}
}
