package contracts

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Operator requests of the content library: packages, their distribution
// to other sites, their deployment to collections, and the sender's routes.

// Message type strings of packages and routes.
const (
	TypePackageChunksRequest     = "steward.v1.package_chunks_request"
	TypePackageChunksResponse    = "steward.v1.package_chunks_response"
	TypePackageCreateRequest     = "steward.v1.package_create_request"
	TypePackageRequest           = "steward.v1.package_request"
	TypePackageResponse          = "steward.v1.package_response"
	TypePackageListRequest       = "steward.v1.package_list_request"
	TypePackageListResponse      = "steward.v1.package_list_response"
	TypePackageShowResponse      = "steward.v1.package_show_response"
	TypePackageDistributeRequest = "steward.v1.package_distribute_request"
	TypePackageCancelRequest     = "steward.v1.package_cancel_request"
	TypePackageCancelResponse    = "steward.v1.package_cancel_response"
	TypePackageStatusResponse    = "steward.v1.package_status_response"
	TypePackageDeployRequest     = "steward.v1.package_deploy_request"
	TypePackageDeployResponse    = "steward.v1.package_deploy_response"
	TypeRouteSetRequest          = "steward.v1.route_set_request"
	TypeRouteDeleteRequest       = "steward.v1.route_delete_request"
	TypeRouteListRequest         = "steward.v1.route_list_request"
	TypeRouteListResponse        = "steward.v1.route_list_response"
	TypeQuarantineListRequest    = "steward.v1.quarantine_list_request"
	TypeQuarantineListResponse   = "steward.v1.quarantine_list_response"
	TypeQuarantineDeleteRequest  = "steward.v1.quarantine_delete_request"
	TypeQuarantineShowRequest    = "steward.v1.quarantine_show_request"
	TypeQuarantineShowResponse   = "steward.v1.quarantine_show_response"
)

// Operator kinds of packages and routes.
const (
	KindPackagesChunks     = "packages.chunks"     // which of these chunks does the site lack
	KindPackagesChunkPut   = "packages.chunk.put"  // one chunk, raw bytes, HeaderChunk
	KindPackagesCreate     = "packages.create"     // sign and store a version whose chunks are all stored
	KindPackagesList       = "packages.list"       // every version
	KindPackagesShow       = "packages.show"       // one version with its files
	KindPackagesDelete     = "packages.delete"     // delete a version (or every version)
	KindPackagesDistribute = "packages.distribute" // send a version to sites
	KindPackagesCancel     = "packages.cancel"     // stop sending a version (or every version) to sites: its jobs are deleted
	KindPackagesStatus     = "packages.status"     // per site and per client state of a version
	KindPackagesDeploy     = "packages.deploy"     // clients of a collection download a version
	KindPackagesUndeploy   = "packages.undeploy"
	KindRoutesSet          = "routes.set"
	KindRoutesList         = "routes.list"
	KindRoutesDelete       = "routes.delete"              // back to the default route: unlimited, always open
	KindQuarantineList     = "packages.quarantine.list"   // what peer sites sent that failed verification
	KindQuarantineDelete   = "packages.quarantine.delete" // forget an entry
	KindQuarantineShow     = "packages.quarantine.show"   // one entry with the bytes kept
)

// MaxChunkQuery bounds the hashes of one PackageChunksRequest.
const MaxChunkQuery = 512

// PackageChunksRequest asks which of Hashes the site's library lacks.
type PackageChunksRequest struct {
	Header
	Hashes []string `json:"hashes"`
}

// Validate checks the hashes.
func (r *PackageChunksRequest) Validate() error {
	if len(r.Hashes) > MaxChunkQuery {
		return fmt.Errorf("%d hashes: at most %d per request", len(r.Hashes), MaxChunkQuery)
	}
	for _, h := range r.Hashes {
		if err := ValidHash(h); err != nil {
			return err
		}
	}
	return nil
}

// PackageChunksResponse lists the missing ones, in request order.
type PackageChunksResponse struct {
	Header
	Missing []string `json:"missing"`
}

// PackageCreateRequest asks the site to make a version of the files (whose
// chunks it holds) and sign its manifest. Site, ChunkSize, Size and
// Created are the site's to fill; Files are the operator's.
//
// A version has two limits on its files: at most MaxPackageFiles files and
// links, and a manifest of at most MaxManifestBytes (ManifestBytes). The
// second is usually the one met first: each file takes its path, its
// SHA-256 and the hash of each of its 512 KiB chunks, about 200 bytes for a
// small file with a short path, so some 3,500 small files fill a manifest,
// and each further chunk takes 67 bytes (roughly 5 GiB of content).
type PackageCreateRequest struct {
	Header
	Package string         `json:"package"`
	Version string         `json:"version"`
	Files   []ManifestFile `json:"files"`
	Links   []ManifestLink `json:"links,omitempty"`
}

// ManifestBytes is the size of the manifest's JSON the site would make of
// the request (what it signs, and refuses over MaxManifestBytes), with the
// longest site code, creator name and times it may fill in. The request's
// own JSON is smaller.
func (r *PackageCreateRequest) ManifestBytes() int {
	long := strings.Repeat("x", 64)
	t := time.Date(2000, 1, 1, 0, 0, 0, 123456789, time.UTC) // every digit of a time written
	m := Manifest{
		Header: Header{Type: TypeManifest, ID: "00000000-0000-0000-0000-000000000000", Time: t},
		Site:   long, Package: r.Package, Version: r.Version, Created: t, CreatedBy: long,
		ChunkSize: ChunkSize, Size: MaxPackageBytes, Files: r.Files, Links: r.Links,
	}
	b, err := json.Marshal(&m)
	if err != nil {
		return MaxManifestBytes + 1
	}
	return len(b)
}

// PackageInfo describes one package version in the library.
type PackageInfo struct {
	Package   string    `json:"package"`
	Version   string    `json:"version"`
	Digest    string    `json:"digest"` // SignedManifest.Digest
	Site      string    `json:"site"`   // the site that created it
	From      string    `json:"from"`   // the site it came from ("" when made here)
	Size      int64     `json:"size"`
	Files     int       `json:"files"`
	Chunks    int       `json:"chunks"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"createdBy,omitempty"`
	Installed time.Time `json:"installed,omitzero"`
}

// PackageRequest names a version (Version "" on delete: every version; on
// show and status: the newest).
type PackageRequest struct {
	Header
	Package string `json:"package"`
	Version string `json:"version,omitempty"`
}

// PackageResponse answers create and delete.
type PackageResponse struct {
	Header
	Packages []PackageInfo `json:"packages"`
}

// PackageListRequest asks for every version (Package set: of that one).
type PackageListRequest struct {
	Header
	Package string `json:"package,omitempty"`
}

// PackageListResponse lists versions by package then creation.
type PackageListResponse struct {
	Header
	Packages []PackageInfo `json:"packages"`
}

// PackageShowResponse is one version, whole.
type PackageShowResponse struct {
	Header
	Package     PackageInfo         `json:"package"`
	Files       []ManifestFile      `json:"files"`
	Links       []ManifestLink      `json:"links,omitempty"`
	Deployments []PackageDeployment `json:"deployments"`
}

// PackageDistributeRequest sends a version to sites.
type PackageDistributeRequest struct {
	Header
	Package string   `json:"package"`
	Version string   `json:"version,omitempty"` // "": the newest
	Sites   []string `json:"sites"`
}

// PackageCancelRequest stops the distribution of a version (Version "":
// of every version of Package) to Sites: the jobs are deleted, whatever
// their state, and the sender lets them go. A site need not be linked any
// more: cancelling is how a distribution to a site that is gone ends.
type PackageCancelRequest struct {
	Header
	Package string   `json:"package"`
	Version string   `json:"version,omitempty"`
	Sites   []string `json:"sites"`
}

// Validate checks the names.
func (r *PackageCancelRequest) Validate() error {
	if err := ValidPackageName(r.Package); err != nil {
		return err
	}
	if r.Version != "" {
		if err := ValidPackageVersion(r.Version); err != nil {
			return err
		}
	}
	if len(r.Sites) == 0 {
		return fmt.Errorf("name at least one site")
	}
	for _, s := range r.Sites {
		if err := ValidName(s); err != nil {
			return fmt.Errorf("site: %w", err)
		}
	}
	return nil
}

// PackageCancelled is one distribution that was cancelled, as it stood.
type PackageCancelled struct {
	Package string `json:"package"`
	Version string `json:"version"`
	PackageSiteStatus
}

// PackageCancelResponse lists the distributions cancelled, by package,
// version and site.
type PackageCancelResponse struct {
	Header
	Cancelled []PackageCancelled `json:"cancelled"`
}

// PackageSiteStatus is where a version stands at one destination site.
type PackageSiteStatus struct {
	Site        string    `json:"site"`
	State       string    `json:"state"` // pending | sending | installed | failed
	Bytes       int64     `json:"bytes"` // sent so far
	Total       int64     `json:"total"` // to send (the chunks the site lacked)
	Chunks      int       `json:"chunks"`
	ChunksTotal int       `json:"chunksTotal"`
	Verified    string    `json:"verified,omitempty"` // the digest the destination verified
	Error       string    `json:"error,omitempty"`
	Attempts    int       `json:"attempts"`
	Updated     time.Time `json:"updated"`
}

// PackageClientStatus is where a version stands on one client.
type PackageClientStatus struct {
	Client  Named     `json:"client"`
	State   string    `json:"state"` // installed | failed | pending | unknown
	Bytes   int64     `json:"bytes,omitempty"`
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
}

// PackageStatusResponse is a version's state at every site it was sent to
// and every client it is deployed to.
type PackageStatusResponse struct {
	Header
	Package PackageInfo           `json:"package"`
	Sites   []PackageSiteStatus   `json:"sites"`
	Clients []PackageClientStatus `json:"clients"`
}

// PackageDeployRequest deploys (or undeploys) a version to a collection.
type PackageDeployRequest struct {
	Header
	Package    string `json:"package"`
	Version    string `json:"version,omitempty"` // "": the newest
	Collection string `json:"collection"`        // name or ID
}

// PackageDeployment is one version deployed to one collection.
type PackageDeployment struct {
	Package    string    `json:"package"`
	Version    string    `json:"version"`
	Collection Named     `json:"collection"`
	By         string    `json:"by"`
	Created    time.Time `json:"created"`
}

// PackageDeployResponse answers deploy and undeploy.
type PackageDeployResponse struct {
	Header
	Deployment PackageDeployment `json:"deployment"`
	Clients    int               `json:"clients"` // members told to fetch
}

// RouteInfo is how the sender sends to one site: at most Rate bytes per
// second (0: unlimited), only within Schedule ("" : always), e.g.
// "Mon-Fri 18:00-06:00".
type RouteInfo struct {
	Site     string    `json:"site"`
	Rate     int64     `json:"rate"`
	Schedule string    `json:"schedule,omitempty"`
	Open     bool      `json:"open"`    // the schedule lets the sender send now
	Backlog  int64     `json:"backlog"` // bytes queued for the site
	Updated  time.Time `json:"updated,omitzero"`
	By       string    `json:"by,omitempty"`
}

// RouteSetRequest sets a route.
type RouteSetRequest struct {
	Header
	Site     string `json:"site"`
	Rate     int64  `json:"rate"`
	Schedule string `json:"schedule,omitempty"`
}

// RouteDeleteRequest removes the route to a site: the sender goes back to
// the default (unlimited, always open).
type RouteDeleteRequest struct {
	Header
	Site string `json:"site"`
}

// RouteListRequest asks for every route.
type RouteListRequest struct {
	Header
}

// RouteListResponse lists routes by site, one for every peer site below
// this one (defaults where none was set).
type RouteListResponse struct {
	Header
	Routes []RouteInfo `json:"routes"`
}

// QuarantineInfo is one thing a peer site sent that failed verification at
// this site's despooler: kept for the operator to inspect, never installed.
type QuarantineInfo struct {
	ID      string    `json:"id"`
	What    string    `json:"what"` // offer | chunk
	From    string    `json:"from"` // the sending site, from the subject
	Package string    `json:"package,omitempty"`
	Version string    `json:"version,omitempty"`
	Digest  string    `json:"digest,omitempty"` // of the offered manifest, when it could be read
	Chunk   string    `json:"chunk,omitempty"`  // the hash a chunk claimed
	Reason  string    `json:"reason"`
	Code    string    `json:"code"` // the error code the sender was answered with
	Time    time.Time `json:"time"`
	Size    int       `json:"size"`   // of the rejected message
	SHA256  string    `json:"sha256"` // of the rejected message
}

// QuarantineListRequest asks for the quarantine.
type QuarantineListRequest struct {
	Header
}

// QuarantineListResponse lists it, newest first.
type QuarantineListResponse struct {
	Header
	Entries []QuarantineInfo `json:"entries"`
}

// QuarantineShowRequest asks for one entry and what was kept of it.
type QuarantineShowRequest struct {
	Header
	Entry string `json:"entry"`
}

// QuarantineShowResponse is one entry. Data is the first 256 KiB of a
// rejected offer (Truncated when it was longer), for the operator to see
// what the sender sent; a rejected chunk keeps none (its hash and size say
// enough).
type QuarantineShowResponse struct {
	Header
	Entry     QuarantineInfo `json:"entry"`
	Data      []byte         `json:"data,omitempty"`
	Truncated bool           `json:"truncated,omitempty"`
}

// QuarantineDeleteRequest forgets one entry.
type QuarantineDeleteRequest struct {
	Header
	Entry string `json:"entry"`
}
