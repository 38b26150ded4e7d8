package sessions

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/discovery"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/policy"
	"github.com/stewardhq/steward/services/rbac"
)

// BusFacts asks discovery and the policy service on their svc subjects.
type BusFacts struct {
	NC   *nats.Conn
	Site string
}

// Client implements Facts.
func (b BusFacts) Client(ctx context.Context, ref string) (contracts.ClientFactsResponse, error) {
	return discovery.ClientFacts(ctx, b.NC, b.Site, ref)
}

// Policy implements Facts.
func (b BusFacts) Policy(ctx context.Context, clientID string) (contracts.SettingsSections, error) {
	var resp contracts.EffectivePolicyResponse
	subj, err := contracts.Svc(b.Site, policy.ServiceName, contracts.SvcEffectivePolicy)
	if err != nil {
		return contracts.SettingsSections{}, err
	}
	err = rpc.Call(ctx, b.NC, subj, contracts.EffectivePolicyRequest{Header: contracts.NewHeader(contracts.TypeEffectivePolicyRequest), ClientID: clientID}, &resp)
	return resp.Settings, err
}

// denial is a refused session: the reason (a contracts.Deny* value) for the
// audit, and the error the operator gets.
type denial struct {
	reason string
	err    *contracts.Error
}

func (d *denial) Error() string { return d.err.Error() }

// Unwrap gives the operator's error (its code) to errors.As and CodeOf.
func (d *denial) Unwrap() error { return d.err }

func deny(reason string, code contracts.Code, format string, args ...any) *denial {
	return &denial{reason: reason, err: contracts.Errorf(code, format, args...)}
}

// decision is an authorised request: what the grant will say.
type decision struct {
	client        contracts.Client
	collections   []string
	access        string // full or view
	consent       bool
	promptTimeout time.Duration
	viewerHow     string // why the operator is a permitted viewer
	viewerVia     string // what admitted it, for the agent (contracts.SessionGrant.Via)
}

func (d decision) memberOf(id string) bool { return slices.Contains(d.collections, id) }

// want is what an operator asks for.
type want struct {
	operator string
	kind     string // shell, tunnel, assist, observe
	port     int
	join     bool // joining a running session (needs Session:Join)
	assist   string
}

// authorize checks the three conditions for w on the client ref names. A
// client the operator may not see is not found, like a missing one; every
// other refusal is a *denial. Unknown failures (a service down) come back
// as plain errors.
func (s *Service) authorize(ctx context.Context, w want, ref string) (decision, error) {
	facts, err := s.cfg.Facts.Client(ctx, ref)
	if err != nil {
		return decision{}, err
	}
	d := decision{client: facts.Client, collections: facts.Collections}
	m, err := s.authz()
	if err != nil {
		return d, err
	}
	if m != nil {
		if !m.ClientVisible(w.operator, d.memberOf) {
			return d, contracts.Errorf(contracts.CodeNotFound, "no client named or with id %q", ref)
		}
		if w.join {
			if err := m.Allowed(w.operator, rbac.SessionJoin, rbac.OnClient(d.client.Name, d.memberOf)); err != nil {
				return d, deny(contracts.DenyRole, contracts.CodePermissionDenied, "%v", err)
			}
		}
		if err := m.Allowed(w.operator, rbac.CollectionRemoteControl, rbac.OnClient(d.client.Name, d.memberOf)); err != nil {
			return d, deny(contracts.DenyRole, contracts.CodePermissionDenied,
				"%v: the role needs RemoteControl on a collection that holds %s", err, d.client.Name)
		}
	}
	if d.client.Status != contracts.ClientApproved {
		return d, deny(contracts.DenyPolicy, contracts.CodePolicyDenied, "client %s is %s, not approved", d.client.Name, d.client.Status)
	}
	settings, err := s.cfg.Facts.Policy(ctx, d.client.ID)
	if err != nil {
		return d, err
	}
	if err := checkPolicy(&d, w, settings); err != nil {
		return d, err
	}
	if m != nil {
		var viewers []string
		if rt := settings.RemoteTools; rt != nil && rt.PermittedViewers != nil {
			viewers = *rt.PermittedViewers
		}
		ok, how, via := rbac.PermittedVia(m, w.operator, viewers, rbac.ClientPrincipals{Admins: facts.Admins})
		if !ok {
			return d, deny(contracts.DenyViewer, contracts.CodeNotPermittedViewer, "%s", how)
		}
		d.viewerHow, d.viewerVia = how, via
	}
	if !d.client.Online {
		return d, deny(contracts.DenyOffline, contracts.CodeClientOffline, "client %s is offline (last seen %s)", d.client.Name, d.client.LastSeen.Format(time.RFC3339))
	}
	return d, nil
}

// checkPolicy is the second condition: the client's resultant settings.
func checkPolicy(d *decision, w want, set contracts.SettingsSections) error {
	rt := set.RemoteTools
	if rt == nil {
		rt = &contracts.RemoteToolsSettings{}
	}
	name := d.client.Name
	d.promptTimeout = DefaultPromptTimeout
	if rt.PromptTimeout != nil && *rt.PromptTimeout > 0 { // as the agent reads it
		d.promptTimeout = time.Duration(*rt.PromptTimeout)
	}
	if w.kind == contracts.SessionAssist {
		return checkAssist(d, w, set.RemoteAssistance)
	}
	if rt.Enabled == nil || !*rt.Enabled {
		return deny(contracts.DenyPolicy, contracts.CodePolicyDenied, "remote tools are not enabled on %s (remoteTools.enabled in its client settings)", name)
	}
	level := contracts.AccessNone
	if rt.AccessLevel != nil {
		level = *rt.AccessLevel
	}
	need := contracts.NeedsAccess(w.kind)
	if !contracts.AccessAllows(level, need) {
		return deny(contracts.DenyPolicy, contracts.CodePolicyDenied, "the remote tools access level of %s is %s; a %s session needs %s", name, level, w.kind, need)
	}
	if w.kind == contracts.SessionTunnel {
		var ports []int
		if rt.TunnelPorts != nil {
			ports = *rt.TunnelPorts
		}
		if !slices.Contains(ports, w.port) {
			return deny(contracts.DenyPolicy, contracts.CodePolicyDenied, "port %d is not in the tunnel ports of %s (%s)", w.port, name, portList(ports))
		}
	}
	d.access = need
	if w.kind == contracts.SessionShell || w.kind == contracts.SessionTunnel {
		d.access = contracts.AccessFull
	}
	d.consent = rt.PromptUser != nil && *rt.PromptUser
	return nil
}

// checkAssist is the policy condition of Remote Assistance: the level of
// the site's managed values; when the site does not manage Remote
// Assistance, the agent decides from the user's own values. Either way an
// offer asks the user (the agent always prompts for one) and a request is
// the user's own: the broker waits for the prompt of an offer.
func checkAssist(d *decision, w want, ra *contracts.RemoteAssistanceSettings) error {
	d.access = contracts.AccessFull
	d.consent = w.assist == ""
	if ra == nil || ra.Manage == nil || !*ra.Manage {
		return nil
	}
	name := d.client.Name
	if ra.Level != nil {
		if *ra.Level == contracts.AccessNone {
			return deny(contracts.DenyPolicy, contracts.CodePolicyDenied, "the Remote Assistance level of %s is none", name)
		}
		d.access = *ra.Level
	}
	switch {
	case w.assist == "" && (ra.Unsolicited == nil || !*ra.Unsolicited):
		return deny(contracts.DenyPolicy, contracts.CodePolicyDenied, "unsolicited assistance (offers) is off on %s", name)
	case w.assist != "" && (ra.Solicited == nil || !*ra.Solicited):
		return deny(contracts.DenyPolicy, contracts.CodePolicyDenied, "solicited assistance is off on %s", name)
	}
	return nil
}

func portList(ports []int) string {
	if len(ports) == 0 {
		return "none configured"
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return "allowed: " + strings.Join(s, ", ")
}
