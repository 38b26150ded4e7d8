package client

import (
	"context"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// InventoryShow returns the current inventory of the client whose ID or
// name is ref.
func (c *Client) InventoryShow(ctx context.Context, ref string) (contracts.InventoryResponse, error) {
	var resp contracts.InventoryResponse
	err := c.inventoryRequest(ctx, contracts.KindInventoryShow, ref, time.Time{}, &resp)
	return resp, err
}

// InventoryHistory returns the changes of a client's inventory, oldest
// first; with since set, only those collected after it. The changes are
// never nil.
func (c *Client) InventoryHistory(ctx context.Context, ref string, since time.Time) (contracts.InventoryHistoryResponse, error) {
	var resp contracts.InventoryHistoryResponse
	err := c.inventoryRequest(ctx, contracts.KindInventoryHistory, ref, since, &resp)
	if resp.Changes == nil {
		resp.Changes = []contracts.InventoryChange{}
	}
	return resp, err
}

// InventoryRefresh asks a client's agent to report its inventory now; it
// returns the client asked.
func (c *Client) InventoryRefresh(ctx context.Context, ref string) (contracts.Client, error) {
	var resp contracts.ClientResponse
	err := c.inventoryRequest(ctx, contracts.KindInventoryRefreshOp, ref, time.Time{}, &resp)
	return resp.Client, err
}

func (c *Client) inventoryRequest(ctx context.Context, kind, ref string, since time.Time, resp any) error {
	req := contracts.InventoryRequest{Header: contracts.NewHeader(contracts.TypeInventoryRequest), Ref: ref, Since: since}
	if err := req.Validate(); err != nil {
		return contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	return c.call(ctx, kind, req, resp)
}
