package agent

import (
	"context"
	"fmt"

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

// subscribeDown subscribes every registered down handler. Subscriptions
// survive reconnects.
func (a *Agent) subscribeDown(ctx context.Context, nc *nats.Conn, id state.Identity) error {
	for kind, h := range a.down {
		subject, err := contracts.AgentDown(id.Site, id.ClientID, kind)
		if err != nil {
			return fmt.Errorf("down subject %s: %w", kind, err)
		}
		if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
			mctx := telemetry.Extract(ctx, m.Header)
			h(mctx, m)
		}); err != nil {
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
	}
	return nil
}
