package bench

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// BenchmarkServerConnStacks measures the goroutine stacks a plain
// nats-server (embedded, no Steward code) keeps per client connection,
// the floor under memory-per-agent that no Steward change can lower:
//
//	go test ./integration/bench -run '^$' -bench ServerConnStacks
//
// The clients are raw TCP sockets speaking the protocol, so that every
// goroutine of this process beyond the server's own is this one. It
// reports KiB per connection once connected, once the server has written
// to each connection after a collection (what a PONG or any message
// does), and after three collections with the connections idle.
func BenchmarkServerConnStacks(b *testing.B) {
	const n = 1000
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	stack := func() float64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.StackInuse) / 1024
	}
	for b.Loop() {
		runtime.GC()
		idle := stack()
		conns := make([]net.Conn, n)
		readers := make([]*bufio.Reader, n)
		ping := func(i int) {
			if _, err := fmt.Fprint(conns[i], "PING\r\n"); err != nil {
				b.Fatal(err)
			}
			for {
				l, err := readers[i].ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if l == "PONG\r\n" {
					return
				}
			}
		}
		for i := range conns {
			if conns[i], err = net.Dial("tcp", ns.Addr().String()); err != nil {
				b.Fatal(err)
			}
			readers[i] = bufio.NewReader(conns[i])
			fmt.Fprintf(conns[i], "CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB own.%d 1\r\n", i)
			ping(i)
		}
		connected := stack()
		runtime.GC()
		for i := range conns {
			ping(i)
		}
		written := stack()
		for range 3 {
			runtime.GC()
		}
		collected := stack()
		for _, c := range conns {
			c.Close()
		}
		b.ReportMetric((connected-idle)/n, "KiB/conn-connected")
		b.ReportMetric((written-idle)/n, "KiB/conn-after-write")
		b.ReportMetric((collected-idle)/n, "KiB/conn-collected")
	}
}
