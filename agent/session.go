package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/inventory"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// Remote sessions on the agent's side.
//
// The broker sends a contracts.SignedGrant on the agent's down subject
// session.grant. The agent verifies it (VerifyGrant, then the replay check
// against the grant IDs kept in state.db), re-checks it against its own
// policy (grantAccess), asks the logged-on user when the grant or the local
// policy wants consent (consent.go), then subscribes to the session's down
// data subject, answers with a contracts.SessionGrantAnswer and runs the
// session: a shell in a PTY (session_shell_unix.go), a TCP tunnel to a
// loopback port (session_tunnel.go) or the user's shared terminal
// (assist.go). A join grant adds an operator to a running session.
//
// Frames (contracts: data, ack, resize, eof, end) travel on the session's
// data subjects. The session's subscription callback never blocks: acks,
// resizes and ends are handled at once, input is queued to a writer that
// writes it, then acknowledges it. Output goes through a contracts.Window:
// with SessionWindow frames unacknowledged the agent stops reading the PTY
// or the connection, so nothing grows while the operator lags.

// Timing of a session's end.
const (
	drainTimeout = 5 * time.Second // output still read after a shell exits
	killGrace    = 2 * time.Second // SIGHUP, then SIGKILL this much later
	stopTimeout  = 5 * time.Second // Close waits this long for sessions to finish
)

// sessionManager holds the sessions running and the prompts waiting.
type sessionManager struct {
	mu      sync.Mutex
	active  map[string]*session
	prompts map[string]*prompt     // by prompt ID (the grant's ID)
	shared  map[string]*sharedTerm // assist terminals by request ID (assist.go)
	closed  bool
	wg      sync.WaitGroup // grant handlers and sessions

	indicatorMu sync.Mutex // one write of the indicator file at a time
}

func newSessionManager() *sessionManager {
	return &sessionManager{active: map[string]*session{}, prompts: map[string]*prompt{}, shared: map[string]*sharedTerm{}}
}

// track counts a goroutine of the manager; false once it is closed.
func (m *sessionManager) track() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	return true
}

func (m *sessionManager) get(id string) *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active[id]
}

// close ends every session (abnormally: the agent stops) and waits for
// them, at most stopTimeout.
func (m *sessionManager) close() {
	m.mu.Lock()
	m.closed = true
	running := make([]*session, 0, len(m.active))
	for _, s := range m.active {
		running = append(running, s)
	}
	m.mu.Unlock()
	for _, s := range running {
		s.stop(contracts.SessionEnd{Reason: "the agent stopped", By: "client", Abnormal: true}, true)
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopTimeout):
	}
}

// backend is what a session connects the operator to: a PTY, a TCP
// connection or the user's shared terminal.
type backend interface {
	// Read reads output for the operator; an error ends the output.
	Read(p []byte) (int, error)
	// Write writes the operator's input.
	Write(p []byte) (int, error)
	// Resize sets the terminal size (a no-op for a tunnel).
	Resize(cols, rows uint16) error
	// CloseWrite says the operator sends no more input (a tunnel's half
	// close; a no-op for terminals).
	CloseWrite() error
	// Done delivers, once, how the backend ended on its own (the shell
	// exited, the tunnel closed both ways or failed).
	Done() <-chan contracts.SessionEnd
	// Stop ends it now (kills the shell, closes the connection);
	// idempotent.
	Stop()
}

// session is one running session.
type session struct {
	a       *Agent
	info    contracts.SessionInfo // fixed fields: ID, client, operator, kind, port, command, consent, times
	access  string                // the primary operator's enforced access
	user    string                // who consented
	nc      *nats.Conn
	up      string // the agent's up data subject of the session
	sub     *nats.Subscription
	out     *contracts.Window
	input   chan inFrame
	be      backend
	shared  *sharedTerm // the assist terminal (assist sessions)
	logSeq  uint64
	final   contracts.SessionInfo // as it ended; set before done is closed
	started time.Time

	mu           sync.Mutex
	participants []contracts.SessionParticipant
	outClosed    bool // the window is closed: contracts.Window.Ack must not be called after Close

	bytesIn, bytesOut, dropped atomic.Int64
	stopCh                     chan stopRequest // buffered 1: the first request wins
	quit                       chan struct{}    // closed when the session winds down
	done                       chan struct{}    // closed when it is cleaned up
}

// inFrame is an input frame queued for the writer.
type inFrame struct {
	seq  uint64
	data []byte
	from string
	eof  bool
	drop bool // consumed without being written (too large)
}

type stopRequest struct {
	end  contracts.SessionEnd
	send bool // send the end frame (not when the broker ended it)
}

// stop asks the session to end with end; the first request wins.
func (s *session) stop(end contracts.SessionEnd, send bool) {
	select {
	case s.stopCh <- stopRequest{end: end, send: send}:
	default:
	}
}

// onSessionGrant answers a grant on its own goroutine: the answer may wait
// for the user's consent, and grants must not queue behind one another.
func (a *Agent) onSessionGrant(ctx context.Context, m *nats.Msg) {
	if !a.sess.track() {
		return
	}
	go func() {
		defer a.sess.wg.Done()
		ctx, span := telemetry.Tracer(tracerName).Start(ctx, "agent.session.grant")
		defer span.End()
		ans, start := a.takeGrant(ctx, m.Data)
		data, _ := json.Marshal(ans)
		if err := m.Respond(data); err != nil {
			a.log.Warn("session grant answer not sent", "session", ans.Session, "err", err)
			if start != nil {
				start(false)
			}
			return
		}
		if start != nil {
			start(true)
		}
	}()
}

// takeGrant decides on a grant. When it accepts a new session, start
// runs the session (ok: the answer was sent) or abandons it.
func (a *Agent) takeGrant(ctx context.Context, data []byte) (contracts.SessionGrantAnswer, func(ok bool)) {
	ans := contracts.SessionGrantAnswer{Header: contracts.NewHeader(contracts.TypeSessionGrantAnswer)}
	now := time.Now().UTC()
	id, ok := a.Identity()
	if !ok {
		ans.Deny, ans.Reason = contracts.DenyClient, "this agent is not enrolled"
		return ans, nil
	}
	g, d := verifyGrant(data, id, now)
	if g != nil {
		ans.Session = g.Session
	}
	if d == nil {
		d = a.checkReplay(g, now)
	}
	var (
		access   string
		consent  string
		user     string
		joined   *session
		shared   *sharedTerm
		pol      state.PolicyState
		polErr   error
		prompted bool
	)
	if d == nil {
		if pol, polErr = a.store.Policy(); polErr != nil {
			d = refuse(contracts.DenyClient, "the agent cannot read its policy: %v", polErr)
		}
	}
	if d == nil {
		d = a.checkVia(g, pol)
	}
	if d == nil {
		switch {
		case g.Join:
			if joined = a.sess.get(g.Session); joined == nil {
				d = refuse(contracts.DenyClient, "no session %s runs on this client to join", g.Session)
			} else if g.Kind != contracts.SessionObserve && g.Kind != joined.info.Kind {
				d = refuse(contracts.DenyClient, "a %s grant cannot join session %s, a %s session", g.Kind, g.Session, joined.info.Kind)
			} else {
				access, d = grantAccess(g, joined.info.Kind, pol)
			}
		case a.sess.get(g.Session) != nil:
			d = refuse(contracts.DenyClient, "session %s already runs on this client", g.Session)
		case g.Kind == contracts.SessionAssist:
			if access, d = grantAccess(g, g.Kind, pol); d == nil {
				shared, d = a.assistTarget(g, pol)
			}
		default:
			access, d = grantAccess(g, g.Kind, pol)
		}
	}
	// The broker waits AnswerWithin for this answer: the prompt ends in
	// time for the answer to reach it, and an acceptance later than that
	// (the broker has refused the session already) starts nothing.
	var answerBy time.Time
	if g != nil && g.AnswerWithin > 0 {
		answerBy = now.Add(time.Duration(g.AnswerWithin) - answerMargin)
	}
	if d == nil {
		consent, user, prompted, d = a.consent(ctx, g, access, joined, shared, boundPrompt(pol, answerBy))
	}
	if d == nil && prompted && !answerBy.IsZero() && time.Now().After(answerBy) {
		consent = contracts.ConsentTimeout
		d = refuse(contracts.DenyConsent, "the user %s answered after the site stopped waiting for the answer (%s after the grant)", user, contracts.HumanDuration(time.Duration(g.AnswerWithin)))
	}
	if d == nil && joined != nil {
		select {
		case <-joined.quit:
			d = refuse(contracts.DenyClient, "session %s ended while the join waited for consent", g.Session)
		default:
		}
	}
	if d != nil {
		ans.Deny, ans.Reason = d.deny, d.reason
		ans.Consent, ans.User = consent, user
		a.log.Warn("session grant refused", "session", ans.Session, "deny", d.deny, "reason", d.reason)
		if g != nil {
			a.logGrant(g, access, consent, user, d, now)
		}
		return ans, nil
	}
	ans.Accepted, ans.Access, ans.Consent, ans.User = true, access, consent, user
	if joined != nil {
		joined.addParticipant(g.Operator, access, now)
		if joined.shared != nil {
			joined.shared.joined(g.Session, g.Operator, access)
		}
		a.log.Info("operator joined the session", "session", g.Session, "operator", g.Operator, "access", access, "consent", consent, "prompted", prompted)
		a.logGrant(g, access, consent, user, nil, now)
		a.sess.updateIndicator(a)
		return ans, nil
	}
	s, err := a.newSession(ctx, g, id, access, consent, user, shared)
	if err != nil {
		d := refuse(contracts.DenyClient, "%v", err)
		ans.Accepted, ans.Access, ans.Deny, ans.Reason = false, "", d.deny, d.reason
		a.log.Warn("session not started", "session", g.Session, "kind", g.Kind, "err", err)
		a.logGrant(g, access, consent, user, d, now)
		return ans, nil
	}
	return ans, func(ok bool) {
		if !ok {
			s.stop(contracts.SessionEnd{Reason: "the grant answer could not be sent", By: "client", Abnormal: true}, false)
		}
		a.sess.wg.Go(func() { s.run(ctx) })
	}
}

// answerMargin is the time an answer to a grant is given to reach the
// broker before the grant's AnswerWithin runs out.
const answerMargin = 5 * time.Second

// boundPrompt is pol with its consent prompt ending by answerBy at the
// latest (zero: no bound), so that the user's answer reaches the broker
// while it still waits: the lesser of the local promptTimeout and what is
// left until then (at least a second; an answer after answerBy is refused
// all the same).
func boundPrompt(pol state.PolicyState, answerBy time.Time) state.PolicyState {
	if answerBy.IsZero() {
		return pol
	}
	left := max(time.Until(answerBy), time.Second)
	if localConsentRules(pol).timeout <= left {
		return pol
	}
	var rt contracts.RemoteToolsSettings
	if pol.Settings.RemoteTools != nil {
		rt = *pol.Settings.RemoteTools // a copy: pol's sections are shared with the store's
	}
	d := contracts.Duration(left)
	rt.PromptTimeout = &d
	pol.Settings.RemoteTools = &rt
	return pol
}

// checkReplay takes the grant's ID: a grant is used once.
func (a *Agent) checkReplay(g *contracts.SessionGrant, now time.Time) *denial {
	fresh, err := a.store.UseGrant(g.ID, g.Expires.Add(grantMemory), now)
	switch {
	case err != nil:
		return refuse(contracts.DenyClient, "the agent cannot record the grant: %v", err)
	case !fresh:
		return refuse(contracts.DenyClient, "grant replayed: grant %s was already used", g.ID)
	}
	return nil
}

// newSession starts the backend, subscribes to the session's input and
// registers the session; run (after the answer is sent) pumps its frames.
func (a *Agent) newSession(ctx context.Context, g *contracts.SessionGrant, id state.Identity, access, consent, user string, shared *sharedTerm) (*session, error) {
	nc := a.live.Load()
	if nc == nil || nc.IsClosed() {
		return nil, errors.New("the agent has no connection to the site")
	}
	up, err := contracts.AgentUp(id.Site, id.ClientID, contracts.SessionDataKind(g.Session))
	if err != nil {
		return nil, err
	}
	down, err := contracts.AgentDown(id.Site, id.ClientID, contracts.SessionDataKind(g.Session))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	s := &session{
		a: a, access: access, user: user, nc: nc, up: up,
		out:     contracts.NewWindow(contracts.SessionWindow),
		input:   make(chan inFrame, 2*contracts.SessionWindow),
		stopCh:  make(chan stopRequest, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		started: now,
		info: contracts.SessionInfo{
			ID: g.Session, Client: contracts.Named{ID: id.ClientID, Name: a.cfg.Name}, Operator: g.Operator,
			Kind: g.Kind, Access: access, Port: g.Port, Command: g.Command, State: contracts.SessionActive,
			Consent: consent, Requested: g.Issued, Started: now,
		},
		participants: []contracts.SessionParticipant{{Operator: g.Operator, Access: access, Joined: now}},
	}
	switch g.Kind {
	case contracts.SessionShell:
		s.be, err = a.startShell(g)
	case contracts.SessionTunnel:
		s.be, err = a.dialTunnel(ctx, g)
	case contracts.SessionAssist:
		s.shared = shared
		s.be, err = shared.attach(s)
	default:
		err = fmt.Errorf("session kind %q cannot start", g.Kind)
	}
	if err != nil {
		return nil, err
	}
	a.sess.mu.Lock()
	if a.sess.closed || a.sess.active[g.Session] != nil {
		a.sess.mu.Unlock()
		s.be.Stop()
		return nil, errors.New("the agent is stopping, or the session already runs")
	}
	a.sess.active[g.Session] = s
	a.sess.mu.Unlock()
	// Subscribed before the answer leaves on the same connection, so the
	// server knows the subscription before the broker sends a frame.
	if s.sub, err = nc.Subscribe(down, s.onFrame); err != nil {
		a.sess.remove(s)
		s.be.Stop()
		return nil, fmt.Errorf("subscribe to the session's input: %w", err)
	}
	a.log.Info("remote session started", "session", g.Session, "operator", g.Operator, "kind", g.Kind, "access", access,
		"consent", consent, "user", user, "port", g.Port, "command", g.Command)
	rec := state.SessionRecord{SessionInfo: s.snapshot(), Accepted: true, User: user, At: now}
	if s.logSeq, err = a.store.LogSession(rec); err != nil {
		a.log.Warn("session log not written", "session", g.Session, "err", err)
	}
	a.sess.updateIndicator(a)
	if s.shared != nil {
		s.shared.joined(s.info.ID, s.info.Operator, access)
	}
	return s, nil
}

func (m *sessionManager) remove(s *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active[s.info.ID] == s {
		delete(m.active, s.info.ID)
	}
}

// logGrant writes a decided grant that did not start a session (a join,
// or a refusal) to the session log.
func (a *Agent) logGrant(g *contracts.SessionGrant, access, consent, user string, d *denial, at time.Time) {
	rec := state.SessionRecord{
		SessionInfo: contracts.SessionInfo{
			ID: g.Session, Client: contracts.Named{ID: g.ClientID, Name: a.cfg.Name}, Operator: g.Operator, Kind: g.Kind,
			Access: access, Port: g.Port, Command: g.Command, Consent: consent, Requested: g.Issued,
			Participants: []contracts.SessionParticipant{},
		},
		Join: g.Join, Accepted: d == nil, User: user, At: at,
	}
	if d != nil {
		rec.State, rec.Deny, rec.Reason = contracts.SessionEnded, d.deny, d.reason
	} else {
		rec.State = contracts.SessionActive
	}
	if _, err := a.store.LogSession(rec); err != nil {
		a.log.Warn("session log not written", "session", g.Session, "err", err)
	}
}

// run pumps the session's frames until it ends, then cleans up.
func (s *session) run(ctx context.Context) {
	defer close(s.done)
	a := s.a
	outDone := make(chan struct{})
	go func() {
		if err := s.pumpOutput(ctx); err != nil && !errors.Is(err, contracts.ErrWindowClosed) {
			a.log.Debug("session output ended", "session", s.info.ID, "err", err)
		}
		close(outDone)
	}()
	inDone := make(chan struct{})
	go func() { s.writeInput(); close(inDone) }()

	var (
		end  contracts.SessionEnd
		send = true
	)
	select {
	case end = <-s.be.Done():
		// Deliver what the shell wrote last (or the tunnel's eof) before
		// the end frame. A tunnel's output is over (read to its end) or
		// broken: closing the connection lets a blocked read return.
		if s.info.Kind == contracts.SessionTunnel {
			s.be.Stop()
		}
		select {
		case <-outDone:
		case <-time.After(drainTimeout):
		}
	case r := <-s.stopCh:
		end, send = r.end, r.send
	case <-ctx.Done():
		end = contracts.SessionEnd{Reason: "the agent stopped", By: "client", Abnormal: true}
	}
	close(s.quit)
	s.mu.Lock()
	s.outClosed = true
	s.out.Close()
	s.mu.Unlock()
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
	s.be.Stop()
	for _, ch := range []<-chan struct{}{inDone, outDone} {
		select {
		case <-ch:
		case <-time.After(killGrace + time.Second):
			a.log.Warn("a session's pump did not stop", "session", s.info.ID)
		}
	}
	if send {
		data, _ := json.Marshal(end)
		if err := s.publish(contracts.FrameEnd, 0, data); err != nil {
			a.log.Warn("session end frame not sent", "session", s.info.ID, "err", err)
		} else {
			_ = s.nc.FlushTimeout(time.Second)
		}
	}
	info := s.snapshot()
	info.State, info.Ended, info.EndReason, info.Abnormal, info.ExitCode = contracts.SessionEnded, time.Now().UTC(), end.Reason, end.Abnormal, end.ExitCode
	for i := range info.Participants {
		info.Participants[i].Left = info.Ended
	}
	if _, err := a.store.LogSession(state.SessionRecord{Seq: s.logSeq, SessionInfo: info, Accepted: true, User: s.user, At: s.started}); err != nil &&
		!errors.Is(err, state.ErrClosed) {
		a.log.Warn("session log not written", "session", s.info.ID, "err", err)
	}
	s.final = info
	a.sess.remove(s)
	if s.shared != nil {
		s.shared.ended(s.info.ID, end)
	}
	a.log.Info("remote session ended", "session", s.info.ID, "operator", s.info.Operator, "kind", s.info.Kind, "reason", end.Reason,
		"by", end.By, "bytes_in", info.BytesIn, "bytes_out", info.BytesOut, "input_dropped", s.dropped.Load())
	a.sess.updateIndicator(a)
}

// pumpOutput reads the backend and publishes data frames, each after the
// window has room. A tunnel's end of output is an eof frame.
func (s *session) pumpOutput(ctx context.Context) error {
	buf := make([]byte, contracts.MaxFrameBytes)
	for {
		n, err := s.be.Read(buf)
		if n > 0 {
			seq, werr := s.out.Next(ctx)
			if werr != nil {
				return werr
			}
			// PublishMsg copies the body: buf is free again at once.
			if perr := s.publish(contracts.FrameData, seq, buf[:n]); perr != nil {
				return perr
			}
			s.bytesOut.Add(int64(n))
		}
		if err != nil {
			if errors.Is(err, io.EOF) && s.info.Kind == contracts.SessionTunnel {
				if perr := s.publish(contracts.FrameEOF, 0, nil); perr != nil {
					return perr
				}
			}
			return err
		}
	}
}

// writeInput writes queued input to the backend and acknowledges every
// input frame once consumed, written or dropped: an operator without full
// access never reaches the backend, whatever the grant said.
func (s *session) writeInput() {
	for {
		var f inFrame
		select {
		case f = <-s.input:
		case <-s.quit:
			return
		}
		switch {
		case f.eof:
			if s.mayWrite(f.from, true) {
				if err := s.be.CloseWrite(); err != nil {
					s.a.log.Debug("session half close failed", "session", s.info.ID, "err", err)
				}
			}
			continue
		case f.drop:
			s.dropped.Add(1)
		case !s.mayWrite(f.from, false):
			s.dropped.Add(1)
			s.a.log.Debug("session input dropped: the sender has no full access", "session", s.info.ID, "from", f.from, "bytes", len(f.data))
		default:
			if _, err := s.be.Write(f.data); err != nil {
				s.a.log.Debug("session input not written", "session", s.info.ID, "err", err)
			} else {
				s.bytesIn.Add(int64(len(f.data)))
			}
		}
		if err := s.publish(contracts.FrameAck, f.seq, nil); err != nil {
			s.a.log.Debug("session ack not sent", "session", s.info.ID, "err", err)
		}
	}
}

// mayWrite reports whether input from operator from reaches the backend:
// only a participant with full access's does. A control frame (eof,
// resize) the broker sends without naming an operator is let through.
func (s *session) mayWrite(from string, control bool) bool {
	if from == "" {
		return control
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.participants {
		if p.Operator == from {
			return p.Access == contracts.AccessFull
		}
	}
	return false
}

// onFrame is the subscription callback of the session's input subject. It
// never blocks.
func (s *session) onFrame(m *nats.Msg) {
	kind := m.Header.Get(contracts.HdrFrame)
	from := m.Header.Get(contracts.HdrFrom)
	switch kind {
	case contracts.FrameAck:
		if seq, err := strconv.ParseUint(m.Header.Get(contracts.HdrSeq), 10, 64); err == nil {
			s.mu.Lock()
			if !s.outClosed {
				s.out.Ack(seq)
			}
			s.mu.Unlock()
		}
	case contracts.FrameData:
		seq, err := strconv.ParseUint(m.Header.Get(contracts.HdrSeq), 10, 64)
		if err != nil || seq == 0 {
			s.dropped.Add(1)
			s.a.log.Debug("session input without a sequence number dropped", "session", s.info.ID, "seq", m.Header.Get(contracts.HdrSeq))
			return
		}
		s.queue(inFrame{seq: seq, data: m.Data, from: from, drop: len(m.Data) > contracts.MaxFrameBytes})
	case contracts.FrameEOF:
		s.queue(inFrame{eof: true, from: from})
	case contracts.FrameResize:
		var r contracts.SessionResize
		if err := json.Unmarshal(m.Data, &r); err != nil || r.Cols == 0 || r.Rows == 0 {
			s.a.log.Debug("bad resize frame", "session", s.info.ID, "body", truncate(string(m.Data), 100))
			return
		}
		if !s.mayWrite(from, true) {
			return
		}
		if err := s.be.Resize(r.Cols, r.Rows); err != nil {
			s.a.log.Debug("resize failed", "session", s.info.ID, "err", err)
		}
	case contracts.FrameEnd:
		var e contracts.SessionEnd
		_ = json.Unmarshal(m.Data, &e)
		if e.Reason == "" {
			e.Reason = "ended by the site"
		}
		if e.By == "" {
			e.By = "site"
		}
		s.stop(e, false)
	default:
		s.a.log.Debug("unknown session frame", "session", s.info.ID, "frame", kind)
	}
}

// queue hands an input frame to the writer. The broker keeps at most
// SessionWindow data frames unacknowledged; one that sends more ends the
// session rather than grow a buffer.
func (s *session) queue(f inFrame) {
	select {
	case s.input <- f:
	default:
		s.stop(contracts.SessionEnd{Reason: "the site sent more input than the flow-control window allows", By: "client", Abnormal: true}, true)
	}
}

// publish sends one frame on the session's up subject.
func (s *session) publish(frame string, seq uint64, body []byte) error {
	msg := nats.NewMsg(s.up)
	msg.Header.Set(contracts.HdrFrame, frame)
	if seq > 0 {
		msg.Header.Set(contracts.HdrSeq, strconv.FormatUint(seq, 10))
	}
	msg.Data = body
	return s.nc.PublishMsg(msg)
}

func (s *session) addParticipant(operator, access string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.participants {
		if p.Operator == operator {
			s.participants[i].Access = access
			return
		}
	}
	s.participants = append(s.participants, contracts.SessionParticipant{Operator: operator, Access: access, Joined: at})
}

// snapshot is the session as SessionInfo.
func (s *session) snapshot() contracts.SessionInfo {
	info := s.info
	info.Command = slices.Clone(s.info.Command)
	s.mu.Lock()
	info.Participants = slices.Clone(s.participants)
	s.mu.Unlock()
	info.BytesIn, info.BytesOut = s.bytesIn.Load(), s.bytesOut.Load()
	return info
}

// Sessions lists the sessions running, oldest first.
func (a *Agent) Sessions() []contracts.SessionInfo {
	a.sess.mu.Lock()
	running := make([]*session, 0, len(a.sess.active))
	for _, s := range a.sess.active {
		running = append(running, s)
	}
	a.sess.mu.Unlock()
	out := make([]contracts.SessionInfo, 0, len(running))
	for _, s := range running {
		out = append(out, s.snapshot())
	}
	slices.SortFunc(out, func(x, y contracts.SessionInfo) int {
		if c := x.Started.Compare(y.Started); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// EndSession ends the session id (or the one session whose ID starts with
// it) as the user on this machine does: the operator sees "ended by the
// user on the client".
func (a *Agent) EndSession(ctx context.Context, id string) (contracts.SessionInfo, error) {
	s, err := a.findSession(id)
	if err != nil {
		return contracts.SessionInfo{}, err
	}
	s.stop(contracts.SessionEnd{Reason: "ended by the user on the client", By: "user"}, true)
	select {
	case <-s.done:
	case <-ctx.Done():
		return contracts.SessionInfo{}, fmt.Errorf("session %s is ending, but did not end in time: %w", s.info.ID, ctx.Err())
	}
	return s.final, nil
}

func (a *Agent) findSession(id string) (*session, error) {
	a.sess.mu.Lock()
	defer a.sess.mu.Unlock()
	if s := a.sess.active[id]; s != nil {
		return s, nil
	}
	var found []*session
	for sid, s := range a.sess.active {
		if id != "" && strings.HasPrefix(sid, id) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("no session %q runs on this client", id)
	}
	return nil, fmt.Errorf("%d sessions start with %q: give more of the ID", len(found), id)
}

// SessionLog is the session log, newest first (limit <= 0: all of it).
func (a *Agent) SessionLog(limit int) ([]state.SessionRecord, error) {
	return a.store.SessionLog(limit)
}

// sessionHandlers are the control verbs of sessions and consent.
func (a *Agent) sessionHandlers() control.Handlers {
	return control.Handlers{
		control.VerbSessions: func(context.Context, []string) (any, error) {
			return contracts.SessionListResponse{Header: contracts.NewHeader(contracts.TypeSessionListResponse), Sessions: a.Sessions()}, nil
		},
		control.VerbSessionEnd: func(ctx context.Context, args []string) (any, error) {
			if len(args) != 1 {
				return nil, errors.New("session-end takes one session ID")
			}
			info, err := a.EndSession(ctx, args[0])
			if err != nil {
				return nil, err
			}
			return contracts.SessionOpenResponse{Header: contracts.NewHeader(contracts.TypeSessionOpenResponse), Session: info}, nil
		},
		control.VerbSessionLog: func(_ context.Context, args []string) (any, error) {
			limit := 0
			if len(args) > 0 {
				n, err := strconv.Atoi(args[0])
				if err != nil || n < 0 {
					return nil, fmt.Errorf("session-log limit %q: want a number of records", args[0])
				}
				limit = n
			}
			recs, err := a.SessionLog(limit)
			if err != nil {
				return nil, err
			}
			return control.SessionLog{Type: control.TypeSessionLog, Records: recs}, nil
		},
		control.VerbConsent: func(context.Context, []string) (any, error) {
			return control.ConsentList{Type: control.TypeConsentList, Prompts: a.ConsentPrompts()}, nil
		},
		control.VerbConsentAnswer: func(_ context.Context, args []string) (any, error) {
			if len(args) != 3 || (args[1] != "accept" && args[1] != "deny") {
				return nil, errors.New("consent-answer takes a prompt ID (or -), accept or deny, and the user answering")
			}
			id := args[0]
			if id == "-" {
				id = ""
			}
			return a.AnswerConsent(id, args[1] == "accept", args[2])
		},
	}
}

// loggedOnUsers lists who is logged on: Config.LoggedOnUsers, else the
// collector's own list of them (inventory.UserLister), else the users a
// whole inventory collection reports. An error (the collector could not
// read who is logged on) refuses a session that needs consent: nobody
// logged on must be known, not assumed.
func (a *Agent) loggedOnUsers(ctx context.Context) ([]string, error) {
	if a.cfg.LoggedOnUsers != nil {
		return a.cfg.LoggedOnUsers(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ul, ok := a.cfg.Inventory.(inventory.UserLister); ok {
		return ul.LoggedOnUsers(ctx)
	}
	inv, err := a.cfg.Inventory.Collect(ctx)
	var partial *inventory.PartialError
	switch {
	case errors.As(err, &partial):
		if slices.Contains(partial.Sections(), contracts.InventorySectionUsers) {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	return inv.Users, nil
}
