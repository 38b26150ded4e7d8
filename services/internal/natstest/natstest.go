// Package natstest starts real in-process NATS servers for tests: a random
// port, JetStream on disk in t.TempDir(), logging off, shut down by
// t.Cleanup. Tests poll with Wait, never time.Sleep.
package natstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Start runs a server with JetStream and no authentication; tweaks change
// its options before it starts.
func Start(t testing.TB, tweaks ...func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
		// Send a nonce so NKey clients (operators, agents) can connect.
		AlwaysEnableNonce: true,
	}
	for _, tweak := range tweaks {
		tweak(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect opens a connection to s closed by t.Cleanup.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Wait polls cond every 10ms until it is true or timeout passes, then fails
// the test with what.
func Wait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Service is what a site service offers a test: it runs until its context
// ends and says when it serves.
type Service interface {
	Run(context.Context) error
	Ready() <-chan struct{}
}

// RunService runs svc until t ends (a Run error then is the test's error)
// and waits until it is ready: up to 10 s, failing t if Run returns first.
func RunService(t testing.TB, svc Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("service: %v", err)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("service stopped before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready after 10 s")
	}
}
