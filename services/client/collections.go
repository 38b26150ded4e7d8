package client

import (
	"context"

	"github.com/stewardhq/steward/contracts"
)

// CollectionsCreate creates a collection; req's header is filled in.
func (c *Client) CollectionsCreate(ctx context.Context, req contracts.CollectionCreateRequest) (contracts.CollectionInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeCollectionCreateRequest)
	if err := req.Validate(); err != nil {
		return contracts.CollectionInfo{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.CollectionResponse
	err := c.call(ctx, contracts.KindCollectionsCreate, req, &resp)
	return resp.Collection, err
}

// CollectionsUpdate changes a collection; req's header is filled in.
func (c *Client) CollectionsUpdate(ctx context.Context, req contracts.CollectionUpdateRequest) (contracts.CollectionInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeCollectionUpdateRequest)
	if err := req.Validate(); err != nil {
		return contracts.CollectionInfo{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.CollectionResponse
	err := c.call(ctx, contracts.KindCollectionsUpdate, req, &resp)
	return resp.Collection, err
}

// CollectionsAdd makes clients (names or IDs) direct members of the
// collection ref.
func (c *Client) CollectionsAdd(ctx context.Context, ref string, clients ...string) (contracts.CollectionInfo, error) {
	return c.CollectionsUpdate(ctx, contracts.CollectionUpdateRequest{Ref: ref, AddDirect: clients})
}

// CollectionsRemove removes direct members of the collection ref.
func (c *Client) CollectionsRemove(ctx context.Context, ref string, clients ...string) (contracts.CollectionInfo, error) {
	return c.CollectionsUpdate(ctx, contracts.CollectionUpdateRequest{Ref: ref, DelDirect: clients})
}

// CollectionsDelete deletes a collection and returns it as it was. The
// site refuses to delete one that other collections name in their rules.
func (c *Client) CollectionsDelete(ctx context.Context, ref string) (contracts.CollectionInfo, error) {
	return c.collectionRequest(ctx, contracts.KindCollectionsDelete, ref)
}

// CollectionsShow returns one collection.
func (c *Client) CollectionsShow(ctx context.Context, ref string) (contracts.CollectionInfo, error) {
	return c.collectionRequest(ctx, contracts.KindCollectionsShow, ref)
}

// CollectionsList returns every collection, All Systems first, then by
// name. The result is never nil.
func (c *Client) CollectionsList(ctx context.Context) ([]contracts.CollectionInfo, error) {
	var resp contracts.CollectionListResponse
	if err := c.call(ctx, contracts.KindCollectionsList, contracts.CollectionListRequest{Header: contracts.NewHeader(contracts.TypeCollectionListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Collections == nil {
		resp.Collections = []contracts.CollectionInfo{}
	}
	return resp.Collections, nil
}

// CollectionsMembers returns the collection and all its members, sorted by
// name then ID, fetching them a page at a time. The members are never nil.
func (c *Client) CollectionsMembers(ctx context.Context, ref string) (contracts.Named, []contracts.Named, error) {
	members := []contracts.Named{}
	var coll contracts.Named
	offset := 0
	for {
		req := contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: ref, Offset: offset}
		if err := req.Validate(); err != nil {
			return coll, nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
		}
		var resp contracts.CollectionMembersResponse
		if err := c.call(ctx, contracts.KindCollectionsMembers, req, &resp); err != nil {
			return coll, nil, err
		}
		coll = resp.Collection
		ref = coll.ID // the same collection on every page, even if renamed meanwhile
		members = append(members, resp.Members...)
		if resp.Next <= offset {
			return coll, members, nil
		}
		offset = resp.Next
	}
}

// CollectionsPreview returns how many clients a collection with req's
// rules would hold and the first req.Max of them (default and at most
// contracts.MaxMembersPage); req's header is filled in.
func (c *Client) CollectionsPreview(ctx context.Context, req contracts.CollectionPreviewRequest) (int, []contracts.Named, error) {
	req.Header = contracts.NewHeader(contracts.TypeCollectionPreviewRequest)
	if err := req.Validate(); err != nil {
		return 0, nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.CollectionPreviewResponse
	if err := c.call(ctx, contracts.KindCollectionsPreview, req, &resp); err != nil {
		return 0, nil, err
	}
	if resp.Members == nil {
		resp.Members = []contracts.Named{}
	}
	return resp.Total, resp.Members, nil
}

func (c *Client) collectionRequest(ctx context.Context, kind, ref string) (contracts.CollectionInfo, error) {
	req := contracts.CollectionRequest{Header: contracts.NewHeader(contracts.TypeCollectionRequest), Ref: ref}
	if err := req.Validate(); err != nil {
		return contracts.CollectionInfo{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	var resp contracts.CollectionResponse
	err := c.call(ctx, kind, req, &resp)
	return resp.Collection, err
}
