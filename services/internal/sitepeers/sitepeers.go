// Package sitepeers asks the admin service of a site for the sites linked
// to it (parent and children, with the signing keys it pinned). Services
// other than admin use it: admin imports them, so they cannot import admin.
package sitepeers

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// AdminService is the service that keeps a site's peers and answers
// contracts.VerbSitePeers (admin.ServiceName).
const AdminService = "steward-admin"

// Ask asks the admin service of site for its peers: only site filter when
// filter is not "", every peer otherwise.
func Ask(ctx context.Context, nc *nats.Conn, site, filter string) ([]contracts.SitePeer, error) {
	subj, err := contracts.Svc(site, AdminService, contracts.VerbSitePeers)
	if err != nil {
		return nil, err
	}
	var resp contracts.SitePeersResponse
	req := contracts.SitePeersRequest{Header: contracts.NewHeader(contracts.TypeSitePeersRequest), Site: filter}
	if err := rpc.Call(ctx, nc, subj, req, &resp); err != nil {
		return nil, err
	}
	return resp.Peers, nil
}
