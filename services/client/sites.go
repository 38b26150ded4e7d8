package client

import (
	"context"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// SitesList lists the sites linked to this one (its parent and children),
// sorted by site code.
func (c *Client) SitesList(ctx context.Context) ([]contracts.SitePeer, error) {
	var resp contracts.SitePeersResponse
	if err := c.call(ctx, contracts.KindSitesList, contracts.SitePeersRequest{Header: contracts.NewHeader(contracts.TypeSitePeersRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Peers == nil {
		resp.Peers = []contracts.SitePeer{}
	}
	return resp.Peers, nil
}

// SitesTokenList lists the site tokens, newest first (never their
// secrets).
func (c *Client) SitesTokenList(ctx context.Context) ([]contracts.TokenInfo, error) {
	var resp contracts.TokenListResponse
	if err := c.call(ctx, contracts.KindSitesTokenList, contracts.TokenListRequest{Header: contracts.NewHeader(contracts.TypeTokenListRequest)}, &resp); err != nil {
		return nil, err
	}
	return resp.Tokens, nil
}

// SitesTokenRevoke revokes a site token by ID.
func (c *Client) SitesTokenRevoke(ctx context.Context, id string) (contracts.TokenInfo, error) {
	var resp contracts.TokenResponse
	if err := c.call(ctx, contracts.KindSitesTokenRevoke, contracts.TokenRevokeRequest{Header: contracts.NewHeader(contracts.TypeTokenRevokeRequest), ID: id}, &resp); err != nil {
		return contracts.TokenInfo{}, err
	}
	return resp.Info, nil
}

// SitesTokenCreate makes a one-time site token a child links with (child:
// the only site code that may use it, "" for any); the printed token is
// returned once.
func (c *Client) SitesTokenCreate(ctx context.Context, ttl time.Duration, child, note string) (string, contracts.TokenInfo, error) {
	req := contracts.SiteTokenCreateRequest{Header: contracts.NewHeader(contracts.TypeSiteTokenCreateRequest), TTL: contracts.Duration(ttl), Child: child, Note: note}
	var resp contracts.SiteTokenResponse
	if err := c.call(ctx, contracts.KindSitesTokenCreate, req, &resp); err != nil {
		return "", contracts.TokenInfo{}, err
	}
	return resp.Token, resp.Info, nil
}
