package rpc

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestAnswerTooLarge: an answer over what the server carries (max_payload)
// failed to send and the caller only timed out; it is answered too_large,
// saying how large, by every service's handler.
func TestAnswerTooLarge(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	huge := func(context.Context, contracts.SubjectInfo, *contracts.StatusRuleListRequest) (*contracts.StatusRuleListResponse, error) {
		resp := &contracts.StatusRuleListResponse{Header: contracts.NewHeader(contracts.TypeStatusRuleListResponse)}
		for i := range 1000 {
			resp.Rules = append(resp.Rules, contracts.StatusRule{Name: "r" + strings.Repeat("x", i%50), Match: strings.Repeat("true && ", 250) + "true", Action: contracts.RuleStore})
		}
		return resp, nil
	}
	subj, _ := contracts.OpUp("LAB", "alice", "status.huge")
	svc, err := micro.AddService(nc, micro.Config{Name: "huge", Version: "0.0.1", Endpoint: &micro.EndpointConfig{Subject: subj,
		Handler: Handler(slog.New(slog.NewTextHandler(io.Discard, nil)), contracts.TypeStatusRuleListRequest, huge)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	if err := nc.Flush(); err != nil { // the server has the subscription
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp contracts.StatusRuleListResponse
	err = Call(ctx, natstest.Connect(t, ns), subj, contracts.StatusRuleListRequest{Header: contracts.NewHeader(contracts.TypeStatusRuleListRequest)}, &resp)
	if contracts.CodeOf(err) != contracts.CodeTooLarge || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("got %v, want too_large saying how large", err)
	}
}
