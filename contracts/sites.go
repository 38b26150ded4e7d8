package contracts

import (
	"fmt"
	"time"
)

// Site hierarchy: a child site links to its parent over a NATS leaf
// connection (docs/replication.md). The parent's auth callout admits the
// link with a one-time site token (SiteToken) the first time and with the
// child's leaf key afterwards; the child then joins (SiteJoinRequest),
// proving its site signing key, which the parent pins. Each keeps the other
// as a peer (SitePeer), with the signing key it pinned.

// Message type strings of the site hierarchy.
const (
	TypeSitePeersRequest       = "steward.v1.site_peers_request"
	TypeSitePeersResponse      = "steward.v1.site_peers_response"
	TypeSiteTokenCreateRequest = "steward.v1.site_token_create_request"
	TypeSiteTokenResponse      = "steward.v1.site_token_response"
	TypeSiteJoinRequest        = "steward.v1.site_join_request"
	TypeSiteJoinResponse       = "steward.v1.site_join_response"
	TypeSiteHeartbeat          = "steward.v1.site_heartbeat"
)

// Service-to-service verbs of the site hierarchy (admin owns the peers).
const (
	VerbSitePeers = "site-peers"
)

// Operator kinds of the site hierarchy (steward.<site>.op.<operator>.up.<kind>).
const (
	KindSitesList        = "sites.list"         // SitePeersRequest -> SitePeersResponse (Site:Read)
	KindSitesTokenCreate = "sites.token.create" // SiteTokenCreateRequest -> SiteTokenResponse (Site:Modify)
	KindSitesTokenList   = "sites.token.list"   // TokenListRequest -> TokenListResponse (Site:Read)
	KindSitesTokenRevoke = "sites.token.revoke" // TokenRevokeRequest -> TokenResponse (Site:Modify)
)

// Site-to-site kinds (SiteSubject: steward.<dest>.site.<from>.<kind>).
const (
	KindSiteJoin      = "site.join"      // child -> parent: SiteJoinRequest -> SiteJoinResponse
	KindSiteHeartbeat = "site.heartbeat" // either way: SiteHeartbeat answered by a SiteHeartbeat
)

// Audit actions of the site hierarchy.
const (
	AuditSiteTokenCreated = "site.token.created"
	AuditSiteTokenRevoked = "site.token.revoked"
	AuditSiteLinked       = "site.linked"
	AuditSiteJoined       = "site.joined"
)

// Peer roles, as seen from the site that keeps the record.
const (
	PeerParent = "parent"
	PeerChild  = "child"
)

// SiteHeartbeatInterval is how often linked sites say they are there. A peer
// not heard from for three intervals counts as disconnected.
const SiteHeartbeatInterval = 30 * time.Second

// SiteJoinMaxSkew bounds how far a join's time may be from the parent's
// clock: a join is a fresh statement, not one replayed later.
const SiteJoinMaxSkew = time.Hour

// SitePeer is a site linked to this one.
type SitePeer struct {
	Site        string    `json:"site"`
	Role        string    `json:"role"`       // parent | child
	SigningKey  string    `json:"signingKey"` // pinned site signing key (NKey public key); "" until a child joins
	LeafKey     string    `json:"leafKey,omitempty"`
	Linked      time.Time `json:"linked"`
	LastContact time.Time `json:"lastContact,omitzero"`
	Connected   bool      `json:"connected"`
	// Error is the last problem with the peer (a refused join, a signing
	// key that does not match the pinned one); "" when all is well.
	Error string `json:"error,omitempty"`
	// Backlog is what replication still has to send to the peer (filled
	// by the replication service; 0 here).
	Backlog int64 `json:"backlog,omitempty"`
}

// SitePeersRequest asks admin for the peers of this site (Site set: that
// one only, CodeNotFound when unknown). It is both the service verb
// VerbSitePeers and the operator kind KindSitesList.
type SitePeersRequest struct {
	Header
	Site string `json:"site,omitempty"`
}

// Validate checks the site code, when given.
func (r *SitePeersRequest) Validate() error {
	if r.Site == "" {
		return nil
	}
	return ValidName(r.Site)
}

// SitePeersResponse lists peers sorted by site code.
type SitePeersResponse struct {
	Header
	Peers []SitePeer `json:"peers"`
}

// SiteTokenCreateRequest asks the parent for a one-time site token.
type SiteTokenCreateRequest struct {
	Header
	TTL Duration `json:"ttl"`
	// Child, when set, is the only site code that may link with the token.
	Child string `json:"child,omitempty"`
	Note  string `json:"note,omitempty"`
}

// Validate checks the bounds.
func (r *SiteTokenCreateRequest) Validate() error {
	if time.Duration(r.TTL) < time.Second || time.Duration(r.TTL) > MaxTokenTTL {
		return fmt.Errorf("ttl %s: must be between 1s and %s", time.Duration(r.TTL), MaxTokenTTL)
	}
	if r.Child != "" {
		if err := ValidName(r.Child); err != nil {
			return fmt.Errorf("child site code: %w", err)
		}
	}
	if len(r.Note) > 256 {
		return fmt.Errorf("note longer than 256 characters")
	}
	return nil
}

// SiteTokenResponse carries the printed token (shown once) and its record.
type SiteTokenResponse struct {
	Header
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
	Child string    `json:"child,omitempty"`
}

// SiteToken is what `steward sites token create` prints at the parent: what
// a child needs to link the first time and to pin its parent before it has
// talked to it. The child presents it once, as the password of its leaf
// connection (user: the child's site code); only the SHA-256 of Secret is
// stored by the parent.
type SiteToken struct {
	Site    string `json:"s"` // the parent's site code
	SiteKey string `json:"k"` // the parent's site signing key (NKey public key) to pin
	ID      string `json:"i"`
	Secret  string `json:"x"`
	// CA is the fingerprint of the parent's TLS certificate authority,
	// which the child pins for its leaf connection ("" when the parent has
	// no CA: it can only be reached on loopback).
	CA string `json:"c,omitempty"`
}

// siteTokenPrefix marks and versions the printed form.
const siteTokenPrefix = "STS1-"

// String encodes the token as "STS1-" + base64url(JSON).
func (t SiteToken) String() string { return encodeToken(siteTokenPrefix, t) }

// ParseSiteToken decodes a printed site token.
func ParseSiteToken(s string) (SiteToken, error) {
	var t SiteToken
	if err := decodeToken(s, siteTokenPrefix, "site token", "`steward sites token create` at the parent", &t); err != nil {
		return SiteToken{}, err
	}
	if ValidName(t.Site) != nil || t.SiteKey == "" || ValidToken(t.ID) != nil || t.Secret == "" {
		return SiteToken{}, Errorf(CodeTokenInvalid, "site token is incomplete")
	}
	if t.CA != "" && ValidFingerprint(t.CA) != nil {
		return SiteToken{}, Errorf(CodeTokenInvalid, "site token is damaged: its CA fingerprint is malformed")
	}
	return t, nil
}

// SiteJoin is what a child states when it joins its parent, signed with
// the child's site signing key (SiteJoinSigningInput): the key that signs
// everything the child will send (manifests) belongs to the site that
// holds the leaf key the parent admitted.
type SiteJoin struct {
	Parent     string    `json:"parent"`
	Child      string    `json:"child"`
	LeafKey    string    `json:"leafKey"`
	SigningKey string    `json:"signingKey"`
	Time       time.Time `json:"time"`
}

// SiteJoinSigningInput is what a child signs for a join.
func SiteJoinSigningInput(body []byte) []byte { return signingInput("steward-site-join-v1\n", body) }

// SiteJoinRequest carries a SiteJoin's JSON and the ed25519 signature over
// SiteJoinSigningInput by the key it names.
type SiteJoinRequest struct {
	Header
	Join      []byte `json:"join"`
	Signature []byte `json:"signature"`
}

// Validate checks the parts are there.
func (r *SiteJoinRequest) Validate() error {
	if len(r.Join) == 0 || len(r.Signature) == 0 {
		return fmt.Errorf("a join needs its statement and signature")
	}
	return nil
}

// SiteJoinResponse is the parent's answer: its code and signing key, which
// the child checks against the key it pinned from the token.
type SiteJoinResponse struct {
	Header
	Site       string    `json:"site"`
	SigningKey string    `json:"signingKey"`
	Linked     time.Time `json:"linked"`
}

// SiteHeartbeat says a site is there; the answer is the peer's own. The
// sender is the site the subject names.
type SiteHeartbeat struct {
	Header
	Interval Duration `json:"interval"` // how often the sender beats
}

// Validate checks the interval.
func (h *SiteHeartbeat) Validate() error {
	if time.Duration(h.Interval) < 0 || time.Duration(h.Interval) > 24*time.Hour {
		return fmt.Errorf("heartbeat interval %s: must be between 0 and 24h", time.Duration(h.Interval))
	}
	return nil
}
