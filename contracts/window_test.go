package contracts

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWindowBlocksUntilAcked(t *testing.T) {
	w := NewWindow(2)
	ctx := context.Background()
	for want := uint64(1); want <= 2; want++ {
		if n, err := w.Next(ctx); err != nil || n != want {
			t.Fatalf("Next: got %d, %v; want %d", n, err, want)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a full window: got %v, want it to wait until the context ends", err)
	}
	got := make(chan uint64)
	go func() {
		n, _ := w.Next(ctx)
		got <- n
	}()
	w.Ack(5) // never sent: ignored
	w.Ack(1)
	if n := <-got; n != 3 {
		t.Fatalf("after ack 1: got frame %d, want 3", n)
	}
	w.Ack(1) // old: ignored
	if w.InFlight() != 2 {
		t.Fatalf("in flight: got %d, want 2", w.InFlight())
	}
	w.Close()
	if _, err := w.Next(ctx); !errors.Is(err, ErrWindowClosed) {
		t.Fatalf("Next after Close: got %v", err)
	}
}

func TestAccessLevels(t *testing.T) {
	for _, tt := range []struct {
		level, need string
		ok          bool
	}{
		{AccessFull, AccessFull, true}, {AccessFull, AccessView, true}, {AccessView, AccessView, true},
		{AccessView, AccessFull, false}, {AccessNone, AccessView, false}, {AccessNone, AccessNone, false}, {"bogus", AccessView, false},
	} {
		if got := AccessAllows(tt.level, tt.need); got != tt.ok {
			t.Errorf("AccessAllows(%s, %s): got %v, want %v", tt.level, tt.need, got, tt.ok)
		}
	}
	if MinAccess(AccessFull, AccessView) != AccessView || MinAccess(AccessView, AccessFull) != AccessView || MinAccess(AccessNone, AccessFull) != AccessNone {
		t.Error("MinAccess")
	}
}

// TestSigningInputsDiffer: a grant's signature never verifies a policy with
// the same bytes, nor the other way round.
func TestSigningInputsDiffer(t *testing.T) {
	body := []byte(`{"a":1}`)
	p, g := string(PolicySigningInput(body)), string(GrantSigningInput(body))
	if p != "steward-policy-v1\n"+string(body) || g != "steward-session-grant-v1\n"+string(body) || p == g {
		t.Fatalf("signing inputs: policy %q, grant %q", p, g)
	}
}
