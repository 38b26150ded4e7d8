package status

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// Environment of the crash test's site process.
const (
	crashDirEnv  = "STEWARD_STATUS_CRASH_DIR"
	crashPortEnv = "STEWARD_STATUS_CRASH_PORT"
)

// TestCrashSiteProcess is the site the crash test kills: a nats-server
// with JetStream syncing every write, and a status instance, in this test
// binary run again as a child process. It prints READY and serves until it
// is killed. Run on its own it does nothing.
func TestCrashSiteProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return // not a test of its own: the body of TestCrashDuringBurst's child process (the os/exec helper pattern)
	}
	port, _ := strconv.Atoi(os.Getenv(crashPortEnv))
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		SyncAlways: true, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(nc)
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	<-s.Ready()
	natstest.ChildReady(srv.ClientURL())
}

// crashSite is the crash test's child process.
type crashSite struct {
	url  string
	kill func() // kill -9
}

func startCrashSite(t *testing.T, dir string, port int) *crashSite {
	t.Helper()
	url, kill := natstest.StartChild(t, "TestCrashSiteProcess", crashDirEnv+"="+dir, crashPortEnv+"="+strconv.Itoa(port))
	return &crashSite{url: url, kill: kill}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestCrashDuringBurst kills the site process (kill -9) while four agents
// send a burst of 10,000 status messages, restarts it on the same store,
// and lets the agents resend what was not acknowledged, as their outboxes
// do. Every acknowledged message must be stored, and none twice.
func TestCrashDuringBurst(t *testing.T) {
	const (
		agents    = 4
		perAgent  = 2500
		batchSize = 250
	)
	dir, port := t.TempDir(), freePort(t)
	site1 := startCrashSite(t, dir, port)

	nc, err := nats.Connect(site1.url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	// Each agent's outbox: items wait until acknowledged.
	type outbox struct {
		client  string
		pending []contracts.OutboxItem
	}
	var boxes []*outbox
	all := map[string]bool{}
	for a := range agents {
		b := &outbox{client: fmt.Sprintf("0195a3c4-0000-7000-8000-%012d", a)}
		for range perAgent {
			m := agentMsg(contracts.StatusAgentConnectionLost, map[string]string{"site": site, "server": "x", "error": "burst"})
			b.pending = append(b.pending, item(t, m))
			all[m.ID] = true
		}
		boxes = append(boxes, b)
	}

	var ackedMu sync.Mutex
	acked := map[string]bool{}
	var nAcked atomic.Int64
	killAt := int64(agents * perAgent / 3)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, b := range boxes {
		wg.Go(func() {
			subj, _ := contracts.AgentUp(site, b.client, contracts.KindStatus)
			for len(b.pending) > 0 && ctx.Err() == nil {
				n := min(batchSize, len(b.pending))
				batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: b.pending[:n]}
				var ack contracts.OutboxAck
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				err := rpc.Call(cctx, nc, subj, batch, &ack)
				ccancel()
				if err != nil { // the site is down: the items stay in the outbox
					sleep(ctx, 20*time.Millisecond)
					continue
				}
				stored := map[string]bool{}
				for _, id := range ack.Stored {
					stored[id] = true
				}
				ackedMu.Lock()
				for id := range stored {
					acked[id] = true
				}
				ackedMu.Unlock()
				nAcked.Add(int64(len(stored)))
				keep := b.pending[:0:0]
				for _, it := range b.pending {
					if !stored[it.ID] {
						keep = append(keep, it)
					}
				}
				b.pending = keep
				if len(ack.Rejected) > 0 {
					t.Errorf("rejected: %+v", ack.Rejected)
					return
				}
			}
		})
	}

	// Kill the site mid-burst and note what had been acknowledged.
	natstest.Wait(t, 2*time.Minute, "a third of the burst acknowledged", func() bool { return nAcked.Load() >= killAt })
	site1.kill()
	ackedMu.Lock()
	before := len(acked)
	ackedMu.Unlock()
	t.Logf("killed the site with %d of %d messages acknowledged", before, len(all))

	startCrashSite(t, dir, port)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the burst did not complete: %d acknowledged", nAcked.Load())
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range storedIn(t, js) {
		if all[m.ID] {
			count[m.ID]++
		}
	}
	lost, twice := 0, 0
	for id := range all {
		switch count[id] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	if lost != 0 || twice != 0 {
		t.Errorf("after kill -9 and resend: got %d messages lost and %d stored twice, want none of either", lost, twice)
	}
	if len(acked) != len(all) {
		t.Errorf("acknowledged: got %d, want all %d", len(acked), len(all))
	}
}
