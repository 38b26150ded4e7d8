package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
)

// SessionTimeout bounds a session request: the broker waits for the
// agent and, when policy prompts, for the user's answer (at most 10m).
const SessionTimeout = 11 * time.Minute

// Session is an open remote session from the operator's side: Read gives
// the client's output, Write sends input, both under the session's flow
// control. It is safe to Read and Write from different goroutines.
type Session struct {
	Info contracts.SessionInfo

	c    *Client
	up   string
	sub  *nats.Subscription
	win  *contracts.Window
	wmu  sync.Mutex // one writer of data frames at a time
	in   chan inFrame
	done chan struct{}

	mu      sync.Mutex
	end     *contracts.SessionEnd
	cur     []byte // the rest of the frame being read
	curSeq  uint64
	eof     bool // the client sent eof
	ackSent uint64
}

type inFrame struct {
	kind string
	seq  uint64
	data []byte
}

// ErrSessionEnded is returned by Write after the session ended.
var ErrSessionEnded = errors.New("the session ended")

// attach subscribes to the session's down frames before it is asked for,
// so not a byte of the client's first output is missed.
func (c *Client) attach(id string) (*Session, error) {
	down, err := contracts.OpDown(c.site, c.operator, contracts.SessionDataKind(id))
	if err != nil {
		return nil, err
	}
	up, err := contracts.OpUp(c.site, c.operator, contracts.SessionDataKind(id))
	if err != nil {
		return nil, err
	}
	s := &Session{c: c, up: up, win: contracts.NewWindow(0), in: make(chan inFrame, 4*contracts.SessionWindow), done: make(chan struct{})}
	s.sub, err = c.nc.Subscribe(down, s.onFrame)
	if err != nil {
		return nil, err
	}
	_ = s.sub.SetPendingLimits(-1, -1) // bounded by the flow control window
	if err := c.nc.Flush(); err != nil {
		_ = s.sub.Unsubscribe()
		return nil, err
	}
	return s, nil
}

func (s *Session) onFrame(m *nats.Msg) {
	seq, _ := strconv.ParseUint(m.Header.Get(contracts.HdrSeq), 10, 64)
	switch k := m.Header.Get(contracts.HdrFrame); k {
	case contracts.FrameAck:
		s.win.Ack(seq)
	case contracts.FrameData, contracts.FrameEOF:
		select {
		case s.in <- inFrame{kind: k, seq: seq, data: m.Data}:
		case <-s.done:
		}
	case contracts.FrameEnd:
		var e contracts.SessionEnd
		if json.Unmarshal(m.Data, &e) != nil || e.Reason == "" {
			e = contracts.SessionEnd{Reason: "the session ended"}
		}
		s.finish(e)
	}
}

func (s *Session) finish(e contracts.SessionEnd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end != nil {
		return
	}
	s.end = &e
	s.win.Close()
	close(s.done)
	_ = s.sub.Unsubscribe()
}

// SessionOpen opens a shell or a tunnel (req.Session is filled in when
// empty).
func (c *Client) SessionOpen(ctx context.Context, req contracts.SessionOpenRequest) (*Session, error) {
	return c.sessionStart(ctx, contracts.KindSessionOpen, &req)
}

// AssistOffer offers assistance to the user of a client.
func (c *Client) AssistOffer(ctx context.Context, req contracts.SessionOpenRequest) (*Session, error) {
	req.Kind = contracts.SessionAssist
	return c.sessionStart(ctx, contracts.KindAssistOffer, &req)
}

func (c *Client) sessionStart(ctx context.Context, kind string, req *contracts.SessionOpenRequest) (*Session, error) {
	req.Header = contracts.NewHeader(contracts.TypeSessionOpenRequest)
	if req.Session == "" {
		req.Session = uuid.Must(uuid.NewV7()).String()
	}
	return c.sessionCall(ctx, req.Session, kind, req)
}

func (c *Client) sessionCall(ctx context.Context, id, kind string, req any) (*Session, error) {
	s, err := c.attach(id)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, SessionTimeout)
		defer cancel()
	}
	var resp contracts.SessionOpenResponse
	if err := c.call(ctx, kind, req, &resp); err != nil {
		s.finish(contracts.SessionEnd{Reason: err.Error()})
		return nil, err
	}
	s.Info = resp.Session
	go s.ping()
	return s, nil
}

// ping tells the broker every contracts.SessionPing that this operator is
// still there, until the session ends.
func (s *Session) ping() {
	t := time.NewTicker(contracts.SessionPing)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			_ = s.send(contracts.FramePing, 0, nil)
		}
	}
}

// SessionCheck asks the broker whether it would authorise a session of
// kind (shell, tunnel, or assist: an offer) to the client ref, on port for
// a tunnel: the same checks and refusals as SessionOpen (or AssistOffer),
// without a grant or a session. The agent still has the last word.
func (c *Client) SessionCheck(ctx context.Context, ref, kind string, port int) (contracts.SessionCheckResponse, error) {
	var resp contracts.SessionCheckResponse
	err := c.call(ctx, contracts.KindSessionCheck, contracts.SessionCheckRequest{
		Header: contracts.NewHeader(contracts.TypeSessionCheckRequest), Ref: ref, Kind: kind, Port: port}, &resp)
	return resp, err
}

// SessionJoin joins a running session (observe: read-only).
func (c *Client) SessionJoin(ctx context.Context, id string, observe bool) (*Session, error) {
	return c.sessionCall(ctx, id, contracts.KindSessionJoin,
		contracts.SessionJoinRequest{Header: contracts.NewHeader(contracts.TypeSessionJoinRequest), Session: id, Observe: observe})
}

// AssistAccept takes a user's request for assistance.
func (c *Client) AssistAccept(ctx context.Context, request string) (*Session, error) {
	id := uuid.Must(uuid.NewV7()).String()
	return c.sessionCall(ctx, id, contracts.KindAssistAccept,
		contracts.SessionAssistAcceptRequest{Header: contracts.NewHeader(contracts.TypeSessionAssistAccept), Request: request, Session: id})
}

// Read reads the client's output. It returns io.EOF when the client sent
// eof (a tunnel's half close) or the session ended.
func (s *Session) Read(p []byte) (int, error) {
	s.mu.Lock()
	if len(s.cur) == 0 && !s.eof {
		s.mu.Unlock()
		var f inFrame
		select {
		case f = <-s.in:
		case <-s.done:
			select { // frames that came before the end
			case f = <-s.in:
			default:
				return 0, io.EOF
			}
		}
		s.mu.Lock()
		if f.kind == contracts.FrameEOF {
			s.eof = true
		} else {
			s.cur, s.curSeq = f.data, f.seq
		}
	}
	if s.eof && len(s.cur) == 0 {
		s.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	var ack uint64
	if len(s.cur) == 0 && s.curSeq > s.ackSent {
		ack, s.ackSent = s.curSeq, s.curSeq
	}
	s.mu.Unlock()
	if ack > 0 {
		s.send(contracts.FrameAck, ack, nil)
	}
	return n, nil
}

func (s *Session) send(kind string, seq uint64, body []byte) error {
	m := &nats.Msg{Subject: s.up, Header: nats.Header{contracts.HdrFrame: []string{kind}}, Data: body}
	if seq > 0 {
		m.Header[contracts.HdrSeq] = []string{strconv.FormatUint(seq, 10)}
	}
	return s.c.nc.PublishMsg(m)
}

// Write sends input, in frames of at most contracts.MaxFrameBytes, waiting
// while the window is full.
func (s *Session) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), contracts.MaxFrameBytes)]
		seq, err := s.win.Next(context.Background())
		if err != nil {
			return n, ErrSessionEnded
		}
		if err := s.send(contracts.FrameData, seq, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Resize tells the client's terminal its new size.
func (s *Session) Resize(cols, rows uint16) error {
	b, _ := json.Marshal(contracts.SessionResize{Cols: cols, Rows: rows})
	return s.send(contracts.FrameResize, 0, b)
}

// CloseWrite sends eof: no more input (a tunnel's half close).
func (s *Session) CloseWrite() error { return s.send(contracts.FrameEOF, 0, nil) }

// End ends the session (leaves it, for a joined operator) and waits for
// the broker to confirm, at most a few seconds.
func (s *Session) End() contracts.SessionEnd {
	_ = s.send(contracts.FrameEnd, 0, nil)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.finish(contracts.SessionEnd{Reason: "left the session"})
	}
	return s.Ended()
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Ended says why the session ended (zero until Done is closed).
func (s *Session) Ended() contracts.SessionEnd {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end == nil {
		return contracts.SessionEnd{}
	}
	return *s.end
}

// SessionList lists the active sessions (client: only those of a client).
func (c *Client) SessionList(ctx context.Context, client string) ([]contracts.SessionInfo, error) {
	var resp contracts.SessionListResponse
	err := c.call(ctx, contracts.KindSessionList, contracts.SessionListRequest{Header: contracts.NewHeader(contracts.TypeSessionListRequest), Client: client}, &resp)
	return resp.Sessions, err
}

// SessionRecordings lists ended sessions with their recordings.
func (c *Client) SessionRecordings(ctx context.Context, client string) ([]contracts.SessionInfo, error) {
	var resp contracts.SessionListResponse
	err := c.call(ctx, contracts.KindSessionRecordings, contracts.SessionListRequest{Header: contracts.NewHeader(contracts.TypeSessionListRequest), Client: client}, &resp)
	return resp.Sessions, err
}

// SessionEnd ends a session (one's own, or another's with Session:End).
func (c *Client) SessionEnd(ctx context.Context, id, reason string) (contracts.SessionInfo, error) {
	var resp contracts.SessionOpenResponse
	err := c.call(ctx, contracts.KindSessionEnd, contracts.SessionEndRequest{Header: contracts.NewHeader(contracts.TypeSessionEndRequest), Session: id, Reason: reason}, &resp)
	return resp.Session, err
}

// SessionRecording copies a session's recording (asciicast v2) to w.
func (c *Client) SessionRecording(ctx context.Context, id string, w io.Writer) (contracts.SessionInfo, error) {
	var off int64
	for {
		var resp contracts.RecordingReadResponse
		req := contracts.RecordingReadRequest{Header: contracts.NewHeader(contracts.TypeRecordingReadRequest), Session: id, Offset: off}
		if err := c.call(ctx, contracts.KindSessionRecording, req, &resp); err != nil {
			return contracts.SessionInfo{}, err
		}
		if _, err := w.Write(resp.Data); err != nil {
			return resp.Session, err
		}
		if resp.Next >= resp.Size || resp.Next <= off {
			return resp.Session, nil
		}
		off = resp.Next
	}
}

// AssistList lists open requests for assistance.
func (c *Client) AssistList(ctx context.Context) ([]contracts.AssistInfo, error) {
	var resp contracts.SessionAssistListResponse
	err := c.call(ctx, contracts.KindAssistList, contracts.SessionAssistListRequest{Header: contracts.NewHeader(contracts.TypeSessionAssistListRequest)}, &resp)
	return resp.Requests, err
}
