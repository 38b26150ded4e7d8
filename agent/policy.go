package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// DefaultPolicyRefresh is how often the agent fetches its policy when no
// policy says otherwise (besides fetching at every connect and taking
// pushes).
const DefaultPolicyRefresh = time.Hour

// maxClockSkew is how far in the future a policy's issue time may lie by
// this machine's clock.
const maxClockSkew = 5 * time.Minute

// Remote Assistance values of a client nobody configured: users may ask for
// help, helpers may not offer it, and a helper may control.
var raDefaults = contracts.RemoteAssistanceValues{Unsolicited: ptr(false), Solicited: ptr(true), Level: ptr(contracts.AccessFull)}

// raKeys are the Remote Assistance values the site may manage.
var raKeys = []string{"unsolicited", "solicited", "level"}

func ptr[T any](v T) *T { return &v }

// policyRuntime is the agent's policy machinery: one change at a time, the
// status as last computed (Status is called often), the intervals the
// policy sets, and the signals that adjust the running loops.
type policyRuntime struct {
	mu       sync.Mutex // one policy change (apply, reset, user values) at a time
	status   atomic.Pointer[contracts.AgentPolicyStatus]
	rejected atomic.Int64

	heartbeat, inventory, refresh atomic.Int64 // nanoseconds
	heartbeatChanged              chan struct{}
	inventoryChanged              chan struct{}
	refreshChanged                chan struct{}
	wake                          chan struct{} // fetch now: the agent (re)connected
}

func newPolicyRuntime(cfg Config) *policyRuntime {
	p := &policyRuntime{
		heartbeatChanged: make(chan struct{}, 1),
		inventoryChanged: make(chan struct{}, 1),
		refreshChanged:   make(chan struct{}, 1),
		wake:             make(chan struct{}, 1),
	}
	p.heartbeat.Store(int64(cfg.Heartbeat))
	p.inventory.Store(int64(cfg.InventoryInterval))
	p.refresh.Store(int64(cfg.PolicyRefresh))
	return p
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// heartbeatInterval is the heartbeat interval in force.
func (a *Agent) heartbeatInterval() time.Duration { return time.Duration(a.pol.heartbeat.Load()) }

// inventoryInterval is the inventory interval in force (negative: off).
func (a *Agent) inventoryInterval() time.Duration { return time.Duration(a.pol.inventory.Load()) }

// policyRefresh is the policy refresh interval in force.
func (a *Agent) policyRefresh() time.Duration { return time.Duration(a.pol.refresh.Load()) }

// applyIntervals sets the intervals from the agent section of a policy
// (the command line's where it configures none) and tells the loops.
func (a *Agent) applyIntervals(ag *contracts.AgentSettings) {
	pick := func(base time.Duration, v *contracts.Duration) time.Duration {
		if v != nil {
			return time.Duration(*v)
		}
		return base
	}
	var hb, inv, ref *contracts.Duration
	if ag != nil {
		hb, inv, ref = ag.Heartbeat, ag.Inventory, ag.PolicyRefresh
	}
	set := func(dst *atomic.Int64, v time.Duration, ch chan struct{}) {
		if dst.Swap(int64(v)) != int64(v) {
			signal(ch)
		}
	}
	set(&a.pol.heartbeat, pick(a.cfg.Heartbeat, hb), a.pol.heartbeatChanged)
	if a.cfg.InventoryInterval >= 0 { // scheduled reports turned off stay off
		set(&a.pol.inventory, pick(a.cfg.InventoryInterval, inv), a.pol.inventoryChanged)
	}
	set(&a.pol.refresh, pick(a.cfg.PolicyRefresh, ref), a.pol.refreshChanged)
}

// loadPolicy takes the stored policy at start: the agent runs on the last
// policy it applied (never an unsigned one) until the site sends another.
func (a *Agent) loadPolicy() error {
	p, err := a.store.Policy()
	if err != nil {
		return err
	}
	a.applyIntervals(p.Settings.Agent)
	a.setPolicyStatus(p)
	return nil
}

// rejection is a policy refused, with its code (contracts.Reject*).
type rejection struct {
	code     string
	reason   string
	revision uint64 // 0 unless the signature verified
}

func (r *rejection) Error() string { return r.code + ": " + r.reason }

func reject(code, format string, args ...any) *rejection {
	return &rejection{code: code, reason: fmt.Sprintf(format, args...)}
}

// VerifyPolicy checks data, a contracts.SignedPolicy as received, for the
// client id at now: the signature over exactly the signed bytes with the
// site key pinned at enrollment, then the site, the client ID, the issue
// and expiry times. The revision is checked against the applied one when
// the policy is applied, in the same transaction.
func VerifyPolicy(data []byte, id state.Identity, now time.Time) (*contracts.Policy, error) {
	p, rej := verifyPolicy(data, id, now)
	if rej != nil {
		return nil, rej
	}
	return p, nil
}

func verifyPolicy(data []byte, id state.Identity, now time.Time) (*contracts.Policy, *rejection) {
	if len(data) > contracts.MaxPolicyBytes {
		return nil, reject(contracts.RejectMalformed, "%d bytes: over the %d-byte limit", len(data), contracts.MaxPolicyBytes)
	}
	var sp contracts.SignedPolicy
	if err := json.Unmarshal(data, &sp); err != nil {
		return nil, reject(contracts.RejectMalformed, "not a signed policy: %v", err)
	}
	if sp.Type != contracts.TypeSignedPolicy {
		return nil, reject(contracts.RejectMalformed, "message type %q, want %q", sp.Type, contracts.TypeSignedPolicy)
	}
	if len(sp.Policy) == 0 || len(sp.Signature) != ed25519.SignatureSize {
		return nil, reject(contracts.RejectMalformed, "no policy, or a signature of %d bytes (want %d)", len(sp.Signature), ed25519.SignatureSize)
	}
	site, err := nkeys.FromPublicKey(id.SiteKey)
	if err != nil {
		return nil, reject(contracts.RejectSignature, "the pinned site key %q is unusable: %v", id.SiteKey, err)
	}
	if sp.Key != id.SiteKey {
		return nil, reject(contracts.RejectSite, "signed by key %q, not the pinned key of site %s (%s)", truncate(sp.Key, 60), id.Site, id.SiteKey)
	}
	if err := site.Verify(contracts.PolicySigningInput(sp.Policy), sp.Signature); err != nil {
		return nil, reject(contracts.RejectSignature, "the signature does not verify with the pinned site key %s", id.SiteKey)
	}
	var p contracts.Policy
	if err := json.Unmarshal(sp.Policy, &p); err != nil {
		return nil, reject(contracts.RejectMalformed, "signed body unreadable: %v", err)
	}
	rej := func(code, format string, args ...any) (*contracts.Policy, *rejection) {
		r := reject(code, format, args...)
		r.revision = p.Revision
		return nil, r
	}
	switch {
	case p.Type != contracts.TypePolicy:
		return rej(contracts.RejectMalformed, "signed body of type %q, want %q", p.Type, contracts.TypePolicy)
	// Another site's or client's policy: its revision is in another
	// numbering, so the rejection names none (the site would show this
	// client failed at a revision it never had).
	case p.Site != id.Site:
		return nil, reject(contracts.RejectSite, "policy for site %q (its revision %d); this agent belongs to %q", p.Site, p.Revision, id.Site)
	case p.ClientID != id.ClientID:
		return nil, reject(contracts.RejectClient, "policy for client %s (its revision %d); this is %s", p.ClientID, p.Revision, id.ClientID)
	case p.Revision == 0:
		return rej(contracts.RejectMalformed, "policy without a revision")
	case !now.Before(p.Expires):
		return rej(contracts.RejectExpired, "revision %d expired at %s (now %s)", p.Revision, p.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case p.Issued.After(now.Add(maxClockSkew)):
		return rej(contracts.RejectExpired, "revision %d is issued at %s, in the future by this machine's clock (%s)", p.Revision, p.Issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if err := p.Settings.Validate(); err != nil {
		return rej(contracts.RejectApply, "revision %d has a setting this agent cannot apply: %v", p.Revision, err)
	}
	return &p, nil
}

// onPolicyPush applies a policy the site pushed.
func (a *Agent) onPolicyPush(ctx context.Context, m *nats.Msg) {
	a.applyPolicy(ctx, m.Data, "push")
}

// applyPolicy verifies data and applies it, in one transaction with the
// acknowledgement that reports it (applied, or rejected and why). The
// same revision again (a push and a fetch that crossed) changes nothing. A
// rejected policy changes nothing but the record of the rejection: the
// last good policy stays in force. data is kept as it is: the caller
// hands it over.
func (a *Agent) applyPolicy(ctx context.Context, data []byte, source string) (applied bool) {
	id, ok := a.Identity()
	if !ok {
		return false
	}
	_, span := telemetry.Tracer(tracerName).Start(ctx, "agent.policy.apply")
	defer span.End()
	now := time.Now().UTC()
	p, rej := verifyPolicy(data, id, now)

	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	var (
		after   state.PolicyState
		changed []string
	)
	dropped, err := a.store.UpdatePolicy(a.cfg.OutboxMax, func(st *state.PolicyState) ([]state.Entry, error) {
		if rej == nil && p.Revision == st.Revision {
			return nil, state.ErrNoChange
		}
		if rej == nil && p.Revision < st.Revision {
			rej = reject(contracts.RejectReplay, "revision %d is not newer than the applied revision %d", p.Revision, st.Revision)
			rej.revision = p.Revision
		}
		ack := contracts.PolicyAck{Header: contracts.NewHeader(contracts.TypePolicyAck)}
		if rej != nil {
			st.LastRejection = &contracts.PolicyRejection{Revision: rej.revision, Code: rej.code, Reason: rej.reason, At: now}
			ack.Revision, ack.AppliedRevision, ack.Code, ack.Reason = rej.revision, st.Revision, rej.code, truncate(rej.reason, 1000)
		} else {
			changed = applyTo(st, p, data, now)
			ack.Revision, ack.Applied, ack.AppliedRevision, ack.AppliedAt = p.Revision, true, p.Revision, now
		}
		after = *st
		e, err := newEntry(contracts.KindPolicyAck, contracts.TypePolicyAck, ack)
		if err != nil {
			return nil, err
		}
		return []state.Entry{e}, nil
	})
	switch {
	case errors.Is(err, state.ErrNoChange):
		a.log.Debug("policy revision already applied", "source", source, "revision", p.Revision)
		return false
	case err != nil:
		a.log.Error("policy not applied: the state store failed", "source", source, "err", err)
		return false
	case dropped > 0:
		rev := after.Revision // p is nil when the agent refused it
		if rej != nil {
			rev = rej.revision
		}
		a.log.Warn("outbox full: the policy's acknowledgement was not queued, so the site shows this revision pending until the next one",
			"revision", rev, "outbox_max", a.cfg.OutboxMax)
	}
	a.wakeOutbox()
	a.setPolicyStatus(after)
	if rej != nil {
		a.pol.rejected.Add(1)
		a.log.Warn("policy rejected; the last good policy stays in force", "source", source, "code", rej.code, "reason", rej.reason, "applied_revision", after.Revision)
		return false
	}
	a.applyIntervals(after.Settings.Agent)
	a.log.Info("policy applied", "source", source, "revision", p.Revision, "changed", changed)
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// applyTo makes st the state after applying p (verified), received as
// data: the settings, the local configuration layer of Remote Assistance
// and the Remote Control Users record. It returns what changed in force.
func applyTo(st *state.PolicyState, p *contracts.Policy, data []byte, now time.Time) []string {
	bv, bs := effective(*st)
	st.Revision, st.Issued, st.Expires, st.Applied = p.Revision, p.Issued, p.Expires, now
	st.Settings, st.Origins = p.Settings, p.Origins
	st.Signed = data // the caller's own: a message or an answer received
	st.Local = nextLocal(st.Local, p.Settings.RemoteAssistance, p.Revision, now)
	if rt := p.Settings.RemoteTools; rt != nil && rt.Enabled != nil && *rt.Enabled {
		members := []string{}
		if rt.PermittedViewers != nil {
			members = slices.Clone(*rt.PermittedViewers)
		}
		if st.RemoteControlUsers == nil || !slices.Equal(st.RemoteControlUsers.Members, members) {
			st.RemoteControlUsers = &state.RemoteControlUsers{Members: members, Revision: p.Revision, Updated: now}
		}
	}
	av, as := effective(*st)
	var changed []string
	for _, k := range raKeys {
		if valueOf(bv, k) != valueOf(av, k) || bs[k] != as[k] {
			changed = append(changed, "remoteAssistance."+k)
		}
	}
	return changed
}

// nextLocal is the site's layer of the local Remote Assistance
// configuration after a policy whose resultant Remote Assistance settings
// are ra. Managed, the site's values are written. No longer managed, the
// last values stay in force, tattooed, unless revertOnUnmanage (of the
// policy that wrote them, or of this one) returns to the user's own.
func nextLocal(old state.LocalConfig, ra *contracts.RemoteAssistanceSettings, revision uint64, now time.Time) state.LocalConfig {
	is := func(b *bool) bool { return b != nil && *b }
	if ra != nil && is(ra.Manage) {
		v := contracts.RemoteAssistanceValues{Unsolicited: ra.Unsolicited, Solicited: ra.Solicited, Level: ra.Level}
		return state.LocalConfig{Values: &v, Managed: true, Override: is(ra.OverrideUserSettings), RevertOnUnmanage: is(ra.RevertOnUnmanage), Revision: revision, Written: now}
	}
	if old.Values == nil {
		return state.LocalConfig{}
	}
	if old.RevertOnUnmanage || (ra != nil && is(ra.RevertOnUnmanage)) {
		return state.LocalConfig{}
	}
	old.Managed = false
	return old
}

// effective is the Remote Assistance configuration in force: per value,
// the site's where it wrote one and either overrides the user or the user
// chose nothing; else the user's own; else the built-in default.
func effective(st state.PolicyState) (contracts.RemoteAssistanceValues, map[string]string) {
	var out contracts.RemoteAssistanceValues
	sources := map[string]string{}
	pick := func(key string, site, user, def any) any {
		siteSet, userSet := !isNil(site), !isNil(user)
		switch {
		case siteSet && (st.Local.Override || !userSet):
			sources[key] = "site"
			return site
		case userSet:
			sources[key] = "user"
			return user
		}
		sources[key] = "default"
		return def
	}
	var site contracts.RemoteAssistanceValues
	if st.Local.Values != nil {
		site = *st.Local.Values
	}
	out.Unsolicited = pick("unsolicited", site.Unsolicited, st.User.Unsolicited, raDefaults.Unsolicited).(*bool)
	out.Solicited = pick("solicited", site.Solicited, st.User.Solicited, raDefaults.Solicited).(*bool)
	out.Level = pick("level", site.Level, st.User.Level, raDefaults.Level).(*string)
	return out, sources
}

func isNil(v any) bool {
	switch p := v.(type) {
	case *bool:
		return p == nil
	case *string:
		return p == nil
	}
	return v == nil
}

// setPolicyStatus caches what Status reports of the policy.
func (a *Agent) setPolicyStatus(st state.PolicyState) {
	a.pol.status.Store(policyStatus(st, a))
}

func policyStatus(st state.PolicyState, a *Agent) *contracts.AgentPolicyStatus {
	eff, sources := effective(st)
	ps := &contracts.AgentPolicyStatus{
		Revision: st.Revision, Issued: st.Issued, Expires: st.Expires, Applied: st.Applied,
		Settings: st.Settings, Origins: st.Origins,
		RemoteAssistance: contracts.RemoteAssistanceState{
			Managed:          st.Local.Values != nil && st.Local.Managed,
			Tattooed:         st.Local.Values != nil && !st.Local.Managed,
			Override:         st.Local.Override,
			RevertOnUnmanage: st.Local.RevertOnUnmanage,
			Effective:        eff,
			Sources:          sources,
			Site:             st.Local.Values,
		},
		RemoteControlUsers: []string{},
		LastRejection:      st.LastRejection,
	}
	if st.User != (contracts.RemoteAssistanceValues{}) {
		u := st.User
		ps.RemoteAssistance.User = &u
	}
	if st.RemoteControlUsers != nil {
		ps.RemoteControlUsers = slices.Clone(st.RemoteControlUsers.Members)
	}
	if a != nil {
		ps.Intervals = contracts.AgentIntervals{
			Heartbeat:     contracts.Duration(a.heartbeatInterval()),
			Inventory:     contracts.Duration(a.inventoryInterval()),
			PolicyRefresh: contracts.Duration(a.policyRefresh()),
		}
		ps.Rejected = int(a.pol.rejected.Load())
	}
	return ps
}

// PolicyRevision is the revision of the policy the agent applies (0:
// none yet): PolicyStatus's Revision without copying the rest.
func (a *Agent) PolicyRevision() uint64 {
	if ps := a.pol.status.Load(); ps != nil {
		return ps.Revision
	}
	return 0
}

// PolicyStatus is the policy as the agent holds it.
func (a *Agent) PolicyStatus() contracts.AgentPolicyStatus {
	ps := a.pol.status.Load()
	if ps == nil {
		return *policyStatus(state.PolicyState{}, a)
	}
	out := *ps
	out.Intervals = contracts.AgentIntervals{
		Heartbeat:     contracts.Duration(a.heartbeatInterval()),
		Inventory:     contracts.Duration(a.inventoryInterval()),
		PolicyRefresh: contracts.Duration(a.policyRefresh()),
	}
	out.Rejected = int(a.pol.rejected.Load())
	return out
}

// runPolicy fetches the policy whenever the agent (re)connects and every
// policy refresh interval, until ctx ends: an agent that was away converges
// at once on reconnect, and one that missed a push within an interval.
func (a *Agent) runPolicy(ctx context.Context, nc *nats.Conn, id state.Identity) {
	timer := time.NewTimer(jitter(a.policyRefresh()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.pol.wake:
		case <-a.pol.refreshChanged:
			timer.Reset(jitter(a.policyRefresh()))
			continue
		case <-timer.C:
		}
		if nc.IsConnected() {
			if err := a.FetchPolicy(ctx, nc, id); err != nil && ctx.Err() == nil {
				a.log.Warn("policy fetch failed; the current policy stays in force", "err", err)
			}
		}
		timer.Reset(jitter(a.policyRefresh()))
	}
}

// FetchPolicy asks the site for the current policy, saying the revision
// the agent runs, and applies what comes back.
func (a *Agent) FetchPolicy(ctx context.Context, nc *nats.Conn, id state.Identity) error {
	subject, err := contracts.AgentUp(id.Site, id.ClientID, contracts.KindPolicyFetch)
	if err != nil {
		return err
	}
	st, err := a.store.Policy()
	if err != nil {
		return err
	}
	req := contracts.PolicyFetchRequest{Header: contracts.NewHeader(contracts.TypePolicyFetchRequest), AppliedRevision: st.Revision}
	data, _ := json.Marshal(req)
	msg := nats.NewMsg(subject)
	msg.Data = data
	telemetry.Inject(ctx, msg.Header)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(rctx, msg)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return errors.New("no site service answers policy fetches yet")
		}
		return fmt.Errorf("policy fetch: %w", err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		return fmt.Errorf("the site refused the policy fetch: %s (%s)", reply.Header.Get("Nats-Service-Error"), contracts.ParseCode(code))
	}
	var resp struct {
		Revision uint64          `json:"revision"`
		Current  bool            `json:"current"`
		Policy   json.RawMessage `json:"policy"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return fmt.Errorf("malformed policy fetch answer: %w", err)
	}
	if resp.Current || len(resp.Policy) == 0 || string(resp.Policy) == "null" {
		a.log.Debug("policy is current", "revision", st.Revision)
		return nil
	}
	// An answer newer than what the agent ran when it asked, but not
	// newer than what it runs now, crossed a push: stale, not a replay.
	// (An answer at or below what it said it ran is applied, and refused
	// and reported as the replay it is.)
	if now := a.PolicyRevision(); resp.Revision > st.Revision && resp.Revision <= now {
		a.log.Debug("a policy fetch's answer crossed a newer revision; dropped", "answer", resp.Revision, "revision", now)
		return nil
	}
	a.applyPolicy(ctx, resp.Policy, "fetch")
	return nil
}

// ResetSettings returns tattooed Remote Assistance values to the user's own
// and removes a Remote Control Users record left by remote tools that are
// no longer enabled. What the site manages now is left alone: it would
// write it again. It returns what changed.
func (a *Agent) ResetSettings() (contracts.AgentSettingsResponse, error) {
	return a.changeLocal(func(st *state.PolicyState) []string {
		var changed []string
		if st.Local.Values != nil && !st.Local.Managed {
			st.Local = state.LocalConfig{}
			changed = append(changed, "remoteAssistance")
		}
		rt := st.Settings.RemoteTools
		enabled := rt != nil && rt.Enabled != nil && *rt.Enabled
		if st.RemoteControlUsers != nil && !enabled {
			st.RemoteControlUsers = nil
			changed = append(changed, "remoteControlUsers")
		}
		return changed
	})
}

// SetUserSettings records the local user's own Remote Assistance choices
// (unsolicited=BOOL solicited=BOOL level=full|view|none; "clear" forgets
// them all).
func (a *Agent) SetUserSettings(args []string) (contracts.AgentSettingsResponse, error) {
	var user contracts.RemoteAssistanceValues
	clear := false
	for _, arg := range args {
		if arg == "clear" {
			clear = true
			continue
		}
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return contracts.AgentSettingsResponse{}, fmt.Errorf("%q: want KEY=VALUE with KEY one of %s", arg, strings.Join(raKeys, ", "))
		}
		switch k {
		case "unsolicited", "solicited":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return contracts.AgentSettingsResponse{}, fmt.Errorf("%s=%q: want true or false", k, v)
			}
			if k == "unsolicited" {
				user.Unsolicited = &b
			} else {
				user.Solicited = &b
			}
		case "level":
			if !slices.Contains(contracts.AccessLevels(), v) {
				return contracts.AgentSettingsResponse{}, fmt.Errorf("level=%q: want one of %s", v, strings.Join(contracts.AccessLevels(), ", "))
			}
			user.Level = &v
		default:
			return contracts.AgentSettingsResponse{}, fmt.Errorf("%q: unknown setting; the user's own are %s", k, strings.Join(raKeys, ", "))
		}
	}
	return a.changeLocal(func(st *state.PolicyState) []string {
		before := st.User
		if clear {
			st.User = contracts.RemoteAssistanceValues{}
		}
		if user.Unsolicited != nil {
			st.User.Unsolicited = user.Unsolicited
		}
		if user.Solicited != nil {
			st.User.Solicited = user.Solicited
		}
		if user.Level != nil {
			st.User.Level = user.Level
		}
		var changed []string
		for _, k := range raKeys {
			if valueOf(before, k) != valueOf(st.User, k) {
				changed = append(changed, "user."+k)
			}
		}
		return changed
	})
}

func valueOf(v contracts.RemoteAssistanceValues, key string) string {
	switch {
	case key == "unsolicited" && v.Unsolicited != nil:
		return fmt.Sprint(*v.Unsolicited)
	case key == "solicited" && v.Solicited != nil:
		return fmt.Sprint(*v.Solicited)
	case key == "level" && v.Level != nil:
		return *v.Level
	}
	return ""
}

// changeLocal changes the local layers in one transaction.
func (a *Agent) changeLocal(fn func(st *state.PolicyState) []string) (contracts.AgentSettingsResponse, error) {
	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	var (
		after   state.PolicyState
		changed []string
	)
	_, err := a.store.UpdatePolicy(a.cfg.OutboxMax, func(st *state.PolicyState) ([]state.Entry, error) {
		changed = fn(st)
		after = *st
		if len(changed) == 0 {
			return nil, state.ErrNoChange
		}
		return nil, nil
	})
	if err != nil && !errors.Is(err, state.ErrNoChange) {
		return contracts.AgentSettingsResponse{}, err
	}
	if err == nil {
		a.setPolicyStatus(after)
		a.log.Info("local settings changed", "changed", changed)
	}
	if changed == nil {
		changed = []string{}
	}
	return contracts.AgentSettingsResponse{Header: contracts.NewHeader(contracts.TypeAgentSettingsResponse), Changed: changed, Policy: a.PolicyStatus()}, nil
}
