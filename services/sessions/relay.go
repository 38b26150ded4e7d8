package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
)

// participant is an operator in a session.
type participant struct {
	operator string
	access   string
	down     string // the operator's down data subject
	sub      *nats.Subscription
	joined   time.Time
	seen     time.Time // the last frame from the operator (ss.mu)
	inFlight int       // input frames sent to the agent and not yet acknowledged
}

// inputRef maps an input frame as the agent numbers it to the operator's
// own numbering: several operators may type into one session, and each
// operator's window counts only its own frames.
type inputRef struct {
	agentSeq uint64
	operator string
	opSeq    uint64
}

// session is an open session of this broker instance.
type session struct {
	svc         *Service
	collections []string

	mu        sync.Mutex
	info      contracts.SessionInfo
	agentDown string
	agentSub  *nats.Subscription
	parts     map[string]*participant
	inSeq     uint64
	inputs    []inputRef
	rec       *recorder
	over      bool

	// answered is closed once open has recorded the agent's answer to the
	// grant (or failed).
	answered     chan struct{}
	answeredOnce sync.Once

	last    atomic.Int64 // unix nanoseconds of the last data frame
	dropped atomic.Int64 // input frames refused (view access, over the window)
}

func (ss *session) touch() { ss.last.Store(time.Now().UnixNano()) }

// subject helpers.
func (s *Service) agentData(client, id, dir string) (string, error) {
	if dir == "up" {
		return contracts.AgentUp(s.cfg.Site, client, contracts.SessionDataKind(id))
	}
	return contracts.AgentDown(s.cfg.Site, client, contracts.SessionDataKind(id))
}

func (s *Service) opData(op, id, dir string) (string, error) {
	if dir == "up" {
		return contracts.OpUp(s.cfg.Site, op, contracts.SessionDataKind(id))
	}
	return contracts.OpDown(s.cfg.Site, op, contracts.SessionDataKind(id))
}

// frame makes a frame message.
func frame(subject, kind string, seq uint64, body []byte) *nats.Msg {
	m := &nats.Msg{Subject: subject, Header: nats.Header{contracts.HdrFrame: []string{kind}}, Data: body}
	if seq > 0 {
		m.Header[contracts.HdrSeq] = []string{strconv.FormatUint(seq, 10)}
	}
	return m
}

func endFrame(subject string, e contracts.SessionEnd) *nats.Msg {
	body, _ := json.Marshal(e)
	return frame(subject, contracts.FrameEnd, 0, body)
}

func seqOf(m *nats.Msg) uint64 {
	n, _ := strconv.ParseUint(m.Header.Get(contracts.HdrSeq), 10, 64)
	return n
}

// attach subscribes to the client's frames of the session.
func (ss *session) attach() error {
	up, err := ss.svc.agentData(ss.info.Client.ID, ss.info.ID, "up")
	if err != nil {
		return err
	}
	if ss.agentDown, err = ss.svc.agentData(ss.info.Client.ID, ss.info.ID, "down"); err != nil {
		return err
	}
	sub, err := ss.svc.cfg.NC.Subscribe(up, ss.fromAgent)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", up, err)
	}
	_ = sub.SetPendingLimits(4*contracts.SessionWindow, 8*contracts.SessionWindow*contracts.MaxFrameBytes)
	ss.agentSub = sub
	return nil
}

// addParticipant subscribes to an operator's frames of the session.
func (ss *session) addParticipant(op, access string) error {
	up, err := ss.svc.opData(op, ss.info.ID, "up")
	if err != nil {
		return err
	}
	down, err := ss.svc.opData(op, ss.info.ID, "down")
	if err != nil {
		return err
	}
	now := ss.svc.cfg.Now().UTC()
	p := &participant{operator: op, access: access, down: down, joined: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if old, ok := ss.parts[op]; ok {
		_ = old.sub.Unsubscribe()
	}
	sub, err := ss.svc.cfg.NC.Subscribe(up, func(m *nats.Msg) { ss.fromOperator(p, m) })
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", up, err)
	}
	_ = sub.SetPendingLimits(4*contracts.SessionWindow, 8*contracts.SessionWindow*contracts.MaxFrameBytes)
	p.sub = sub
	ss.parts[op] = p
	ss.info.Participants = append(ss.info.Participants, contracts.SessionParticipant{Operator: op, Access: access, Joined: p.joined})
	return nil
}

// fromAgent relays a frame of the client to the operators.
func (ss *session) fromAgent(m *nats.Msg) {
	nc := ss.svc.cfg.NC
	switch m.Header.Get(contracts.HdrFrame) {
	case contracts.FrameData:
		ss.touch()
		ss.mu.Lock()
		if ss.over {
			ss.mu.Unlock()
			return
		}
		ss.info.BytesOut += int64(len(m.Data))
		rec := ss.rec
		downs := ss.downs("")
		ss.mu.Unlock()
		for _, d := range downs {
			_ = nc.PublishMsg(&nats.Msg{Subject: d, Header: m.Header, Data: m.Data})
		}
		if rec != nil {
			rec.output(m.Data)
		}
	case contracts.FrameAck:
		// The agent consumed input up to seq: acknowledge each operator's
		// own frames.
		seq := seqOf(m)
		ss.mu.Lock()
		acks := map[string]uint64{}
		n := 0
		for _, in := range ss.inputs {
			if in.agentSeq > seq {
				break
			}
			acks[in.operator] = in.opSeq
			if p := ss.parts[in.operator]; p != nil {
				p.inFlight--
			}
			n++
		}
		ss.inputs = ss.inputs[n:]
		var msgs []*nats.Msg
		for op, s := range acks {
			if p := ss.parts[op]; p != nil {
				msgs = append(msgs, frame(p.down, contracts.FrameAck, s, nil))
			}
		}
		ss.mu.Unlock()
		for _, fm := range msgs {
			_ = nc.PublishMsg(fm)
		}
	case contracts.FrameEOF:
		ss.mu.Lock()
		downs := ss.downs("")
		ss.mu.Unlock()
		for _, d := range downs {
			_ = nc.PublishMsg(frame(d, contracts.FrameEOF, 0, nil))
		}
	case contracts.FrameEnd:
		var e contracts.SessionEnd
		if err := json.Unmarshal(m.Data, &e); err != nil || e.Reason == "" {
			e = contracts.SessionEnd{Reason: "the client ended the session"}
		}
		if e.By == "" {
			e.By = "client"
		}
		// A command may end before the broker has recorded the agent's
		// answer to the grant (the agent starts it as it answers): the end
		// waits for that, so the session is recorded as started, then
		// ended, never the other way round.
		go func() {
			select {
			case <-ss.answered:
			case <-time.After(time.Minute):
			}
			ss.svc.finish(ss, e)
		}()
	default:
		ss.svc.log.Debug("unknown frame from the client dropped", "session", ss.info.ID, "frame", m.Header.Get(contracts.HdrFrame))
	}
}

// downs lists the operators' down subjects (all but except). ss.mu held.
func (ss *session) downs(except string) []string {
	out := make([]string, 0, len(ss.parts))
	for op, p := range ss.parts {
		if op != except {
			out = append(out, p.down)
		}
	}
	return out
}

// fromOperator relays a frame of participant p to the client.
func (ss *session) fromOperator(p *participant, m *nats.Msg) {
	nc := ss.svc.cfg.NC
	kind := m.Header.Get(contracts.HdrFrame)
	ss.mu.Lock()
	if ss.over || ss.parts[p.operator] != p {
		ss.mu.Unlock()
		return
	}
	primary := p.operator == ss.info.Operator
	full := p.access == contracts.AccessFull
	p.seen = ss.svc.cfg.Now()
	switch kind {
	case contracts.FrameData:
		ss.touch()
		if !full || p.inFlight >= contracts.SessionWindow || len(m.Data) > contracts.MaxFrameBytes {
			ss.mu.Unlock()
			ss.dropped.Add(1)
			return
		}
		ss.inSeq++
		p.inFlight++
		ss.inputs = append(ss.inputs, inputRef{agentSeq: ss.inSeq, operator: p.operator, opSeq: seqOf(m)})
		ss.info.BytesIn += int64(len(m.Data))
		fm := frame(ss.agentDown, contracts.FrameData, ss.inSeq, m.Data)
		fm.Header[contracts.HdrFrom] = []string{p.operator}
		ss.mu.Unlock()
		_ = nc.PublishMsg(fm)
	case contracts.FrameAck:
		ss.mu.Unlock()
		if primary { // the client's output window follows the primary operator
			_ = nc.PublishMsg(frame(ss.agentDown, contracts.FrameAck, seqOf(m), nil))
		}
	case contracts.FrameResize:
		rec := ss.rec
		ss.mu.Unlock()
		var r contracts.SessionResize
		if !full || json.Unmarshal(m.Data, &r) != nil || r.Cols == 0 || r.Rows == 0 {
			return
		}
		if rec != nil {
			rec.resize(r)
		}
		_ = nc.PublishMsg(frame(ss.agentDown, contracts.FrameResize, 0, m.Data))
	case contracts.FrameEOF:
		ss.mu.Unlock()
		if primary && full {
			_ = nc.PublishMsg(frame(ss.agentDown, contracts.FrameEOF, 0, nil))
		}
	case contracts.FrameEnd:
		ss.mu.Unlock()
		if primary {
			go ss.svc.end(ss, contracts.SessionEnd{Reason: "ended by " + p.operator, By: p.operator})
			return
		}
		ss.leave(p)
	default:
		ss.mu.Unlock()
	}
}

// leave removes a participant who is not the session's own operator.
func (ss *session) leave(p *participant) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.parts[p.operator] != p {
		return
	}
	_ = p.sub.Unsubscribe()
	delete(ss.parts, p.operator)
	now := ss.svc.cfg.Now().UTC()
	for i := range ss.info.Participants {
		if ss.info.Participants[i].Operator == p.operator && ss.info.Participants[i].Left.IsZero() {
			ss.info.Participants[i].Left = now
		}
	}
}

// end ends a session from the site's side: the client is told to stop,
// then the session is finished.
func (s *Service) end(ss *session, e contracts.SessionEnd) {
	ss.mu.Lock()
	down := ss.agentDown
	ss.mu.Unlock()
	if down != "" {
		_ = s.cfg.NC.PublishMsg(endFrame(down, e))
	}
	s.finish(ss, e)
}

// finish closes the session once: the recording is stored, the record
// written, the end audited, and then the operators hear of the end (so a
// recording can be played as soon as the operator's command returns).
func (s *Service) finish(ss *session, e contracts.SessionEnd) {
	ss.mu.Lock()
	if ss.over {
		ss.mu.Unlock()
		return
	}
	ss.over = true
	if ss.agentSub != nil {
		_ = ss.agentSub.Unsubscribe()
	}
	parts := make([]*participant, 0, len(ss.parts))
	for _, p := range ss.parts {
		_ = p.sub.Unsubscribe()
		parts = append(parts, p)
	}
	rec := ss.rec
	now := s.cfg.Now().UTC()
	ss.info.State = contracts.SessionEnded
	ss.info.Ended = now
	ss.info.EndReason = e.Reason
	ss.info.Abnormal = e.Abnormal
	ss.info.ExitCode = e.ExitCode
	for i := range ss.info.Participants {
		if ss.info.Participants[i].Left.IsZero() {
			ss.info.Participants[i].Left = now
		}
	}
	ss.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rec != nil {
		if err := rec.close(); err != nil {
			s.log.Warn("recording not stored", "session", ss.info.ID, "err", err)
			ss.mu.Lock()
			ss.info.Recording = ""
			ss.mu.Unlock()
		}
	}
	info := ss.snapshot()
	if err := s.putRecord(ctx, record{Info: info, Collections: ss.collections}); err != nil {
		s.log.Warn("session record not written", "session", info.ID, "err", err)
	}
	s.mu.Lock()
	delete(s.sessions, info.ID)
	s.mu.Unlock()
	id := contracts.StatusSessionEnded
	if e.Abnormal {
		id = contracts.StatusSessionAbnormal
	}
	props := auditProps(info)
	props["duration"] = info.Ended.Sub(info.Started).Round(time.Second).String()
	props["reason"] = e.Reason
	s.emit(ctx, id, props)
	for _, p := range parts {
		_ = s.cfg.NC.PublishMsg(endFrame(p.down, e))
	}
	_ = s.cfg.NC.Flush()
}

// expireIdle ends sessions without a data frame for IdleTimeout.
func (s *Service) expireIdle() {
	cut := time.Now().Add(-s.cfg.IdleTimeout).UnixNano()
	s.mu.Lock()
	var idle []*session
	for _, ss := range s.sessions {
		if ss.last.Load() < cut {
			idle = append(idle, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range idle {
		go s.end(ss, contracts.SessionEnd{Reason: fmt.Sprintf("idle for %s", s.cfg.IdleTimeout), By: "site"})
	}
	s.expireOperators()
}

// expireOperators ends each session whose own operator went silent for
// OperatorTimeout (abnormally: nobody ended it), and removes joined
// operators who did.
func (s *Service) expireOperators() {
	cut := s.cfg.Now().Add(-s.cfg.OperatorTimeout)
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		var gone []*participant
		ownerGone := false
		ss.mu.Lock()
		if ss.info.State == contracts.SessionActive {
			for _, p := range ss.parts {
				if p.seen.Before(cut) {
					if p.operator == ss.info.Operator {
						ownerGone = true
					} else {
						gone = append(gone, p)
					}
				}
			}
		}
		ss.mu.Unlock()
		if ownerGone {
			go s.end(ss, contracts.SessionEnd{Reason: fmt.Sprintf("the operator's CLI went away (nothing from it for %s)", s.cfg.OperatorTimeout),
				By: "site", Abnormal: true})
			continue
		}
		for _, p := range gone {
			ss.leave(p)
		}
	}
}

// auditProps are the properties every session audit message carries.
func auditProps(info contracts.SessionInfo) map[string]string {
	return map[string]string{
		"session":  info.ID,
		"operator": info.Operator,
		"client":   info.Client.ID,
		"name":     info.Client.Name,
		"kind":     info.Kind,
		"access":   info.Access,
		"consent":  info.Consent,
	}
}

// snapshot copies the session's info, slices included, for answers and
// records that are encoded while the session goes on.
func (ss *session) snapshot() contracts.SessionInfo {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	i := ss.info
	i.Participants = slices.Clone(i.Participants)
	i.Command = slices.Clone(i.Command)
	return i
}

func (ss *session) markAnswered() { ss.answeredOnce.Do(func() { close(ss.answered) }) }
