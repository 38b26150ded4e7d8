package contracts

var examplePackageInfo = PackageInfo{
	Package: "tools", Version: "1.0", Digest: exampleChunk, Site: "PAR", From: "PAR",
	Size: 4, Files: 1, Chunks: 1, Created: t0, CreatedBy: "alice", Installed: t1,
}

var examplePackageDeployment = PackageDeployment{
	Package: "tools", Version: "1.0", Collection: Named{ID: exampleCollectionID, Name: "Web"}, By: "alice", Created: t0,
}

func init() {
	goldenExamples[TypePackageChunksRequest] = &PackageChunksRequest{Header: hdr(TypePackageChunksRequest), Hashes: []string{exampleChunk}}
	goldenExamples[TypePackageChunksResponse] = &PackageChunksResponse{Header: hdr(TypePackageChunksResponse), Missing: []string{exampleChunk}}
	goldenExamples[TypePackageCreateRequest] = &PackageCreateRequest{
		Header: hdr(TypePackageCreateRequest), Package: "tools", Version: "1.0", Files: exampleManifest.Files,
		Links: exampleManifest.Links,
	}
	goldenExamples[TypePackageRequest] = &PackageRequest{Header: hdr(TypePackageRequest), Package: "tools", Version: "1.0"}
	goldenExamples[TypePackageResponse] = &PackageResponse{Header: hdr(TypePackageResponse), Packages: []PackageInfo{examplePackageInfo}}
	goldenExamples[TypePackageListRequest] = &PackageListRequest{Header: hdr(TypePackageListRequest), Package: "tools"}
	goldenExamples[TypePackageListResponse] = &PackageListResponse{Header: hdr(TypePackageListResponse), Packages: []PackageInfo{examplePackageInfo}}
	goldenExamples[TypePackageShowResponse] = &PackageShowResponse{
		Header: hdr(TypePackageShowResponse), Package: examplePackageInfo, Files: exampleManifest.Files,
		Links: exampleManifest.Links, Deployments: []PackageDeployment{examplePackageDeployment},
	}
	goldenExamples[TypePackageDistributeRequest] = &PackageDistributeRequest{Header: hdr(TypePackageDistributeRequest), Package: "tools", Version: "1.0", Sites: []string{"CHD"}}
	goldenExamples[TypePackageCancelRequest] = &PackageCancelRequest{Header: hdr(TypePackageCancelRequest), Package: "tools", Version: "1.0", Sites: []string{"CH2"}}
	goldenExamples[TypePackageCancelResponse] = &PackageCancelResponse{Header: hdr(TypePackageCancelResponse), Cancelled: []PackageCancelled{{
		Package: "tools", Version: "1.0", PackageSiteStatus: PackageSiteStatus{
			Site: "CH2", State: ContentSending, Bytes: 2, Total: 4, Chunks: 1, ChunksTotal: 2, Verified: exampleChunk,
			Error: "offer to site CH2: no service answers", Attempts: 40, Updated: t1,
		},
	}}}
	goldenExamples[TypePackageStatusResponse] = &PackageStatusResponse{
		Header: hdr(TypePackageStatusResponse), Package: examplePackageInfo,
		Sites: []PackageSiteStatus{{
			Site: "CHD", State: ContentSending, Bytes: 2, Total: 4, Chunks: 1, ChunksTotal: 2, Verified: exampleChunk,
			Error: "link down", Attempts: 2, Updated: t1,
		}},
		Clients: []PackageClientStatus{{Client: Named{ID: exampleClientID, Name: "web-01"}, State: ContentFailed, Bytes: 4, Error: "disk full", Updated: t1}},
	}
	goldenExamples[TypePackageDeployRequest] = &PackageDeployRequest{Header: hdr(TypePackageDeployRequest), Package: "tools", Version: "1.0", Collection: "Web"}
	goldenExamples[TypePackageDeployResponse] = &PackageDeployResponse{Header: hdr(TypePackageDeployResponse), Deployment: examplePackageDeployment, Clients: 3}
	goldenExamples[TypeRouteSetRequest] = &RouteSetRequest{Header: hdr(TypeRouteSetRequest), Site: "CHD", Rate: 20 << 20, Schedule: "Mon-Fri 18:00-06:00"}
	goldenExamples[TypeRouteListRequest] = &RouteListRequest{Header: hdr(TypeRouteListRequest)}
	goldenExamples[TypeRouteDeleteRequest] = &RouteDeleteRequest{Header: hdr(TypeRouteDeleteRequest), Site: "CHD"}
	goldenExamples[TypeRouteListResponse] = &RouteListResponse{Header: hdr(TypeRouteListResponse), Routes: []RouteInfo{{
		Site: "CHD", Rate: 20 << 20, Schedule: "Mon-Fri 18:00-06:00", Open: true, Backlog: 1 << 20, Updated: t0, By: "alice",
	}}}
	goldenExamples[TypeQuarantineListRequest] = &QuarantineListRequest{Header: hdr(TypeQuarantineListRequest)}
	goldenExamples[TypeQuarantineListResponse] = &QuarantineListResponse{Header: hdr(TypeQuarantineListResponse), Entries: []QuarantineInfo{{
		ID: exampleMsgID, What: "chunk", From: "PAR", Package: "tools", Version: "1.0", Digest: exampleChunk, Chunk: exampleChunk,
		Reason: "the chunk's SHA-256 is not its name", Code: "bad_request", Time: t0, Size: 4, SHA256: exampleChunk,
	}}}
	goldenExamples[TypeQuarantineDeleteRequest] = &QuarantineDeleteRequest{Header: hdr(TypeQuarantineDeleteRequest), Entry: exampleMsgID}
	goldenExamples[TypeQuarantineShowRequest] = &QuarantineShowRequest{Header: hdr(TypeQuarantineShowRequest), Entry: exampleMsgID}
	goldenExamples[TypeQuarantineShowResponse] = &QuarantineShowResponse{Header: hdr(TypeQuarantineShowResponse), Entry: QuarantineInfo{
		ID: exampleMsgID, What: "offer", From: "PAR", Package: "tools", Version: "1.0", Digest: exampleChunk, Chunk: exampleChunk, Reason: "signed by an unknown key", Code: "bad_request",
		Time: t0, Size: 1042, SHA256: exampleChunk,
	}, Data: []byte(`{"type":"steward.v1.replication_offer"}`), Truncated: true}
}
