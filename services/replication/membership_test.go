package replication

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// slowDirectory answers Collections with what answer holds when the call
// started, once release lets it.
type slowDirectory struct {
	answer  atomic.Pointer[[]string]
	started chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func (d *slowDirectory) Collections(context.Context, string) ([]string, error) {
	d.calls.Add(1)
	ids := *d.answer.Load()
	d.started <- struct{}{}
	<-d.release
	return ids, nil
}

func (d *slowDirectory) Members(context.Context, string, string) ([]contracts.Named, error) {
	return nil, nil
}

// TestMemberCacheForgetOvertakesLookup: a membership event's forget that
// comes while a look-up is on its way is not undone by it: the look-up
// read the membership from before the change and stored it in the cache
// for the whole ttl (5 minutes by default), after the forget had emptied it.
func TestMemberCacheForgetOvertakesLookup(t *testing.T) {
	d := &slowDirectory{started: make(chan struct{}), release: make(chan struct{})}
	before := []string{contracts.AllSystemsID}
	d.answer.Store(&before)
	c := newMemberCache(d, time.Hour, time.Now)
	got := make(chan []string)
	go func() {
		ids, _ := c.collections(context.Background(), "c1", false)
		got <- ids
	}()
	<-d.started // the look-up has read the old membership
	after := []string{contracts.AllSystemsID, "web"}
	d.answer.Store(&after)
	c.forget([]string{"c1"}) // c1 joined Web
	close(d.release)
	<-got
	go func() { <-d.started }()
	ids, err := c.collections(context.Background(), "c1", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || d.calls.Load() != 2 {
		t.Fatalf("after the forget: got %v in %d directory calls; want [All Systems web] read again", ids, d.calls.Load())
	}
}
