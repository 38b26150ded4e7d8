package replication

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
)

// Deployments: a version deployed to a collection is what the collection's
// members download (DeploymentsBucket, key "<package>.<version>.<collection
// ID>"). Every change tells the collection's members content.changed.

// Deploy deploys version (version "": the newest) of pkg to collection,
// whose ID the caller resolved (discovery owns collections). It returns the
// deployment and how many members were told to fetch. A deployment that
// exists is CodeConflict.
func (s *Service) Deploy(ctx context.Context, pkg, version string, collection contracts.Named, by string) (contracts.PackageDeployment, int, error) {
	if err := contracts.ValidToken(collection.ID); err != nil {
		return contracts.PackageDeployment{}, 0, contracts.Errorf(contracts.CodeBadRequest, "collection ID: %v", err)
	}
	info, err := s.Info(ctx, pkg, version)
	if err != nil {
		return contracts.PackageDeployment{}, 0, err
	}
	d := contracts.PackageDeployment{Package: info.Package, Version: info.Version, Collection: collection, By: by, Created: s.now()}
	b, _ := json.Marshal(d)
	rev, err := s.deployKV.Create(ctx, deploymentKey(d.Package, d.Version, collection.ID), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return contracts.PackageDeployment{}, 0, contracts.Errorf(contracts.CodeConflict, "%s is deployed to %s already", contracts.PackageKey(d.Package, d.Version), collection.Name)
	}
	if err != nil {
		return contracts.PackageDeployment{}, 0, contracts.Errorf(contracts.CodeUnavailable, "deployments: %v", err)
	}
	if err := s.stillInstalled(ctx, d.Package, d.Version); err != nil {
		// A deletion began before the deployment was written: withdraw it.
		if perr := s.deployKV.Purge(ctx, deploymentKey(d.Package, d.Version, collection.ID), jetstream.LastRevision(rev)); perr != nil && !cas.Lost(perr) {
			s.log.Error("a deployment of a version being deleted was not withdrawn", "package", d.Package, "version", d.Version, "collection", collection.Name, "err", perr)
		}
		return contracts.PackageDeployment{}, 0, err
	}
	if err := s.model.wait(ctx, DeploymentsBucket, rev); err != nil {
		return d, 0, err
	}
	s.log.Info("deployed", "package", d.Package, "version", d.Version, "collection", collection.Name, "by", by)
	s.emit(ctx, contracts.StatusPackageDeployed, map[string]string{"package": d.Package, "version": d.Version, "collection": collection.Name, "by": by})
	return d, s.tellMembers(ctx, by, collection), nil
}

// Undeploy removes the deployment of pkg's version (version "": the
// package's newest) to collectionID, and tells the collection's members.
// It returns the removed deployment and how many members were told.
func (s *Service) Undeploy(ctx context.Context, pkg, version string, collection contracts.Named, by string) (contracts.PackageDeployment, int, error) {
	if version == "" {
		vs := s.model.versionList(pkg)
		if len(vs) == 0 {
			return contracts.PackageDeployment{}, 0, contracts.Errorf(contracts.CodeNotFound, "no package %q", pkg)
		}
		version = vs[len(vs)-1].Version
	}
	key := deploymentKey(pkg, version, collection.ID)
	s.model.mu.RLock()
	d, ok := s.model.deployments[key]
	s.model.mu.RUnlock()
	if !ok {
		return contracts.PackageDeployment{}, 0, contracts.Errorf(contracts.CodeNotFound, "%s is not deployed to collection %q", contracts.PackageKey(pkg, version), cmp.Or(collection.Name, collection.ID))
	}
	if err := s.deployKV.Purge(ctx, key); err != nil {
		return contracts.PackageDeployment{}, 0, contracts.Errorf(contracts.CodeUnavailable, "deployments: %v", err)
	}
	if err := s.syncModel(ctx, s.deployKV, DeploymentsBucket); err != nil {
		return d, 0, err
	}
	s.log.Info("undeployed", "package", d.Package, "version", d.Version, "collection", d.Collection.Name, "by", by)
	s.emit(ctx, contracts.StatusPackageUndeployed, map[string]string{"package": d.Package, "version": d.Version, "collection": d.Collection.Name, "by": by})
	return d, s.tellMembers(ctx, by, d.Collection), nil
}

// collectionUses answers discovery before it deletes a collection: the
// package versions deployed to it.
func (s *Service) collectionUses(ctx context.Context, _ contracts.SubjectInfo, req *contracts.CollectionUsesRequest) (*contracts.CollectionUsesResponse, error) {
	// Another instance may have deployed to it a moment ago.
	if err := s.syncModel(ctx, s.deployKV, DeploymentsBucket); err != nil {
		return nil, err
	}
	resp := &contracts.CollectionUsesResponse{Header: contracts.NewHeader(contracts.TypeCollectionUsesResponse), Uses: []string{}}
	for _, d := range s.model.deploymentList("", "") {
		if d.Collection.ID == req.Collection {
			resp.Uses = append(resp.Uses, fmt.Sprintf("package %s is deployed to it", contracts.PackageKey(d.Package, d.Version)))
		}
	}
	return resp, nil
}

// Deployments lists deployments: of one version (pkg and version set),
// of one package (version ""), or all (both "").
func (s *Service) Deployments(pkg, version string) []contracts.PackageDeployment {
	return s.model.deploymentList(pkg, version)
}

// tellMembers pushes content.changed to the members of collection, read
// on behalf of operator by. A failure is logged: the members fetch their
// list at their next connection anyway.
func (s *Service) tellMembers(ctx context.Context, by string, collection contracts.Named) int {
	members, err := s.cfg.Directory.Members(ctx, by, collection.ID)
	if err != nil {
		s.log.Warn("members of the collection not told of the change", "collection", collection.Name, "err", err)
		return 0
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return s.pushChanged(ids)
}
