package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
)

// StatusList returns one page of stored status messages matching req's
// filter, oldest first. resp.Next, when set, is req.After of the next page.
func (c *Client) StatusList(ctx context.Context, req contracts.StatusListRequest) (*contracts.StatusListResponse, error) {
	req.Header = contracts.NewHeader(contracts.TypeStatusListRequest)
	if err := req.Validate(); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.StatusListResponse
	if err := c.call(ctx, contracts.KindStatusList, req, &resp); err != nil {
		return nil, err
	}
	if resp.Messages == nil {
		resp.Messages = []contracts.StatusMessage{}
	}
	return &resp, nil
}

// StatusShow returns the status message with that uuid.
func (c *Client) StatusShow(ctx context.Context, id string) (contracts.StatusMessage, error) {
	req := contracts.StatusShowRequest{Header: contracts.NewHeader(contracts.TypeStatusShowRequest), MessageID: id}
	if err := req.Validate(); err != nil {
		return contracts.StatusMessage{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.StatusShowResponse
	err := c.call(ctx, contracts.KindStatusShow, req, &resp)
	return resp.Message, err
}

// StatusCatalog returns the site's status message catalog, by ID.
func (c *Client) StatusCatalog(ctx context.Context) ([]contracts.StatusDef, error) {
	var resp contracts.StatusCatalogResponse
	if err := c.call(ctx, contracts.KindStatusCatalog, contracts.StatusCatalogRequest{Header: contracts.NewHeader(contracts.TypeStatusCatalogRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Messages == nil {
		resp.Messages = []contracts.StatusDef{}
	}
	return resp.Messages, nil
}

// StatusComponents returns each component's state within the site's window.
func (c *Client) StatusComponents(ctx context.Context) (*contracts.StatusComponentsResponse, error) {
	var resp contracts.StatusComponentsResponse
	if err := c.call(ctx, contracts.KindStatusComponents, contracts.StatusComponentsRequest{Header: contracts.NewHeader(contracts.TypeStatusComponentsRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Components == nil {
		resp.Components = []contracts.ComponentState{}
	}
	return &resp, nil
}

// StatusClients returns the last status of one client (an ID) or, with "",
// of every client.
// Every page is read: newest first, a client that reports while the pages
// are read may be listed twice or not at all.
func (c *Client) StatusClients(ctx context.Context, clientID string) ([]contracts.ClientStatusSummary, error) {
	out := []contracts.ClientStatusSummary{}
	after := ""
	for {
		var resp contracts.StatusClientsResponse
		req := contracts.StatusClientsRequest{Header: contracts.NewHeader(contracts.TypeStatusClientsRequest), Client: clientID, After: after}
		if err := c.call(ctx, contracts.KindStatusClients, req, &resp); err != nil {
			return nil, err
		}
		out = append(out, resp.Clients...)
		if resp.Next == "" || resp.Next == after {
			return out, nil
		}
		after = resp.Next
	}
}

// StatusRulesAdd adds a status filter rule and returns it as stored.
func (c *Client) StatusRulesAdd(ctx context.Context, rule contracts.StatusRule) (contracts.StatusRule, error) {
	req := contracts.StatusRuleAddRequest{Header: contracts.NewHeader(contracts.TypeStatusRuleAddRequest), Rule: rule}
	if err := req.Validate(); err != nil {
		return contracts.StatusRule{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.StatusRuleResponse
	err := c.call(ctx, contracts.KindStatusRulesAdd, req, &resp)
	return resp.Rule, err
}

// StatusRulesList returns the rules in the order they run.
func (c *Client) StatusRulesList(ctx context.Context) ([]contracts.StatusRule, error) {
	var resp contracts.StatusRuleListResponse
	if err := c.call(ctx, contracts.KindStatusRulesList, contracts.StatusRuleListRequest{Header: contracts.NewHeader(contracts.TypeStatusRuleListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Rules == nil {
		resp.Rules = []contracts.StatusRule{}
	}
	return resp.Rules, nil
}

// StatusRulesDelete deletes a rule by name and returns it as it was.
func (c *Client) StatusRulesDelete(ctx context.Context, name string) (contracts.StatusRule, error) {
	req := contracts.StatusRuleDeleteRequest{Header: contracts.NewHeader(contracts.TypeStatusRuleDeleteRequest), Name: name}
	if err := req.Validate(); err != nil {
		return contracts.StatusRule{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.StatusRuleResponse
	err := c.call(ctx, contracts.KindStatusRulesDelete, req, &resp)
	return resp.Rule, err
}

// StatusRulesTest replays stored messages through a rule and returns what
// it would have done.
func (c *Client) StatusRulesTest(ctx context.Context, req contracts.StatusRuleTestRequest) (*contracts.StatusRuleTestResponse, error) {
	req.Header = contracts.NewHeader(contracts.TypeStatusRuleTestRequest)
	if err := req.Validate(); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.StatusRuleTestResponse
	if err := c.call(ctx, contracts.KindStatusRulesTest, req, &resp); err != nil {
		return nil, err
	}
	if resp.Results == nil {
		resp.Results = []contracts.StatusRuleTestResult{}
	}
	return &resp, nil
}

// followSeen is how many recent uuids StatusFollow remembers to drop
// repeats (a renewal answered by another instance delivers twice for a
// while).
const followSeen = 4096

// StatusFollow calls fn with each new status message matching filter until
// ctx ends or fn returns an error (which it returns). It subscribes to the
// operator's own follow subject, registers the follow with the site, renews
// it every third of ttl (0: contracts.DefaultFollowTTL) and cancels it on
// the way out.
func (c *Client) StatusFollow(ctx context.Context, filter contracts.StatusFilter, ttl time.Duration, fn func(contracts.StatusMessage) error) error {
	if ttl <= 0 {
		ttl = contracts.DefaultFollowTTL
	}
	id := uuid.NewString()
	subject, err := contracts.StatusFollowSubject(c.site, c.operator, id)
	if err != nil {
		return err
	}
	msgs := make(chan *nats.Msg, 1024)
	sub, err := c.nc.ChanSubscribe(subject, msgs)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	// The server has the subscription before the site is asked to deliver.
	if err := c.nc.FlushTimeout(10 * time.Second); err != nil {
		return err
	}
	register := func(cancel bool) error {
		req := contracts.StatusFollowRequest{Header: contracts.NewHeader(contracts.TypeStatusFollowRequest), FollowID: id, Filter: filter, TTL: contracts.Duration(ttl), Cancel: cancel}
		if err := req.Validate(); err != nil {
			return contracts.Errorf(contracts.CodeBadRequest, "%v", err)
		}
		base, wait := ctx, 10*time.Second
		if cancel { // also when ctx has ended
			base, wait = context.WithoutCancel(ctx), 2*time.Second
		}
		rctx, done := context.WithTimeout(base, wait)
		defer done()
		var resp contracts.StatusFollowResponse
		return c.call(rctx, contracts.KindStatusFollow, req, &resp)
	}
	if err := register(false); err != nil {
		return err
	}
	defer func() { _ = register(true) }()

	renew := time.NewTicker(ttl / 3)
	defer renew.Stop()
	seen := make(map[string]bool, followSeen)
	order := make([]string, 0, followSeen)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C:
			if err := register(false); err != nil {
				return fmt.Errorf("renew follow: %w", err)
			}
		case m := <-msgs:
			var sm contracts.StatusMessage
			if err := json.Unmarshal(m.Data, &sm); err != nil {
				continue
			}
			if seen[sm.ID] {
				continue
			}
			if len(order) == followSeen {
				delete(seen, order[0])
				order = order[1:]
			}
			seen[sm.ID] = true
			order = append(order, sm.ID)
			if err := fn(sm); err != nil {
				return err
			}
		}
	}
}
