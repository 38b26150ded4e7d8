package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// Consent: a session (or a join) needs the logged-on user's agreement when
// the grant says so (the site's policy) or the agent's own policy does
// (remoteTools.promptUser). Nobody logged on: allowWhenNoUser decides.
// Somebody logged on: a prompt waits, at most the local promptTimeout, for
// an answer through the control socket ("steward-agent consent --accept",
// or the running "steward-agent assist" for an offer of assistance). No
// answer in time is a refusal.

// prompt is a consent prompt waiting for its answer.
type prompt struct {
	info    control.ConsentPrompt
	answer  chan consentReply // buffered 1; written once, under sessionManager.mu
	decided bool              // answered or given up, under sessionManager.mu
	shared  *sharedTerm       // an assist terminal that shows the prompt too
}

type consentReply struct {
	accepted bool
	user     string
}

// consent decides whether grant g needs the user's agreement and asks for
// it. It returns the contracts.Consent* outcome, who answered, whether a
// prompt was shown, and a denial when the session must not go ahead.
func (a *Agent) consent(ctx context.Context, g *contracts.SessionGrant, access string, joined *session, shared *sharedTerm, pol state.PolicyState) (string, string, bool, *denial) {
	rules := localConsentRules(pol)
	if g.Kind == contracts.SessionAssist && !g.Join && g.Assist != "" {
		// The user asked for this help: the request is the consent.
		return contracts.ConsentGiven, shared.user, false, nil
	}
	offer := g.Kind == contracts.SessionAssist && !g.Join && g.Assist == ""
	if joined != nil && joined.info.Kind == contracts.SessionAssist {
		shared = joined.shared
	}
	if !offer {
		if !g.Consent && !rules.prompt {
			return contracts.ConsentNotRequired, "", false, nil
		}
		users, err := a.loggedOnUsers(ctx)
		if err != nil {
			return "", "", false, refuse(contracts.DenyConsent, "cannot tell whether anybody is logged on to give consent: %v", err)
		}
		if len(users) == 0 {
			if rules.allowNoUser {
				return contracts.ConsentNoUser, "", false, nil
			}
			return "", "", false, refuse(contracts.DenyConsent, "nobody is logged on to give consent and allowWhenNoUser is off")
		}
	}
	now := time.Now().UTC()
	kind := g.Kind
	info := control.ConsentPrompt{
		ID: g.ID, Session: g.Session, Operator: g.Operator, Kind: kind, Access: access, Port: g.Port,
		Command: slices.Clone(g.Command), Join: g.Join, Offer: offer, Asked: now, Deadline: now.Add(rules.timeout),
	}
	reply, outcome := a.ask(ctx, info, shared, rules.timeout)
	switch outcome {
	case contracts.ConsentGiven:
		return outcome, reply.user, true, nil
	case contracts.ConsentRefused:
		return outcome, reply.user, true, refuse(contracts.DenyConsent, "the user %s refused the session", reply.user)
	case contracts.ConsentTimeout:
		return outcome, "", true, refuse(contracts.DenyConsent, "nobody answered the consent prompt within %s", contracts.HumanDuration(rules.timeout))
	}
	return contracts.ConsentRefused, "", true, refuse(contracts.DenyConsent, "the agent stopped while waiting for the user's consent")
}

// ask shows a prompt and waits for its answer, at most timeout. The
// outcome is ConsentGiven, ConsentRefused, ConsentTimeout, or "" when ctx
// ended first.
func (a *Agent) ask(ctx context.Context, info control.ConsentPrompt, shared *sharedTerm, timeout time.Duration) (consentReply, string) {
	p := &prompt{info: info, answer: make(chan consentReply, 1), shared: shared}
	a.sess.mu.Lock()
	a.sess.prompts[info.ID] = p
	a.sess.mu.Unlock()
	a.log.Info("waiting for the user's consent", "prompt", info.ID, "session", info.Session, "operator", info.Operator,
		"kind", info.Kind, "access", info.Access, "timeout", timeout)
	if shared != nil {
		shared.showPrompt(info)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	outcome := ""
	var reply consentReply
	select {
	case reply = <-p.answer:
	case <-timer.C:
		outcome = contracts.ConsentTimeout
	case <-ctx.Done():
	}
	a.sess.mu.Lock()
	if outcome == contracts.ConsentTimeout || ctx.Err() != nil {
		if p.decided && len(p.answer) == 1 { // an answer came in as time ran out: it counts
			reply, outcome = <-p.answer, ""
		}
		p.decided = true
	}
	delete(a.sess.prompts, info.ID)
	a.sess.mu.Unlock()
	if shared != nil {
		shared.clearPrompt(info.ID)
	}
	if outcome == "" && reply.user != "" {
		outcome = contracts.ConsentRefused
		if reply.accepted {
			outcome = contracts.ConsentGiven
		}
	}
	a.log.Info("consent prompt answered", "prompt", info.ID, "session", info.Session, "outcome", outcome, "user", reply.user)
	return reply, outcome
}

// ConsentPrompts lists the prompts waiting for an answer, oldest first.
func (a *Agent) ConsentPrompts() []control.ConsentPrompt {
	a.sess.mu.Lock()
	out := make([]control.ConsentPrompt, 0, len(a.sess.prompts))
	for _, p := range a.sess.prompts {
		if !p.decided {
			out = append(out, p.info)
		}
	}
	a.sess.mu.Unlock()
	slices.SortFunc(out, func(x, y control.ConsentPrompt) int {
		if c := x.Asked.Compare(y.Asked); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// AnswerConsent answers the prompt id (its ID or its session's, or a
// unique prefix of either; "" for the only prompt waiting) on behalf of
// user.
func (a *Agent) AnswerConsent(id string, accept bool, user string) (control.ConsentAnswer, error) {
	if err := validUser(user); err != nil {
		return control.ConsentAnswer{}, err
	}
	a.sess.mu.Lock()
	defer a.sess.mu.Unlock()
	var found []*prompt
	for pid, p := range a.sess.prompts {
		if p.decided {
			continue
		}
		switch {
		case id == "", pid == id, p.info.Session == id:
			found = append(found, p)
		case strings.HasPrefix(pid, id), strings.HasPrefix(p.info.Session, id):
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0 && id == "":
		return control.ConsentAnswer{}, errors.New("no consent prompt is waiting")
	case len(found) == 0:
		return control.ConsentAnswer{}, fmt.Errorf("no consent prompt %q is waiting (it may have been answered or timed out)", id)
	case len(found) > 1 && id == "":
		return control.ConsentAnswer{}, fmt.Errorf("%d consent prompts are waiting: name one by its ID (steward-agent consent lists them)", len(found))
	case len(found) > 1:
		return control.ConsentAnswer{}, fmt.Errorf("%d consent prompts match %q: give more of the ID", len(found), id)
	}
	p := found[0]
	p.decided = true
	p.answer <- consentReply{accepted: accept, user: user}
	return control.ConsentAnswer{Type: control.TypeConsentAnswer, Prompt: p.info, Accepted: accept, User: user}, nil
}

// validUser checks the name of who answers a prompt: 1 to 256 printable
// characters without spaces.
func validUser(u string) error {
	if u == "" || len(u) > 256 {
		return errors.New("name the user who answers (1 to 256 characters)")
	}
	for _, r := range u {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("user %q: printable characters without spaces only", u)
		}
	}
	return nil
}
