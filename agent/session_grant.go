package agent

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// maxGrantBytes bounds a signed grant as received.
const maxGrantBytes = 64 << 10

// DefaultPromptTimeout is how long the agent waits for the user's answer
// to a consent prompt when the policy sets no remoteTools.promptTimeout.
const DefaultPromptTimeout = 30 * time.Second

// grantMemory is how long past its expiry a grant's ID is remembered: a
// grant is refused as expired from GrantSkew after its expiry, the margin
// covers the clock moving back a little.
const grantMemory = contracts.GrantSkew + time.Minute

// denial is a grant refused: a contracts.Deny* value and a sentence that
// says precisely why.
type denial struct {
	deny   string
	reason string
}

func (d *denial) Error() string { return d.deny + ": " + d.reason }

func refuse(deny, format string, args ...any) *denial {
	return &denial{deny: deny, reason: fmt.Sprintf(format, args...)}
}

// VerifyGrant checks data, a contracts.SignedGrant as received, for the
// client id at now, as VerifyPolicy checks a policy: the size, the key
// (the site key pinned at enrollment), the signature over exactly the
// signed bytes, the grant's own fields, its client and site, and its times
// (issued at most GrantSkew ahead, expired at most GrantSkew ago, valid for
// at most GrantValidity). Replays are checked when the grant is taken
// (the state remembers the IDs). The error's text is the reason to give.
func VerifyGrant(data []byte, id state.Identity, now time.Time) (*contracts.SessionGrant, error) {
	g, d := verifyGrant(data, id, now)
	if d != nil {
		return nil, fmt.Errorf("%s", d.reason)
	}
	return g, nil
}

func verifyGrant(data []byte, id state.Identity, now time.Time) (*contracts.SessionGrant, *denial) {
	bad := func(format string, args ...any) (*contracts.SessionGrant, *denial) {
		return nil, refuse(contracts.DenyClient, format, args...)
	}
	if len(data) > maxGrantBytes {
		return bad("grant of %d bytes: over the %d-byte limit", len(data), maxGrantBytes)
	}
	var sg contracts.SignedGrant
	if err := json.Unmarshal(data, &sg); err != nil {
		return bad("not a signed grant: %v", err)
	}
	if sg.Type != contracts.TypeSignedGrant {
		return bad("message type %q, want %q", sg.Type, contracts.TypeSignedGrant)
	}
	if len(sg.Grant) == 0 || len(sg.Signature) != ed25519.SignatureSize {
		return bad("unsigned grant: no grant, or a signature of %d bytes (want %d)", len(sg.Signature), ed25519.SignatureSize)
	}
	site, err := nkeys.FromPublicKey(id.SiteKey)
	if err != nil {
		return bad("the pinned site key %q is unusable: %v", id.SiteKey, err)
	}
	if sg.Key != id.SiteKey {
		return bad("grant signed by key %q, not the pinned key of site %s (%s)", truncate(sg.Key, 60), id.Site, id.SiteKey)
	}
	if err := site.Verify(contracts.GrantSigningInput(sg.Grant), sg.Signature); err != nil {
		return bad("grant signature does not verify with the pinned site key %s", id.SiteKey)
	}
	var g contracts.SessionGrant
	if err := json.Unmarshal(sg.Grant, &g); err != nil {
		return bad("signed grant body unreadable: %v", err)
	}
	switch {
	case g.Type != contracts.TypeSessionGrant:
		return bad("signed body of type %q, want %q", g.Type, contracts.TypeSessionGrant)
	case g.ID == "":
		return bad("grant without an ID")
	}
	if err := g.Validate(); err != nil {
		return bad("invalid grant: %v", err)
	}
	switch {
	case g.ClientID != id.ClientID:
		return bad("grant for another client (%s); this is %s", g.ClientID, id.ClientID)
	case g.Site != id.Site:
		return bad("grant for site %q; this agent belongs to %q", g.Site, id.Site)
	case g.Expires.Before(g.Issued):
		return bad("grant expires (%s) before it is issued (%s)", g.Expires.UTC().Format(time.RFC3339), g.Issued.UTC().Format(time.RFC3339))
	case g.Expires.Sub(g.Issued) > contracts.GrantValidity:
		return bad("grant valid for %s, longer than the %s a grant may be", contracts.HumanDuration(g.Expires.Sub(g.Issued)), contracts.HumanDuration(contracts.GrantValidity))
	case now.After(g.Expires.Add(contracts.GrantSkew)):
		return bad("grant expired %s ago", contracts.HumanDuration(now.Sub(g.Expires)))
	case now.Before(g.Issued.Add(-contracts.GrantSkew)):
		return bad("grant issued %s in the future by this machine's clock", contracts.HumanDuration(g.Issued.Sub(now)))
	case g.Kind == contracts.SessionObserve && !g.Join:
		return bad("an observe grant may only join a running session")
	}
	return &g, nil
}

// consentRules are the local remote tools settings about consent and the
// indicator.
type consentRules struct {
	prompt      bool          // ask the logged-on user
	timeout     time.Duration // how long to wait for the answer
	allowNoUser bool          // nobody logged on: go ahead without consent
	indicator   bool          // show the user that a session runs
}

func localConsentRules(st state.PolicyState) consentRules {
	is := func(b *bool) bool { return b != nil && *b }
	r := consentRules{timeout: DefaultPromptTimeout}
	if rt := st.Settings.RemoteTools; rt != nil {
		r.prompt, r.allowNoUser, r.indicator = is(rt.PromptUser), is(rt.AllowWhenNoUser), is(rt.ShowIndicator)
		if rt.PromptTimeout != nil && *rt.PromptTimeout > 0 {
			r.timeout = time.Duration(*rt.PromptTimeout)
		}
	}
	return r
}

// grantAccess re-checks grant g against the agent's own policy st for a
// session of kind (the running session's kind for a join: g.Kind may then
// be observe) and returns the access level the agent enforces: the lesser
// of the grant's and the local level, view for an observer. Shell and
// tunnel sessions need remote tools enabled and full access (observers of
// a shell, view); a tunnel needs its port in the local tunnel ports; assistance
// needs the effective Remote Assistance level other than none (whether
// solicited or unsolicited assistance is on is checked by the assistance
// code, which knows the shared terminal).
func grantAccess(g *contracts.SessionGrant, kind string, st state.PolicyState) (string, *denial) {
	var level string
	if kind == contracts.SessionAssist {
		eff, _ := effective(st)
		level = *eff.Level
		if !contracts.AccessAllows(level, contracts.AccessView) {
			return "", refuse(contracts.DenyPolicy, "the Remote Assistance level of this client is %s", level)
		}
	} else {
		rt := st.Settings.RemoteTools
		if rt == nil || rt.Enabled == nil || !*rt.Enabled {
			return "", refuse(contracts.DenyPolicy, "remote tools are not enabled by this client's policy (remoteTools.enabled)")
		}
		level = contracts.AccessNone
		if rt.AccessLevel != nil {
			level = *rt.AccessLevel
		}
		if !contracts.AccessAllows(level, contracts.AccessView) {
			return "", refuse(contracts.DenyPolicy, "the remote tools access level of this client is %s", level)
		}
	}
	access := contracts.MinAccess(g.Access, level)
	if g.Kind == contracts.SessionObserve {
		access = contracts.MinAccess(access, contracts.AccessView)
	}
	if access == contracts.AccessNone {
		return "", refuse(contracts.DenyPolicy, "the grant's %s access and this client's %s level leave no access", g.Access, level)
	}
	switch {
	case g.Join && kind == contracts.SessionTunnel:
		return "", refuse(contracts.DenyPolicy, "a tunnel cannot be joined")
	case g.Join && kind == contracts.SessionAssist && g.Kind != contracts.SessionObserve:
		return "", refuse(contracts.DenyPolicy, "an assistance session is the user's and its helper's: another operator may only observe it")
	}
	if !g.Join && (g.Kind == contracts.SessionShell || g.Kind == contracts.SessionTunnel) && access != contracts.AccessFull {
		// A shell's command line is input, and a tunnel carries it: at
		// view, as the broker decides, neither starts (a shell at view
		// ran the operator's command all the same).
		return "", refuse(contracts.DenyPolicy, "a %s needs full access; the grant gives %s and this client's remote tools access level is %s", g.Kind, g.Access, level)
	}
	if kind == contracts.SessionTunnel && g.Kind == contracts.SessionTunnel && !g.Join {
		if err := tunnelPortAllowed(g.Port, st); err != nil {
			return "", err
		}
	}
	return access, nil
}

// checkVia checks again what admitted the grant's operator, as the broker
// said (g.Via), against this client's own records: a Permitted Viewers
// entry must be in the list of the policy the agent runs (the site's
// record of it may be older: a viewer removed a moment ago), a local
// administrator in the administrators the agent last collected. A grant
// that says nothing (the site does not check viewers) passes.
func (a *Agent) checkVia(g *contracts.SessionGrant, st state.PolicyState) *denial {
	switch {
	case g.Via == "":
		return nil
	case strings.HasPrefix(g.Via, contracts.ViaViewer):
		entry := strings.TrimPrefix(g.Via, contracts.ViaViewer)
		var viewers []string
		if rt := st.Settings.RemoteTools; rt != nil && rt.PermittedViewers != nil {
			viewers = *rt.PermittedViewers
		}
		if !slices.Contains(viewers, entry) {
			return refuse(contracts.DenyViewer, "%s was let in as permitted viewer %q, which this client's policy does not list (its Permitted Viewers: %s)", g.Operator, entry, listOrNone(viewers))
		}
		return nil
	case strings.HasPrefix(g.Via, contracts.ViaAdmin):
		account := strings.TrimPrefix(g.Via, contracts.ViaAdmin)
		last, ok, err := a.store.LastReport()
		if err != nil {
			return refuse(contracts.DenyClient, "the agent cannot read its inventory: %v", err)
		}
		if !ok || !slices.Contains(last.Inventory.Admins, account) {
			return refuse(contracts.DenyViewer, "%s was let in as local administrator %q, who is not one of this client's administrators", g.Operator, account)
		}
		return nil
	}
	return refuse(contracts.DenyViewer, "the grant admits %s by %q, which this agent does not know", g.Operator, g.Via)
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// tunnelPortAllowed checks port against the local tunnel ports.
func tunnelPortAllowed(port int, st state.PolicyState) *denial {
	var ports []int
	if rt := st.Settings.RemoteTools; rt != nil && rt.TunnelPorts != nil {
		ports = *rt.TunnelPorts
	}
	if slices.Contains(ports, port) {
		return nil
	}
	allowed := "none are allowed"
	if len(ports) > 0 {
		s := make([]string, len(ports))
		for i, p := range ports {
			s[i] = strconv.Itoa(p)
		}
		allowed = "allowed: " + strings.Join(s, ", ")
	}
	return refuse(contracts.DenyPolicy, "port %d is not in this client's tunnel ports (%s)", port, allowed)
}
