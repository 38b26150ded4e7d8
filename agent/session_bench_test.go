package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// This file plays the session broker for the agent's session tests: it
// signs grants with the bench's site key, asks the agent, and exchanges
// frames on the session's data subjects.

// signGrant signs g as the broker does: the JSON once, the signature over
// exactly those bytes.
func signGrant(t testing.TB, kp nkeys.KeyPair, g contracts.SessionGrant) []byte {
	t.Helper()
	body, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := kp.Sign(contracts.GrantSigningInput(body))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	data, _ := json.Marshal(contracts.SignedGrant{Header: contracts.NewHeader(contracts.TypeSignedGrant), Grant: body, Signature: sig, Key: pub})
	return data
}

// grantFor is a grant of kind for the bench's client, valid now, that
// mod may change.
func (b *bench) grantFor(kind string, mod func(g *contracts.SessionGrant)) contracts.SessionGrant {
	now := time.Now().UTC()
	g := contracts.SessionGrant{
		Header: contracts.NewHeader(contracts.TypeSessionGrant), Session: uuid.NewString(), Site: testSite, ClientID: b.clientID,
		Operator: "alice", Kind: kind, Access: contracts.AccessFull, Issued: now, Expires: now.Add(20 * time.Second),
	}
	if mod != nil {
		mod(&g)
	}
	return g
}

// remoteTools is a policy section of remote tools, enabled with level.
func remoteTools(level string, mod func(rt *contracts.RemoteToolsSettings)) contracts.SettingsSections {
	rt := &contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr(level)}
	if mod != nil {
		mod(rt)
	}
	return contracts.SettingsSections{RemoteTools: rt}
}

// allowResponses lets the agent answer requests it receives, as the
// site's auth callout does (one reply within a minute), and reloads the
// bench's server with it.
func allowResponses(t *testing.T, b *bench) {
	t.Helper()
	for _, u := range b.opts.Nkeys {
		if u.Nkey == b.agentPub {
			u.Permissions.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
		}
	}
	if err := b.srv.ReloadOptions(b.opts); err != nil {
		t.Fatalf("reload the server with response permissions: %v", err)
	}
}

// sessionBench is a running, enrolled agent with a policy and the
// services connection that plays the broker.
type sessionBench struct {
	*bench
	a   *Agent
	svc *nats.Conn
	rev uint64
}

// newSessionBench starts an agent that applied sections; by default
// nobody is logged on (mod may say otherwise).
func newSessionBench(t *testing.T, sections contracts.SettingsSections, mod func(*Config)) *sessionBench {
	t.Helper()
	b := newBench(t)
	allowResponses(t, b)
	b.enrolled()
	a := b.startAgent(func(c *Config) {
		c.LoggedOnUsers = func() []string { return nil }
		c.SessionShell = "/bin/sh"
		if mod != nil {
			mod(c)
		}
	})
	sb := &sessionBench{bench: b, a: a, svc: b.services()}
	waitFor(t, "the agent to connect", func() bool { return a.Status().Connected })
	sb.setPolicy(sections)
	return sb
}

// setPolicy applies a policy of the next revision to the agent.
func (sb *sessionBench) setPolicy(sections contracts.SettingsSections) {
	sb.t.Helper()
	sb.rev++
	if !sb.a.applyPolicy(context.Background(), signPolicy(sb.t, sb.siteKP, sb.policyFor(sb.rev, sections)), "test") {
		sb.t.Fatalf("policy revision %d not applied", sb.rev)
	}
}

// ask sends a signed grant as the broker does and returns the answer. It
// retries while the agent has not subscribed yet.
func (sb *sessionBench) ask(data []byte, timeout time.Duration) contracts.SessionGrantAnswer {
	sb.t.Helper()
	subject, _ := contracts.AgentDown(testSite, sb.clientID, contracts.KindSessionGrant)
	deadline := time.Now().Add(10 * time.Second)
	for {
		reply, err := sb.svc.Request(subject, data, timeout)
		if errors.Is(err, nats.ErrNoResponders) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			sb.t.Fatalf("grant request: %v", err)
		}
		var ans contracts.SessionGrantAnswer
		if err := contracts.Decode(reply.Data, contracts.TypeSessionGrantAnswer, &ans); err != nil {
			sb.t.Fatalf("grant answer: %v: %s", err, reply.Data)
		}
		return ans
	}
}

// open grants g (signed by the site) and returns the answer and the
// broker's end of the session, subscribed before the grant is sent.
func (sb *sessionBench) open(g contracts.SessionGrant) (contracts.SessionGrantAnswer, *fakeBroker) {
	sb.t.Helper()
	fb := sb.broker(g.Session)
	ans := sb.ask(signGrant(sb.t, sb.siteKP, g), 15*time.Second)
	return ans, fb
}

// mustOpen is open for a grant that must be accepted.
func (sb *sessionBench) mustOpen(g contracts.SessionGrant) (contracts.SessionGrantAnswer, *fakeBroker) {
	sb.t.Helper()
	ans, fb := sb.open(g)
	if !ans.Accepted {
		sb.t.Fatalf("grant refused: %+v", ans)
	}
	return ans, fb
}

// fakeBroker is the broker's end of one session.
type fakeBroker struct {
	t      *testing.T
	nc     *nats.Conn
	down   string
	frames chan *nats.Msg

	mu     sync.Mutex
	out    strings.Builder // output received so far
	acks   []uint64        // acks of input received, in order
	events []string        // "data:<text>", "ack:<seq>", "eof", "end" in arrival order
	lastIn uint64          // last input sequence number sent
	lastSq uint64          // last output sequence number seen
	end    *contracts.SessionEnd
}

// broker subscribes to session id's up data subject.
func (sb *sessionBench) broker(id string) *fakeBroker {
	sb.t.Helper()
	up, _ := contracts.AgentUp(testSite, sb.clientID, contracts.SessionDataKind(id))
	down, _ := contracts.AgentDown(testSite, sb.clientID, contracts.SessionDataKind(id))
	fb := &fakeBroker{t: sb.t, nc: sb.svc, down: down, frames: make(chan *nats.Msg, 100000)}
	sub, err := sb.svc.ChanSubscribe(up, fb.frames)
	if err != nil {
		sb.t.Fatal(err)
	}
	sb.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := sb.svc.Flush(); err != nil {
		sb.t.Fatal(err)
	}
	return fb
}

// send publishes a frame to the agent.
func (fb *fakeBroker) send(frame string, seq uint64, body []byte, from string) {
	fb.t.Helper()
	msg := nats.NewMsg(fb.down)
	msg.Header.Set(contracts.HdrFrame, frame)
	if seq > 0 {
		msg.Header.Set(contracts.HdrSeq, strconv.FormatUint(seq, 10))
	}
	if from != "" {
		msg.Header.Set(contracts.HdrFrom, from)
	}
	msg.Data = body
	if err := fb.nc.PublishMsg(msg); err != nil {
		fb.t.Fatal(err)
	}
	if err := fb.nc.Flush(); err != nil {
		fb.t.Fatal(err)
	}
}

// input sends text as the next input data frame from operator; it returns
// the frame's sequence number.
func (fb *fakeBroker) input(from, text string) uint64 {
	fb.mu.Lock()
	fb.lastIn++
	seq := fb.lastIn
	fb.mu.Unlock()
	fb.send(contracts.FrameData, seq, []byte(text), from)
	return seq
}

// endSession sends an end frame as the broker does when an operator ends it.
func (fb *fakeBroker) endSession(reason string) {
	data, _ := json.Marshal(contracts.SessionEnd{Reason: reason, By: "alice"})
	fb.send(contracts.FrameEnd, 0, data, "")
}

// take handles one frame from the agent; with ack, a data frame is
// acknowledged at once.
func (fb *fakeBroker) take(m *nats.Msg, ack bool) {
	fb.t.Helper()
	fb.mu.Lock()
	defer fb.mu.Unlock()
	switch kind := m.Header.Get(contracts.HdrFrame); kind {
	case contracts.FrameData:
		seq, err := strconv.ParseUint(m.Header.Get(contracts.HdrSeq), 10, 64)
		if err != nil || seq != fb.lastSq+1 {
			fb.t.Errorf("output frame seq %q after %d: want %d", m.Header.Get(contracts.HdrSeq), fb.lastSq, fb.lastSq+1)
		}
		if len(m.Data) > contracts.MaxFrameBytes {
			fb.t.Errorf("output frame of %d bytes, over MaxFrameBytes", len(m.Data))
		}
		fb.lastSq = seq
		fb.out.Write(m.Data)
		fb.events = append(fb.events, "data:"+string(m.Data))
		if ack {
			msg := nats.NewMsg(fb.down)
			msg.Header.Set(contracts.HdrFrame, contracts.FrameAck)
			msg.Header.Set(contracts.HdrSeq, strconv.FormatUint(seq, 10))
			if err := fb.nc.PublishMsg(msg); err != nil {
				fb.t.Error(err)
			}
		}
	case contracts.FrameAck:
		seq, _ := strconv.ParseUint(m.Header.Get(contracts.HdrSeq), 10, 64)
		fb.acks = append(fb.acks, seq)
		fb.events = append(fb.events, "ack:"+strconv.FormatUint(seq, 10))
	case contracts.FrameEOF:
		fb.events = append(fb.events, "eof")
	case contracts.FrameEnd:
		var e contracts.SessionEnd
		if err := json.Unmarshal(m.Data, &e); err != nil {
			fb.t.Errorf("end frame: %v", err)
		}
		fb.end = &e
		fb.events = append(fb.events, "end")
	default:
		fb.t.Errorf("unknown frame %q from the agent", kind)
	}
}

// until takes frames (acknowledging output when ack) until cond holds, at
// most 15s.
func (fb *fakeBroker) until(what string, ack bool, cond func(fb *fakeBroker) bool) {
	fb.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		fb.mu.Lock()
		ok := cond(fb)
		fb.mu.Unlock()
		if ok {
			return
		}
		select {
		case m := <-fb.frames:
			fb.take(m, ack)
		case <-deadline:
			fb.mu.Lock()
			defer fb.mu.Unlock()
			fb.t.Fatalf("timed out waiting for %s; output so far: %q, events: %q", what, fb.out.String(), tail(fb.events, 20))
		}
	}
}

// output waits for output containing s.
func (fb *fakeBroker) output(s string) {
	fb.t.Helper()
	fb.until("output "+strconv.Quote(s), true, func(fb *fakeBroker) bool { return strings.Contains(fb.out.String(), s) })
}

// ended waits for the agent's end frame and returns it.
func (fb *fakeBroker) ended() contracts.SessionEnd {
	fb.t.Helper()
	fb.until("the end frame", true, func(fb *fakeBroker) bool { return fb.end != nil })
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return *fb.end
}

// acked waits for the agent's ack of input frame seq.
func (fb *fakeBroker) acked(seq uint64) {
	fb.t.Helper()
	fb.until("the ack of input "+strconv.FormatUint(seq, 10), true, func(fb *fakeBroker) bool {
		return len(fb.acks) > 0 && fb.acks[len(fb.acks)-1] >= seq
	})
}

func (fb *fakeBroker) text() string {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.out.String()
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
