//go:build unix

package agent

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
)

// assistSite answers requests for assistance as the broker does and
// delivers them on the channel.
func (sb *sessionBench) assistSite() <-chan contracts.SessionAssistRequest {
	sb.t.Helper()
	ch := make(chan contracts.SessionAssistRequest, 8)
	subject, _ := contracts.AgentUp(testSite, sb.clientID, contracts.KindAssistRequest)
	_, err := sb.svc.Subscribe(subject, func(m *nats.Msg) {
		var req contracts.SessionAssistRequest
		if err := contracts.Decode(m.Data, contracts.TypeSessionAssistRequest, &req); err != nil {
			sb.t.Errorf("assist request: %v", err)
			return
		}
		resp := contracts.SessionAssistResponse{Header: contracts.NewHeader(contracts.TypeSessionAssistResponse), Request: contracts.AssistInfo{
			ID: req.Request, Client: contracts.Named{ID: sb.clientID, Name: "pc-042"}, User: req.User, Message: req.Message, Created: time.Now()}}
		data, _ := json.Marshal(resp)
		_ = m.Respond(data)
		ch <- req
	})
	if err != nil {
		sb.t.Fatal(err)
	}
	if err := sb.svc.Flush(); err != nil {
		sb.t.Fatal(err)
	}
	return ch
}

// userTerm is the user's terminal of a running `steward-agent assist`:
// the test types on it and reads what it shows.
type userTerm struct {
	t    *testing.T
	ptm  *os.File
	done chan struct{} // closed when Assist returned
	err  error         // what Assist returned

	mu   sync.Mutex
	seen strings.Builder
}

// startAssist runs Assist as user dave on a fresh PTY.
func (sb *sessionBench) startAssist(message string) *userTerm {
	sb.t.Helper()
	ptm, pts, err := pty.Open()
	if err != nil {
		sb.t.Fatal(err)
	}
	_ = pty.Setsize(pts, &pty.Winsize{Cols: 100, Rows: 30})
	u := &userTerm{t: sb.t, ptm: ptm, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			u.mu.Lock()
			u.seen.Write(buf[:n])
			u.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		u.err = Assist(context.Background(), AssistOptions{StateDir: sb.dir, User: "dave", Message: message, Shell: "/bin/sh", In: pts, Out: pts})
		close(u.done)
	}()
	sb.t.Cleanup(func() {
		_, _ = ptm.Write([]byte("exit\n"))
		select {
		case <-u.done:
		case <-time.After(10 * time.Second):
			sb.t.Error("Assist did not return after exit")
		}
		ptm.Close()
		pts.Close()
	})
	return u
}

func (u *userTerm) shows(s string) {
	u.t.Helper()
	waitFor(u.t, "the user's terminal to show "+s, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return strings.Contains(u.seen.String(), s)
	})
}

func (u *userTerm) text() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen.String()
}

func (u *userTerm) typeKeys(s string) {
	u.t.Helper()
	if _, err := u.ptm.Write([]byte(s)); err != nil {
		u.t.Fatal(err)
	}
}

// TestAssistSolicited: the user asks for help; the helper who took the
// request connects without a prompt, types into the user's shell and sees
// what the user types; the user ends the helper's session with Ctrl-] q,
// then exits.
func TestAssistSolicited(t *testing.T) {
	sb := newSessionBench(t, contracts.SettingsSections{}, nil) // Remote Assistance defaults: solicited, full
	requests := sb.assistSite()
	u := sb.startAssist("my build fails")
	req := receive(t, requests, "the request for assistance")
	if req.User != "dave" || req.Message != "my build fails" || req.Request == "" {
		t.Fatalf("got request %+v", req)
	}
	u.shows("Waiting for a helper")

	g := sb.grantFor(contracts.SessionAssist, func(g *contracts.SessionGrant) { g.Assist, g.Operator = req.Request, "helen" })
	ans, fb := sb.mustOpen(g)
	if ans.Consent != contracts.ConsentGiven || ans.User != "dave" || ans.Access != contracts.AccessFull {
		t.Fatalf("got answer %+v", ans)
	}
	u.shows("helen is connected to this terminal with full control")
	fb.input("helen", "echo helper-$((40+2))\n")
	fb.output("helper-42")
	u.shows("helper-42")
	u.typeKeys("echo user-$((1+1))\n")
	fb.output("user-2")

	// One helper at a time: the same request again is refused.
	again := sb.grantFor(contracts.SessionAssist, func(g *contracts.SessionGrant) { g.Assist, g.Operator = req.Request, "ivan" })
	if ans, _ := sb.open(again); ans.Accepted || !strings.Contains(ans.Reason, "already has a helper") {
		t.Fatalf("second helper: got %+v", ans)
	}
	// Offers are off by default.
	if ans, _ := sb.open(sb.grantFor(contracts.SessionAssist, nil)); ans.Accepted || ans.Deny != contracts.DenyPolicy || !strings.Contains(ans.Reason, "unsolicited") {
		t.Fatalf("offer: got %+v", ans)
	}

	u.typeKeys(string([]byte{AssistEscape, 'q'}))
	end := fb.ended()
	if end.By != "user" || end.Reason != "ended by the user on the client" {
		t.Fatalf("got end %+v", end)
	}
	u.shows("The helper's session " + g.Session + " ended")
	u.typeKeys("exit\n")
	select {
	case <-u.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the assist command did not end after exit")
	}
	if u.err != nil {
		t.Fatal(u.err)
	}
	u.shows("Assistance ended")
	waitFor(t, "the shared terminal to go", func() bool {
		ans, _ := sb.open(sb.grantFor(contracts.SessionAssist, func(g *contracts.SessionGrant) { g.Assist = req.Request }))
		return !ans.Accepted && ans.Deny == contracts.DenyAssistClosed && strings.Contains(ans.Reason, "no assistance request")
	})
}

// TestAssistOffer: helpers may offer help (unsolicited on, level view by
// the user's own settings); the offer is a prompt on the user's terminal
// and in `steward-agent consent`; the user accepts with Ctrl-] y; the
// helper sees but cannot type.
func TestAssistOffer(t *testing.T) {
	sb := newSessionBench(t, contracts.SettingsSections{}, func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	// Nobody shares a terminal yet.
	if ans, _ := sb.open(sb.grantFor(contracts.SessionAssist, nil)); ans.Accepted || ans.Deny != contracts.DenyPolicy {
		t.Fatalf("offer with unsolicited off: got %+v", ans)
	}
	if _, err := sb.a.SetUserSettings([]string{"unsolicited=true", "level=view"}); err != nil {
		t.Fatal(err)
	}
	if ans, _ := sb.open(sb.grantFor(contracts.SessionAssist, nil)); ans.Accepted || ans.Deny != contracts.DenyClient || !strings.Contains(ans.Reason, "nobody on this client shares a terminal") {
		t.Fatalf("offer without a terminal: got %+v", ans)
	}
	sb.assistSite()
	u := sb.startAssist("")
	u.shows("Waiting for a helper")

	g := sb.grantFor(contracts.SessionAssist, func(g *contracts.SessionGrant) { g.Operator = "helen" })
	answers, fb := sb.openAsync(g)
	u.shows("helen offers to help you with view only")
	if p := sb.waitPrompt(); !p.Offer || p.Operator != "helen" || p.Access != contracts.AccessView {
		t.Fatalf("got prompt %+v", p)
	}
	u.typeKeys(string([]byte{AssistEscape, 'y'}))
	ans := receive(t, answers, "the offer's answer")
	if !ans.Accepted || ans.Consent != contracts.ConsentGiven || ans.User != "dave" || ans.Access != contracts.AccessView {
		t.Fatalf("got answer %+v", ans)
	}
	u.shows("helen is connected to this terminal with view only")
	u.typeKeys("echo seen-$((3*3))\n")
	fb.output("seen-9")
	seq := fb.input("helen", "echo typed-by-helen\n")
	fb.acked(seq)
	if got := sb.a.sessionDropped(g.Session); got != 1 {
		t.Fatalf("got %d input frames dropped, want 1", got)
	}
	u.typeKeys("exit\n")
	end := fb.ended()
	if end.Reason != "the user's shared terminal closed" {
		t.Fatalf("got end %+v", end)
	}
	if strings.Contains(u.text(), "typed-by-helen") || strings.Contains(fb.text(), "typed-by-helen") {
		t.Fatal("a view-only helper's keys reached the shared terminal")
	}
}

// TestAssistRefusedOffer: the user refuses an offer on the terminal.
func TestAssistRefusedOffer(t *testing.T) {
	sb := newSessionBench(t, contracts.SettingsSections{RemoteAssistance: &contracts.RemoteAssistanceSettings{
		Manage: ptr(true), Unsolicited: ptr(true), Solicited: ptr(true), Level: ptr("full")}}, nil)
	sb.assistSite()
	u := sb.startAssist("")
	u.shows("Waiting for a helper")
	answers, _ := sb.openAsync(sb.grantFor(contracts.SessionAssist, func(g *contracts.SessionGrant) { g.Operator = "helen" }))
	u.shows("helen offers to help you with full control")
	u.typeKeys(string([]byte{AssistEscape, 'n'}))
	ans := receive(t, answers, "the offer's answer")
	if ans.Accepted || ans.Deny != contracts.DenyConsent || ans.Consent != contracts.ConsentRefused || ans.User != "dave" {
		t.Fatalf("got answer %+v", ans)
	}
}

// TestAssistOff: with solicited assistance off, the command is refused.
func TestAssistOff(t *testing.T) {
	sb := newSessionBench(t, contracts.SettingsSections{RemoteAssistance: &contracts.RemoteAssistanceSettings{
		Manage: ptr(true), OverrideUserSettings: ptr(true), Solicited: ptr(false)}}, nil)
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer pts.Close()
	err = Assist(context.Background(), AssistOptions{StateDir: sb.dir, User: "dave", In: pts, Out: pts})
	if err == nil || !strings.Contains(err.Error(), "asking for assistance is off on this client") {
		t.Fatalf("got %v", err)
	}
}

// TestAssistOfferAfterTheSiteGaveUp: the grant says how long the broker
// waits for the answer (AnswerWithin); the offer's prompt ends in time for
// the answer to reach it, and a user who accepts later starts nothing and
// is not told that a helper is connected. The prompt lasted the local 30 s
// while the broker waited 15: a user who accepted after 20 s saw a helper
// "connected" to the terminal whom the site had turned away.
func TestAssistOfferAfterTheSiteGaveUp(t *testing.T) {
	sb := newSessionBench(t, contracts.SettingsSections{}, func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	if _, err := sb.a.SetUserSettings([]string{"unsolicited=true", "level=full"}); err != nil {
		t.Fatal(err)
	}
	sb.assistSite()
	u := sb.startAssist("")
	u.shows("Waiting for a helper")
	const within = 7 * time.Second // the prompt may last 2 s of it
	g := sb.grantFor(contracts.SessionAssist, func(g *contracts.SessionGrant) {
		g.Operator, g.Consent, g.AnswerWithin = "helen", true, contracts.Duration(within)
	})
	answers, _ := sb.openAsync(g)
	u.shows("helen offers to help you with full control")
	if p := sb.waitPrompt(); p.Deadline.Sub(p.Asked) >= within {
		t.Fatalf("the prompt lasts %s; the broker waits %s for the answer", p.Deadline.Sub(p.Asked), within)
	}
	ans := receive(t, answers, "the offer's answer")
	if ans.Accepted || ans.Deny != contracts.DenyConsent || ans.Consent != contracts.ConsentTimeout {
		t.Fatalf("got answer %+v, want a refusal by timeout", ans)
	}
	// The user accepts now, too late: nothing to accept, nobody connected.
	u.typeKeys(string([]byte{AssistEscape, 'y'}))
	u.typeKeys("echo after-$((2+2))\n")
	u.shows("after-4")
	if strings.Contains(u.text(), "is connected to this terminal") {
		t.Fatalf("the terminal shows a helper connected:\n%s", u.text())
	}
	if ss := sb.a.Sessions(); len(ss) != 0 {
		t.Fatalf("sessions after a late acceptance: %+v", ss)
	}
}
