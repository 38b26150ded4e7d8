package agent

import (
	"io"
	"net"
	"testing"
	"time"
)

// A failed handshake's socket is closed before the agent waits to retry
// (closeLast) and, at the latest, when it dials again: the server side of
// each earlier connection sees it end.
func TestAttemptDialerClosesTheLastAttempt(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	ended := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	d := newAttemptDialer(nil)
	if d.base.Timeout != connectTimeout {
		t.Fatalf("default dial timeout %s, want %s", d.base.Timeout, connectTimeout)
	}
	if _, err := d.Dial("tcp", l.Addr().String()); err != nil {
		t.Fatal(err)
	}
	first := <-accepted
	c2, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	second := <-accepted
	if !ended(first) {
		t.Fatal("the first attempt's socket is still open after the next dial")
	}
	d.closeLast()
	if !ended(second) {
		t.Fatal("closeLast left the last attempt's socket open")
	}
	if _, err := c2.Write([]byte("x")); err == nil {
		t.Fatal("the closed connection still writes")
	}
	d.closeLast() // nothing left: no panic, nothing to close

	// A dial that fails leaves nothing behind to close.
	l.Close()
	if _, err := d.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("dialed a closed listener")
	}
	if d.last != nil {
		t.Fatal("a failed dial is remembered")
	}
}
