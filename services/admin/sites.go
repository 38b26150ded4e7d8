package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
)

// The site hierarchy, as admin keeps it (docs/replication.md):
//
//   - A child links to its parent over a leaf connection. The parent's auth
//     callout admits it (decideLeaf): a known child's leaf key, or an
//     unknown key presenting a valid site token (user: the child's code,
//     password: the token), which the link consumes (linkChild). The child
//     is then recorded twice: as an identity of kind "site" (its leaf key,
//     which the callout reads on every connect) and as a peer (its code).
//   - The child's admin joins (site.join): its site signing key, signed by
//     that key, bound to the leaf key the parent admitted (verifyJoin). The
//     parent pins the key on the peer record; a later join must bring the
//     same key.
//   - Both sides beat (site.heartbeat) every SiteHeartbeat; each exchange
//     records the last contact and whether the peer is connected.
//   - Other services ask for the peers and their pinned keys with the
//     service verb site-peers; operators with sites.list.

// Names of what admin owns for the site hierarchy. Never rename them.
const (
	PeerBucket      = "admin-site-peers"
	SiteTokenBucket = "admin-site-tokens"
	// KindSite is the identity kind of a child site's leaf key.
	KindSite = "site"
)

// leafConnection is how an auth callout request names a leaf node
// connection (jwt.ClientInformation.Kind).
const leafConnection = "Leafnode"

// Parent is the site this site links to as a child, as pinned from the
// site token at the first start (the site's parent.json).
type Parent struct {
	Site       string    // the parent's site code
	SigningKey string    // the parent's site signing key, pinned from the token
	LeafKey    string    // this site's leaf key (public), which the parent admitted
	Linked     time.Time // when this site first linked
}

// peerRecord is a stored peer: what SitePeer shows and what only admin
// needs.
type peerRecord struct {
	contracts.SitePeer
	Token    string             `json:"token,omitempty"`    // the site token a child's link consumed
	Interval contracts.Duration `json:"interval,omitempty"` // how often the peer says it beats
}

// peers is the peer bucket, keyed by site code.
type peers struct{ kv jetstream.KeyValue }

func (p *peers) get(ctx context.Context, site string) (peerRecord, uint64, error) {
	if contracts.ValidName(site) != nil {
		return peerRecord{}, 0, contracts.Errorf(contracts.CodeNotFound, "no site %q is linked to this one", site)
	}
	e, err := p.kv.Get(ctx, site)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return peerRecord{}, 0, contracts.Errorf(contracts.CodeNotFound, "no site %q is linked to this one", site)
	}
	if err != nil {
		return peerRecord{}, 0, err
	}
	var rec peerRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return peerRecord{}, 0, fmt.Errorf("peer %s is unreadable: %w", site, err)
	}
	return rec, e.Revision(), nil
}

// create stores a new peer; CodeConflict when the code is taken.
func (p *peers) create(ctx context.Context, rec peerRecord) error {
	data, _ := json.Marshal(rec)
	_, err := p.kv.Create(ctx, rec.Site, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return contracts.Errorf(contracts.CodeConflict, "site %s is already a peer", rec.Site)
	}
	return err
}

// update applies fn to the stored peer with optimistic concurrency.
func (p *peers) update(ctx context.Context, site string, fn func(*peerRecord) error) (peerRecord, error) {
	for attempt := 0; ; attempt++ {
		rec, rev, err := p.get(ctx, site)
		if err != nil {
			return peerRecord{}, err
		}
		if err := fn(&rec); err != nil {
			return peerRecord{}, err
		}
		data, _ := json.Marshal(rec)
		if _, err = p.kv.Update(ctx, site, data, rev); err == nil {
			return rec, nil
		}
		if attempt >= 10 || !cas.Lost(err) {
			return peerRecord{}, err
		}
	}
}

func (p *peers) list(ctx context.Context) ([]peerRecord, error) {
	lister, err := p.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []peerRecord
	for key := range lister.Keys() {
		rec, _, err := p.get(ctx, key)
		if contracts.CodeOf(err) == contracts.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out, nil
}

// siteGrant is what the leaf connection of child may do at parent. The
// permissions are as the child sees them (the server reverses them on its
// side of the link): the child publishes only into its own space at the
// parent and to the parent's cross-site inbox (its answers), and receives
// only what the parent says to it and answers to its own cross-site inbox.
func siteGrant(parent, child string) (Grant, error) {
	up, err1 := contracts.SiteSpace(parent, child)
	down, err2 := contracts.SiteSpace(child, parent)
	pin, err3 := contracts.SiteInbox(parent)
	cin, err4 := contracts.SiteInbox(child)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Grant{}, fmt.Errorf("site %s: %w", child, err)
	}
	return Grant{Name: "site:" + child, Pub: []string{up, pin + ".>"}, Sub: []string{down, cin + ".>"}, Leaf: true}, nil
}

// leafDecision is what the callout does with a leaf connection: grant it,
// or first consume Token to link Child (an unknown key).
type leafDecision struct {
	Grant Grant
	Child string
	Token *contracts.SiteToken // nil: the key is a known child's
}

// decideLeaf decides a leaf connection of key to site, whose identity
// lookup gave id and lookupErr, presenting user and pass. Like decide it is
// free of NATS and any doubt is a refusal. A leaf connection is only ever a
// child site: an agent's or an operator's key may not link.
func decideLeaf(site, key string, id Identity, lookupErr error, user, pass string) (leafDecision, error) {
	switch {
	case lookupErr == nil:
		if id.Kind != KindSite {
			return leafDecision{}, fmt.Errorf("key %s is an %s's, not a child site's: only sites link as leaf nodes", key, id.Kind)
		}
		if id.Revoked {
			return leafDecision{}, fmt.Errorf("the link of site %s was revoked", id.Name)
		}
		g, err := siteGrant(site, id.Name)
		return leafDecision{Grant: g, Child: id.Name}, err
	case !errors.Is(lookupErr, errNoIdentity):
		return leafDecision{}, fmt.Errorf("cannot decide for %s: %w", key, lookupErr)
	}
	if pass == "" {
		return leafDecision{}, fmt.Errorf("leaf key %s is not a linked site's and no site token was presented (the first link needs --parent-token)", key)
	}
	tok, err := contracts.ParseSiteToken(pass)
	if err != nil {
		return leafDecision{}, err
	}
	if tok.Site != site {
		return leafDecision{}, contracts.Errorf(contracts.CodeTokenForeignSite, "the site token was issued by site %s, not this site %s", tok.Site, site)
	}
	if err := contracts.ValidName(user); err != nil {
		return leafDecision{}, fmt.Errorf("the link must name the child's site code as its user: %w", err)
	}
	if user == site {
		return leafDecision{}, fmt.Errorf("site %s cannot link to itself", site)
	}
	g, err := siteGrant(site, user)
	if err != nil {
		return leafDecision{}, err
	}
	return leafDecision{Grant: g, Child: user, Token: &tok}, nil
}

// admitLeaf is the callout's answer to a leaf connection.
func (s *Service) admitLeaf(ctx context.Context, key, user, pass, host string) (Grant, error) {
	id, _, lookupErr := s.ids.get(ctx, key)
	d, err := decideLeaf(s.cfg.Site, key, id, lookupErr, user, pass)
	if err == nil && d.Token != nil {
		err = s.linkChild(ctx, d.Child, key, host, *d.Token, time.Now().UTC())
	}
	if err != nil {
		s.linkRefused(ctx, user, key, host, err, pass != "")
		return Grant{}, err
	}
	return d.Grant, nil
}

// linkChild consumes a site token to link a new child: the peer record
// (role child, its leaf key; its signing key comes with the join), then the
// identity the callout admits from now on. A code already linked with
// another key is refused: a token admits a new site, it does not let anyone
// take over an existing one.
func (s *Service) linkChild(ctx context.Context, child, key, host string, tok contracts.SiteToken, now time.Time) error {
	if tok.SiteKey != s.siteKey {
		return contracts.Errorf(contracts.CodeTokenForeignSite, "the site token names signing key %.12s…, not this site's", tok.SiteKey)
	}
	existing, _, err := s.peers.get(ctx, child)
	switch {
	case err == nil && existing.LeafKey != key:
		return contracts.Errorf(contracts.CodeConflict, "site %s is already linked with another leaf key (%s, role %s)", child, existing.LeafKey, existing.Role)
	case err != nil && contracts.CodeOf(err) != contracts.CodeNotFound:
		return err
	}
	var info contracts.TokenInfo
	if existing.Site != "" && existing.Token == tok.ID {
		// This very link consumed the token, and recording its identity
		// failed: finish it (the key is proven by the signed nonce, the
		// token by its secret).
		rec, _, err := s.siteTokens.get(ctx, tok.ID)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(hashSecret(tok.Secret)), []byte(rec.SecretHash)) != 1 {
			return contracts.Errorf(contracts.CodeTokenInvalid, "site token %s is not valid (wrong secret)", tok.ID)
		}
		info = rec.TokenInfo
	} else {
		info, err = s.siteTokens.consumeIf(ctx, tok.ID, tok.Secret, now, func(rec tokenRecord) error {
			if rec.Child != "" && rec.Child != child {
				return contracts.Errorf(contracts.CodeTokenInvalid, "site token %s is for site %s, not %s", rec.ID, rec.Child, child)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if existing.Site == "" {
		rec := peerRecord{SitePeer: contracts.SitePeer{Site: child, Role: contracts.PeerChild, LeafKey: key, Linked: now, LastContact: now}, Token: info.ID}
		if err := s.peers.create(ctx, rec); err != nil {
			return fmt.Errorf("record site %s: %w", child, err)
		}
	}
	err = s.ids.create(ctx, Identity{Key: key, Kind: KindSite, Name: child, Created: now, Updated: now, By: "site-token:" + info.ID})
	if err != nil && contracts.CodeOf(err) != contracts.CodeConflict {
		return fmt.Errorf("record the leaf key of site %s: %w", child, err)
	}
	s.audit(ctx, contracts.AuditSiteLinked, contracts.StatusSiteLinked, "site-token:"+info.ID, rbac.ObjSite, child, map[string]string{
		"site": child, "host": host, "leafKey": key, "token": info.ID,
	})
	return nil
}

// linkRefused logs a refused leaf connection and, for an attempt to link
// with a token, sends status message 1053, at most once a minute per key
// (a refused child retries every second).
func (s *Service) linkRefused(ctx context.Context, user, key, host string, why error, withToken bool) {
	s.cfg.Log.Warn("site link refused", "site", user, "key", key, "host", host, "reason", why)
	if !withToken {
		return
	}
	now := time.Now()
	if last, ok := s.refusals.Load(key); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	s.refusals.Store(key, now)
	site := user
	if site == "" {
		site = "(unnamed)"
	}
	s.emit.Emit(ctx, contracts.StatusSiteLinkRefused, map[string]string{"site": site, "host": host, "leafKey": key, "reason": why.Error()})
}

// verifyJoin checks a join from child (the subject's sending site) against
// the peer record the link made: the statement names this parent, that
// child and the leaf key the callout admitted; it is fresh; its signature
// verifies with the signing key it names, which must be the pinned one once
// a key is pinned.
func verifyJoin(parent, child string, rec peerRecord, body, sig []byte, now time.Time) (contracts.SiteJoin, error) {
	var j contracts.SiteJoin
	if err := json.Unmarshal(body, &j); err != nil {
		return j, contracts.Errorf(contracts.CodeBadRequest, "the join is not a site join statement: %v", err)
	}
	switch {
	case rec.Role != contracts.PeerChild:
		return j, contracts.Errorf(contracts.CodePermissionDenied, "site %s is this site's %s, not a child: only children join", child, rec.Role)
	case j.Parent != parent || j.Child != child:
		return j, contracts.Errorf(contracts.CodePermissionDenied, "the join names parent %s and child %s, but it came from %s to %s", j.Parent, j.Child, child, parent)
	case j.LeafKey != rec.LeafKey:
		return j, contracts.Errorf(contracts.CodePermissionDenied, "the join names leaf key %s, but site %s linked with %s", j.LeafKey, child, rec.LeafKey)
	case j.Time.Before(now.Add(-contracts.SiteJoinMaxSkew)) || j.Time.After(now.Add(contracts.SiteJoinMaxSkew)):
		return j, contracts.Errorf(contracts.CodePermissionDenied, "the join was made at %s, more than %s from this site's clock (%s)", j.Time.Format(time.RFC3339), contracts.SiteJoinMaxSkew, now.Format(time.RFC3339))
	case !nkeys.IsValidPublicOperatorKey(j.SigningKey):
		return j, contracts.Errorf(contracts.CodeBadRequest, "the join's signing key %q is not a site signing key", j.SigningKey)
	}
	pk, err := nkeys.FromPublicKey(j.SigningKey)
	if err != nil {
		return j, contracts.Errorf(contracts.CodeBadRequest, "the join's signing key: %v", err)
	}
	if err := pk.Verify(contracts.SiteJoinSigningInput(body), sig); err != nil {
		return j, contracts.Errorf(contracts.CodePermissionDenied, "the join's signature does not verify with the key it names")
	}
	if rec.SigningKey != "" && rec.SigningKey != j.SigningKey {
		return j, contracts.Errorf(contracts.CodePermissionDenied, "site %s joined with signing key %s, but %s is pinned for it", child, j.SigningKey, rec.SigningKey)
	}
	return j, nil
}

// siteJoin handles a child's join (steward.<site>.site.<child>.site.join).
func (s *Service) siteJoin(ctx context.Context, from contracts.SubjectInfo, req *contracts.SiteJoinRequest) (*contracts.SiteJoinResponse, error) {
	child, now := from.Principal, time.Now().UTC()
	rec, _, err := s.peers.get(ctx, child)
	if err != nil {
		return nil, err
	}
	j, err := verifyJoin(s.cfg.Site, child, rec, req.Join, req.Signature, now)
	if err != nil {
		s.cfg.Log.Warn("site join refused", "site", child, "reason", err)
		_, _ = s.peers.update(ctx, child, func(r *peerRecord) error { r.Error = "join refused: " + err.Error(); return nil })
		return nil, err
	}
	pinned := rec.SigningKey == ""
	rec, err = s.peers.update(ctx, child, func(r *peerRecord) error {
		if r.SigningKey != "" && r.SigningKey != j.SigningKey {
			return contracts.Errorf(contracts.CodeConflict, "site %s's signing key changed while it joined", child)
		}
		pinned = r.SigningKey == ""
		r.SigningKey, r.LastContact, r.Connected, r.Error = j.SigningKey, now, true, ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	if pinned {
		s.audit(ctx, contracts.AuditSiteJoined, contracts.StatusSiteJoined, "site:"+child, rbac.ObjSite, child, map[string]string{
			"site": child, "signingKey": j.SigningKey,
		})
	} else {
		s.cfg.Log.Info("site joined again", "site", child)
	}
	return &contracts.SiteJoinResponse{Header: contracts.NewHeader(contracts.TypeSiteJoinResponse), Site: s.cfg.Site, SigningKey: s.siteKey, Linked: rec.Linked}, nil
}

// siteHeartbeat answers a peer's heartbeat and records the contact. A site
// this one does not know, or a child that has not joined, is answered
// not found: the child then joins again.
func (s *Service) siteHeartbeat(ctx context.Context, from contracts.SubjectInfo, req *contracts.SiteHeartbeat) (*contracts.SiteHeartbeat, error) {
	peer, now := from.Principal, time.Now().UTC()
	_, err := s.peers.update(ctx, peer, func(r *peerRecord) error {
		if r.Role == contracts.PeerChild && r.SigningKey == "" {
			return contracts.Errorf(contracts.CodeNotFound, "site %s has not joined %s yet", peer, s.cfg.Site)
		}
		r.LastContact, r.Connected, r.Interval = now, true, req.Interval
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &contracts.SiteHeartbeat{Header: contracts.NewHeader(contracts.TypeSiteHeartbeat), Interval: contracts.Duration(s.cfg.SiteHeartbeat)}, nil
}

// peerView is what a peer record shows: connected only while heard from
// within three heartbeats (of whichever side beats slower).
func peerView(rec peerRecord, beat time.Duration, now time.Time) contracts.SitePeer {
	p := rec.SitePeer
	if d := time.Duration(rec.Interval); d > beat {
		beat = d
	}
	if now.Sub(p.LastContact) > 3*beat {
		p.Connected = false
	}
	return p
}

// peerList lists the peers, or the one site asks for.
func (s *Service) peerList(ctx context.Context, site string) (*contracts.SitePeersResponse, error) {
	now := time.Now().UTC()
	out := &contracts.SitePeersResponse{Header: contracts.NewHeader(contracts.TypeSitePeersResponse), Peers: []contracts.SitePeer{}}
	if site != "" {
		rec, _, err := s.peers.get(ctx, site)
		if err != nil {
			return nil, err
		}
		out.Peers = append(out.Peers, peerView(rec, s.cfg.SiteHeartbeat, now))
		return out, nil
	}
	recs, err := s.peers.list(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		out.Peers = append(out.Peers, peerView(rec, s.cfg.SiteHeartbeat, now))
	}
	return out, nil
}

// sitePeers serves the service verb site-peers (replication verifies what a
// peer sends with the key pinned here).
func (s *Service) sitePeers(ctx context.Context, _ contracts.SubjectInfo, req *contracts.SitePeersRequest) (*contracts.SitePeersResponse, error) {
	return s.peerList(ctx, req.Site)
}

// listSites serves `steward sites list`.
func (s *Service) listSites(ctx context.Context, from contracts.SubjectInfo, req *contracts.SitePeersRequest) (*contracts.SitePeersResponse, error) {
	if err := s.authorize(from, rbac.SiteRead); err != nil {
		return nil, err
	}
	return s.peerList(ctx, req.Site)
}

// createSiteToken serves `steward sites token create`: a one-time token a
// child links with; only its secret's SHA-256 is stored.
func (s *Service) createSiteToken(ctx context.Context, from contracts.SubjectInfo, req *contracts.SiteTokenCreateRequest) (*contracts.SiteTokenResponse, error) {
	if err := s.authorize(from, rbac.SiteModify); err != nil {
		return nil, err
	}
	if req.Child == s.cfg.Site {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "site %s cannot link to itself", s.cfg.Site)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	tok := contracts.SiteToken{Site: s.cfg.Site, SiteKey: s.siteKey, ID: uuid.NewString(), Secret: base64.RawURLEncoding.EncodeToString(secret), CA: s.cfg.CAFingerprint}
	rec := tokenRecord{
		TokenInfo:  contracts.TokenInfo{ID: tok.ID, Created: now, Expires: now.Add(time.Duration(req.TTL)), Uses: 1, CreatedBy: from.Principal, Note: req.Note},
		SecretHash: hashSecret(tok.Secret),
		Child:      req.Child,
	}
	data, _ := json.Marshal(rec)
	if _, err := s.siteTokens.kv.Create(ctx, tok.ID, data); err != nil {
		return nil, err
	}
	child := req.Child
	if child == "" {
		child = "any site"
	}
	s.audit(ctx, contracts.AuditSiteTokenCreated, contracts.StatusSiteTokenCreated, from.Principal, rbac.ObjSite, tok.ID, map[string]string{
		"token": tok.ID, "child": child, "expires": rec.Expires.Format(time.RFC3339), "note": req.Note,
	})
	info := rec.TokenInfo
	info.Child = req.Child
	return &contracts.SiteTokenResponse{Header: contracts.NewHeader(contracts.TypeSiteTokenResponse), Token: tok.String(), Info: info, Child: req.Child}, nil
}

// listSiteTokens serves `steward sites token list`: never the secrets.
func (s *Service) listSiteTokens(ctx context.Context, from contracts.SubjectInfo, _ *contracts.TokenListRequest) (*contracts.TokenListResponse, error) {
	return s.listTokensOf(ctx, from, s.siteTokens, rbac.SiteRead)
}

// revokeSiteToken serves `steward sites token revoke`: a token not used
// yet can no longer link a child (a link it made stays).
func (s *Service) revokeSiteToken(ctx context.Context, from contracts.SubjectInfo, req *contracts.TokenRevokeRequest) (*contracts.TokenResponse, error) {
	return s.revokeTokenOf(ctx, from, req.ID, s.siteTokens, rbac.SiteModify, contracts.AuditSiteTokenRevoked, contracts.StatusSiteTokenRevoked, rbac.ObjSite)
}

// ensureParent records the parent this site links to (from its
// parent.json): role parent, the signing key pinned from the token.
func (s *Service) ensureParent(ctx context.Context, p *Parent) error {
	if err := contracts.ValidName(p.Site); err != nil {
		return fmt.Errorf("parent site code: %w", err)
	}
	if p.Site == s.cfg.Site {
		return fmt.Errorf("site %s cannot be its own parent", p.Site)
	}
	if !nkeys.IsValidPublicOperatorKey(p.SigningKey) {
		return fmt.Errorf("parent %s: %q is not a site signing key", p.Site, p.SigningKey)
	}
	rec := peerRecord{SitePeer: contracts.SitePeer{Site: p.Site, Role: contracts.PeerParent, SigningKey: p.SigningKey, LeafKey: p.LeafKey, Linked: p.Linked}}
	err := s.peers.create(ctx, rec)
	if contracts.CodeOf(err) != contracts.CodeConflict {
		return err
	}
	_, err = s.peers.update(ctx, p.Site, func(r *peerRecord) error {
		if r.Role != contracts.PeerParent {
			return fmt.Errorf("site %s is recorded as this site's %s: it cannot also be its parent", p.Site, r.Role)
		}
		if r.SigningKey != p.SigningKey {
			s.cfg.Log.Warn("the parent's pinned signing key differs from the peer record; the data dir's parent.json wins", "parent", p.Site, "pinned", p.SigningKey, "recorded", r.SigningKey)
		}
		r.SigningKey, r.LeafKey, r.Linked = p.SigningKey, p.LeafKey, p.Linked
		return nil
	})
	return err
}

// runSites joins the parent (when there is one) and beats every peer
// until ctx ends. It needs the cross-site connection (Config.SiteNC).
func (s *Service) runSites(ctx context.Context) {
	if s.cfg.SiteNC == nil {
		return
	}
	rejoin := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if p := s.cfg.Parent; p != nil {
		rejoin <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.joinLoop(ctx, p, rejoin)
		}()
	}
	t := time.NewTicker(s.cfg.SiteHeartbeat)
	defer t.Stop()
	for {
		s.beatAll(ctx, rejoin)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

// joinLoop joins the parent whenever asked (at start, and when the parent
// says it does not know this site), retrying with backoff until it answers.
func (s *Service) joinLoop(ctx context.Context, p *Parent, rejoin <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-rejoin:
		}
		for wait, tries := 250*time.Millisecond, 0; ; tries++ {
			err := s.joinParent(ctx, p)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			// Quiet while the link comes up; then say why, now and then.
			if tries == 8 || tries%20 == 19 {
				s.cfg.Log.Warn("cannot join the parent site yet; retrying", "parent", p.Site, "err", err, "retry_in", wait)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 15*time.Second)
		}
	}
}

// joinParent sends the signed join and checks the parent's answer against
// the key pinned from the token.
func (s *Service) joinParent(ctx context.Context, p *Parent) error {
	now := time.Now().UTC()
	body, _ := json.Marshal(contracts.SiteJoin{Parent: p.Site, Child: s.cfg.Site, LeafKey: p.LeafKey, SigningKey: s.siteKey, Time: now})
	sig, err := s.cfg.SiteKey.Sign(contracts.SiteJoinSigningInput(body))
	if err != nil {
		return fmt.Errorf("sign the join: %w", err)
	}
	subj, err := contracts.SiteSubject(p.Site, s.cfg.Site, contracts.KindSiteJoin)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var resp contracts.SiteJoinResponse
	req := contracts.SiteJoinRequest{Header: contracts.NewHeader(contracts.TypeSiteJoinRequest), Join: body, Signature: sig}
	if err := rpc.Call(cctx, s.cfg.SiteNC, subj, req, &resp); err != nil {
		if c := contracts.CodeOf(err); c != contracts.CodeUnavailable && c != contracts.CodeInternal {
			s.setPeerError(ctx, p.Site, "join refused: "+err.Error())
		}
		return err
	}
	if resp.Site != p.Site || resp.SigningKey != p.SigningKey {
		err := fmt.Errorf("the parent answered as site %s with signing key %s, but this site pinned %s with key %s from the site token", resp.Site, resp.SigningKey, p.Site, p.SigningKey)
		s.cfg.Log.Error("parent site does not match its pin", "parent", p.Site, "err", err)
		s.setPeerError(ctx, p.Site, err.Error())
		return err
	}
	if _, err := s.peers.update(ctx, p.Site, func(r *peerRecord) error {
		r.LastContact, r.Connected, r.Error = time.Now().UTC(), true, ""
		return nil
	}); err != nil {
		return err
	}
	s.cfg.Log.Info("joined the parent site", "parent", p.Site)
	return nil
}

func (s *Service) setPeerError(ctx context.Context, site, msg string) {
	_, _ = s.peers.update(ctx, site, func(r *peerRecord) error { r.Error = msg; return nil })
}

// beatAll sends one heartbeat to every peer, a few at a time, and records
// who answered. A parent that does not know this site asks for a join.
func (s *Service) beatAll(ctx context.Context, rejoin chan<- struct{}) {
	recs, err := s.peers.list(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Log.Warn("site heartbeats: cannot list peers", "err", err)
		}
		return
	}
	slots := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, rec := range recs {
		if rec.Role == contracts.PeerChild && rec.SigningKey == "" {
			continue // not joined: it beats us first, and joins when told
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			err := s.beat(ctx, rec.Site)
			if ctx.Err() != nil {
				return
			}
			if rec.Role == contracts.PeerParent && contracts.CodeOf(err) == contracts.CodeNotFound {
				select {
				case rejoin <- struct{}{}:
				default:
				}
			}
		}()
	}
	wg.Wait()
}

// beat sends one heartbeat to peer and records the outcome.
func (s *Service) beat(ctx context.Context, peer string) error {
	subj, err := contracts.SiteSubject(peer, s.cfg.Site, contracts.KindSiteHeartbeat)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var resp contracts.SiteHeartbeat
	err = rpc.Call(cctx, s.cfg.SiteNC, subj, contracts.SiteHeartbeat{Header: contracts.NewHeader(contracts.TypeSiteHeartbeat), Interval: contracts.Duration(s.cfg.SiteHeartbeat)}, &resp)
	if ctx.Err() != nil {
		return err
	}
	_, uerr := s.peers.update(ctx, peer, func(r *peerRecord) error {
		if err != nil {
			r.Connected = false
			return nil
		}
		r.LastContact, r.Connected, r.Interval = time.Now().UTC(), true, resp.Interval
		return nil
	})
	if uerr != nil && ctx.Err() == nil {
		s.cfg.Log.Warn("site heartbeat not recorded", "site", peer, "err", uerr)
	}
	return err
}
