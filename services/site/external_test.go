package site

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stewardhq/steward/services/client"
)

// TestExternalServer runs the site as the lab does: a data dir made by Init
// (steward site init), a stock server with the rendered configuration (TLS),
// and the services in two processes' worth of Sites against it, reading
// the data dir. The operator is admitted by the callout that runs in one of
// them and reaches a service of the other.
func TestExternalServer(t *testing.T) {
	dir := t.TempDir()
	info, keys, err := Init(dir, "EXT", true)
	if err != nil {
		t.Fatal(err)
	}
	files := tlsFiles(dir)
	conf, err := RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(t.TempDir(), "js"), TLS: &files})
	if err != nil {
		t.Fatal(err)
	}
	opts := loadConfig(t, conf)
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	url := ns.ClientURL()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, services := range [][]string{{"admin"}, {"status", "discovery", "policy"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s, err := New(ctx, Config{DataDir: dir, Server: url, Services: services, Log: quiet})
		cancel()
		if err != nil {
			t.Fatalf("services %v against %s: %v", services, url, err)
		}
		if s.tls == nil {
			t.Fatalf("services %v: connected without TLS", services)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
	}

	// The CLI pins the CA named in admin.nk.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := client.Connect(context.Background(), client.Options{Server: url, Identity: filepath.Join(dir, "admin.nk")})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = c.ClientsList(ctx, "")
			cancel()
			c.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator could not list clients through the external server: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
