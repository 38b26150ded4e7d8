package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// fakeAgent serves the control socket of a state dir with canned answers
// and records the requests it got.
type fakeAgent struct {
	dir  string
	mu   sync.Mutex
	reqs [][]string
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	f := &fakeAgent{dir: t.TempDir()}
	now := time.Now().UTC()
	session := contracts.SessionInfo{
		ID: "0195a3c4-0000-7000-8000-0000000000d1", Operator: "alice", Kind: contracts.SessionTunnel, Access: contracts.AccessFull, Port: 5432,
		State: contracts.SessionActive, Consent: contracts.ConsentGiven, Started: now.Add(-time.Minute), BytesIn: 12, BytesOut: 345,
		Participants: []contracts.SessionParticipant{{Operator: "alice", Access: "full"}, {Operator: "bob", Access: "view"}},
	}
	prompt := control.ConsentPrompt{ID: "0195a3c4-0000-7000-8000-0000000000e1", Session: session.ID, Operator: "carol", Kind: "shell",
		Access: "view", Asked: now, Deadline: now.Add(30 * time.Second)}
	rec := func(args ...string) { f.mu.Lock(); f.reqs = append(f.reqs, args); f.mu.Unlock() }
	h := control.Handlers{
		control.VerbStatus: func(context.Context, []string) (any, error) {
			return contracts.AgentStatus{Header: contracts.NewHeader(contracts.TypeAgentStatus), Name: "pc-1", State: "connected", Sessions: []contracts.SessionInfo{session}}, nil
		},
		control.VerbSessions: func(context.Context, []string) (any, error) {
			return contracts.SessionListResponse{Header: contracts.NewHeader(contracts.TypeSessionListResponse), Sessions: []contracts.SessionInfo{session}}, nil
		},
		control.VerbSessionEnd: func(_ context.Context, args []string) (any, error) {
			rec(append([]string{control.VerbSessionEnd}, args...)...)
			ended := session
			ended.State, ended.EndReason = contracts.SessionEnded, "ended by the user on the client"
			return contracts.SessionOpenResponse{Header: contracts.NewHeader(contracts.TypeSessionOpenResponse), Session: ended}, nil
		},
		control.VerbSessionLog: func(_ context.Context, args []string) (any, error) {
			rec(append([]string{control.VerbSessionLog}, args...)...)
			refused := state.SessionRecord{SessionInfo: contracts.SessionInfo{ID: "s2", Operator: "mallory", Kind: "shell"}, Deny: contracts.DenyPolicy,
				Reason: "remote tools are not enabled", At: now}
			return control.SessionLog{Type: control.TypeSessionLog, Records: []state.SessionRecord{refused}}, nil
		},
		control.VerbConsent: func(context.Context, []string) (any, error) {
			return control.ConsentList{Type: control.TypeConsentList, Prompts: []control.ConsentPrompt{prompt}}, nil
		},
		control.VerbConsentAnswer: func(_ context.Context, args []string) (any, error) {
			rec(append([]string{control.VerbConsentAnswer}, args...)...)
			if args[0] == "unknown" {
				return nil, errors.New(`no consent prompt "unknown" is waiting`)
			}
			return control.ConsentAnswer{Type: control.TypeConsentAnswer, Prompt: prompt, Accepted: args[1] == "accept", User: args[2]}, nil
		},
	}
	s, err := control.Listen(control.SocketPath(f.dir), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func (f *fakeAgent) requests() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.reqs...)
}

func TestSessionsCommands(t *testing.T) {
	f := newFakeAgent(t)
	ctx := context.Background()
	out, _, err := execute(ctx, "sessions", "--state-dir", f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SESSION", "0195a3c4-0000-7000-8000-0000000000d1", "alice", "tunnel:5432", "full", "given", "bob (view)", "345"} {
		if !strings.Contains(out, want) {
			t.Errorf("sessions table lacks %q:\n%s", want, out)
		}
	}
	out, _, err = execute(ctx, "sessions", "--state-dir", f.dir, "-o", "json")
	var list []contracts.SessionInfo
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Port != 5432 {
		t.Fatalf("sessions -o json: got %s, %v", out, err)
	}
	out, _, err = execute(ctx, "sessions", "end", "0195a3c4", "--state-dir", f.dir)
	if err != nil || !strings.Contains(out, "Ended the tunnel session 0195a3c4-0000-7000-8000-0000000000d1 of alice (ended by the user on the client)") {
		t.Fatalf("sessions end: got %q, %v", out, err)
	}
	out, _, err = execute(ctx, "sessions", "log", "--state-dir", f.dir, "--limit", "5")
	if err != nil || !strings.Contains(out, "refused (policy): remote tools are not enabled") || !strings.Contains(out, "mallory") {
		t.Fatalf("sessions log: got %q, %v", out, err)
	}
	out, _, err = execute(ctx, "status", "--state-dir", f.dir)
	if err != nil || !strings.Contains(out, "Remote sessions:") || !strings.Contains(out, "tunnel:5432 session 0195a3c4-0000-7000-8000-0000000000d1 of alice, full access") ||
		!strings.Contains(out, "bob joined (view)") {
		t.Fatalf("status: got %q, %v", out, err)
	}
	got := f.requests()
	if len(got) != 2 || strings.Join(got[0], " ") != "session-end 0195a3c4" || strings.Join(got[1], " ") != "session-log 5" {
		t.Fatalf("requests: got %q", got)
	}
}

func TestConsentCommand(t *testing.T) {
	f := newFakeAgent(t)
	ctx := context.Background()
	t.Setenv("SUDO_USER", "dave")
	out, _, err := execute(ctx, "consent", "--state-dir", f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0195a3c4-0000-7000-8000-0000000000e1", "carol", "shell", "view", "--accept ID"} {
		if !strings.Contains(out, want) {
			t.Errorf("consent table lacks %q:\n%s", want, out)
		}
	}
	out, _, err = execute(ctx, "consent", "--state-dir", f.dir, "--accept")
	if err != nil || !strings.Contains(out, "Accepted the shell session 0195a3c4-0000-7000-8000-0000000000d1 of carol (as dave)") {
		t.Fatalf("consent --accept: got %q, %v", out, err)
	}
	out, _, err = execute(ctx, "consent", "--state-dir", f.dir, "--deny", "0195", "-o", "json")
	var ans control.ConsentAnswer
	if err != nil || json.Unmarshal([]byte(out), &ans) != nil || ans.Accepted || ans.User != "dave" {
		t.Fatalf("consent --deny -o json: got %q, %v", out, err)
	}
	if _, _, err := execute(ctx, "consent", "--state-dir", f.dir, "--deny", "unknown"); err == nil || !strings.Contains(err.Error(), "no consent prompt") {
		t.Fatalf("unknown prompt: got %v", err)
	}
	if _, _, err := execute(ctx, "consent", "--state-dir", f.dir, "--accept", "--deny"); err == nil {
		t.Fatal("--accept and --deny together were taken")
	}
	if _, _, err := execute(ctx, "consent", "--state-dir", f.dir, "0195"); err == nil {
		t.Fatal("an ID without --accept or --deny was taken")
	}
	got := f.requests()
	if len(got) != 3 || strings.Join(got[0], " ") != "consent-answer - accept dave" || strings.Join(got[1], " ") != "consent-answer 0195 deny dave" {
		t.Fatalf("requests: got %q", got)
	}
}

func TestSessionHelpTeaches(t *testing.T) {
	for _, args := range [][]string{{"sessions", "--help"}, {"sessions", "end", "--help"}, {"sessions", "log", "--help"}, {"consent", "--help"}, {"assist", "--help"}} {
		out, _, err := execute(context.Background(), args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "--state-dir") {
			t.Errorf("%v: help lacks examples or --state-dir:\n%s", args, out)
		}
	}
}

func TestAssistWithNoAgent(t *testing.T) {
	dir := t.TempDir()
	_, _, err := execute(context.Background(), "assist", "--state-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "no agent is running with state dir") {
		t.Fatalf("got %v", err)
	}
}
