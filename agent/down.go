package agent

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// DownHandler handles a message the site sends the agent on one of its down
// subjects. ctx carries the trace context of the message.
type DownHandler func(ctx context.Context, msg *nats.Msg)

// HandleDown registers h for messages on AgentDown(site, id, kind). Call it
// before Run.
func (a *Agent) HandleDown(kind string, h DownHandler) {
	if a.running.Load() {
		panic("agent: HandleDown after Run")
	}
	a.down[kind] = h
}

// subscribeDown subscribes to the agent's whole down space with one
// subscription and hands each message to the handler of its kind: one
// subscription instead of one per kind keeps the site's memory per agent
// down (each costs the server an entry in its subject index). Messages of
// a kind nobody handles are dropped. Subscriptions survive reconnects.
func (a *Agent) subscribeDown(ctx context.Context, nc *nats.Conn, id state.Identity) error {
	space, err := contracts.AgentSpace(id.Site, id.ClientID, "down")
	if err != nil {
		return fmt.Errorf("down subjects: %w", err)
	}
	prefix := strings.TrimSuffix(space, ">")
	if _, err := nc.Subscribe(space, func(m *nats.Msg) {
		kind := strings.TrimPrefix(m.Subject, prefix)
		h, ok := a.down[kind]
		if !ok {
			a.log.Debug("message of an unhandled kind dropped", "subject", m.Subject)
			return
		}
		defer func() {
			// A defect in one handler loses its message, not the agent:
			// the client stays reachable (and fetches policy again).
			if r := recover(); r != nil {
				a.log.Error("a message's handler failed; the message is dropped", "subject", m.Subject, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		h(telemetry.Extract(ctx, m.Header), m)
	}); err != nil {
		return fmt.Errorf("subscribe %s: %w", space, err)
	}
	return nil
}
