package status

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// startSyncServer runs a server whose JetStream syncs every write to disk
// (sync_interval: always, as the site's).
func startSyncServer(tb testing.TB) *server.Server {
	tb.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir(),
		SyncAlways: true, NoLog: true, NoSigs: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// Benchmark workload: rounds of agents*benchBatch messages.
const (
	benchAgents = 8
	benchBatch  = 250
	benchRounds = 8
)

// benchRound is one round's payloads: each agent's outbox batch, and the
// same messages as the status stream stores them, for the baseline.
type benchRound struct {
	subjects []string
	batches  []contracts.OutboxBatch
	baseline []*nats.Msg
}

func newBenchRound(tb testing.TB) *benchRound {
	rd := &benchRound{}
	now := time.Now()
	for a := range benchAgents {
		client := fmt.Sprintf("0195a3c4-0000-7000-8000-%012d", a)
		subj, _ := contracts.AgentUp(site, client, contracts.KindStatus)
		batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch)}
		for range benchBatch {
			m := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "nats://127.0.0.1:4222", "error": "i/o timeout"})
			batch.Items = append(batch.Items, item(tb, m))
			stored := m
			if err := fromAgent(&stored, site, client, m.ID, now, time.Minute); err != nil {
				tb.Fatal(err)
			}
			data, _ := json.Marshal(stored)
			msg := nats.NewMsg("bench.base." + client)
			msg.Data = data
			msg.Header.Set(jetstream.MsgIDHeader, stored.ID)
			rd.baseline = append(rd.baseline, msg)
		}
		rd.subjects, rd.batches = append(rd.subjects, subj), append(rd.batches, batch)
	}
	return rd
}

// BenchmarkDurableIngest measures durable status messages per second end
// to end: agents' outbox batches in, every message stored (synced to disk)
// and its batch acknowledged, with the rules processor and the summaries
// running as on a site (the per-source rate limit is off). In the same run
// it measures the baseline: JetStream publishes, synced, of the same stored
// payloads to a stream like STATUS on the same server, all pipelined,
// every acknowledgement awaited. It prints both rates and their ratio; the
// goal is at least 0.8.
//
// With every write synced the disk sets both rates, and a shared machine's
// disk varies, so the work is cut into rounds, each an ingest run then a
// baseline run of the same number of messages a moment later; the ratio is
// the median of the rounds' ratios. Before each baseline run the rules
// processor is let catch up, so that the site's own work never slows the
// baseline.
func BenchmarkDurableIngest(b *testing.B) {
	srv := startSyncServer(b)
	e := newEnvOn(b, srv, nil)
	ctx := context.Background()
	js, err := jetstream.New(natstest.Connect(b, srv), jetstream.WithPublishAsyncMaxPending(benchAgents*benchBatch+1))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH_BASELINE", Subjects: []string{"bench.base.>"}, Storage: jetstream.FileStorage,
		Duplicates: DefaultDuplicates, MaxAge: DefaultMaxAge, MaxBytes: DefaultMaxBytes,
	}); err != nil {
		b.Fatal(err)
	}

	// ingest: every agent sends its batch, the agents at once.
	ingest := func(rd *benchRound) error {
		var wg sync.WaitGroup
		errs := make(chan error, len(rd.batches))
		for i, batch := range rd.batches {
			wg.Go(func() {
				var ack contracts.OutboxAck
				if err := rpc.Call(ctx, e.nc, rd.subjects[i], batch, &ack); err != nil || len(ack.Stored) != len(batch.Items) {
					errs <- fmt.Errorf("batch: %v, stored %d of %d", err, len(ack.Stored), len(batch.Items))
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	// publish: the baseline.
	publish := func(rd *benchRound) error {
		futs := make([]jetstream.PubAckFuture, 0, len(rd.baseline))
		for _, msg := range rd.baseline {
			f, err := js.PublishMsgAsync(msg)
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			}
		}
		return nil
	}
	var tIngest, tBase time.Duration
	var ratios []float64
	msgs := 0
	for b.Loop() {
		for range benchRounds {
			rd := newBenchRound(b)
			start := time.Now()
			if err := ingest(rd); err != nil {
				b.Fatal(err)
			}
			ti := time.Since(start)
			e.caughtUp()
			start = time.Now()
			if err := publish(rd); err != nil {
				b.Fatal(err)
			}
			tb := time.Since(start)
			tIngest, tBase, msgs = tIngest+ti, tBase+tb, msgs+len(rd.baseline)
			ratios = append(ratios, tb.Seconds()/ti.Seconds())
		}
	}
	b.Logf("ratio of each round (baseline time / ingest time): %.2f", ratios)
	slices.Sort(ratios)
	ratio := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		ratio = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	b.ReportMetric(float64(msgs)/tIngest.Seconds(), "msgs/s")
	b.ReportMetric(float64(msgs)/tBase.Seconds(), "jetstream-msgs/s")
	b.ReportMetric(ratio, "ratio-vs-jetstream")
	b.ReportMetric(0, "ns/op") // the rates are the result, not the time of one loop
}
