package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The profiler serves on loopback only, and stops with its context.
func TestServeDebugLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.org:0", "nohost"} {
		if _, err := serveDebug(context.Background(), addr); err == nil {
			t.Errorf("--debug-listen %s was accepted; only loopback may serve the profiler", addr)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := serveDebug(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("cmdline: %s %q", resp.Status, body)
	}
	resp, err = http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("goroutine profile not served: %.200s", body)
	}
	resp, err = http.Get("http://" + addr + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"StackInuse"`) {
		t.Fatalf("memstats not served: %.200s", body)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := http.Client{Timeout: time.Second}
		if _, err := c.Get("http://" + addr + "/debug/pprof/cmdline"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the profiler still serves after its context ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
