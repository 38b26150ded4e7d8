package rpc

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestConcurrent: requests are served on goroutines, at most cap(sem) at
// once, counted in inflight; answers and errors given after the micro
// handler returned reach the caller (run with -race: nothing writes
// micro's request late).
func TestConcurrent(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	release := make(chan struct{})
	var running, most atomic.Int32
	var inflight sync.WaitGroup
	h := micro.HandlerFunc(func(r micro.Request) {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
		if string(r.Data()) == "bad" {
			_ = r.Error("400", "bad request", nil)
			return
		}
		_ = r.Respond([]byte("ok " + string(r.Data())))
	})
	svc, err := micro.AddService(nc, micro.Config{Name: "conc", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if err := svc.AddEndpoint("work", Concurrent(nc, make(chan struct{}, 2), &inflight, h), micro.WithEndpointSubject("conc.work")); err != nil {
		t.Fatal(err)
	}
	// The endpoint's subscription must reach the server before another
	// connection's requests do, or they find no responders.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	client := natstest.Connect(t, ns)
	type answer struct {
		data, errHeader string
		err             error
	}
	answers := make(chan answer, 4)
	for _, body := range []string{"a", "b", "c", "bad"} {
		go func() {
			m, err := client.Request("conc.work", []byte(body), 10*time.Second)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			answers <- answer{data: string(m.Data), errHeader: m.Header.Get(micro.ErrorHeader)}
		}()
	}
	natstest.Wait(t, 5*time.Second, "two requests running", func() bool { return running.Load() == 2 })
	time.Sleep(100 * time.Millisecond) // a third would have started by now
	if n := running.Load(); n != 2 {
		t.Fatalf("%d requests running with room for 2", n)
	}
	close(release)
	got := map[string]int{}
	for range 4 {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		got[a.data+"|"+a.errHeader]++
	}
	for _, want := range []string{"ok a|", "ok b|", "ok c|", "|bad request"} {
		if got[want] != 1 {
			t.Errorf("answers %v: want one %q", got, want)
		}
	}
	inflight.Wait()
	if most.Load() != 2 {
		t.Errorf("at most %d ran at once, want 2", most.Load())
	}
}
