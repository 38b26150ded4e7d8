package replication

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
)

// Operator requests: the content library, distribution, deployments and
// routes. Each is authorised against the RBAC model (Config.Authz) before
// anything is done, with the operator taken from the subject.

// operatorRoutes are the operator endpoints of the handler table.
func (s *Service) operatorRoutes() []rpc.Endpoint {
	return []rpc.Endpoint{
		rpc.Route("packages-chunks", rpc.OpUp(contracts.KindPackagesChunks), rpc.Handler(s.log, contracts.TypePackageChunksRequest, s.opChunks)),
		rpc.Route("packages-chunk-put", rpc.OpUp(contracts.KindPackagesChunkPut), rpc.RawHandler(s.log, "packages.chunk.put", s.opChunkPut)),
		rpc.Route("packages-create", rpc.OpUp(contracts.KindPackagesCreate), rpc.RawHandler(s.log, contracts.TypePackageCreateRequest, s.opCreate)),
		rpc.Route("packages-list", rpc.OpUp(contracts.KindPackagesList), rpc.Handler(s.log, contracts.TypePackageListRequest, s.opList)),
		rpc.Route("packages-show", rpc.OpUp(contracts.KindPackagesShow), rpc.Handler(s.log, contracts.TypePackageRequest, s.opShow)),
		rpc.Route("packages-delete", rpc.OpUp(contracts.KindPackagesDelete), rpc.Handler(s.log, contracts.TypePackageRequest, s.opDelete)),
		rpc.Route("packages-distribute", rpc.OpUp(contracts.KindPackagesDistribute), rpc.Handler(s.log, contracts.TypePackageDistributeRequest, s.opDistribute)),
		rpc.Route("packages-cancel", rpc.OpUp(contracts.KindPackagesCancel), rpc.Handler(s.log, contracts.TypePackageCancelRequest, s.opCancel)),
		rpc.Route("packages-status", rpc.OpUp(contracts.KindPackagesStatus), rpc.Handler(s.log, contracts.TypePackageRequest, s.opStatus)),
		rpc.Route("packages-deploy", rpc.OpUp(contracts.KindPackagesDeploy), rpc.Handler(s.log, contracts.TypePackageDeployRequest, s.opDeploy(true))),
		rpc.Route("packages-undeploy", rpc.OpUp(contracts.KindPackagesUndeploy), rpc.Handler(s.log, contracts.TypePackageDeployRequest, s.opDeploy(false))),
		rpc.Route("routes-set", rpc.OpUp(contracts.KindRoutesSet), rpc.Handler(s.log, contracts.TypeRouteSetRequest, s.opRouteSet)),
		rpc.Route("routes-list", rpc.OpUp(contracts.KindRoutesList), rpc.Handler(s.log, contracts.TypeRouteListRequest, s.opRouteList)),
		rpc.Route("routes-delete", rpc.OpUp(contracts.KindRoutesDelete), rpc.Handler(s.log, contracts.TypeRouteDeleteRequest, s.opRouteDelete)),
		rpc.Route("quarantine-list", rpc.OpUp(contracts.KindQuarantineList), rpc.Handler(s.log, contracts.TypeQuarantineListRequest, s.opQuarantineList)),
		rpc.Route("quarantine-delete", rpc.OpUp(contracts.KindQuarantineDelete), rpc.Handler(s.log, contracts.TypeQuarantineDeleteRequest, s.opQuarantineDelete)),
		rpc.Route("quarantine-show", rpc.OpUp(contracts.KindQuarantineShow), rpc.Handler(s.log, contracts.TypeQuarantineShowRequest, s.opQuarantineShow)),
	}
}

// allowed checks a site-wide permission of operator.
func (s *Service) allowed(operator string, p rbac.Permission) error {
	m, err := rbac.Current(s.cfg.Authz, s.cfg.NoAuthz, "replication")
	if err != nil || m == nil {
		return err
	}
	return m.Allowed(operator, p, rbac.Anywhere())
}

// allowedOn checks a collection permission of operator on c.
func (s *Service) allowedOn(operator string, p rbac.Permission, c contracts.Named) error {
	m, err := rbac.Current(s.cfg.Authz, s.cfg.NoAuthz, "replication")
	if err != nil || m == nil {
		return err
	}
	return m.Allowed(operator, p, rbac.OnCollection(c))
}

func (s *Service) opChunks(ctx context.Context, from contracts.SubjectInfo, req *contracts.PackageChunksRequest) (*contracts.PackageChunksResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageCreate); err != nil {
		return nil, err
	}
	missing, err := s.MissingChunks(ctx, req.Hashes)
	if err != nil {
		return nil, err
	}
	if missing == nil {
		missing = []string{}
	}
	return &contracts.PackageChunksResponse{Header: contracts.NewHeader(contracts.TypePackageChunksResponse), Missing: missing}, nil
}

func (s *Service) opChunkPut(ctx context.Context, from contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
	if err := s.allowed(from.Principal, rbac.PackageCreate); err != nil {
		return nil, nil, err
	}
	hash := r.Headers().Get(contracts.HeaderChunk)
	if err := contracts.ValidHash(hash); err != nil {
		return nil, nil, contracts.Errorf(contracts.CodeBadRequest, "header %s: %v", contracts.HeaderChunk, err)
	}
	if err := s.PutChunk(ctx, hash, r.Data()); err != nil {
		return nil, nil, err
	}
	return []byte("{}"), nil, nil
}

// opCreate decodes with MaxManifestBytes, not the usual request limit: a
// package's file list is as long as the package.
func (s *Service) opCreate(ctx context.Context, from contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
	if err := s.allowed(from.Principal, rbac.PackageCreate); err != nil {
		return nil, nil, err
	}
	var req contracts.PackageCreateRequest
	if err := contracts.DecodeLimit(r.Data(), contracts.TypePackageCreateRequest, &req, contracts.MaxManifestBytes); err != nil {
		return nil, nil, err
	}
	m := contracts.Manifest{Package: req.Package, Version: req.Version, ChunkSize: contracts.ChunkSize, Files: req.Files, Links: req.Links}
	for _, f := range req.Files {
		m.Size += f.Size
	}
	info, err := s.CreateVersion(ctx, m, from.Principal)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(contracts.PackageResponse{Header: contracts.NewHeader(contracts.TypePackageResponse), Packages: []contracts.PackageInfo{info}})
	return b, nil, err
}

func (s *Service) opList(_ context.Context, from contracts.SubjectInfo, req *contracts.PackageListRequest) (*contracts.PackageListResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageRead); err != nil {
		return nil, err
	}
	list := s.Versions(req.Package)
	if list == nil {
		list = []contracts.PackageInfo{}
	}
	return &contracts.PackageListResponse{Header: contracts.NewHeader(contracts.TypePackageListResponse), Packages: list}, nil
}

func (s *Service) opShow(ctx context.Context, from contracts.SubjectInfo, req *contracts.PackageRequest) (*contracts.PackageShowResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageRead); err != nil {
		return nil, err
	}
	v, err := s.Version(ctx, req.Package, req.Version)
	if err != nil {
		return nil, err
	}
	deps := s.Deployments(v.Info.Package, v.Info.Version)
	if deps == nil {
		deps = []contracts.PackageDeployment{}
	}
	return &contracts.PackageShowResponse{
		Header: contracts.NewHeader(contracts.TypePackageShowResponse), Package: v.Info,
		Files: v.Manifest.Files, Links: v.Manifest.Links, Deployments: deps,
	}, nil
}

func (s *Service) opDelete(ctx context.Context, from contracts.SubjectInfo, req *contracts.PackageRequest) (*contracts.PackageResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageDelete); err != nil {
		return nil, err
	}
	if req.Version == "" && len(s.Versions(req.Package)) == 0 {
		return nil, contracts.Errorf(contracts.CodeNotFound, "no package %s (steward packages list shows them)", req.Package)
	}
	gone, err := s.Delete(ctx, req.Package, req.Version, from.Principal)
	if err != nil {
		return nil, err
	}
	return &contracts.PackageResponse{Header: contracts.NewHeader(contracts.TypePackageResponse), Packages: gone}, nil
}

func (s *Service) opDistribute(ctx context.Context, from contracts.SubjectInfo, req *contracts.PackageDistributeRequest) (*contracts.PackageStatusResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageDistribute); err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, req.Package, req.Version)
	if err != nil {
		return nil, err
	}
	jobs, err := s.Distribute(ctx, info.Package, info.Version, req.Sites, from.Principal)
	if err != nil {
		return nil, err
	}
	return &contracts.PackageStatusResponse{Header: contracts.NewHeader(contracts.TypePackageStatusResponse), Package: info, Sites: jobs, Clients: []contracts.PackageClientStatus{}}, nil
}

func (s *Service) opCancel(ctx context.Context, from contracts.SubjectInfo, req *contracts.PackageCancelRequest) (*contracts.PackageCancelResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageDistribute); err != nil {
		return nil, err
	}
	cancelled, err := s.CancelDistribution(ctx, req.Package, req.Version, req.Sites, from.Principal)
	if err != nil {
		return nil, err
	}
	return &contracts.PackageCancelResponse{Header: contracts.NewHeader(contracts.TypePackageCancelResponse), Cancelled: cancelled}, nil
}

func (s *Service) opStatus(ctx context.Context, from contracts.SubjectInfo, req *contracts.PackageRequest) (*contracts.PackageStatusResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageRead); err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, req.Package, req.Version)
	if err != nil {
		return nil, err
	}
	clients, err := s.ClientStates(ctx, info.Package, info.Version)
	if err != nil {
		return nil, err
	}
	// Names come from discovery, within the operator's scope; a client the
	// operator may not see is left out.
	named := clients[:0]
	reported := map[string]bool{}
	for _, c := range clients {
		reported[c.Client.ID] = true
		cl, err := s.clientNamed(ctx, from.Principal, c.Client.ID)
		if err != nil {
			continue
		}
		c.Client = cl
		named = append(named, c)
	}
	// The members of the collections it is deployed to that have not
	// reported are pending (told, or about to be, to fetch it).
	for _, d := range s.Deployments(info.Package, info.Version) {
		members, err := s.cfg.Directory.Members(ctx, from.Principal, d.Collection.ID)
		if err != nil {
			continue // a collection the operator may not read
		}
		for _, m := range members {
			if !reported[m.ID] {
				reported[m.ID] = true
				named = append(named, contracts.PackageClientStatus{Client: m, State: contracts.ContentPending})
			}
		}
	}
	slices.SortFunc(named, func(a, b contracts.PackageClientStatus) int { return strings.Compare(a.Client.Name, b.Client.Name) })
	sites := s.Jobs(info.Package, info.Version)
	if sites == nil {
		sites = []contracts.PackageSiteStatus{}
	}
	return &contracts.PackageStatusResponse{Header: contracts.NewHeader(contracts.TypePackageStatusResponse), Package: info, Sites: sites, Clients: named}, nil
}

// clientNamed asks discovery for a client's name on behalf of operator.
func (s *Service) clientNamed(ctx context.Context, operator, id string) (contracts.Named, error) {
	subj, err := contracts.OpUp(s.cfg.Site, operator, contracts.KindClientsShow)
	if err != nil {
		return contracts.Named{}, err
	}
	var resp contracts.ClientResponse
	if err := rpc.Call(ctx, s.cfg.NC, subj, contracts.ClientRequest{Header: contracts.NewHeader(contracts.TypeClientRequest), Ref: id}, &resp); err != nil {
		return contracts.Named{}, err
	}
	return contracts.Named{ID: resp.Client.ID, Name: resp.Client.Name}, nil
}

// collection resolves a collection name or ID on behalf of operator.
func (s *Service) collection(ctx context.Context, operator, ref string) (contracts.Named, error) {
	subj, err := contracts.OpUp(s.cfg.Site, operator, contracts.KindCollectionsShow)
	if err != nil {
		return contracts.Named{}, err
	}
	var resp contracts.CollectionResponse
	err = rpc.Call(ctx, s.cfg.NC, subj, contracts.CollectionRequest{Header: contracts.NewHeader(contracts.TypeCollectionRequest), Ref: ref}, &resp)
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

func (s *Service) opDeploy(deploy bool) rpc.Func[contracts.PackageDeployRequest, contracts.PackageDeployResponse] {
	return func(ctx context.Context, from contracts.SubjectInfo, req *contracts.PackageDeployRequest) (*contracts.PackageDeployResponse, error) {
		if err := s.allowed(from.Principal, rbac.PackageRead); err != nil {
			return nil, err
		}
		if req.Collection == "" {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "a collection is required")
		}
		c, err := s.collection(ctx, from.Principal, req.Collection)
		if err != nil {
			return nil, err
		}
		if err := s.allowedOn(from.Principal, rbac.CollectionDeployPackages, c); err != nil {
			return nil, err
		}
		var (
			d contracts.PackageDeployment
			n int
		)
		if deploy {
			d, n, err = s.Deploy(ctx, req.Package, req.Version, c, from.Principal)
		} else {
			d, n, err = s.Undeploy(ctx, req.Package, req.Version, c, from.Principal)
		}
		if err != nil {
			return nil, err
		}
		return &contracts.PackageDeployResponse{Header: contracts.NewHeader(contracts.TypePackageDeployResponse), Deployment: d, Clients: n}, nil
	}
}

func (s *Service) opRouteSet(ctx context.Context, from contracts.SubjectInfo, req *contracts.RouteSetRequest) (*contracts.RouteListResponse, error) {
	if err := s.allowed(from.Principal, rbac.SiteModify); err != nil {
		return nil, err
	}
	if _, err := s.SetRoute(ctx, req.Site, req.Rate, req.Schedule, from.Principal); err != nil {
		return nil, err
	}
	return &contracts.RouteListResponse{Header: contracts.NewHeader(contracts.TypeRouteListResponse), Routes: []contracts.RouteInfo{s.Route(req.Site)}}, nil
}

func (s *Service) opRouteDelete(ctx context.Context, from contracts.SubjectInfo, req *contracts.RouteDeleteRequest) (*contracts.RouteListResponse, error) {
	if err := s.allowed(from.Principal, rbac.SiteModify); err != nil {
		return nil, err
	}
	if err := s.DeleteRoute(ctx, req.Site, from.Principal); err != nil {
		return nil, err
	}
	return &contracts.RouteListResponse{Header: contracts.NewHeader(contracts.TypeRouteListResponse), Routes: []contracts.RouteInfo{s.Route(req.Site)}}, nil
}

func (s *Service) opRouteList(_ context.Context, from contracts.SubjectInfo, _ *contracts.RouteListRequest) (*contracts.RouteListResponse, error) {
	if err := s.allowed(from.Principal, rbac.SiteRead); err != nil {
		return nil, err
	}
	// Every site with a route set or a job queued, the latter with the
	// default route where none was set: their backlog is what matters.
	routes := s.Routes()
	if routes == nil {
		routes = []contracts.RouteInfo{}
	}
	have := map[string]bool{}
	for _, r := range routes {
		have[r.Site] = true
	}
	for _, e := range s.model.jobList(func(job) bool { return true }) {
		if !have[e.job.Site] {
			have[e.job.Site] = true
			routes = append(routes, s.Route(e.job.Site))
		}
	}
	slices.SortFunc(routes, func(a, b contracts.RouteInfo) int { return strings.Compare(a.Site, b.Site) })
	return &contracts.RouteListResponse{Header: contracts.NewHeader(contracts.TypeRouteListResponse), Routes: routes}, nil
}

func (s *Service) opQuarantineList(ctx context.Context, from contracts.SubjectInfo, _ *contracts.QuarantineListRequest) (*contracts.QuarantineListResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageRead); err != nil {
		return nil, err
	}
	entries, err := s.Quarantined(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]contracts.QuarantineInfo, len(entries))
	for i, e := range entries {
		out[i] = e.QuarantineInfo
	}
	return &contracts.QuarantineListResponse{Header: contracts.NewHeader(contracts.TypeQuarantineListResponse), Entries: out}, nil
}

func (s *Service) opQuarantineShow(ctx context.Context, from contracts.SubjectInfo, req *contracts.QuarantineShowRequest) (*contracts.QuarantineShowResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageRead); err != nil {
		return nil, err
	}
	q, err := s.QuarantinedEntry(ctx, req.Entry)
	if err != nil {
		return nil, err
	}
	return &contracts.QuarantineShowResponse{Header: contracts.NewHeader(contracts.TypeQuarantineShowResponse), Entry: q.QuarantineInfo, Data: q.Data, Truncated: q.Truncated}, nil
}

func (s *Service) opQuarantineDelete(ctx context.Context, from contracts.SubjectInfo, req *contracts.QuarantineDeleteRequest) (*contracts.QuarantineListResponse, error) {
	if err := s.allowed(from.Principal, rbac.PackageDelete); err != nil {
		return nil, err
	}
	if err := s.DeleteQuarantined(ctx, req.Entry, from.Principal); err != nil {
		return nil, err
	}
	s.log.Info("quarantine entry deleted", "entry", req.Entry, "by", from.Principal)
	return s.opQuarantineList(ctx, from, nil)
}
