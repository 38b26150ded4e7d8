package contracts

const exampleChunk = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

var exampleManifest = Manifest{
	Header: hdr(TypeManifest), Site: "PAR", Package: "tools", Version: "1.0", Created: t0, CreatedBy: "alice",
	ChunkSize: ChunkSize, Size: 4,
	Files: []ManifestFile{
		{Path: "bin/tool", Mode: 0o755, Size: 4, SHA256: exampleChunk, Chunks: []string{exampleChunk}},
	},
	Links: []ManifestLink{{Path: "bin/t", Target: "tool"}},
}

var exampleSignedManifest = SignedManifest{
	Header: hdr(TypeSignedManifest), Manifest: []byte(`{"package":"tools"}`), Signature: []byte{1, 2, 3}, Key: exampleSiteKey,
}

func init() {
	goldenExamples[TypeManifest] = &exampleManifest
	goldenExamples[TypeSignedManifest] = &exampleSignedManifest
	goldenExamples[TypeReplicationOffer] = &ReplicationOffer{Header: hdr(TypeReplicationOffer), Manifest: exampleSignedManifest}
	goldenExamples[TypeReplicationOfferReply] = &ReplicationOfferReply{Header: hdr(TypeReplicationOfferReply), Installed: true, Missing: []string{exampleChunk}}
	goldenExamples[TypeReplicationCommit] = &ReplicationCommit{Header: hdr(TypeReplicationCommit), Package: "tools", Version: "1.0", Digest: exampleChunk}
	goldenExamples[TypeReplicationCommitAck] = &ReplicationCommitAck{Header: hdr(TypeReplicationCommitAck), Digest: exampleChunk, Bytes: 4}
	goldenExamples[TypeContentList] = &ContentList{
		Header: hdr(TypeContentList), Site: "PAR", Client: exampleClientID, Issued: t0, Expires: t1,
		Packages: []ContentAssignment{{Package: "tools", Version: "1.0", Digest: exampleChunk, Size: 4}},
	}
	goldenExamples[TypeContentListRequest] = &ContentListRequest{Header: hdr(TypeContentListRequest)}
	goldenExamples[TypeContentListResponse] = &ContentListResponse{Header: hdr(TypeContentListResponse), List: []byte(`{"site":"PAR"}`), Signature: []byte{1, 2, 3}, Key: exampleSiteKey}
	goldenExamples[TypeContentManifestReq] = &ContentManifestRequest{Header: hdr(TypeContentManifestReq), Package: "tools", Version: "1.0"}
	goldenExamples[TypeContentManifestResp] = &ContentManifestResponse{Header: hdr(TypeContentManifestResp), Manifest: exampleSignedManifest}
	goldenExamples[TypeContentChunkRequest] = &ContentChunkRequest{Header: hdr(TypeContentChunkRequest), Package: "tools", Version: "1.0", Hash: exampleChunk}
	goldenExamples[TypeContentReport] = &ContentReport{
		Header: hdr(TypeContentReport), Package: "tools", Version: "1.0", Digest: exampleChunk, State: ContentFailed, Bytes: 4, Error: "chunk hash mismatch",
	}
	goldenExamples[TypeContentReportAck] = &ContentReportAck{Header: hdr(TypeContentReportAck)}
}
