package agent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// echoServer listens on the loopback and answers one connection with
// what it reads, upper-cased, as it reads it; at the client's half close
// it closes its side and sends the bytes it got on the channel.
func echoServer(t *testing.T) (int, <-chan int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	served := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		total := 0
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			total += n
			if n > 0 {
				if _, werr := c.Write(bytes.ToUpper(buf[:n])); werr != nil {
					break
				}
			}
			if errors.Is(err, io.EOF) {
				_ = c.(*net.TCPConn).CloseWrite()
				break
			}
			if err != nil {
				break
			}
		}
		served <- total
	}()
	return ln.Addr().(*net.TCPAddr).Port, served
}

// freePort is a loopback port nothing listens on (it was free a moment
// ago).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
