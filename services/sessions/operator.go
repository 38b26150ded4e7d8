package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
)

// open answers session.open: authorise, ask the agent, relay.
func (s *Service) open(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionOpenRequest) (*contracts.SessionOpenResponse, error) {
	w := want{operator: from.Principal, kind: req.Kind, port: req.Port}
	if req.Kind == contracts.SessionAssist {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "offer assistance with steward assist offer")
	}
	return s.start(ctx, w, req)
}

// check answers session.check: whether open (or, for kind assist, an
// offer) would be authorised now, by the same authorize as start, without
// a grant or a session. A client the operator may not see is not found, as
// for open; a refusal is the error open would give. Nothing is audited:
// a check is not an action, and the session it precedes is audited when
// it is asked for (every connection of a tunnel, the offer).
func (s *Service) check(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionCheckRequest) (*contracts.SessionCheckResponse, error) {
	w := want{operator: from.Principal, kind: req.Kind}
	if req.Kind == contracts.SessionTunnel {
		w.port = req.Port
	}
	d, err := s.authorize(ctx, w, req.Ref)
	if dn := (*denial)(nil); errors.As(err, &dn) {
		return nil, dn.err
	}
	if err != nil {
		return nil, err
	}
	resp := &contracts.SessionCheckResponse{Header: contracts.NewHeader(contracts.TypeSessionCheckResponse),
		Client: contracts.Named{ID: d.client.ID, Name: d.client.Name}, Kind: req.Kind, Port: w.port, Access: d.access, Consent: d.consent}
	if d.consent {
		resp.PromptTimeout = contracts.Duration(d.promptTimeout)
	}
	return resp, nil
}

// start authorises and runs a new session for w (a shell, a tunnel, an
// assistance offer or accepted request).
func (s *Service) start(ctx context.Context, w want, req *contracts.SessionOpenRequest) (*contracts.SessionOpenResponse, error) {
	s.mu.Lock()
	_, dup := s.sessions[req.Session]
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "the session broker is stopping; try again")
	}
	if dup {
		return nil, contracts.Errorf(contracts.CodeConflict, "session %s exists already: pick a new ID", req.Session)
	}
	d, err := s.authorize(ctx, w, req.Ref)
	info := contracts.SessionInfo{ID: req.Session, Client: contracts.Named{ID: d.client.ID, Name: d.client.Name},
		Operator: w.operator, Kind: w.kind, Access: d.access, Port: req.Port, Command: req.Command,
		State: contracts.SessionRequested, Requested: s.cfg.Now().UTC(), Participants: []contracts.SessionParticipant{}, Instance: s.instance}
	var dn *denial
	if err != nil && !errors.As(err, &dn) {
		return nil, err
	}
	if info.Access == "" {
		info.Access = contracts.NeedsAccess(w.kind)
	}
	s.emit(ctx, contracts.StatusSessionRequested, auditProps(info))
	if dn != nil {
		s.denied(ctx, info, dn)
		return nil, dn.err
	}
	ss := &session{svc: s, collections: d.collections, info: info, parts: map[string]*participant{}, answered: make(chan struct{})}
	// On every way out (the started session recorded and audited, or the
	// failure): an end frame from the client may finish the session then.
	defer ss.markAnswered()
	ss.touch()
	if err := s.createRecord(ctx, record{Info: info, Collections: d.collections}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sessions[info.ID] = ss
	s.mu.Unlock()
	fail := func(err error) (*contracts.SessionOpenResponse, error) {
		ss.mu.Lock()
		ss.over = true
		if ss.agentSub != nil {
			_ = ss.agentSub.Unsubscribe()
		}
		for _, p := range ss.parts {
			_ = p.sub.Unsubscribe()
		}
		rec := ss.rec
		ss.info.State, ss.info.Ended = contracts.SessionEnded, s.cfg.Now().UTC()
		ss.info.EndReason = err.Error()
		ss.mu.Unlock()
		info := ss.snapshot()
		if rec != nil {
			rec.abort()
		}
		s.mu.Lock()
		delete(s.sessions, info.ID)
		s.mu.Unlock()
		_ = s.putRecord(context.Background(), record{Info: info, Collections: d.collections})
		return nil, err
	}
	if err := ss.attach(); err != nil {
		return fail(err)
	}
	if err := ss.addParticipant(w.operator, d.access); err != nil {
		return fail(err)
	}
	if w.kind != contracts.SessionTunnel {
		rec := s.startRecorder(info, req.Cols, req.Rows, req.Term)
		ss.mu.Lock()
		ss.info.Recording = recordingName(info.ID)
		ss.rec = rec
		ss.mu.Unlock()
	}
	grant := contracts.SessionGrant{Header: contracts.NewHeader(contracts.TypeSessionGrant), Session: info.ID, Site: s.cfg.Site,
		ClientID: d.client.ID, Operator: w.operator, Kind: w.kind, Access: d.access, Consent: d.consent, Port: req.Port,
		Command: req.Command, Cols: req.Cols, Rows: req.Rows, Term: req.Term, Assist: w.assist, Via: d.viewerVia}
	ans, err := s.sendGrant(ctx, grant, d)
	if err != nil {
		var dn *denial
		if errors.As(err, &dn) {
			s.denied(ctx, info, dn)
			return fail(dn) // the reason goes on with the error (assistAccept reads it)
		}
		return fail(err)
	}
	ss.mu.Lock()
	ss.info.State = contracts.SessionActive
	ss.info.Access = ans.Access
	ss.info.Consent = ans.Consent
	ss.info.Started = s.cfg.Now().UTC()
	for i := range ss.info.Participants {
		if ss.info.Participants[i].Operator == w.operator {
			ss.info.Participants[i].Access = ans.Access
		}
	}
	if p := ss.parts[w.operator]; p != nil {
		p.access = ans.Access
	}
	ss.mu.Unlock()
	info = ss.snapshot()
	if err := s.putRecord(ctx, record{Info: info, Collections: d.collections}); err != nil {
		s.log.Warn("session record not written", "session", info.ID, "err", err)
	}
	s.emit(ctx, contracts.StatusSessionStarted, auditProps(info))
	return &contracts.SessionOpenResponse{Header: contracts.NewHeader(contracts.TypeSessionOpenResponse), Session: info}, nil
}

// denied audits a refusal.
func (s *Service) denied(ctx context.Context, info contracts.SessionInfo, dn *denial) {
	props := auditProps(info)
	props["reason"] = dn.reason
	props["detail"] = dn.err.Message
	s.emit(ctx, contracts.StatusSessionDenied, props)
}

// agentAnswer is how long the broker waits for an agent's answer to a
// grant, besides the user's prompt when there is one.
const agentAnswer = 15 * time.Second

// answerWait is how long the broker waits for the answer to a grant of d:
// the agent's time, and the prompt's when the user is asked (an offer of
// assistance always; a shell, tunnel or join when policy says promptUser).
func answerWait(d decision) time.Duration {
	if d.consent {
		return agentAnswer + d.promptTimeout
	}
	return agentAnswer
}

// sendGrant signs the grant and asks the agent, waiting for the user's
// consent when the grant asks for it (the grant says how long the broker
// waits: AnswerWithin). A refusal is a *denial.
func (s *Service) sendGrant(ctx context.Context, g contracts.SessionGrant, d decision) (contracts.SessionGrantAnswer, error) {
	var ans contracts.SessionGrantAnswer
	now := s.cfg.Now().UTC()
	wait := answerWait(d)
	g.Issued, g.Expires, g.AnswerWithin = now, now.Add(contracts.GrantValidity), contracts.Duration(wait)
	body, err := json.Marshal(g)
	if err != nil {
		return ans, err
	}
	signed := contracts.SignedGrant{Header: contracts.NewHeader(contracts.TypeSignedGrant), Grant: body,
		Signature: s.key.Sign(contracts.GrantSigningInput(body)), Key: s.key.PublicKey()}
	data, err := json.Marshal(signed)
	if err != nil {
		return ans, err
	}
	subj, err := contracts.AgentDown(s.cfg.Site, g.ClientID, contracts.KindSessionGrant)
	if err != nil {
		return ans, err
	}
	rctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	reply, err := s.cfg.NC.RequestWithContext(rctx, subj, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return ans, deny(contracts.DenyOffline, contracts.CodeClientOffline, "client %s is not connected", d.client.Name)
	case (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) && d.consent:
		// The agent took the grant (it has a responder) and asked its
		// user, who did not answer in time: a refusal by silence, as
		// the agent's own timeout is. The grant said how long the broker
		// waits, so the agent starts no session accepted later.
		return ans, deny(contracts.DenyConsent, contracts.CodeConsentRefused, "the user of %s did not answer within %s", d.client.Name, contracts.HumanDuration(d.promptTimeout))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return ans, deny(contracts.DenyOffline, contracts.CodeClientOffline, "client %s did not answer within %s", d.client.Name, contracts.HumanDuration(wait))
	case err != nil:
		return ans, err
	}
	if err := json.Unmarshal(reply.Data, &ans); err != nil || ans.Session != g.Session {
		return ans, deny(contracts.DenyClient, contracts.CodeClientRefused, "client %s answered the grant with something else", d.client.Name)
	}
	if ans.Consent != "" && ans.Consent != contracts.ConsentNotRequired {
		props := auditProps(contracts.SessionInfo{ID: g.Session, Operator: g.Operator, Client: contracts.Named{ID: d.client.ID, Name: d.client.Name}, Kind: g.Kind, Access: g.Access})
		props["consent"] = ans.Consent
		props["user"] = ans.User
		s.emit(ctx, contracts.StatusSessionConsent, props)
	}
	if !ans.Accepted {
		code := contracts.CodeClientRefused
		switch ans.Deny {
		case contracts.DenyConsent:
			code = contracts.CodeConsentRefused
		case contracts.DenyPolicy:
			code = contracts.CodePolicyDenied
		}
		reason := ans.Deny
		if reason == "" {
			reason = contracts.DenyClient
		}
		return ans, deny(reason, code, "client %s refused: %s", d.client.Name, ans.Reason)
	}
	if !contracts.AccessAllows(ans.Access, contracts.AccessView) {
		return ans, deny(contracts.DenyClient, contracts.CodeClientRefused, "client %s accepted with access %q", d.client.Name, ans.Access)
	}
	return ans, nil
}

// join answers session.join: another operator joins a running session,
// or watches it (observe). The three conditions apply to the joiner too,
// and the agent gets a grant for the joiner.
func (s *Service) join(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionJoinRequest) (*contracts.SessionOpenResponse, error) {
	if !s.local(req.Session) {
		return s.forward(ctx, from.Principal, req.Session, contracts.SessionForward{Join: req})
	}
	return s.joinLocal(ctx, from, req)
}

// joinLocal joins a session this instance relays.
func (s *Service) joinLocal(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionJoinRequest) (*contracts.SessionOpenResponse, error) {
	op := from.Principal
	ss, err := s.relayed(req.Session)
	if err != nil {
		return nil, err
	}
	info := ss.snapshot()
	ss.mu.Lock()
	_, already := ss.parts[op]
	ss.mu.Unlock()
	if info.State != contracts.SessionActive {
		return nil, contracts.Errorf(contracts.CodeConflict, "session %s is %s", info.ID, info.State)
	}
	if already {
		return nil, contracts.Errorf(contracts.CodeConflict, "%s is in session %s already", op, info.ID)
	}
	kind := info.Kind
	if req.Observe {
		kind = contracts.SessionObserve
	}
	if info.Kind == contracts.SessionTunnel {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "a tunnel cannot be joined")
	}
	if info.Kind == contracts.SessionAssist && !req.Observe {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "an assistance session is the user's and its helper's: watch it with --observe")
	}
	w := want{operator: op, kind: kind, join: true}
	d, err := s.authorize(ctx, w, info.Client.ID)
	jinfo := info
	jinfo.Operator, jinfo.Kind = op, kind
	var dn *denial
	if errors.As(err, &dn) {
		s.denied(ctx, jinfo, dn)
		return nil, dn.err
	}
	if err != nil {
		return nil, err
	}
	access := contracts.MinAccess(d.access, info.Access)
	if req.Observe {
		access = contracts.AccessView
	}
	g := contracts.SessionGrant{Header: contracts.NewHeader(contracts.TypeSessionGrant), Session: info.ID, Site: s.cfg.Site,
		ClientID: info.Client.ID, Operator: op, Kind: kind, Access: access, Join: true, Consent: d.consent, Via: d.viewerVia}
	// The agent asks its user about a joiner as about the first operator
	// (promptUser): the wait covers the prompt, and the answer is
	// audited. The broker waited 15 s and recorded a join the user
	// accepted later as denied, while the agent let the joiner in.
	ans, err := s.sendGrant(ctx, g, d)
	if errors.As(err, &dn) {
		s.denied(ctx, jinfo, dn)
		return nil, dn.err
	}
	if err != nil {
		return nil, err
	}
	if err := ss.addParticipant(op, ans.Access); err != nil {
		return nil, err
	}
	info = ss.snapshot()
	jinfo.Access = ans.Access
	s.emit(ctx, contracts.StatusSessionJoined, auditProps(jinfo))
	if err := s.putRecord(ctx, record{Info: info, Collections: ss.collections}); err != nil {
		s.log.Warn("session record not written", "session", info.ID, "err", err)
	}
	return &contracts.SessionOpenResponse{Header: contracts.NewHeader(contracts.TypeSessionOpenResponse), Session: info}, nil
}

// endByOperator answers session.end: the session's operator ends it, or
// an administrator with Session:End on the client.
func (s *Service) endByOperator(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionEndRequest) (*contracts.SessionOpenResponse, error) {
	if !s.local(req.Session) {
		return s.forward(ctx, from.Principal, req.Session, contracts.SessionForward{End: req})
	}
	return s.endLocal(ctx, from, req)
}

// endLocal ends a session this instance relays.
func (s *Service) endLocal(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionEndRequest) (*contracts.SessionOpenResponse, error) {
	op := from.Principal
	ss, err := s.relayed(req.Session)
	if err != nil {
		return nil, err
	}
	info := ss.snapshot()
	rec := record{Info: info, Collections: ss.collections}
	if info.Operator != op {
		if err := s.mayRead(op, rbac.SessionRead, rec); err != nil {
			return nil, err
		}
		if err := s.mayRead(op, rbac.SessionEnd, rec); err != nil {
			return nil, err
		}
	}
	reason := "ended by " + op
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	s.end(ss, contracts.SessionEnd{Reason: reason, By: op})
	info = ss.snapshot()
	return &contracts.SessionOpenResponse{Header: contracts.NewHeader(contracts.TypeSessionOpenResponse), Session: info}, nil
}

// mayRead checks p on the session's client.
func (s *Service) mayRead(op string, p rbac.Permission, r record) error {
	m, err := s.authz()
	if err != nil || m == nil {
		return err
	}
	if !m.ClientVisible(op, r.memberOf) {
		return contracts.Errorf(contracts.CodeNotFound, "no session %q", r.Info.ID)
	}
	return m.Allowed(op, p, rbac.OnClient(r.Info.Client.Name, r.memberOf))
}

// visibleRecords lists the records op may see with p, newest first.
func (s *Service) visibleRecords(ctx context.Context, op string, p rbac.Permission, client string, open bool, keep func(record) bool) ([]contracts.SessionInfo, error) {
	m, err := s.authz()
	if err != nil {
		return nil, err
	}
	if m != nil {
		if err := m.Allowed(op, p, rbac.Anywhere()); err != nil {
			return nil, err
		}
	}
	recs, err := s.allRecords(ctx, open)
	if err != nil {
		return nil, err
	}
	out := []contracts.SessionInfo{}
	for _, r := range recs {
		if !keep(r) || (client != "" && r.Info.Client.ID != client && r.Info.Client.Name != client) {
			continue
		}
		if m != nil && m.Allowed(op, p, rbac.OnClient(r.Info.Client.Name, r.memberOf)) != nil {
			continue
		}
		out = append(out, r.Info)
	}
	slices.SortFunc(out, func(a, b contracts.SessionInfo) int { return b.Requested.Compare(a.Requested) })
	return out, nil
}

// list answers session.list: the sessions not ended.
func (s *Service) list(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionListRequest) (*contracts.SessionListResponse, error) {
	out, err := s.visibleRecords(ctx, from.Principal, rbac.SessionRead, req.Client, true, func(r record) bool { return r.Info.State != contracts.SessionEnded })
	if err != nil {
		return nil, err
	}
	// This instance's own sessions are current in memory (bytes, joins).
	s.mu.Lock()
	for i := range out {
		if ss := s.sessions[out[i].ID]; ss != nil {
			out[i] = ss.snapshot()
		}
	}
	s.mu.Unlock()
	return &contracts.SessionListResponse{Header: contracts.NewHeader(contracts.TypeSessionListResponse), Sessions: out}, nil
}

// recordings answers session.recordings: ended sessions, with their
// recordings (terminals) or byte counts (tunnels).
func (s *Service) recordings(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionListRequest) (*contracts.SessionListResponse, error) {
	out, err := s.visibleRecords(ctx, from.Principal, rbac.SessionViewRecording, req.Client, false, func(r record) bool {
		return r.Info.State == contracts.SessionEnded && !r.Info.Started.IsZero()
	})
	if err != nil {
		return nil, err
	}
	return &contracts.SessionListResponse{Header: contracts.NewHeader(contracts.TypeSessionListResponse), Sessions: out}, nil
}

// readRecording answers session.recording: a page of a recording.
func (s *Service) readRecording(ctx context.Context, from contracts.SubjectInfo, req *contracts.RecordingReadRequest) (*contracts.RecordingReadResponse, error) {
	r, err := s.getRecord(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(from.Principal, rbac.SessionViewRecording, r); err != nil {
		return nil, err
	}
	if r.Info.Recording == "" {
		if r.Info.Kind == contracts.SessionTunnel {
			return nil, contracts.Errorf(contracts.CodeNotFound, "session %s is a tunnel: only its byte counts are kept (%d in, %d out)", r.Info.ID, r.Info.BytesIn, r.Info.BytesOut)
		}
		return nil, contracts.Errorf(contracts.CodeNotFound, "session %s has no recording (%s)", r.Info.ID, r.Info.EndReason)
	}
	if r.Info.State != contracts.SessionEnded {
		return nil, contracts.Errorf(contracts.CodeConflict, "session %s is still %s: its recording is complete when it ends", r.Info.ID, r.Info.State)
	}
	obj, err := s.obs.Get(ctx, r.Info.Recording)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, contracts.Errorf(contracts.CodeNotFound, "the recording of session %s is missing", r.Info.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("recording %s: %w", r.Info.Recording, err)
	}
	defer obj.Close()
	oi, err := obj.Info()
	if err != nil {
		return nil, err
	}
	size := int64(oi.Size)
	if req.Offset < 0 || req.Offset > size {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "offset %d is outside the recording (%d bytes)", req.Offset, size)
	}
	if _, err := io.CopyN(io.Discard, obj, req.Offset); err != nil {
		return nil, fmt.Errorf("recording %s: %w", r.Info.Recording, err)
	}
	buf := make([]byte, min(int64(contracts.MaxRecordingPage), size-req.Offset))
	n, err := io.ReadFull(obj, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("recording %s: %w", r.Info.Recording, err)
	}
	return &contracts.RecordingReadResponse{Header: contracts.NewHeader(contracts.TypeRecordingReadResponse), Session: r.Info,
		Data: buf[:n], Size: size, Next: req.Offset + int64(n)}, nil
}

// local says whether this instance relays session id.
func (s *Service) local(id string) bool {
	_, err := s.relayed(id)
	return err == nil
}

// relayed is session id if this instance relays it, else not found.
func (s *Service) relayed(id string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[id]; ss != nil {
		return ss, nil
	}
	return nil, contracts.Errorf(contracts.CodeNotFound, "no active session %q (steward session list shows them)", id)
}

// forward hands an operator's join or end of a session this instance does
// not relay to the instance that does (its record says which), on that
// instance's own svc subject. A session that ended, or that no live
// instance relays (the sweep ends those), is answered here.
func (s *Service) forward(ctx context.Context, op, id string, f contracts.SessionForward) (*contracts.SessionOpenResponse, error) {
	r, err := s.getRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(op, rbac.SessionRead, r); err != nil {
		return nil, err
	}
	if r.Info.State == contracts.SessionEnded {
		return nil, contracts.Errorf(contracts.CodeConflict, "session %s ended already (%s)", r.Info.ID, r.Info.EndReason)
	}
	if r.Info.Instance == "" || r.Info.Instance == s.instance {
		return nil, contracts.Errorf(contracts.CodeNotFound, "no active session %q (steward session list shows them)", id)
	}
	subj, err := contracts.Svc(s.cfg.Site, ServiceName, contracts.SessionForwardVerb(r.Info.Instance))
	if err != nil {
		return nil, err
	}
	f.Header, f.Operator = contracts.NewHeader(contracts.TypeSessionForward), op
	var resp contracts.SessionOpenResponse
	err = rpc.Call(ctx, s.cfg.NC, subj, f, &resp)
	if contracts.CodeOf(err) == contracts.CodeUnavailable {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "session %s is relayed by broker instance %s, which does not answer; its sessions end at the next sweep", id, r.Info.Instance)
	}
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// forwarded serves this instance's forward subject: the join or end of a
// session it relays, on behalf of the operator another instance named.
func (s *Service) forwarded(ctx context.Context, from contracts.SubjectInfo, f *contracts.SessionForward) (*contracts.SessionOpenResponse, error) {
	op := contracts.SubjectInfo{Site: from.Site, Space: "op", Principal: f.Operator, Direction: "up"}
	switch {
	case f.Join != nil && f.End != nil:
		return nil, contracts.Errorf(contracts.CodeBadRequest, "a forward carries a join or an end, not both")
	case f.Join != nil:
		op.Kind = contracts.KindSessionJoin
		return s.joinLocal(ctx, op, f.Join)
	default:
		op.Kind = contracts.KindSessionEnd
		return s.endLocal(ctx, op, f.End)
	}
}
