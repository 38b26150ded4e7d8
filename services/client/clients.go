package client

import (
	"context"

	"github.com/stewardhq/steward/contracts"
)

// ClientsList returns the site's clients sorted by name then ID; status
// (pending, approved or blocked) keeps only clients in it, "" keeps all.
// The result is never nil.
func (c *Client) ClientsList(ctx context.Context, status string) ([]contracts.Client, error) {
	clients := []contracts.Client{}
	for offset := 0; ; {
		req := contracts.ClientListRequest{Header: contracts.NewHeader(contracts.TypeClientListRequest), Status: status, Offset: offset}
		var resp contracts.ClientListResponse
		if err := c.call(ctx, contracts.KindClientsList, req, &resp); err != nil {
			return nil, err
		}
		clients = append(clients, resp.Clients...)
		if resp.Next <= offset {
			return clients, nil
		}
		offset = resp.Next
	}
}

// ClientsShow returns the client whose ID or name is ref.
func (c *Client) ClientsShow(ctx context.Context, ref string) (contracts.Client, error) {
	return c.clientRequest(ctx, contracts.KindClientsShow, ref)
}

// ClientsApprove admits a pending client; it returns the client as the site
// now records it.
func (c *Client) ClientsApprove(ctx context.Context, ref string) (contracts.Client, error) {
	return c.clientRequest(ctx, contracts.KindClientsApprove, ref)
}

// ClientsBlock blocks a client: the site disconnects it and refuses its
// reconnects.
func (c *Client) ClientsBlock(ctx context.Context, ref string) (contracts.Client, error) {
	return c.clientRequest(ctx, contracts.KindClientsBlock, ref)
}

// ClientsDelete forgets a client's identity and record; it returns the
// client as it was.
func (c *Client) ClientsDelete(ctx context.Context, ref string) (contracts.Client, error) {
	return c.clientRequest(ctx, contracts.KindClientsDelete, ref)
}

// clientRequest sends a ClientRequest for ref to kind.
func (c *Client) clientRequest(ctx context.Context, kind, ref string) (contracts.Client, error) {
	req := contracts.ClientRequest{Header: contracts.NewHeader(contracts.TypeClientRequest), Ref: ref}
	if err := req.Validate(); err != nil {
		return contracts.Client{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.ClientResponse
	if err := c.call(ctx, kind, req, &resp); err != nil {
		return contracts.Client{}, err
	}
	return resp.Client, nil
}
