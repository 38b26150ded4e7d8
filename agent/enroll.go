package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// tracerName names the agent's spans.
const tracerName = "github.com/stewardhq/steward/agent"

// requestTimeout bounds one request to the site.
const requestTimeout = 10 * time.Second

// ErrUntrustedApproval means an approved EnrollResponse failed verification:
// it is not for this agent and site, or not signed by the pinned site key.
var ErrUntrustedApproval = errors.New("enrollment approval not trusted")

// EnrollExpectation is what an agent knows before it trusts an approval.
type EnrollExpectation struct {
	Site     string // the site code the agent enrolls with
	SiteKey  string // the site signing key pinned by the token; "" trusts the response's key on first use
	AgentKey string // the agent's own NKey public key
}

// VerifyEnrollResponse checks an approved enrollment response: it must be
// an approval for want.Site, carry the pinned site key (when one is pinned)
// and a valid signature by that key over
// contracts.EnrollAttestation(site, client ID, want.AgentKey, resp.Time).
// Failures wrap ErrUntrustedApproval.
func VerifyEnrollResponse(resp contracts.EnrollResponse, want EnrollExpectation) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrUntrustedApproval, fmt.Sprintf(format, args...))
	}
	switch {
	case resp.Type != contracts.TypeEnrollResponse:
		return fail("message type %q, want %q", resp.Type, contracts.TypeEnrollResponse)
	case resp.Status != contracts.EnrollApproved:
		return fail("status %q is not %q", resp.Status, contracts.EnrollApproved)
	case resp.Site != want.Site:
		return fail("it admits the agent to site %q, but the agent enrolls with site %q", resp.Site, want.Site)
	case want.SiteKey != "" && resp.SiteKey != want.SiteKey:
		return fail("it is signed for site key %s, but this agent pins site key %s (from its token or first contact); "+
			"this server is not the site the agent trusts", resp.SiteKey, want.SiteKey)
	case resp.Time.IsZero():
		return fail("it has no time")
	}
	if err := contracts.ValidToken(resp.ClientID); err != nil {
		return fail("client id: %v", err)
	}
	kp, err := nkeys.FromPublicKey(resp.SiteKey)
	if err != nil {
		return fail("site key %q is not an NKey public key: %v", resp.SiteKey, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(resp.Signature)
	if err != nil || len(sig) == 0 {
		return fail("the signature is missing or not base64url")
	}
	if err := kp.Verify(contracts.EnrollAttestation(resp.Site, resp.ClientID, want.AgentKey, resp.Time), sig); err != nil {
		return fail("the site key's signature does not verify for client %s and agent key %s", resp.ClientID, want.AgentKey)
	}
	return nil
}

// enroll asks the site to admit this agent until it is approved (by token
// or by an operator), then stores the identity. It returns early only when
// ctx ends or the store fails.
func (a *Agent) enroll(ctx context.Context) (state.Identity, error) {
	inbox, err := contracts.Inbox(a.pub)
	if err != nil {
		return state.Identity{}, err
	}
	subject, err := contracts.Enroll(a.site, a.pub)
	if err != nil {
		return state.Identity{}, err
	}
	pinned := ""
	if a.token != nil {
		pinned = a.token.SiteKey
		a.log.Info("enrolling with a token", "site", a.site, "token_id", a.token.ID, "pinned_site_key", pinned)
	} else {
		a.log.Info("enrolling without a token; an operator must approve this client", "site", a.site, "public_key", a.pub)
	}

	up := make(chan struct{}, 1)
	nc, err := a.dial(inbox, up, false)
	if err != nil {
		return state.Identity{}, err
	}
	defer nc.Close()
	// Subscribe to approvals before the first request, so an operator's
	// approval cannot slip between the request and the subscription.
	approvals := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(inbox+"."+contracts.KindApproval, approvals)
	if err != nil {
		return state.Identity{}, fmt.Errorf("subscribe to approvals: %w", err)
	}
	defer sub.Unsubscribe()

	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return state.Identity{}, ctx.Err()
		case m := <-approvals:
			var resp contracts.EnrollResponse
			if err := contracts.Decode(m.Data, contracts.TypeEnrollResponse, &resp); err != nil {
				a.log.Warn("ignored a malformed approval message", "err", err)
				continue
			}
			id, err := a.admit(resp, pinned)
			if errors.Is(err, ErrUntrustedApproval) {
				continue
			}
			return id, err
		case <-up:
		case <-retry.C:
		}
		if !nc.IsConnected() {
			continue // the next connect sends the request
		}

		resp, err := a.requestEnrollment(ctx, nc, subject)
		if err != nil {
			if ctx.Err() != nil {
				return state.Identity{}, ctx.Err()
			}
			fails++
			retry.Reset(a.enrollFailed(err, fails))
			continue
		}
		fails = 0
		switch resp.Status {
		case contracts.EnrollApproved:
			id, err := a.admit(*resp, pinned)
			if errors.Is(err, ErrUntrustedApproval) {
				retry.Reset(jitter(a.cfg.RetryMax))
				continue
			}
			return id, err
		case contracts.EnrollPending:
			if pinned == "" && resp.Site == a.site && nkeys.IsValidPublicKey(resp.SiteKey) {
				pinned = resp.SiteKey
				a.update(func(st *status) { st.pinnedKey = pinned })
				a.log.Info("trusting the site key on first use", "site", a.site, "site_key", pinned)
			}
			a.pending(resp)
			retry.Reset(a.cfg.EnrollRetry)
		default:
			a.log.Warn("the site answered with an unknown enrollment status", "status", resp.Status)
			retry.Reset(jitter(a.cfg.RetryMax))
		}
	}
}

// requestEnrollment sends one enrollment request and decodes the answer; a
// micro error answer becomes a *contracts.Error.
func (a *Agent) requestEnrollment(ctx context.Context, nc *nats.Conn, subject string) (*contracts.EnrollResponse, error) {
	ctx, span := telemetry.Tracer(tracerName).Start(ctx, "agent.enroll")
	defer span.End()
	req := contracts.EnrollRequest{
		Header:       contracts.NewHeader(contracts.TypeEnrollRequest),
		Token:        a.cfg.Token,
		Name:         a.cfg.Name,
		Hostname:     a.hostname,
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		AgentVersion: a.cfg.Version,
		Capability:   contracts.CapabilityVersion,
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	telemetry.Inject(ctx, msg.Header)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(rctx, msg)
	if err != nil {
		span.RecordError(err)
		return nil, err
	}
	if err := replyError(reply); err != nil {
		span.RecordError(err)
		return nil, err
	}
	var resp contracts.EnrollResponse
	if err := contracts.Decode(reply.Data, contracts.TypeEnrollResponse, &resp); err != nil {
		span.RecordError(err)
		return nil, err
	}
	return &resp, nil
}

// replyError returns the wire error of a micro error reply, nil otherwise.
func replyError(m *nats.Msg) error {
	code := m.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		return nil
	}
	return &contracts.Error{Code: contracts.ParseCode(code), Message: m.Header.Get(micro.ErrorHeader)}
}

// enrollFailed logs a failed enrollment request, updates the status and
// returns how long to wait before the next one.
func (a *Agent) enrollFailed(err error, fails int) time.Duration {
	wait := backoff(fails, time.Second, a.cfg.RetryMax)
	var werr *contracts.Error
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		msg := fmt.Sprintf("no site with site code %s answers at %s; check --server, or whether the token belongs to another site", a.site, a.cfg.Server)
		a.update(func(st *status) { st.message = msg })
		a.log.Warn("no site answers enrollment requests for this site code at this server", "site", a.site, "server", a.cfg.Server, "retry_in", wait.Round(time.Millisecond))
	case errors.As(err, &werr):
		switch werr.Code {
		case contracts.CodeTokenInvalid, contracts.CodeTokenExpired, contracts.CodeTokenSpent, contracts.CodeTokenRevoked,
			contracts.CodeTokenForeignSite, contracts.CodeBlocked, contracts.CodeBadRequest, contracts.CodePermissionDenied:
			// Retrying soon will not change the answer; an operator must act.
			wait = jitter(a.cfg.RetryMax)
			msg := fmt.Sprintf("the site refuses the enrollment (%s: %s)", werr.Code, werr.Message)
			a.update(func(st *status) { st.enrollRefused = msg })
			a.log.Error("the site refused the enrollment", "code", werr.Code.String(), "reason", werr.Message, "retry_in", wait.Round(time.Second))
			return wait
		default:
			a.update(func(st *status) { st.message = fmt.Sprintf("enrollment failed (%s: %s)", werr.Code, werr.Message) })
			a.log.Warn("enrollment failed", "code", werr.Code.String(), "reason", werr.Message, "retry_in", wait.Round(time.Millisecond))
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		a.update(func(st *status) { st.message = "the site did not answer the enrollment request in time" })
		a.log.Warn("the site did not answer the enrollment request", "timeout", requestTimeout, "retry_in", wait.Round(time.Millisecond))
	default:
		a.update(func(st *status) { st.message = "enrollment failed: " + err.Error() })
		a.log.Warn("enrollment failed", "err", err, "retry_in", wait.Round(time.Millisecond))
	}
	a.update(func(st *status) { st.enrollRefused = "" })
	return wait
}

// pending records that the site queued this agent for approval, and why
// (resp.Reason is a token code when a token was given but not accepted).
func (a *Agent) pending(resp *contracts.EnrollResponse) {
	msg := "waiting for an operator to approve this client"
	if resp.ClientID != "" {
		msg = fmt.Sprintf("waiting for an operator to approve client %s (%s)", resp.ClientID, a.cfg.Name)
	}
	reason := resp.Message
	if resp.Reason != 0 {
		reason = fmt.Sprintf("%s: %s", resp.Reason, resp.Message)
	}
	if reason != "" {
		msg += "; " + reason
	}
	var was string
	a.update(func(st *status) {
		if st.phase == StatePending {
			was = st.message
		}
		st.phase, st.enrollRefused, st.message = StatePending, "", msg
	})
	switch {
	case was == msg: // said already; the request is repeated every EnrollRetry
		a.log.Debug("enrollment still pending", "client_id", resp.ClientID)
	case resp.Reason != 0:
		a.log.Warn("enrollment pending: the site did not accept the token", "code", resp.Reason.String(), "reason", resp.Message,
			"client_id", resp.ClientID, "public_key", a.pub)
	default:
		a.log.Info("enrollment pending: waiting for an operator to approve this client", "reason", resp.Message,
			"client_id", resp.ClientID, "public_key", a.pub)
	}
}

// admit verifies an approval and stores the identity it grants, in one
// transaction. An untrusted approval is logged and returned as an error
// wrapping ErrUntrustedApproval; a store failure is fatal.
func (a *Agent) admit(resp contracts.EnrollResponse, pinned string) (state.Identity, error) {
	err := VerifyEnrollResponse(resp, EnrollExpectation{Site: a.site, SiteKey: pinned, AgentKey: a.pub})
	if err != nil {
		msg := "refused an approval: " + err.Error()
		a.update(func(st *status) { st.enrollRefused = msg })
		a.log.Error("refused an enrollment approval", "err", err)
		return state.Identity{}, err
	}
	if pinned == "" {
		a.log.Info("trusting the site key on first use", "site", resp.Site, "site_key", resp.SiteKey)
	}
	id := state.Identity{
		ClientID:   resp.ClientID,
		AgentKey:   a.pub,
		Site:       resp.Site,
		SiteKey:    resp.SiteKey,
		Name:       a.cfg.Name,
		Server:     a.cfg.Server,
		EnrolledAt: resp.Time,

		CAFingerprint: a.pinnedCA(),
	}
	if old, had := a.Identity(); had {
		if err := a.replaceIdentity(old, id); err != nil {
			return state.Identity{}, err
		}
	}
	if err := a.store.PutIdentity(id); err != nil {
		return state.Identity{}, fmt.Errorf("enrolled as client %s, but could not store the identity: %w", id.ClientID, err)
	}
	a.update(func(st *status) {
		st.id, st.phase, st.enrollRefused, st.message, st.notKnown = &id, "", "", "", ""
	})
	a.markEnrolled()
	a.log.Info("enrolled", "client_id", id.ClientID, "site", id.Site, "site_key", id.SiteKey)
	return id, nil
}
