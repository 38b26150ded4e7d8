package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/contracts"
)

// syncBuffer is a bytes.Buffer safe for the agent's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func execute(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errb syncBuffer
	root := NewRoot(&out, &errb)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func TestHelpTeaches(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"status", "--help"}} {
		out, _, err := execute(context.Background(), args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "--state-dir") {
			t.Errorf("%v: help does not mention --state-dir:\n%s", args, out)
		}
	}
	out, _, _ := execute(context.Background(), "run", "--help")
	for _, want := range []string{"Examples:", "STEWARD_TOKEN", "--token", "pins", "pending"} {
		if !strings.Contains(out, want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
}

func TestHelpNeverPrintsTheToken(t *testing.T) {
	t.Setenv("STEWARD_TOKEN", "STW1-secret-token")
	out, _, err := execute(context.Background(), "run", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "secret-token") {
		t.Fatal("run --help printed the token from the environment")
	}
}

func TestVersion(t *testing.T) {
	out, _, err := execute(context.Background(), "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "steward-agent "+Version) || !strings.Contains(out, fmt.Sprintf("capability %d", contracts.CapabilityVersion)) {
		t.Fatalf("got %q", out)
	}
}

func TestRequiredStateDir(t *testing.T) {
	for _, cmd := range []string{"run", "status"} {
		_, _, err := execute(context.Background(), cmd)
		if err == nil || !strings.Contains(err.Error(), "--state-dir is required") {
			t.Errorf("%s: got %v, want --state-dir is required", cmd, err)
		}
	}
}

func TestStatusWithNoAgent(t *testing.T) {
	dir := t.TempDir()
	_, _, err := execute(context.Background(), "status", "--state-dir", dir)
	want := "no agent is running with state dir " + dir
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestRunAndStatus runs the agent command against a server that is not
// there (it keeps trying), asks it for its status in both formats, then
// stops it as a signal would.
func TestRunAndStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		root := NewRoot(&syncBuffer{}, &logs)
		root.SetArgs([]string{"run", "--state-dir", dir, "--server", "nats://127.0.0.1:1", "--name", "pc-7", "--site", "P01", "--log-level", "debug"})
		done <- root.ExecuteContext(ctx)
	}()

	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		out, _, err = execute(context.Background(), "status", "--state-dir", dir, "-o", "json")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never answered: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var st contracts.AgentStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if st.State != "enrolling" || st.Name != "pc-7" || st.Site != "P01" || st.Connected || st.AgentVersion != Version {
		t.Fatalf("got %+v, want an enrolling agent named pc-7 of site P01", st)
	}

	table, _, err := execute(context.Background(), "status", "--state-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"State:", "enrolling", "pc-7", "P01", fmt.Sprintf("capability %d", contracts.CapabilityVersion)} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	if !strings.Contains(table, "Content:") {
		t.Errorf("table lacks the content line:\n%s", table)
	}
	out, _, err = execute(context.Background(), "content", "--state-dir", dir)
	if err != nil || !strings.Contains(out, "No content yet") || !strings.Contains(out, filepath.Join(dir, "content")) {
		t.Errorf("content: got %q, %v", out, err)
	}
	out, _, err = execute(context.Background(), "content", "list", "--state-dir", dir, "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("content list -o json: got %q, %v", out, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(logs.String(), "component=agent") {
		t.Errorf("logs lack component=agent:\n%s", logs.String())
	}
	if _, err := control.Status(context.Background(), control.SocketPath(dir)); err == nil {
		t.Fatal("the control socket still answers after run returned")
	}
}

// TestUnknownSubcommand: a group given a word that names none of its
// commands fails; alone, it prints its help.
func TestUnknownSubcommand(t *testing.T) {
	if _, _, err := execute(context.Background(), "settings", "rest"); err == nil || !strings.Contains(err.Error(), `unknown command "rest"`) {
		t.Errorf("steward-agent settings rest: got %v, want unknown command", err)
	}
	if out, _, err := execute(context.Background(), "settings"); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("steward-agent settings: %v, %q; want its help", err, out)
	}
}

// TestStatusTableFirstRejection: the table shows a rejection though no
// policy was ever applied.
func TestStatusTableFirstRejection(t *testing.T) {
	now := time.Now()
	st := contracts.AgentStatus{State: "connected", Policy: &contracts.AgentPolicyStatus{Rejected: 1,
		LastRejection: &contracts.PolicyRejection{Revision: 1, Code: contracts.RejectExpired, Reason: "expired 1m ago", At: now}}}
	var out bytes.Buffer
	if err := printStatus(&out, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"none applied yet", "Last rejected:", "expired: expired 1m ago"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestVersionJSON: version -o json is the table's facts, for scripts.
func TestVersionJSON(t *testing.T) {
	out, _, err := execute(context.Background(), "version", "-o", "json")
	var v versionInfo
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Version != Version || v.Capability != contracts.CapabilityVersion || v.OS == "" {
		t.Fatalf("version -o json: %q, %v", out, err)
	}
	if _, _, err := execute(context.Background(), "version", "-o", "yaml"); err == nil {
		t.Fatal("version -o yaml: want refused")
	}
}

// TestEveryCommandHasExamples: --help shows examples for every command.
func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" && !c.Hidden && c.Name() != "help" && c.Name() != "completion" {
			t.Errorf("%s has no examples", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(NewRoot(io.Discard, io.Discard))
}
