package contracts

import "time"

const exampleLeafKey = "ULEAFKEYEXAMPLEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

var exampleSitePeer = SitePeer{
	Site:        "BR1",
	Role:        PeerChild,
	SigningKey:  exampleSiteKey,
	LeafKey:     exampleLeafKey,
	Linked:      t0,
	LastContact: t1,
	Connected:   true,
	Error:       "the join's signing key is not the one pinned",
	Backlog:     1 << 20,
}

func init() {
	goldenExamples[TypeSitePeersRequest] = &SitePeersRequest{Header: hdr(TypeSitePeersRequest), Site: "BR1"}
	goldenExamples[TypeSitePeersResponse] = &SitePeersResponse{Header: hdr(TypeSitePeersResponse), Peers: []SitePeer{exampleSitePeer}}
	goldenExamples[TypeSiteTokenCreateRequest] = &SiteTokenCreateRequest{
		Header: hdr(TypeSiteTokenCreateRequest), TTL: Duration(24 * time.Hour), Child: "BR1", Note: "branch office",
	}
	goldenExamples[TypeSiteTokenResponse] = &SiteTokenResponse{
		Header: hdr(TypeSiteTokenResponse), Token: "STS1-eyJzIjoiSFExIn0", Info: exampleTokenInfo, Child: "BR1",
	}
	goldenExamples[TypeSiteJoinRequest] = &SiteJoinRequest{
		Header: hdr(TypeSiteJoinRequest), Join: []byte(`{"parent":"HQ1","child":"BR1"}`), Signature: []byte{1, 2, 3},
	}
	goldenExamples[TypeSiteJoinResponse] = &SiteJoinResponse{Header: hdr(TypeSiteJoinResponse), Site: "HQ1", SigningKey: exampleSiteKey, Linked: t0}
	goldenExamples[TypeSiteHeartbeat] = &SiteHeartbeat{Header: hdr(TypeSiteHeartbeat), Interval: Duration(SiteHeartbeatInterval)}
}
