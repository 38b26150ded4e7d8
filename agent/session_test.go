//go:build unix

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// TestVerifyGrant checks every refusal of the grant's own checks, without
// a server: each is DenyClient with a reason that names the problem.
func TestVerifyGrant(t *testing.T) {
	b := &bench{t: t, clientID: "9d0f3a52-5f43-4d3b-9a1e-2c6a2b1f7e01"}
	b.siteKP, _ = nkeys.CreateAccount()
	b.sitePub, _ = b.siteKP.PublicKey()
	id := state.Identity{ClientID: b.clientID, Site: testSite, SiteKey: b.sitePub}
	now := time.Now().UTC()
	other := b.otherKey()
	otherPub, _ := other.PublicKey()
	at := func(issued time.Time, validity time.Duration) func(*contracts.SessionGrant) {
		return func(g *contracts.SessionGrant) { g.Issued, g.Expires = issued, issued.Add(validity) }
	}
	good := b.grantFor(contracts.SessionShell, nil)
	forged := signGrant(t, other, good)
	var fsg contracts.SignedGrant
	_ = json.Unmarshal(forged, &fsg)
	fsg.Key = b.sitePub // signed by another key, claiming the pinned one
	claimsPinned, _ := json.Marshal(fsg)
	unsigned, _ := json.Marshal(contracts.SignedGrant{Header: contracts.NewHeader(contracts.TypeSignedGrant), Grant: mustJSON(t, good), Key: b.sitePub})
	wrongType := signGrant(t, b.siteKP, good)
	wrongType = []byte(strings.Replace(string(wrongType), contracts.TypeSignedGrant, contracts.TypeSignedPolicy, 1))

	for _, c := range []struct {
		name string
		data []byte
		want string // in the reason; "" for a grant that verifies
	}{
		{"valid", signGrant(t, b.siteKP, good), ""},
		{"valid at the edge of the skew", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, at(now.Add(-33*time.Second), 30*time.Second))), ""},
		{"expired", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, at(now.Add(-150*time.Second), 30*time.Second))), "grant expired 2m ago"},
		{"issued in the future", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, at(now.Add(time.Minute), 20*time.Second))), "grant issued 1m in the future"},
		{"valid too long", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, at(now, time.Hour))), "grant valid for 1h, longer than the 30s"},
		{"expires before issued", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, at(now, -time.Second))), "expires"},
		{"another client", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.ClientID = "0b7c6c1e-8c1f-4c31-9d55-0f1f9a3b2d11" })), "grant for another client (0b7c6c1e-8c1f-4c31-9d55-0f1f9a3b2d11)"},
		{"another site", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Site = "P01" })), `grant for site "P01"`},
		{"another key", forged, "grant signed by key " + strconv.Quote(otherPub)},
		{"another key claiming the pinned one", claimsPinned, "grant signature does not verify with the pinned site key"},
		{"unsigned", unsigned, "unsigned grant"},
		{"not a signed grant", wrongType, "message type"},
		{"malformed", []byte(`{"type":`), "not a signed grant"},
		{"too large", make([]byte, maxGrantBytes+1), "over the"},
		{"invalid", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Access = "root" })), "invalid grant: access"},
		{"no ID", signGrant(t, b.siteKP, b.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.ID = "" })), "grant without an ID"},
		{"observe without join", signGrant(t, b.siteKP, b.grantFor(contracts.SessionObserve, func(g *contracts.SessionGrant) { g.Access = contracts.AccessView })), "only join"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, d := verifyGrant(c.data, id, now)
			if c.want == "" {
				if d != nil || g == nil {
					t.Fatalf("got %v, want the grant verified", d)
				}
				return
			}
			if d == nil || d.deny != contracts.DenyClient || !strings.Contains(d.reason, c.want) {
				t.Fatalf("got %v, want DenyClient with %q", d, c.want)
			}
			if _, err := VerifyGrant(c.data, id, now); err == nil || err.Error() != d.reason {
				t.Fatalf("VerifyGrant: got %v, want %q", err, d.reason)
			}
		})
	}
}

// TestGrantAccess is the local re-check, row by row: the local policy,
// the grant, and the access the agent enforces or its refusal.
func TestGrantAccess(t *testing.T) {
	b := &bench{t: t, clientID: "9d0f3a52-5f43-4d3b-9a1e-2c6a2b1f7e01"}
	withPorts := func(rt *contracts.RemoteToolsSettings) { rt.TunnelPorts = ptr([]int{5432}) }
	raLevel := func(level string) state.PolicyState {
		return state.PolicyState{User: contracts.RemoteAssistanceValues{Level: ptr(level)}}
	}
	pol := func(s contracts.SettingsSections) state.PolicyState { return state.PolicyState{Settings: s} }
	for _, c := range []struct {
		name   string
		st     state.PolicyState
		kind   string // the session's kind
		grant  func(g *contracts.SessionGrant)
		access string // enforced; "" when refused
		want   string // in the refusal's reason
	}{
		{"no policy", state.PolicyState{}, contracts.SessionShell, nil, "", "remote tools are not enabled"},
		{"disabled", pol(contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(false), AccessLevel: ptr("full")}}), contracts.SessionShell, nil, "", "remote tools are not enabled"},
		{"level not set", pol(contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(true)}}), contracts.SessionShell, nil, "", "access level of this client is none"},
		{"level none", pol(remoteTools("none", nil)), contracts.SessionShell, nil, "", "access level of this client is none"},
		{"shell full", pol(remoteTools("full", nil)), contracts.SessionShell, nil, "full", ""},
		{"shell at a local view level", pol(remoteTools("view", nil)), contracts.SessionShell, nil, "", "a shell needs full access"},
		{"shell grant view", pol(remoteTools("full", nil)), contracts.SessionShell, func(g *contracts.SessionGrant) { g.Access = "view" }, "", "a shell needs full access"},
		{"join of a tunnel", pol(remoteTools("full", withPorts)), contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Join = true }, "", "a tunnel cannot be joined"},
		{"full join of an assistance", state.PolicyState{}, contracts.SessionAssist, func(g *contracts.SessionGrant) { g.Join = true }, "", "may only observe"},
		{"observe join of an assistance", state.PolicyState{}, contracts.SessionAssist, func(g *contracts.SessionGrant) { g.Kind, g.Join = contracts.SessionObserve, true }, "view", ""},
		{"tunnel", pol(remoteTools("full", withPorts)), contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Port = 5432 }, "full", ""},
		{"tunnel port not allowed", pol(remoteTools("full", withPorts)), contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Port = 22 }, "", "port 22 is not in this client's tunnel ports (allowed: 5432)"},
		{"tunnel no ports", pol(remoteTools("full", nil)), contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Port = 22 }, "", "none are allowed"},
		{"tunnel view level", pol(remoteTools("view", withPorts)), contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Port = 5432 }, "", "a tunnel needs full access"},
		{"observe join of a shell", pol(remoteTools("full", nil)), contracts.SessionShell, func(g *contracts.SessionGrant) { g.Kind, g.Join = contracts.SessionObserve, true }, "view", ""},
		{"observe join at view", pol(remoteTools("view", nil)), contracts.SessionShell, func(g *contracts.SessionGrant) {
			g.Kind, g.Join, g.Access = contracts.SessionObserve, true, "view"
		}, "view", ""},
		{"full join at view", pol(remoteTools("view", nil)), contracts.SessionShell, func(g *contracts.SessionGrant) { g.Join = true }, "view", ""},
		{"assist default", state.PolicyState{}, contracts.SessionAssist, nil, "full", ""},
		{"assist level view", raLevel("view"), contracts.SessionAssist, nil, "view", ""},
		{"assist level none", raLevel("none"), contracts.SessionAssist, nil, "", "Remote Assistance level of this client is none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kind := c.kind
			g := b.grantFor(kind, c.grant)
			access, d := grantAccess(&g, kind, c.st)
			if c.access != "" {
				if d != nil || access != c.access {
					t.Fatalf("got %q, %v; want %s access", access, d, c.access)
				}
				return
			}
			if d == nil || d.deny != contracts.DenyPolicy || !strings.Contains(d.reason, c.want) {
				t.Fatalf("got %q, %v; want DenyPolicy with %q", access, d, c.want)
			}
		})
	}
}

// TestGrantRefusedByTheAgent sends grants the agent must refuse on its own
// checks, through the server as the broker does.
func TestGrantRefusedByTheAgent(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), nil)
	now := time.Now().UTC()
	expired := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) {
		g.Issued, g.Expires = now.Add(-3*time.Minute), now.Add(-150*time.Second)
	})
	other := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.ClientID = "0b7c6c1e-8c1f-4c31-9d55-0f1f9a3b2d11" })
	unsigned, _ := json.Marshal(contracts.SignedGrant{Header: contracts.NewHeader(contracts.TypeSignedGrant),
		Grant: mustJSON(t, sb.grantFor(contracts.SessionShell, nil)), Key: sb.sitePub})
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"expired", signGrant(t, sb.siteKP, expired), "grant expired 2m30s ago"},
		{"for another client", signGrant(t, sb.siteKP, other), "grant for another client"},
		{"unsigned", unsigned, "unsigned grant"},
		{"signed by another key", signGrant(t, sb.otherKey(), sb.grantFor(contracts.SessionShell, nil)), "not the pinned key of site LAB"},
	} {
		ans := sb.ask(c.data, 10*time.Second)
		if ans.Accepted || ans.Deny != contracts.DenyClient || !strings.Contains(ans.Reason, c.want) {
			t.Errorf("%s: got %+v, want DenyClient with %q", c.name, ans, c.want)
		}
	}
	if n := len(sb.a.Sessions()); n != 0 {
		t.Fatalf("got %d sessions, want none", n)
	}
}

// TestGrantReplayed takes a grant once; the very same signed grant again
// is refused, also after the agent restarted (the IDs are in state.db).
func TestGrantReplayed(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), nil)
	g := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Command = []string{"true"} })
	data := signGrant(t, sb.siteKP, g)
	fb := sb.broker(g.Session)
	if ans := sb.ask(data, 10*time.Second); !ans.Accepted {
		t.Fatalf("first use: got %+v", ans)
	}
	fb.ended()
	waitFor(t, "the session to end", func() bool { return len(sb.a.Sessions()) == 0 })
	ans := sb.ask(data, 10*time.Second)
	if ans.Accepted || ans.Deny != contracts.DenyClient || !strings.Contains(ans.Reason, "grant replayed") {
		t.Fatalf("replay: got %+v, want DenyClient grant replayed", ans)
	}
	// A restarted agent still knows the grant.
	sb.stopAgent(sb.a)
	sb.a = sb.startAgent(func(c *Config) { c.LoggedOnUsers = func() []string { return nil } })
	waitFor(t, "the agent to reconnect", func() bool { return sb.a.Status().Connected })
	if ans := sb.ask(data, 10*time.Second); ans.Accepted || !strings.Contains(ans.Reason, "grant replayed") {
		t.Fatalf("replay after a restart: got %+v", ans)
	}
}

// TestGrantRefusedByPolicy: the agent's own policy refuses what a signed
// grant allows.
func TestGrantRefusedByPolicy(t *testing.T) {
	sb := newSessionBench(t, contracts.SettingsSections{RemoteTools: &contracts.RemoteToolsSettings{Enabled: ptr(false), AccessLevel: ptr("full")}}, nil)
	check := func(what string, g contracts.SessionGrant, want string) {
		t.Helper()
		ans, _ := sb.open(g)
		if ans.Accepted || ans.Deny != contracts.DenyPolicy || !strings.Contains(ans.Reason, want) {
			t.Errorf("%s: got %+v, want DenyPolicy with %q", what, ans, want)
		}
	}
	check("disabled", sb.grantFor(contracts.SessionShell, nil), "remote tools are not enabled")
	sb.setPolicy(remoteTools("none", nil))
	check("level none", sb.grantFor(contracts.SessionShell, nil), "access level of this client is none")
	sb.setPolicy(remoteTools("full", func(rt *contracts.RemoteToolsSettings) { rt.TunnelPorts = ptr([]int{8080}) }))
	check("tunnel port", sb.grantFor(contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Port = 22 }), "port 22 is not in this client's tunnel ports (allowed: 8080)")
	log, err := sb.a.SessionLog(0)
	if err != nil || len(log) != 3 || log[0].Deny != contracts.DenyPolicy || log[0].Accepted || !strings.Contains(log[0].Reason, "port 22") {
		t.Fatalf("session log: got %+v, %v; want the three refusals, newest first", log, err)
	}
}

// TestShellCommand runs a command in a PTY: its output comes as data
// frames, then the end frame with its exit status.
func TestShellCommand(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), nil)
	ans, fb := sb.mustOpen(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) {
		g.Command = []string{"sh", "-c", "echo hi; echo $TERM; exit 3"}
	}))
	if ans.Access != contracts.AccessFull || ans.Consent != contracts.ConsentNotRequired || ans.Session == "" {
		t.Fatalf("got answer %+v", ans)
	}
	end := fb.ended()
	if end.ExitCode == nil || *end.ExitCode != 3 || end.Reason != "the command exited with status 3" || end.By != "client" {
		t.Fatalf("got end %+v, want the command's exit status 3", end)
	}
	if out := fb.text(); !strings.Contains(out, "hi\r\n") || !strings.Contains(out, "xterm-256color") {
		t.Fatalf("got output %q, want hi and TERM", out)
	}
	waitFor(t, "the session to go", func() bool { return len(sb.a.Sessions()) == 0 })
	log, _ := sb.a.SessionLog(1)
	if len(log) != 1 || log[0].State != contracts.SessionEnded || log[0].ExitCode == nil || *log[0].ExitCode != 3 || log[0].BytesOut == 0 {
		t.Fatalf("session log: got %+v", log)
	}
}

// TestShellInputAndResize types into a login shell, resizes it, sees the
// session in the status, and the broker's end frame kills the shell.
func TestShellInputResizeAndEnd(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", func(rt *contracts.RemoteToolsSettings) { rt.ShowIndicator = ptr(true) }), nil)
	g := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Cols, g.Rows, g.Term = 100, 30, "vt100" })
	_, fb := sb.mustOpen(g)
	seq := fb.input("alice", "echo pid:$$ term:$TERM size:$(stty size)\n")
	fb.acked(seq)
	fb.output("size:30 100")
	if !strings.Contains(fb.text(), "term:vt100") {
		t.Fatalf("got %q, want TERM=vt100", fb.text())
	}
	fb.send(contracts.FrameResize, 0, mustJSON(t, contracts.SessionResize{Cols: 120, Rows: 40}), "alice")
	fb.input("alice", "echo now:$(stty size)\n")
	fb.output("now:40 120")
	pid := pidIn(t, fb.text())

	st := sb.a.Status()
	if len(st.Sessions) != 1 || st.Sessions[0].ID != g.Session || st.Sessions[0].Operator != "alice" || st.Sessions[0].Kind != "shell" ||
		st.Sessions[0].Access != "full" || st.Sessions[0].BytesIn == 0 || st.Sessions[0].Started.IsZero() {
		t.Fatalf("status sessions: got %+v", st.Sessions)
	}
	indicator, err := os.ReadFile(filepath.Join(sb.dir, IndicatorFile))
	if err != nil || !strings.Contains(string(indicator), "Remote shell session of alice with full control") {
		t.Fatalf("indicator: got %q, %v", indicator, err)
	}

	fb.endSession("alice ended it")
	waitFor(t, "the shell to be gone", func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
	waitFor(t, "the session to go", func() bool { return len(sb.a.Sessions()) == 0 })
	if _, err := os.Stat(filepath.Join(sb.dir, IndicatorFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("indicator still there after the session: %v", err)
	}
	// The broker ended it: the agent sends no end frame back.
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.end != nil {
		t.Fatalf("got an end frame %+v after the broker's end", fb.end)
	}
}

// bashPath is bash's path (the view tests use read -t). .ci/run installs
// bash where it is missing, so its absence is a failure, not a skip.
func bashPath(t *testing.T) string {
	p, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is required by the view-mode tests (apt-get install bash): %v", err)
	}
	return p
}

// TestViewLevelRefusesShell: at the view level of this client's policy a
// shell does not start, even on a grant for full access (the broker's
// policy may be newer, or one this agent rejected): its command line is
// input. It ran the operator's command all the same, input dropped.
func TestViewLevelRefusesShell(t *testing.T) {
	bash := bashPath(t)
	sb := newSessionBench(t, remoteTools("view", nil), nil)
	marker := filepath.Join(t.TempDir(), "marker")
	ans, _ := sb.open(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) {
		g.Access = contracts.AccessFull
		g.Command = []string{bash, "-c", `touch "$0"`, marker}
	}))
	if ans.Accepted || ans.Deny != contracts.DenyPolicy || !strings.Contains(ans.Reason, "needs full access") {
		t.Fatalf("got %+v, want refused by policy: a shell needs full access", ans)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the operator's command ran (%v)", err)
	}
}

// TestObserverInputDropped: bob joins alice's shell as an observer; his
// line is dropped, alice's (sent after it) is what the shell reads.
func TestObserverInputDropped(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), nil)
	g := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) {
		g.Command = []string{"sh", "-c", `stty -echo; echo ready; IFS= read -r line; echo "got:$line"; IFS= read -r line; echo "got:$line"`}
	})
	_, fb := sb.mustOpen(g)
	fb.output("ready")

	// Joins: an observer, a second full operator, and grants the agent
	// must refuse.
	observe := sb.grantFor(contracts.SessionObserve, func(j *contracts.SessionGrant) {
		j.Session, j.Join, j.Operator, j.Access = g.Session, true, "bob", contracts.AccessFull
	})
	if ans := sb.ask(signGrant(t, sb.siteKP, observe), 10*time.Second); !ans.Accepted || ans.Access != contracts.AccessView {
		t.Fatalf("observe join: got %+v, want view", ans)
	}
	full := sb.grantFor(contracts.SessionShell, func(j *contracts.SessionGrant) { j.Session, j.Join, j.Operator = g.Session, true, "carol" })
	if ans := sb.ask(signGrant(t, sb.siteKP, full), 10*time.Second); !ans.Accepted || ans.Access != contracts.AccessFull {
		t.Fatalf("full join: got %+v", ans)
	}
	unknown := sb.grantFor(contracts.SessionObserve, func(j *contracts.SessionGrant) { j.Join, j.Operator = true, "bob" })
	if ans := sb.ask(signGrant(t, sb.siteKP, unknown), 10*time.Second); ans.Accepted || ans.Deny != contracts.DenyClient || !strings.Contains(ans.Reason, "no session") {
		t.Fatalf("join of an unknown session: got %+v", ans)
	}
	wrongKind := sb.grantFor(contracts.SessionTunnel, func(j *contracts.SessionGrant) { j.Session, j.Join, j.Port = g.Session, true, 80 })
	if ans := sb.ask(signGrant(t, sb.siteKP, wrongKind), 10*time.Second); ans.Accepted || !strings.Contains(ans.Reason, "cannot join") {
		t.Fatalf("tunnel join of a shell: got %+v", ans)
	}
	st := sb.a.Status()
	if len(st.Sessions) != 1 || len(st.Sessions[0].Participants) != 3 || st.Sessions[0].Participants[1].Operator != "bob" || st.Sessions[0].Participants[1].Access != "view" {
		t.Fatalf("participants: got %+v", st.Sessions)
	}

	fb.input("bob", "from-bob\n")
	fb.input("mallory", "from-mallory\n") // not a participant
	fb.input("", "from-nobody\n")         // no sender named
	fb.input("alice", "from-alice\n")
	fb.output("got:from-alice")
	fb.input("carol", "from-carol\n")
	fb.output("got:from-carol")
	if dropped := sb.a.sessionDropped(g.Session); dropped != 3 {
		t.Errorf("got %d input frames dropped, want 3", dropped)
	}
	end := fb.ended()
	if out := fb.text(); strings.Contains(out, "from-bob") || strings.Contains(out, "mallory") || strings.Contains(out, "nobody") || end.ExitCode == nil || *end.ExitCode != 0 {
		t.Fatalf("got output %q, end %+v", out, end)
	}
}

// sessionDropped is how many input frames session id dropped; -1 when it
// does not run.
func (a *Agent) sessionDropped(id string) int64 {
	s := a.sess.get(id)
	if s == nil {
		return -1
	}
	return s.dropped.Load()
}

// TestFlowControl: with no acks the agent sends SessionWindow frames of a
// command that writes without end, and no more; each ack lets it go on.
func TestFlowControl(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), nil)
	g := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Command = []string{"yes", "flow-control-test"} })
	_, fb := sb.mustOpen(g)
	count := func() uint64 { fb.mu.Lock(); defer fb.mu.Unlock(); return fb.lastSq }
	fb.until("a window of output", false, func(fb *fakeBroker) bool { return fb.lastSq >= contracts.SessionWindow })
	// Nothing more comes while nothing is acknowledged: the agent does
	// not read the PTY any more (the process blocks on its full terminal).
	drain := func() {
		for {
			select {
			case m := <-fb.frames:
				fb.take(m, false)
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain()
	if n := count(); n != contracts.SessionWindow {
		t.Fatalf("got %d frames without an ack, want exactly %d", n, contracts.SessionWindow)
	}
	s := sb.a.sess.get(g.Session)
	if s == nil || s.out.InFlight() != contracts.SessionWindow {
		t.Fatalf("window: got %v in flight", s.out.InFlight())
	}
	// An ack of the first 10 frames lets 10 more go.
	fb.send(contracts.FrameAck, 10, nil, "")
	fb.until("10 more frames", false, func(fb *fakeBroker) bool { return fb.lastSq >= contracts.SessionWindow+10 })
	drain()
	if n := count(); n != contracts.SessionWindow+10 {
		t.Fatalf("got %d frames after acking 10, want %d", n, contracts.SessionWindow+10)
	}
	// Acknowledging as they come, it flows on.
	fb.send(contracts.FrameAck, count(), nil, "")
	fb.until("a lot more output", true, func(fb *fakeBroker) bool { return fb.lastSq >= 5*contracts.SessionWindow })
	fb.endSession("enough")
	waitFor(t, "the session to go", func() bool { return len(sb.a.Sessions()) == 0 })
}

// TestTunnelEcho carries an echo protocol through a tunnel to a TCP
// server on the loopback, half-closes both ways, and gets the end.
func TestTunnelEcho(t *testing.T) {
	port, served := echoServer(t)
	sb := newSessionBench(t, remoteTools("full", func(rt *contracts.RemoteToolsSettings) { rt.TunnelPorts = ptr([]int{port}) }), nil)
	g := sb.grantFor(contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Port = port })
	ans, fb := sb.mustOpen(g)
	if ans.Access != contracts.AccessFull {
		t.Fatalf("got %+v", ans)
	}
	fb.input("alice", "hello ")
	fb.input("alice", "tunnel\n")
	fb.output("HELLO TUNNEL\n")
	big := strings.Repeat("x", 3*contracts.MaxFrameBytes)
	for i := 0; i < len(big); i += contracts.MaxFrameBytes {
		fb.input("alice", big[i:i+contracts.MaxFrameBytes])
	}
	fb.until("the big echo", true, func(fb *fakeBroker) bool { return fb.out.Len() >= len("HELLO TUNNEL\n")+len(big) })
	fb.send(contracts.FrameEOF, 0, nil, "alice")
	end := fb.ended()
	if end.Reason != "the tunnel to 127.0.0.1:"+strconv.Itoa(port)+" closed" || end.By != "client" {
		t.Fatalf("got end %+v", end)
	}
	fb.mu.Lock()
	eofAt, endAt := slices.Index(fb.events, "eof"), slices.Index(fb.events, "end")
	fb.mu.Unlock()
	if eofAt < 0 || eofAt > endAt {
		t.Fatalf("events: eof at %d, end at %d; want an eof frame before the end", eofAt, endAt)
	}
	if got := <-served; got != len("hello tunnel\n")+len(big) {
		t.Fatalf("the server got %d bytes, want %d", got, len("hello tunnel\n")+len(big))
	}
	waitFor(t, "the session to go", func() bool { return len(sb.a.Sessions()) == 0 })
	log, _ := sb.a.SessionLog(1)
	if len(log) != 1 || log[0].BytesIn != int64(len("hello tunnel\n")+len(big)) || log[0].BytesOut != log[0].BytesIn {
		t.Fatalf("session log: got %+v", log)
	}

	// A port nothing listens on: the grant is refused, with the reason.
	closed := freePort(t)
	sb.setPolicy(remoteTools("full", func(rt *contracts.RemoteToolsSettings) { rt.TunnelPorts = ptr([]int{closed}) }))
	ans, _ = sb.open(sb.grantFor(contracts.SessionTunnel, func(g *contracts.SessionGrant) { g.Port = closed }))
	if ans.Accepted || ans.Deny != contracts.DenyClient || !strings.Contains(ans.Reason, "could not connect") {
		t.Fatalf("closed port: got %+v", ans)
	}
}

// TestSessionEndedByTheUser: "steward-agent sessions end" sends the end
// frame by the user and kills the shell.
func TestSessionEndedByTheUser(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), nil)
	g := sb.grantFor(contracts.SessionShell, nil)
	_, fb := sb.mustOpen(g)
	var list contracts.SessionListResponse
	if err := control.Call(context.Background(), sb.a.SocketPath(), control.VerbSessions, nil, &list); err != nil || len(list.Sessions) != 1 {
		t.Fatalf("sessions: got %+v, %v", list, err)
	}
	var resp contracts.SessionOpenResponse
	if err := control.Call(context.Background(), sb.a.SocketPath(), control.VerbSessionEnd, []string{g.Session[:8]}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Session.ID != g.Session || resp.Session.State != contracts.SessionEnded || resp.Session.EndReason != "ended by the user on the client" {
		t.Fatalf("got %+v", resp.Session)
	}
	end := fb.ended()
	if end.By != "user" || end.Reason != "ended by the user on the client" {
		t.Fatalf("got end %+v", end)
	}
	if err := control.Call(context.Background(), sb.a.SocketPath(), control.VerbSessionEnd, []string{g.Session}, &resp); err == nil || !strings.Contains(err.Error(), "no session") {
		t.Fatalf("ending it again: got %v", err)
	}
}

// TestAgentStopEndsSessions: an agent that stops ends its sessions
// abnormally and kills their processes.
func TestAgentStopEndsSessions(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), nil)
	_, fb := sb.mustOpen(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) {
		g.Command = []string{"sh", "-c", "echo pid:$$; exec sleep 1000"}
	}))
	fb.output("pid:")
	pid := pidIn(t, fb.text())
	sb.stopAgent(sb.a)
	if syscall.Kill(pid, 0) != syscall.ESRCH {
		t.Fatalf("process %d still runs after the agent stopped", pid)
	}
	log := sb.logs[sb.a].String()
	if !strings.Contains(log, "the agent stopped") {
		t.Fatalf("log lacks the end:\n%s", log)
	}
}

// pidIn finds "pid:N" in a terminal's output (not the echoed command).
func pidIn(t *testing.T, out string) int {
	t.Helper()
	m := regexp.MustCompile(`pid:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no pid in %q", out)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// TestConsentAfterTheSiteGaveUp: an acceptance that comes when the broker
// no longer waits for the answer (the grant's AnswerWithin, less the time
// the answer needs to travel) starts no session: the agent answers it as a
// refusal. The session started, for a broker that had refused it.
func TestConsentAfterTheSiteGaveUp(t *testing.T) {
	sb := newSessionBench(t, promptPolicy(time.Minute, false), func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	g := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) {
		g.Command, g.AnswerWithin = []string{"echo", "started"}, contracts.Duration(time.Second) // less than the answer's way back
	})
	answers, _ := sb.openAsync(g)
	p := sb.waitPrompt()
	// The prompt may be over already (it ends in time, as far as it
	// can): an answer refused here is refused all the same.
	_, _ = sb.answer(p.ID, "accept", "dave")
	ans := receive(t, answers, "the grant's answer")
	if ans.Accepted || ans.Deny != contracts.DenyConsent {
		t.Fatalf("got answer %+v, want a refusal", ans)
	}
	if len(sb.a.Sessions()) != 0 || len(sb.a.ConsentPrompts()) != 0 {
		t.Fatal("a session or a prompt is left")
	}
}

// TestGrantViaChecked: the agent checks again what the broker said
// admitted the operator. A Permitted Viewers entry its own policy does not
// list (the site's record of the policy was older: the viewer was removed
// a moment ago), a local administrator it does not have, or a reason it
// does not know: refused as not a permitted viewer. The broker alone
// checked Permitted Viewers before.
func TestGrantViaChecked(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", func(rt *contracts.RemoteToolsSettings) {
		rt.PermittedViewers = ptr([]string{"group:helpdesk", "bob"})
	}), nil)
	for _, c := range []struct {
		via    string
		accept bool
	}{
		{"", true}, // the site does not check viewers (role-based administration off)
		{contracts.ViaViewer + "group:helpdesk", true},
		{contracts.ViaViewer + "alice", false},
		{contracts.ViaAdmin + "nobody-here", false},
		{"friend:alice", false},
	} {
		ans, _ := sb.open(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) {
			g.Via = c.via
			g.Command = []string{"true"}
		}))
		if ans.Accepted != c.accept || (!c.accept && ans.Deny != contracts.DenyViewer) {
			t.Errorf("via %q: got %+v, want accepted %v (refused: %s)", c.via, ans, c.accept, contracts.DenyViewer)
		}
	}
}
