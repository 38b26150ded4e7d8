package policy

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/discovery"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// Directory is what the policy service asks the discovery service, which
// owns clients, collections and membership. Each question is asked on
// behalf of an operator: the one making the request, or for a resync the
// one who made the deployment. Discovery answers within that operator's
// scope, so the policy service never learns more than the operator may.
type Directory interface {
	// Collection resolves a collection name or ID (not found: unknown).
	Collection(ctx context.Context, operator, ref string) (contracts.Named, error)
	// Members lists the members of a collection.
	Members(ctx context.Context, operator, collectionID string) ([]contracts.Named, error)
	// Client resolves a client name or ID the operator may see.
	Client(ctx context.Context, operator, ref string) (contracts.Client, error)
}

// BusDirectory asks discovery over NATS on the operator's own subjects
// (services may publish anywhere; replies come to the service's inbox).
type BusDirectory struct {
	NC   *nats.Conn
	Site string
}

func (b BusDirectory) call(ctx context.Context, operator, kind string, req, resp any) error {
	subj, err := contracts.OpUp(b.Site, operator, kind)
	if err != nil {
		return err
	}
	return rpc.Call(ctx, b.NC, subj, req, resp)
}

// Collection implements Directory.
func (b BusDirectory) Collection(ctx context.Context, operator, ref string) (contracts.Named, error) {
	var resp contracts.CollectionResponse
	err := b.call(ctx, operator, contracts.KindCollectionsShow,
		contracts.CollectionRequest{Header: contracts.NewHeader(contracts.TypeCollectionRequest), Ref: ref}, &resp)
	switch contracts.CodeOf(err) {
	case contracts.CodeNotFound:
		return contracts.Named{}, contracts.Errorf(contracts.CodeNotFound, "unknown collection %q (steward collections list shows them)", ref)
	case contracts.CodeUnavailable:
		return contracts.Named{}, contracts.Errorf(contracts.CodeUnavailable, "collection %q cannot be checked: the discovery service does not answer", ref)
	}
	if err != nil {
		return contracts.Named{}, err
	}
	return contracts.Named{ID: resp.Collection.ID, Name: resp.Collection.Name}, nil
}

// Members implements Directory.
func (b BusDirectory) Members(ctx context.Context, operator, collectionID string) ([]contracts.Named, error) {
	return discovery.Members(ctx, b.NC, b.Site, operator, collectionID)
}

// Client implements Directory.
func (b BusDirectory) Client(ctx context.Context, operator, ref string) (contracts.Client, error) {
	var resp contracts.ClientResponse
	err := b.call(ctx, operator, contracts.KindClientsShow,
		contracts.ClientRequest{Header: contracts.NewHeader(contracts.TypeClientRequest), Ref: ref}, &resp)
	return resp.Client, err
}
