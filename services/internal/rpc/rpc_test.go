package rpc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestNoResponders: nothing listening is CodeUnavailable with the
// operator's hint, and also nats.ErrNoResponders, for a caller to whom a
// service that does not run is not a failure.
func TestNoResponders(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t))
	var resp struct{}
	err := Call(context.Background(), nc, "nobody.here", struct{}{}, &resp)
	if contracts.CodeOf(err) != contracts.CodeUnavailable || !errors.Is(err, nats.ErrNoResponders) || !strings.Contains(err.Error(), "no service answers nobody.here") {
		t.Fatalf("got %v (code %v): want unavailable, no responders, naming the subject", err, contracts.CodeOf(err))
	}
}
