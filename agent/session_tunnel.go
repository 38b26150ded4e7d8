package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// tunnelDialTimeout bounds the connection to the tunnel's port.
const tunnelDialTimeout = 5 * time.Second

// dialTunnel connects a tunnel session to 127.0.0.1:port. The port was
// checked against the local tunnel ports with the grant.
func (a *Agent) dialTunnel(ctx context.Context, g *contracts.SessionGrant) (backend, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(g.Port))
	d := net.Dialer{Timeout: tunnelDialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("the tunnel to %s could not connect: %w", addr, err)
	}
	return &tunnel{conn: c.(*net.TCPConn), addr: addr, done: make(chan contracts.SessionEnd, 1)}, nil
}

// tunnel is a TCP connection as a session backend. The session ends when
// both directions are closed (the connection's read EOF, and the
// operator's eof frame), or on the first error.
type tunnel struct {
	conn *net.TCPConn
	addr string
	done chan contracts.SessionEnd

	mu                sync.Mutex
	readEOF, wroteEOF bool
	finished, stopped bool
}

func (t *tunnel) Read(p []byte) (int, error) {
	n, err := t.conn.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		t.half(func() { t.readEOF = true })
	case err != nil:
		t.fail(err)
	}
	return n, err
}

func (t *tunnel) Write(p []byte) (int, error) {
	n, err := t.conn.Write(p)
	if err != nil {
		t.fail(err)
	}
	return n, err
}

func (t *tunnel) Resize(uint16, uint16) error { return nil }

func (t *tunnel) CloseWrite() error {
	err := t.conn.CloseWrite()
	if err != nil {
		t.fail(err)
		return err
	}
	t.half(func() { t.wroteEOF = true })
	return nil
}

func (t *tunnel) Done() <-chan contracts.SessionEnd { return t.done }

func (t *tunnel) Stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	_ = t.conn.Close()
}

// half records one direction closed; both closed end the session.
func (t *tunnel) half(set func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	set()
	if t.readEOF && t.wroteEOF {
		t.finish(contracts.SessionEnd{Reason: fmt.Sprintf("the tunnel to %s closed", t.addr), By: "client"})
	}
}

func (t *tunnel) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.finish(contracts.SessionEnd{Reason: fmt.Sprintf("the tunnel to %s failed: %v", t.addr, err), By: "client"})
	}
}

// finish delivers how the tunnel ended, once; t.mu is held.
func (t *tunnel) finish(end contracts.SessionEnd) {
	if !t.finished {
		t.finished = true
		t.done <- end
	}
}
