package natstest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// A crash test kills a site process with kill -9. The process is the test
// binary run again (the os/exec helper pattern): StartChild runs one of
// its Test functions, which reads its settings from env, serves, and
// calls ChildReady.

// StartChild runs test (the name of a Test function of this binary) in a
// child process with env added, and waits until the child calls
// ChildReady. It returns what the child said with it, and kill, which
// ends the child with kill -9. The child also ends with the test.
func StartChild(t testing.TB, test string, env ...string) (ready string, kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out := &readyWriter{ready: make(chan string, 1)}
	cmd.Stdout = out                           // copied by os/exec; Wait waits for the copy
	if _, err := cmd.StdinPipe(); err != nil { // closed when this process ends: the child ends too
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Kill)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	select {
	case ready = <-out.ready:
		return ready, kill
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: child process not ready after 60s", test)
	}
	return "", kill
}

// ChildReady, in a child process StartChild runs, tells the parent that
// it serves, with what (a URL, say; it is StartChild's answer), and
// returns only by ending the process when the parent is gone.
func ChildReady(what string) {
	os.Stdout.WriteString(childReady + what + "\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

const childReady = "READY "

// readyWriter is a child's stdout: it passes on what follows READY.
type readyWriter struct {
	ready chan string
	mu    sync.Mutex
	buf   []byte
	sent  bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		line, rest, ok := bytes.Cut(w.buf, []byte("\n"))
		if !ok {
			return len(p), nil
		}
		w.buf = rest
		if what, found := bytes.CutPrefix(line, []byte(childReady)); found {
			w.sent = true
			w.ready <- string(what)
			return len(p), nil
		}
	}
}
