package agent

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// Remote Assistance: `steward-agent assist` runs a shell in a PTY on the
// user's own terminal and shares it with the agent over the control socket
// (control.VerbAssist, a streaming connection). The agent asks the site
// for help (contracts.SessionAssistRequest on assist.request) and keeps
// the shared terminal registered by the request's ID.
//
//   - A grant of kind assist whose Assist is that ID (solicited: a helper
//     took the request) connects the helper at once: the user asked.
//     Solicited assistance must be on in the effective Remote Assistance
//     settings.
//   - A grant of kind assist without Assist is an offer (unsolicited): it
//     needs unsolicited assistance on and a shared terminal without a
//     helper, and the user's consent, asked in the assist command itself
//     and in `steward-agent consent`.
//
// The access is the lesser of the grant's and the effective Remote
// Assistance level. One helper at a time is connected to a terminal
// (others may join the session). Output flows with credits
// (control.AssistCredits); the helper's window holds the terminal back.

// maxAssistMessage bounds the user's message to the helpers.
const maxAssistMessage = 1000

// sharedTerm is a user's terminal shared for assistance.
type sharedTerm struct {
	a       *Agent
	id      string // the assistance request's ID
	user    string
	created time.Time
	conn    net.Conn
	wmu     sync.Mutex // one message written at a time

	mu      sync.Mutex
	session *session      // the helper's session; nil while none
	outCh   chan []byte   // output for the session's pump; cap AssistCredits
	inAck   chan struct{} // the command wrote the last input (cap 1)
	gone    chan struct{}
	end     chan contracts.SessionEnd // the attached session's backend Done
}

// send writes one message to the assist command.
func (t *sharedTerm) send(m control.AssistMsg) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	_ = t.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err = t.conn.Write(append(data, '\n'))
	return err
}

func (t *sharedTerm) showPrompt(p control.ConsentPrompt) {
	_ = t.send(control.AssistMsg{Type: control.AssistPrompt, Prompt: &p})
}

func (t *sharedTerm) clearPrompt(id string) {
	_ = t.send(control.AssistMsg{Type: control.AssistPromptDone, Text: id})
}

// busy returns the session of the helper connected, or nil.
func (t *sharedTerm) busy() *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.session
}

// attach connects session s to the terminal: s's backend reads the
// terminal's output and types into it.
func (t *sharedTerm) attach(s *session) (backend, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.gone:
		return nil, fmt.Errorf("the shared terminal of assistance request %s is gone", t.id)
	default:
	}
	if t.session != nil {
		return nil, fmt.Errorf("assistance request %s already has a helper (session %s)", t.id, t.session.info.ID)
	}
	t.session = s
	t.end = make(chan contracts.SessionEnd, 1)
	return &assistBackend{t: t, s: s, end: t.end}, nil
}

// detach disconnects s; the output it did not take is acknowledged, so
// the command has all its credits again.
func (t *sharedTerm) detach(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.session != s {
		return
	}
	t.session = nil
	for {
		select {
		case <-t.outCh:
			_ = t.send(control.AssistMsg{Type: control.AssistOutputAck})
		default:
			return
		}
	}
}

// output takes what the terminal showed: the helper's pump gets it, or,
// with no helper, it is acknowledged at once.
func (t *sharedTerm) output(data []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.session == nil {
		return t.send(control.AssistMsg{Type: control.AssistOutputAck})
	}
	select {
	case t.outCh <- data:
		return nil
	default:
		return fmt.Errorf("the assist command sent more than %d output messages unacknowledged", control.AssistCredits)
	}
}

// assistBackend is a helper's session on a shared terminal.
type assistBackend struct {
	t    *sharedTerm
	s    *session
	end  chan contracts.SessionEnd
	rest []byte
	once sync.Once
}

func (b *assistBackend) Read(p []byte) (int, error) {
	if len(b.rest) == 0 {
		select {
		case data := <-b.t.outCh:
			b.rest = data
			if err := b.t.send(control.AssistMsg{Type: control.AssistOutputAck}); err != nil {
				return 0, err
			}
		case <-b.t.gone:
			return 0, io.EOF
		}
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

// Write types p into the shared terminal and returns once the command
// wrote it there: the helper's frame is acknowledged only then.
func (b *assistBackend) Write(p []byte) (int, error) {
	select { // an ack left over from a write that gave up
	case <-b.t.inAck:
	default:
	}
	if err := b.t.send(control.AssistMsg{Type: control.AssistInput, Data: p}); err != nil {
		return 0, err
	}
	select {
	case <-b.t.inAck:
		return len(p), nil
	case <-b.t.gone:
		return 0, io.ErrClosedPipe
	case <-b.s.quit:
		return 0, io.ErrClosedPipe
	}
}

// Resize: the user's own terminal decides the size.
func (b *assistBackend) Resize(uint16, uint16) error { return nil }

func (b *assistBackend) CloseWrite() error { return nil }

func (b *assistBackend) Done() <-chan contracts.SessionEnd { return b.end }

func (b *assistBackend) Stop() { b.once.Do(func() { b.t.detach(b.s) }) }

// ended tells the user that a helper's session ended.
func (t *sharedTerm) ended(id string, end contracts.SessionEnd) {
	_ = t.send(control.AssistMsg{Type: control.AssistEnded, Session: id, Text: end.Reason})
}

// joined tells the user that a helper joined the session.
func (t *sharedTerm) joined(id, operator, access string) {
	_ = t.send(control.AssistMsg{Type: control.AssistConnected, Session: id, Operator: operator, Access: access})
}

// assistTarget finds the shared terminal an assist grant is for, and
// checks the effective Remote Assistance settings.
func (a *Agent) assistTarget(g *contracts.SessionGrant, pol state.PolicyState) (*sharedTerm, *denial) {
	eff, _ := effective(pol)
	a.sess.mu.Lock()
	defer a.sess.mu.Unlock()
	if g.Assist != "" {
		if !*eff.Solicited {
			return nil, refuse(contracts.DenyPolicy, "solicited assistance is off on this client (remoteAssistance.solicited)")
		}
		t := a.sess.shared[g.Assist]
		if t == nil {
			return nil, refuse(contracts.DenyAssistClosed, "no assistance request %s is open on this client (its steward-agent assist is not running)", g.Assist)
		}
		if s := t.busy(); s != nil {
			return nil, refuse(contracts.DenyClient, "assistance request %s already has a helper (session %s)", g.Assist, s.info.ID)
		}
		return t, nil
	}
	if !*eff.Unsolicited {
		return nil, refuse(contracts.DenyPolicy, "unsolicited assistance (offers) is off on this client (remoteAssistance.unsolicited)")
	}
	var target *sharedTerm
	for _, t := range a.sess.shared {
		if t.busy() == nil && (target == nil || t.created.After(target.created)) {
			target = t
		}
	}
	if target == nil {
		return nil, refuse(contracts.DenyClient, "nobody on this client shares a terminal for assistance (steward-agent assist is not running, or already has a helper)")
	}
	return target, nil
}

// serveAssist serves the assist stream of one `steward-agent assist`:
// args are the user and the message (base64url).
func (a *Agent) serveAssist(ctx context.Context, args []string, conn net.Conn) {
	fail := func(format string, v ...any) {
		data, _ := json.Marshal(control.ErrorAnswer{Type: control.TypeError, Error: fmt.Sprintf(format, v...)})
		_, _ = conn.Write(append(data, '\n'))
	}
	if len(args) < 1 || len(args) > 2 {
		fail("assist takes the user and a message (base64url)")
		return
	}
	user, message := args[0], ""
	if err := validUser(user); err != nil {
		fail("%v", err)
		return
	}
	if len(args) == 2 {
		b, err := base64.RawURLEncoding.DecodeString(args[1])
		if err != nil || !utf8.Valid(b) || len(b) > maxAssistMessage {
			fail("the message must be base64url text of at most %d bytes", maxAssistMessage)
			return
		}
		message = string(b)
	}
	id, ok := a.Identity()
	if !ok {
		fail("this agent is not enrolled with a site yet")
		return
	}
	pol, err := a.store.Policy()
	if err != nil {
		fail("the agent cannot read its policy: %v", err)
		return
	}
	if eff, _ := effective(pol); !*eff.Solicited || !contracts.AccessAllows(*eff.Level, contracts.AccessView) {
		fail("asking for assistance is off on this client (remoteAssistance: solicited %v, level %s)", *eff.Solicited, *eff.Level)
		return
	}
	nc := a.live.Load()
	if nc == nil || !nc.IsConnected() {
		fail("the agent is not connected to its site; try again when \"steward-agent status\" says connected")
		return
	}
	t := &sharedTerm{a: a, id: uuid.NewString(), user: user, created: time.Now(), conn: conn,
		outCh: make(chan []byte, control.AssistCredits), inAck: make(chan struct{}, 1), gone: make(chan struct{})}
	a.sess.mu.Lock()
	if a.sess.closed {
		a.sess.mu.Unlock()
		fail("the agent is stopping")
		return
	}
	a.sess.shared[t.id] = t // before the request: a helper may answer at once
	a.sess.mu.Unlock()
	defer a.closeShared(t)

	info, err := a.requestAssistance(ctx, nc, id, contracts.SessionAssistRequest{
		Header: contracts.NewHeader(contracts.TypeSessionAssistRequest), Request: t.id, User: user, Message: message})
	if err != nil {
		fail("%v", err)
		return
	}
	a.log.Info("assistance requested", "request", t.id, "user", user)
	if err := t.send(control.AssistMsg{Type: control.AssistReady, Request: t.id, Text: info}); err != nil {
		return
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		line, err := control.ReadLine(r)
		if err != nil {
			return // the command ended, or the agent stops (the connection is closed)
		}
		var m control.AssistMsg
		if err := json.Unmarshal(line, &m); err != nil {
			a.log.Warn("bad message from steward-agent assist", "request", t.id, "err", err)
			return
		}
		switch m.Type {
		case control.AssistOutput:
			if len(m.Data) > contracts.MaxFrameBytes {
				a.log.Warn("steward-agent assist sent too much output at once", "request", t.id, "bytes", len(m.Data))
				return
			}
			if err := t.output(m.Data); err != nil {
				a.log.Warn("steward-agent assist broke the flow control", "request", t.id, "err", err)
				return
			}
		case control.AssistInputAck:
			select {
			case t.inAck <- struct{}{}:
			default:
			}
		case control.AssistAnswer:
			if _, err := a.answerFor(t, m.Text, m.Accept); err != nil {
				a.log.Info("assist answer not taken", "request", t.id, "err", err)
			}
		case control.AssistEnd:
			if s := t.busy(); s != nil {
				s.stop(contracts.SessionEnd{Reason: "ended by the user on the client", By: "user"}, true)
			}
		default:
			a.log.Debug("unknown message from steward-agent assist", "type", m.Type)
		}
	}
}

// closeShared unregisters a terminal whose command ended: its helper's
// session ends.
func (a *Agent) closeShared(t *sharedTerm) {
	a.sess.mu.Lock()
	delete(a.sess.shared, t.id)
	a.sess.mu.Unlock()
	t.mu.Lock()
	close(t.gone)
	s, end := t.session, t.end
	t.mu.Unlock()
	if s != nil {
		end <- contracts.SessionEnd{Reason: "the user's shared terminal closed", By: "user"}
	}
	a.log.Info("shared terminal closed", "request", t.id, "user", t.user)
}

// answerFor answers, as the terminal's user, a prompt that terminal shows.
func (a *Agent) answerFor(t *sharedTerm, id string, accept bool) (control.ConsentAnswer, error) {
	a.sess.mu.Lock()
	p := a.sess.prompts[id]
	a.sess.mu.Unlock()
	if p == nil || p.shared != t {
		return control.ConsentAnswer{}, fmt.Errorf("no prompt %q is shown on this terminal", id)
	}
	return a.AnswerConsent(id, accept, t.user)
}

// requestAssistance sends the request to the site and returns what the
// site said of it.
func (a *Agent) requestAssistance(ctx context.Context, nc *nats.Conn, id state.Identity, req contracts.SessionAssistRequest) (string, error) {
	subject, err := contracts.AgentUp(id.Site, id.ClientID, contracts.KindAssistRequest)
	if err != nil {
		return "", err
	}
	data, _ := json.Marshal(req)
	msg := nats.NewMsg(subject)
	msg.Data = data
	telemetry.Inject(ctx, msg.Header)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(rctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return "", errors.New("no site service takes requests for assistance (the sessions service is not running)")
	case err != nil:
		return "", fmt.Errorf("the request for assistance got no answer: %w", err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		return "", fmt.Errorf("the site refused the request for assistance: %s (%s)", reply.Header.Get("Nats-Service-Error"), contracts.ParseCode(code))
	}
	var resp contracts.SessionAssistResponse
	if err := contracts.Decode(reply.Data, contracts.TypeSessionAssistResponse, &resp); err != nil {
		return "", fmt.Errorf("the site's answer to the request for assistance: %w", err)
	}
	return fmt.Sprintf("request %s of %s open at the site since %s", resp.Request.ID, resp.Request.User, resp.Request.Created.Local().Format(time.TimeOnly)), nil
}
