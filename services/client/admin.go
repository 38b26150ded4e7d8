package client

import (
	"context"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// TokensCreate makes an enrollment token; the printed token is returned once.
func (c *Client) TokensCreate(ctx context.Context, ttl time.Duration, uses int, note string) (string, contracts.TokenInfo, error) {
	req := contracts.TokenCreateRequest{Header: contracts.NewHeader(contracts.TypeTokenCreateRequest), TTL: contracts.Duration(ttl), Uses: uses, Note: note}
	var resp contracts.TokenResponse
	if err := c.call(ctx, contracts.KindTokensCreate, req, &resp); err != nil {
		return "", contracts.TokenInfo{}, err
	}
	return resp.Token, resp.Info, nil
}

// TokensList lists enrollment tokens, newest first.
func (c *Client) TokensList(ctx context.Context) ([]contracts.TokenInfo, error) {
	var resp contracts.TokenListResponse
	if err := c.call(ctx, contracts.KindTokensList, contracts.TokenListRequest{Header: contracts.NewHeader(contracts.TypeTokenListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Tokens == nil {
		resp.Tokens = []contracts.TokenInfo{}
	}
	return resp.Tokens, nil
}

// TokensRevoke revokes a token by ID.
func (c *Client) TokensRevoke(ctx context.Context, id string) (contracts.TokenInfo, error) {
	var resp contracts.TokenResponse
	err := c.call(ctx, contracts.KindTokensRevoke, contracts.TokenRevokeRequest{Header: contracts.NewHeader(contracts.TypeTokenRevokeRequest), ID: id}, &resp)
	return resp.Info, err
}

// SiteServices lists the running service instances.
func (c *Client) SiteServices(ctx context.Context) ([]contracts.ServiceInstance, error) {
	var resp contracts.ServiceListResponse
	if err := c.call(ctx, contracts.KindSiteServices, contracts.ServiceListRequest{Header: contracts.NewHeader(contracts.TypeServiceListRequest)}, &resp); err != nil {
		return nil, err
	}
	return resp.Services, nil
}
