package contracts

import (
	"context"
	"errors"
	"sync"
)

// ErrWindowClosed is returned by Window.Next once the window is closed.
var ErrWindowClosed = errors.New("session window closed")

// Window is the sending side of a session's flow control: Next numbers the
// next data frame, waiting while SessionWindow (or the size given to
// NewWindow) frames are unacknowledged; Ack records the receiver's
// acknowledgement. Both sides of every session use it, the agent for
// output and the operator for input.
type Window struct {
	mu     sync.Mutex
	size   uint64
	sent   uint64 // last sequence number handed out
	acked  uint64 // last sequence number acknowledged
	closed bool
	wake   chan struct{} // closed and replaced when acked or closed changes
}

// NewWindow makes a window of size frames (SessionWindow when size <= 0).
func NewWindow(size int) *Window {
	if size <= 0 {
		size = SessionWindow
	}
	return &Window{size: uint64(size), wake: make(chan struct{})}
}

// Next waits for room in the window and returns the sequence number of the
// next data frame (1, 2, ...).
func (w *Window) Next(ctx context.Context) (uint64, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return 0, ErrWindowClosed
		}
		if w.sent-w.acked < w.size {
			w.sent++
			n := w.sent
			w.mu.Unlock()
			return n, nil
		}
		wake := w.wake
		w.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Ack records that the receiver consumed every frame up to seq. An ack for
// a frame never sent, or older than the last, changes nothing.
func (w *Window) Ack(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || seq <= w.acked || seq > w.sent {
		return
	}
	w.acked = seq
	close(w.wake)
	w.wake = make(chan struct{})
}

// InFlight is how many frames are unacknowledged.
func (w *Window) InFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int(w.sent - w.acked)
}

// Close wakes every waiter; Next fails from then on.
func (w *Window) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.wake)
	}
}
