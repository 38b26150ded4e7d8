package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// operate keeps the enrolled agent connected as client id.ClientID, sends
// a heartbeat on every (re)connect and then every heartbeat interval (the
// policy may change it while it runs), drains the outbox, fetches the
// policy and the content on every (re)connect, and serves the down
// subjects, until ctx ends (nil). At every (re)connect, and when the
// server denies one of the client's own subjects, it first asks the
// server whether it admits the agent as the client; when it does not (the
// site deleted the client) operate returns errNotKnown, and known says
// whether the server had admitted the client on this connection before.
func (a *Agent) operate(ctx context.Context, id state.Identity) (known bool, err error) {
	inbox, err := contracts.Inbox(id.ClientID)
	if err != nil {
		return false, fmt.Errorf("client id: %w", err)
	}
	subject, err := contracts.AgentUp(id.Site, id.ClientID, contracts.KindHeartbeat)
	if err != nil {
		return false, fmt.Errorf("heartbeat subject: %w", err)
	}
	select {
	case <-a.recheck: // a denial seen on the last connection, already checked
	default:
	}
	up := make(chan struct{}, 1)
	nc, err := a.dial(inbox, up, true)
	if err != nil {
		return false, err
	}
	defer nc.Close()
	// The workers have stopped when operate returns (the deferred calls
	// run last first: stop, wait, close): content writes files, and the
	// next operate (after the client was enrolled again) must not share
	// the wake channels with the last one's.
	var workers sync.WaitGroup
	defer workers.Wait()
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	workers.Go(func() { a.runInventory(sendCtx) })
	// The down subscription and the workers that talk to the site start
	// once the server has said it admits the client (or could not say).
	started := false
	start := func() error {
		if err := a.subscribeDown(ctx, nc, id); err != nil {
			return err
		}
		workers.Go(func() { a.sendOutbox(sendCtx, nc, id) })
		workers.Go(func() { a.runPolicy(sendCtx, nc, id) })
		workers.Go(func() { a.runContent(sendCtx, nc, id) })
		started = true
		return nil
	}

	tick := time.NewTicker(a.heartbeatInterval())
	defer tick.Stop()
	reconnect := false // the first up is the connection's first
	for {
		select {
		case <-ctx.Done():
			if nc.IsConnected() {
				_ = nc.FlushTimeout(time.Second) // deliver what is buffered
			}
			return known, nil
		case <-a.recheck:
			if !a.stillKnown(ctx, nc, id) {
				return known, errNotKnown
			}
			continue
		case <-up:
			if !a.stillKnown(ctx, nc, id) {
				return known, errNotKnown
			}
			known = true // (or the server could not say)
			if !started {
				if err := start(); err != nil {
					return known, err
				}
			}
			tick.Reset(a.heartbeatInterval())
			if reconnect { // deliver what waited while the site was away
				a.outboxReconnected()
			} else {
				a.wakeOutbox()
			}
			reconnect = true
			signal(a.pol.wake)     // and catch up with the policy
			signal(a.content.wake) // and the content
		case <-a.pol.heartbeatChanged:
			// Tell the site the new interval at once: it judges this
			// client offline after missing beats of the interval it last
			// heard, so a longer one left unsaid marked it offline.
			tick.Reset(a.heartbeatInterval())
		case <-tick.C:
		}
		if !nc.IsConnected() {
			continue
		}
		if err := a.heartbeat(ctx, nc, subject); err != nil {
			a.log.Warn("heartbeat not sent", "err", err)
		}
	}
}

// heartbeat publishes one heartbeat with the trace context in its headers.
func (a *Agent) heartbeat(ctx context.Context, nc *nats.Conn, subject string) error {
	ctx, span := telemetry.Tracer(tracerName).Start(ctx, "agent.heartbeat")
	defer span.End()
	hb := contracts.Heartbeat{
		Header:       contracts.NewHeader(contracts.TypeHeartbeat),
		Name:         a.cfg.Name,
		Hostname:     a.hostname,
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		AgentVersion: a.cfg.Version,
		Capability:   contracts.CapabilityVersion,
		Interval:     contracts.Duration(a.heartbeatInterval()),
		Started:      a.started,
	}
	data, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	telemetry.Inject(ctx, msg.Header)
	if err := nc.PublishMsg(msg); err != nil {
		span.RecordError(err)
		return err
	}
	a.update(func(st *status) { st.lastHeartbeat = hb.Time })
	a.log.Debug("heartbeat sent", "subject", subject)
	return nil
}
