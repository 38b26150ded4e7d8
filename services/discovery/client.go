package discovery

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// The questions other services ask discovery over NATS (nc must be a
// service connection: services may publish on svc subjects and on any
// operator's subjects; replies come to the service's inbox).

// ClientFacts asks for a client's record and the collections holding it
// (client-facts, on discovery's svc subject); ref is a name or an ID.
func ClientFacts(ctx context.Context, nc *nats.Conn, site, ref string) (contracts.ClientFactsResponse, error) {
	var resp contracts.ClientFactsResponse
	subj, err := contracts.Svc(site, ServiceName, contracts.SvcClientFacts)
	if err != nil {
		return resp, err
	}
	err = rpc.Call(ctx, nc, subj, contracts.ClientFactsRequest{Header: contracts.NewHeader(contracts.TypeClientFactsRequest), Ref: ref}, &resp)
	return resp, err
}

// Members lists a collection's members as operator may see them
// (collections.members on the operator's own subject: discovery answers
// within the operator's scope), a page at a time.
func Members(ctx context.Context, nc *nats.Conn, site, operator, collectionID string) ([]contracts.Named, error) {
	subj, err := contracts.OpUp(site, operator, contracts.KindCollectionsMembers)
	if err != nil {
		return nil, err
	}
	out := []contracts.Named{}
	for offset := 0; ; {
		req := contracts.CollectionMembersRequest{Header: contracts.NewHeader(contracts.TypeCollectionMembersRequest), Ref: collectionID, Offset: offset}
		var resp contracts.CollectionMembersResponse
		if err := rpc.Call(ctx, nc, subj, req, &resp); err != nil {
			return nil, err
		}
		out = append(out, resp.Members...)
		if resp.Next <= offset {
			return out, nil
		}
		offset = resp.Next
	}
}
