package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// serve starts a control server on a socket in a fresh dir and returns its
// path; it stops when the test ends.
func serve(t *testing.T, h Handlers) string {
	t.Helper()
	path := SocketPath(t.TempDir())
	s, err := Listen(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return path
}

func statusHandlers() Handlers {
	return Handlers{
		VerbStatus: func(context.Context, []string) (any, error) {
			st := contracts.AgentStatus{Header: contracts.NewHeader(contracts.TypeAgentStatus), Name: "pc-042", State: "connected", Connected: true, Capability: 1}
			return st, nil
		},
		"fail": func(context.Context, []string) (any, error) { return nil, errors.New("it broke") },
		"echo": func(_ context.Context, args []string) (any, error) {
			return ErrorAnswer{Type: "echo", Error: strings.Join(args, ",")}, nil
		},
		"panic": func(context.Context, []string) (any, error) { panic("boom") },
	}
}

func TestStatusRoundTrip(t *testing.T) {
	path := serve(t, statusHandlers())
	st, err := Status(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "pc-042" || st.State != "connected" || !st.Connected || st.Type != contracts.TypeAgentStatus {
		t.Fatalf("got %+v, want the handler's status", st)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("got socket mode %o, want 600", perm)
	}
}

func TestFailures(t *testing.T) {
	path := serve(t, statusHandlers())
	var out ErrorAnswer
	for verb, want := range map[string]string{
		"fail":    "agent: it broke",
		"nothing": `agent: unknown verb "nothing" (known: echo, fail, panic, status)`,
		"panic":   "agent: panic failed inside the agent",
	} {
		err := Call(context.Background(), path, verb, nil, &out)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", verb, err, want)
		}
	}
	if err := Call(context.Background(), path, "two words", nil, &out); err == nil {
		t.Error("a verb with a space was sent")
	}
}

func TestSeveralRequestsOnOneConnection(t *testing.T) {
	path := serve(t, statusHandlers())
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i, req := range []string{"echo a b", "", "echo c"} {
		fmt.Fprintf(c, "%s\n", req)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := map[int]string{
			0: `{"type":"echo","error":"a,b"}`,
			1: `{"type":"steward.v1.agent_control_error","error":"empty request; send a verb such as \"status\""}`,
			2: `{"type":"echo","error":"c"}`,
		}[i]
		if got := strings.TrimSuffix(line, "\n"); got != want {
			t.Fatalf("request %d: got %s, want %s", i, got, want)
		}
	}
	// An over-long request is answered with an error and the connection ends.
	fmt.Fprintf(c, "%s\n", strings.Repeat("x", maxRequestBytes+1))
	line, _ := r.ReadString('\n')
	if !strings.Contains(line, "request longer than") {
		t.Fatalf("got %q, want a too-long error", line)
	}
}

func TestNoAgentRunning(t *testing.T) {
	dir := t.TempDir()
	_, err := Status(context.Background(), SocketPath(dir))
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no socket: got %v, want ErrNotRunning", err)
	}

	// A socket left behind by an agent that died is also "not running".
	path := SocketPath(dir)
	leaveStaleSocket(t, path)
	if _, err := Status(context.Background(), path); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stale socket: got %v, want ErrNotRunning", err)
	}
}

func leaveStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left: %v", err)
	}
}

func TestListenRemovesStaleSocket(t *testing.T) {
	path := SocketPath(t.TempDir())
	leaveStaleSocket(t, path)
	s, err := Listen(path, statusHandlers(), nil)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	s.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket still present after Close: %v", err)
	}
}

func TestListenRefusesLiveSocketAndNonSocket(t *testing.T) {
	path := serve(t, statusHandlers())
	if s, err := Listen(path, nil, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second listen: got %v, want an in-use error", err)
	}

	file := filepath.Join(t.TempDir(), SocketName)
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, nil, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: got %v, want a not-a-socket error", err)
	}
}

func TestPathTooLong(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := SocketPath(dir)
	_, err := Listen(path, nil, nil)
	if !errors.Is(err, ErrPathTooLong) || !strings.Contains(err.Error(), "--state-dir") {
		t.Fatalf("listen: got %v, want ErrPathTooLong naming --state-dir", err)
	}
	if _, err := Status(context.Background(), path); !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("status: got %v, want ErrPathTooLong", err)
	}
}

func TestServeStopsOnCancelAndClosesIdleConnections(t *testing.T) {
	path := SocketPath(t.TempDir())
	s, err := Listen(path, statusHandlers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()

	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := Status(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel while a connection was idle")
	}
	if _, err := Status(context.Background(), path); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("after stop: got %v, want ErrNotRunning", err)
	}
}

// TestLargeAnswer: an answer of several MiB (a status holding thousands
// of content versions) goes through; 1 MiB was the old limit.
func TestLargeAnswer(t *testing.T) {
	big := make([]contracts.ContentHeld, 20000)
	for i := range big {
		big[i] = contracts.ContentHeld{Package: "package-with-a-long-name", Version: fmt.Sprintf("2026.11.%06d", i), State: contracts.ContentInstalled,
			Path: "/var/lib/steward-agent/content/package-with-a-long-name/" + fmt.Sprint(i)}
	}
	path := serve(t, Handlers{VerbStatus: func(context.Context, []string) (any, error) {
		return contracts.AgentStatus{Header: contracts.NewHeader(contracts.TypeAgentStatus), Name: "pc-042", Content: big}, nil
	}})
	st, err := Status(context.Background(), path)
	if err != nil || len(st.Content) != len(big) {
		t.Fatalf("got %d versions, %v; want %d", len(st.Content), err, len(big))
	}
}
