//go:build unix

package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/contracts"
)

// promptPolicy asks the user, with a prompt timeout.
func promptPolicy(timeout time.Duration, allowNoUser bool) contracts.SettingsSections {
	return remoteTools("full", func(rt *contracts.RemoteToolsSettings) {
		rt.PromptUser, rt.AllowWhenNoUser = ptr(true), ptr(allowNoUser)
		rt.PromptTimeout = ptr(contracts.Duration(timeout))
	})
}

// openAsync sends a grant and delivers its answer on the channel.
func (sb *sessionBench) openAsync(g contracts.SessionGrant) (<-chan contracts.SessionGrantAnswer, *fakeBroker) {
	fb := sb.broker(g.Session)
	data := signGrant(sb.t, sb.siteKP, g)
	ch := make(chan contracts.SessionGrantAnswer, 1)
	go func() { ch <- sb.ask(data, 20*time.Second) }()
	return ch, fb
}

// waitPrompt waits for one consent prompt, as "steward-agent consent" sees it.
func (sb *sessionBench) waitPrompt() control.ConsentPrompt {
	sb.t.Helper()
	var list control.ConsentList
	waitFor(sb.t, "a consent prompt", func() bool {
		if err := control.Call(context.Background(), sb.a.SocketPath(), control.VerbConsent, nil, &list); err != nil {
			sb.t.Fatal(err)
		}
		return len(list.Prompts) > 0
	})
	if len(list.Prompts) != 1 || list.Type != control.TypeConsentList {
		sb.t.Fatalf("got prompts %+v, want one", list)
	}
	return list.Prompts[0]
}

func (sb *sessionBench) answer(id, verdict, user string) (control.ConsentAnswer, error) {
	var ans control.ConsentAnswer
	err := control.Call(context.Background(), sb.a.SocketPath(), control.VerbConsentAnswer, []string{id, verdict, user}, &ans)
	return ans, err
}

func TestConsentGiven(t *testing.T) {
	sb := newSessionBench(t, promptPolicy(time.Minute, false), func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	g := sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Command = []string{"echo", "consented"} })
	answers, fb := sb.openAsync(g)
	p := sb.waitPrompt()
	if p.ID != g.ID || p.Session != g.Session || p.Operator != "alice" || p.Kind != "shell" || p.Access != "full" ||
		p.Deadline.Sub(p.Asked) != time.Minute || strings.Join(p.Command, " ") != "echo consented" {
		t.Fatalf("got prompt %+v", p)
	}
	if _, err := sb.answer("nope", "accept", "dave"); err == nil || !strings.Contains(err.Error(), `no consent prompt "nope"`) {
		t.Fatalf("answer to an unknown prompt: got %v", err)
	}
	ca, err := sb.answer("-", "accept", "dave")
	if err != nil || !ca.Accepted || ca.User != "dave" || ca.Prompt.ID != g.ID {
		t.Fatalf("got %+v, %v", ca, err)
	}
	ans := <-answers
	if !ans.Accepted || ans.Consent != contracts.ConsentGiven || ans.User != "dave" || ans.Access != contracts.AccessFull {
		t.Fatalf("got answer %+v", ans)
	}
	fb.output("consented")
	fb.ended()
	if _, err := sb.answer("-", "accept", "dave"); err == nil || !strings.Contains(err.Error(), "no consent prompt is waiting") {
		t.Fatalf("second answer: got %v", err)
	}
}

func TestConsentRefused(t *testing.T) {
	sb := newSessionBench(t, promptPolicy(time.Minute, true), func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	g := sb.grantFor(contracts.SessionShell, nil)
	answers, _ := sb.openAsync(g)
	p := sb.waitPrompt()
	if _, err := sb.answer(p.Session[:8], "deny", "dave"); err != nil {
		t.Fatal(err)
	}
	ans := <-answers
	if ans.Accepted || ans.Deny != contracts.DenyConsent || ans.Consent != contracts.ConsentRefused || ans.User != "dave" ||
		ans.Reason != "the user dave refused the session" {
		t.Fatalf("got answer %+v", ans)
	}
	if len(sb.a.Sessions()) != 0 || len(sb.a.ConsentPrompts()) != 0 {
		t.Fatal("a session or a prompt is left")
	}
}

func TestConsentTimeout(t *testing.T) {
	sb := newSessionBench(t, promptPolicy(time.Second, true), func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	answers, _ := sb.openAsync(sb.grantFor(contracts.SessionShell, nil))
	ans := receive(t, answers, "the grant's answer")
	if ans.Accepted || ans.Deny != contracts.DenyConsent || ans.Consent != contracts.ConsentTimeout || ans.Reason != "nobody answered the consent prompt within 1s" {
		t.Fatalf("got answer %+v", ans)
	}
	if len(sb.a.ConsentPrompts()) != 0 {
		t.Fatal("the prompt is left after its timeout")
	}
}

// TestConsentAskedByTheGrant: the local policy does not prompt, but the
// site's grant asks for consent.
func TestConsentAskedByTheGrant(t *testing.T) {
	sb := newSessionBench(t, remoteTools("full", nil), func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	answers, fb := sb.openAsync(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Consent, g.Command = true, []string{"true"} }))
	p := sb.waitPrompt()
	if p.Deadline.Sub(p.Asked) != DefaultPromptTimeout {
		t.Fatalf("got a prompt of %s, want the default %s", p.Deadline.Sub(p.Asked), DefaultPromptTimeout)
	}
	if _, err := sb.answer(p.ID, "accept", "erin"); err != nil {
		t.Fatal(err)
	}
	if ans := <-answers; !ans.Accepted || ans.Consent != contracts.ConsentGiven || ans.User != "erin" {
		t.Fatalf("got answer %+v", ans)
	}
	fb.ended()
}

func TestConsentNoUser(t *testing.T) {
	sb := newSessionBench(t, promptPolicy(time.Minute, true), nil) // nobody logged on
	ans, fb := sb.open(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Command = []string{"true"} }))
	if !ans.Accepted || ans.Consent != contracts.ConsentNoUser {
		t.Fatalf("allowWhenNoUser on: got %+v", ans)
	}
	fb.ended()
	sb.setPolicy(promptPolicy(time.Minute, false))
	ans, _ = sb.open(sb.grantFor(contracts.SessionShell, nil))
	if ans.Accepted || ans.Deny != contracts.DenyConsent || ans.Reason != "nobody is logged on to give consent and allowWhenNoUser is off" {
		t.Fatalf("allowWhenNoUser off: got %+v", ans)
	}
}

// TestConsentSeveralPrompts: without an ID, an answer needs exactly one
// prompt waiting.
func TestConsentSeveralPrompts(t *testing.T) {
	sb := newSessionBench(t, promptPolicy(time.Minute, false), func(c *Config) { c.LoggedOnUsers = func() []string { return []string{"dave"} } })
	first, fb1 := sb.openAsync(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Command = []string{"true"} }))
	second, _ := sb.openAsync(sb.grantFor(contracts.SessionShell, func(g *contracts.SessionGrant) { g.Operator = "bob" }))
	waitFor(t, "two prompts", func() bool { return len(sb.a.ConsentPrompts()) == 2 })
	if _, err := sb.answer("-", "accept", "dave"); err == nil || !strings.Contains(err.Error(), "2 consent prompts are waiting") {
		t.Fatalf("got %v, want an error naming 2 prompts", err)
	}
	if _, err := sb.answer("-", "accept", "two words"); err == nil {
		t.Fatal("a user with a space was taken")
	}
	ps := sb.a.ConsentPrompts()
	for _, p := range ps {
		verdict := "accept"
		if p.Operator == "bob" {
			verdict = "deny"
		}
		if _, err := sb.answer(p.ID, verdict, "dave"); err != nil {
			t.Fatal(err)
		}
	}
	if a := <-first; !a.Accepted {
		t.Fatalf("alice: got %+v", a)
	}
	if a := <-second; a.Accepted || a.Consent != contracts.ConsentRefused {
		t.Fatalf("bob: got %+v", a)
	}
	fb1.ended()
}
