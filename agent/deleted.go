package agent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// What the site does with a deleted client: the admin service removes the
// key's identity and kicks its connections. The key is then an unknown
// key, and the auth callout admits an unknown key as it admits any key
// that has not enrolled yet: connected, but allowed only to publish
// steward.*.enroll.<key> and to receive on _INBOX.<key>.>. The connection
// is not refused (a refusal is what blocking does), so the agent saw
// "connected" and then a permissions violation for each of its own
// subjects, at every connect, forever.
//
// The agent now asks at every connect whether the connection holds its
// client's grant (probeAdmitted). When it does not, the state is
// StateDeleted with a message that says what to do, logged at Error once,
// and the agent closes the connection and checks again with backoff. With
// an enrollment token (--token or STEWARD_TOKEN) for its own site and site
// key, it enrolls again with the same key: the site treats the deleted key
// as a new one, and the approval must verify against the pinned site key
// before the stored identity is replaced. Without a token nothing local
// changes: a server's word is not enough to discard an identity.

// errNotKnown is operate's result when the server admits the agent's key
// but not as its client (the site deleted the client).
var errNotKnown = errors.New("the site does not know this client")

// probeKind is the down subject the agent subscribes to for a moment to
// ask the server whether it admits the client (probeAdmitted); the site
// sends nothing there.
const probeKind = "probe"

// probeAdmitted says whether nc holds the grant of client id: it
// subscribes to a subject of the client's down space and makes a round
// trip. The server answers a subscription it denies with -ERR before its
// PONG, and nats.go marks the subscription before it sees the PONG, so
// after the flush the subscription says (PermissionErrOnSubscribe). ok is
// false when the round trip did not complete (the connection dropped, ctx
// ended): no answer either way.
func (a *Agent) probeAdmitted(ctx context.Context, nc *nats.Conn, id state.Identity) (admitted, ok bool) {
	subject, err := contracts.AgentDown(id.Site, id.ClientID, probeKind)
	if err != nil {
		return false, false
	}
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return false, false
	}
	defer func() { _ = sub.Unsubscribe() }()
	fctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		a.log.Debug("could not ask the server whether it admits this client", "err", err)
		return false, false
	}
	_, err = sub.NextMsg(time.Millisecond)
	switch {
	case errors.Is(err, nats.ErrPermissionViolation):
		return false, true
	case err == nil, errors.Is(err, nats.ErrTimeout):
		return true, true
	}
	return false, false
}

// stillKnown probes nc after a connect (or a denied subject) and records
// the answer: false when the server does not admit the agent as client id.
// An inconclusive probe counts as known (the next connect asks again).
func (a *Agent) stillKnown(ctx context.Context, nc *nats.Conn, id state.Identity) bool {
	admitted, ok := a.probeAdmitted(ctx, nc, id)
	switch {
	case !ok:
		return true
	case !admitted:
		a.siteForgot(id)
		return false
	}
	var was string
	a.update(func(st *status) { was, st.notKnown = st.notKnown, "" })
	if was != "" {
		a.log.Info("the site knows this client again", "site", id.Site, "client_id", id.ClientID)
	}
	return true
}

// siteForgot records that the site does not know client id, with what to
// do about it; the first time (since the agent started or last knew
// itself known) at Error, later checks at Debug.
func (a *Agent) siteForgot(id state.Identity) {
	_, next := a.reenrollToken(id)
	msg := fmt.Sprintf("this client (%s, %s) is not known to site %s: it was deleted at the site (or the server at %s serves another site); %s",
		a.cfg.Name, id.ClientID, id.Site, a.cfg.Server, next)
	var was string
	a.update(func(st *status) { was, st.notKnown = st.notKnown, msg })
	if was == "" {
		a.log.Error("the site does not know this client: it was deleted", "site", id.Site, "client_id", id.ClientID,
			"public_key", a.pub, "server", a.cfg.Server, "next", next)
		return
	}
	a.log.Debug("the site still does not know this client", "site", id.Site, "client_id", id.ClientID)
}

// reenrollToken says whether the agent has a token to enroll client id
// again with, and what happens next, for the status and the log. Only a
// token of the site and site key the agent already trusts will do: one of
// another site means another site, which a new state dir is for.
func (a *Agent) reenrollToken(id state.Identity) (usable bool, next string) {
	switch t := a.token; {
	case t == nil:
		return false, fmt.Sprintf("to manage this machine again, restart the agent with an enrollment token of site %s "+
			"(--token or STEWARD_TOKEN; \"steward tokens create\" on the site): it enrolls again as a new client and keeps its key and local state; "+
			"checking again about every %s", id.Site, a.cfg.RetryMax)
	case t.Site != id.Site || t.SiteKey != id.SiteKey:
		return false, fmt.Sprintf("the token given is of site %s (site key %s), but this agent belongs to site %s (site key %s) and will not use it; "+
			"give a token of site %s, or, to enroll this machine with the token's site, stop the agent and move %s aside (state.db, agent.nk)",
			t.Site, t.SiteKey, id.Site, id.SiteKey, id.Site, a.cfg.StateDir)
	}
	return true, "enrolling again with the enrollment token given (same key; a new client ID)"
}

// reenroll enrolls the agent again, with its token, after the site forgot
// client old; it returns the new identity once an approval verified
// against the pinned site key is stored (admit keeps what local state is
// still good for the new client).
func (a *Agent) reenroll(ctx context.Context, old state.Identity) (state.Identity, error) {
	a.log.Warn("enrolling again: the site deleted this client; the agent keeps its key, policy settings, content and status messages",
		"site", old.Site, "old_client_id", old.ClientID, "public_key", a.pub, "token_id", a.token.ID)
	a.update(func(st *status) {
		st.phase, st.enrollRefused = StateEnrolling, ""
		st.message = fmt.Sprintf("enrolling again with the token: site %s deleted client %s", old.Site, old.ClientID)
	})
	id, err := a.enroll(ctx)
	if err != nil {
		return state.Identity{}, err
	}
	if id.ClientID != old.ClientID && a.inventoryInterval() >= 0 {
		// The site has no inventory of the new client: a full report
		// first (the next deltas are based on it).
		if _, err := a.ReportInventory(ctx, true); err != nil && ctx.Err() == nil {
			a.log.Warn("inventory report failed", "err", err)
		}
	}
	return id, nil
}

// replaceIdentity prepares the local state for client next, which replaces
// client old (the same key, enrolled again after a deletion); nothing of
// the agent runs meanwhile (operate has returned). Policy revisions are
// the client's: the applied policy stays in force, but its revision is
// forgotten, so that the first fetch says "none" and the site sends the
// new client's policy (its revision 1 would otherwise pass for the old
// client's revision 1), and the old client's unsent policy
// acknowledgements go. The new client's site knows nothing of the content
// this machine holds: every outcome is reported again. The rest of the
// outbox (status messages of this machine) is delivered as the new client.
func (a *Agent) replaceIdentity(old, next state.Identity) error {
	if old.ClientID == next.ClientID {
		return nil
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("enrolled again as client %s, but %s: %w", next.ClientID, what, err)
	}
	var kept state.PolicyState
	_, err := a.store.UpdatePolicy(0, func(p *state.PolicyState) ([]state.Entry, error) {
		p.Revision = 0
		kept = *p
		return nil, nil
	})
	if err != nil {
		return fail("the policy's revision could not be reset", err)
	}
	a.setPolicyStatus(kept)
	pending, err := a.store.Pending(0)
	if err != nil {
		return fail("the outbox could not be read", err)
	}
	var acks []uint64
	for _, e := range pending {
		if e.Kind == contracts.KindPolicyAck {
			acks = append(acks, e.Seq)
		}
	}
	if err := a.store.Remove(acks...); err != nil {
		return fail("the old client's policy acknowledgements could not be removed", err)
	}
	err = a.updateContent(func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
		for k, e := range idx {
			e.Reported = false
			idx[k] = e
		}
		return nil, nil
	})
	if err != nil {
		return fail("the content index could not be kept", err)
	}
	a.log.Info("enrolled again as a new client", "client_id", next.ClientID, "old_client_id", old.ClientID, "site", next.Site)
	return nil
}

// deniedRe finds the subject in a permissions violation.
var deniedRe = regexp.MustCompile(`(?i)(?:publish|subscription) to "([^"]+)"`)

// ownDenied says whether err is a permissions violation for one of the
// enrolled client's own subjects: its up and down spaces and its inbox.
// The site grants them all or none, so one denied means the server does
// not admit the agent as its client.
func (a *Agent) ownDenied(err error) bool {
	id, ok := a.Identity()
	if !ok || !errors.Is(err, nats.ErrPermissionViolation) {
		return false
	}
	m := deniedRe.FindStringSubmatch(err.Error())
	if m == nil {
		return false
	}
	subject := m[1]
	var prefixes []string
	for _, dir := range []string{"up", "down"} {
		if space, err := contracts.AgentSpace(id.Site, id.ClientID, dir); err == nil {
			prefixes = append(prefixes, strings.TrimSuffix(space, ">"))
		}
	}
	if inbox, err := contracts.Inbox(id.ClientID); err == nil {
		prefixes = append(prefixes, inbox+".")
	}
	for _, p := range prefixes {
		if strings.HasPrefix(subject, p) || subject+"." == p {
			return true
		}
	}
	return false
}
