package sessions_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// TestOfferWaitsForTheUser: an offer of assistance always asks the user,
// whether the site manages Remote Assistance or not (here not: the
// default). The broker waits for the prompt and tells the agent how long
// (the grant's AnswerWithin); a prompt nobody answers is the user's
// refusal, audited as such; the CLI says how long the user has. The broker
// waited 15 s only: a user who accepted after 16 s had the helper told
// "client a2 did not answer within 15s", audited as offline, and saw a
// helper connected whom the site had turned away.
func TestOfferWaitsForTheUser(t *testing.T) {
	l := startLab(t)
	late, silent, asked := l.agent("a2", true), l.agent("a3", true), l.agent("a4", true)
	identity, alice := l.operator("alice", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName})
	const prompt = 5 * time.Second
	l.setRemoteTools(contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr(contracts.AccessFull),
		PromptTimeout: ptr(contracts.Duration(prompt)), PermittedViewers: ptr([]string{"alice"})}, late, silent, asked)
	const agentAnswer = 15 * time.Second // what the broker gives an agent besides the prompt

	type result struct {
		s       *client.Session
		err     error
		elapsed time.Duration
	}
	offer := func(ref, id string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			s, err := alice.AssistOffer(ctx, contracts.SessionOpenRequest{Session: id, Ref: ref, Cols: 80, Rows: 24})
			ch <- result{s, err, time.Since(start)}
		}()
		return ch
	}
	checkGrant := func(t *testing.T, g grant) {
		t.Helper()
		if g.Kind != contracts.SessionAssist || !g.Consent || time.Duration(g.AnswerWithin) != agentAnswer+prompt {
			t.Errorf("grant: kind %s, consent %v, answer within %s; want an assist grant asking the user, answered within %s",
				g.Kind, g.Consent, time.Duration(g.AnswerWithin), agentAnswer+prompt)
		}
	}

	t.Run("accepted after the broker's own 15s", func(t *testing.T) {
		t.Parallel()
		id := uuid.NewString()
		res := offer(late.name, id)
		g := late.nextGrant(t)
		checkGrant(t, g)
		time.Sleep(agentAnswer + time.Second) // past the 15 s the broker waited, within the 20 s it waits now
		g.answer(t, contracts.SessionGrantAnswer{Accepted: true, Access: contracts.AccessFull, Consent: contracts.ConsentGiven, User: "dave"})
		r := <-res
		if r.err != nil {
			t.Fatalf("an offer the user accepted after %s: %v", agentAnswer+time.Second, r.err)
		}
		defer r.s.End()
		if r.s.Info.ID != id || r.s.Info.Consent != contracts.ConsentGiven || r.s.Info.State != contracts.SessionActive {
			t.Errorf("session: %+v", r.s.Info)
		}
		if m := l.audit(t, contracts.StatusSessionConsent, id); m.Properties["consent"] != contracts.ConsentGiven || m.Properties["user"] != "dave" {
			t.Errorf("consent audit: %+v", m.Properties)
		}
		l.audit(t, contracts.StatusSessionStarted, id)
	})

	t.Run("nobody answers", func(t *testing.T) {
		t.Parallel()
		id := uuid.NewString()
		res := offer(silent.name, id)
		checkGrant(t, silent.nextGrant(t)) // and no answer
		r := <-res
		if contracts.CodeOf(r.err) != contracts.CodeConsentRefused || !strings.Contains(r.err.Error(), "the user of a3 did not answer within 5s") {
			t.Fatalf("unanswered offer: got %v (code %v), want consent_refused: the user did not answer", r.err, contracts.CodeOf(r.err))
		}
		if r.elapsed < agentAnswer+prompt {
			t.Errorf("the broker gave up after %s, before the prompt (%s) and the agent's time (%s) were over", r.elapsed, prompt, agentAnswer)
		}
		d := l.audit(t, contracts.StatusSessionDenied, id)
		if d.Properties["reason"] != contracts.DenyConsent || !strings.Contains(d.Properties["detail"], "did not answer") {
			t.Errorf("denied audit: %+v, want reason consent", d.Properties)
		}
	})

	t.Run("the CLI says how long the user has", func(t *testing.T) {
		t.Parallel()
		run := l.steward(identity, "assist", "offer", asked.name)
		g := asked.nextGrant(t)
		checkGrant(t, g)
		// The CLI said it before the grant left the broker.
		if got, want := run.stderr.String(), "waiting for the user of a4 to answer (up to 5s)…\n"; !strings.Contains(got, want) {
			t.Errorf("stderr while the user decides: %q, want %q", got, want)
		}
		g.answer(t, contracts.SessionGrantAnswer{Deny: contracts.DenyConsent, Consent: contracts.ConsentRefused, User: "dave", Reason: "the user dave refused the session"})
		<-run.done
		var ce *contracts.Error
		if !errors.As(run.err, &ce) || ce.Code != contracts.CodeConsentRefused {
			t.Errorf("refused offer: got %v, want consent_refused", run.err)
		}
	})
}
