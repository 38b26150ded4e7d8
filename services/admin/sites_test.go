package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

func TestSiteGrant(t *testing.T) {
	g, err := siteGrant("PAR", "CHD")
	if err != nil {
		t.Fatal(err)
	}
	// As the child sees them: the server reverses them on the parent's
	// side of the link (services/site TestSiteHierarchy checks both ways).
	if want := []string{"steward.PAR.site.CHD.>", "steward.PAR.inbox.site.>"}; !slices.Equal(g.Pub, want) {
		t.Errorf("pub: got %v, want %v", g.Pub, want)
	}
	if want := []string{"steward.CHD.site.PAR.>", "steward.CHD.inbox.site.>"}; !slices.Equal(g.Sub, want) {
		t.Errorf("sub: got %v, want %v", g.Sub, want)
	}
	uc := userClaims("UKEY", g)
	if !g.Leaf || uc.Resp != nil || !uc.AllowedConnectionTypes.Contains(jwt.ConnectionTypeLeafnode) || len(uc.AllowedConnectionTypes) != 1 {
		t.Errorf("claims: got leaf %v, responses %+v, connection types %v, want a leaf connection only, no responses", g.Leaf, uc.Resp, uc.AllowedConnectionTypes)
	}
	for _, bad := range [][2]string{{"PAR", "C.D"}, {"PAR", "*"}, {"P>", "CHD"}} {
		if _, err := siteGrant(bad[0], bad[1]); err == nil {
			t.Errorf("siteGrant(%q, %q): got a grant, want an error", bad[0], bad[1])
		}
	}
}

func TestDecideLeaf(t *testing.T) {
	const site, key = "PAR", "ULEAF"
	tok := contracts.SiteToken{Site: site, SiteKey: "OPARENT", ID: "t1", Secret: "s3cret"}
	foreign := tok
	foreign.Site = "OTH"
	child := Identity{Key: key, Kind: KindSite, Name: "CHD"}
	revoked := child
	revoked.Revoked = true
	tests := []struct {
		name       string
		id         Identity
		lookupErr  error
		user, pass string
		wantErr    string
		child      string
		consume    bool
	}{
		{"known child: granted by its key", child, nil, "", "", "", "CHD", false},
		{"known child presenting a token too: the token is not consumed", child, nil, "CHD", tok.String(), "", "CHD", false},
		{"known child's grant follows the record, not the user it says", child, nil, "OTH", "", "", "CHD", false},
		{"revoked child refused", revoked, nil, "", "", "revoked", "", false},
		{"an agent's key may not link", Identity{Key: key, Kind: KindAgent, ClientID: "c1", Status: contracts.ClientApproved}, nil, "CHD", tok.String(), "not a child site's", "", false},
		{"an operator's key may not link", Identity{Key: key, Kind: KindOperator, Name: "alice"}, nil, "CHD", tok.String(), "not a child site's", "", false},
		{"lookup failure fails closed", Identity{}, errors.New("kv down"), "CHD", tok.String(), "cannot decide", "", false},
		{"unknown key without a token", Identity{}, errNoIdentity, "", "", "no site token", "", false},
		{"unknown key with a user but no token", Identity{}, errNoIdentity, "CHD", "", "no site token", "", false},
		{"unknown key with an enrollment token", Identity{}, errNoIdentity, "CHD", contracts.EnrollmentToken{Site: site, SiteKey: "O", ID: "i", Secret: "x"}.String(), "STS1-", "", false},
		{"unknown key with garbage", Identity{}, errNoIdentity, "CHD", "STS1-!!", "damaged", "", false},
		{"unknown key with another site's token", Identity{}, errNoIdentity, "CHD", foreign.String(), "issued by site OTH", "", false},
		{"unknown key with a token and no site code", Identity{}, errNoIdentity, "", tok.String(), "site code", "", false},
		{"unknown key with a token and a wildcard code", Identity{}, errNoIdentity, "C*", tok.String(), "site code", "", false},
		{"unknown key with a token naming this site", Identity{}, errNoIdentity, site, tok.String(), "itself", "", false},
		{"unknown key with a token: consume it and link", Identity{}, errNoIdentity, "CHD", tok.String(), "", "CHD", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decideLeaf(site, key, tt.id, tt.lookupErr, tt.user, tt.pass)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, %v, want a refusal containing %q", d, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want a grant", err)
			}
			want, _ := siteGrant(site, tt.child)
			if d.Child != tt.child || !slices.Equal(d.Grant.Pub, want.Pub) || !slices.Equal(d.Grant.Sub, want.Sub) || !d.Grant.Leaf {
				t.Fatalf("got child %q grant %+v, want %q %+v", d.Child, d.Grant, tt.child, want)
			}
			if (d.Token != nil) != tt.consume {
				t.Fatalf("token to consume: got %v, want %v", d.Token, tt.consume)
			}
		})
	}
}

// TestDecideSiteKeyAsClient: a child's leaf key connecting as an ordinary
// client gets nothing, not even enrollment.
func TestDecideSiteKeyAsClient(t *testing.T) {
	g, err := decide("PAR", "ULEAF", Identity{Key: "ULEAF", Kind: KindSite, Name: "CHD"}, nil, time.Now())
	if err == nil || !strings.Contains(err.Error(), "leaf node") {
		t.Fatalf("got %+v, %v, want a refusal", g, err)
	}
}

// signedJoin makes a join of child to parent signed by kp.
func signedJoin(t *testing.T, kp nkeys.KeyPair, j contracts.SiteJoin) ([]byte, []byte) {
	t.Helper()
	if j.SigningKey == "" {
		j.SigningKey, _ = kp.PublicKey()
	}
	body, _ := json.Marshal(j)
	sig, err := kp.Sign(contracts.SiteJoinSigningInput(body))
	if err != nil {
		t.Fatal(err)
	}
	return body, sig
}

func TestVerifyJoin(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	kp, _ := nkeys.CreateOperator()
	pub, _ := kp.PublicKey()
	other, _ := nkeys.CreateOperator()
	otherPub, _ := other.PublicKey()
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	rec := peerRecord{SitePeer: contracts.SitePeer{Site: "CHD", Role: contracts.PeerChild, LeafKey: "ULEAF"}}
	pinned := rec
	pinned.SigningKey = pub
	parentRec := rec
	parentRec.Role = contracts.PeerParent
	good := contracts.SiteJoin{Parent: "PAR", Child: "CHD", LeafKey: "ULEAF", Time: now}
	with := func(f func(*contracts.SiteJoin)) contracts.SiteJoin { j := good; f(&j); return j }

	body, sig := signedJoin(t, kp, good)
	tests := []struct {
		name      string
		rec       peerRecord
		body, sig []byte
		want      string
	}{
		{"first join pins", rec, body, sig, ""},
		{"same key again", pinned, body, sig, ""},
		{"another key than the pinned one", pinned, nil, nil, "is pinned"},
		{"a parent does not join its child", parentRec, body, sig, "not a child"},
		{"names another parent", rec, nil, nil, "names parent"},
		{"names another child", rec, nil, nil, "names parent"},
		{"names another leaf key", rec, nil, nil, "leaf key"},
		{"too old", rec, nil, nil, "clock"},
		{"from the future", rec, nil, nil, "clock"},
		{"signed by another key than it names", rec, nil, nil, "does not verify"},
		{"a user key is not a site key", rec, nil, nil, "not a site signing key"},
		{"not JSON", rec, []byte("nope"), sig, "not a site join"},
		{"signature of another body", rec, []byte(strings.Replace(string(body), "PAR", "PAR", 1) + " "), sig, "does not verify"},
	}
	// The rows without a body sign their own statement.
	tests[2].body, tests[2].sig = signedJoin(t, other, good)
	tests[4].body, tests[4].sig = signedJoin(t, kp, with(func(j *contracts.SiteJoin) { j.Parent = "OTH" }))
	tests[5].body, tests[5].sig = signedJoin(t, kp, with(func(j *contracts.SiteJoin) { j.Child = "OTH" }))
	tests[6].body, tests[6].sig = signedJoin(t, kp, with(func(j *contracts.SiteJoin) { j.LeafKey = "UOTHER" }))
	tests[7].body, tests[7].sig = signedJoin(t, kp, with(func(j *contracts.SiteJoin) { j.Time = now.Add(-contracts.SiteJoinMaxSkew - time.Second) }))
	tests[8].body, tests[8].sig = signedJoin(t, kp, with(func(j *contracts.SiteJoin) { j.Time = now.Add(contracts.SiteJoinMaxSkew + time.Second) }))
	tests[9].body, tests[9].sig = signedJoin(t, kp, with(func(j *contracts.SiteJoin) { j.SigningKey = otherPub }))
	tests[10].body, tests[10].sig = signedJoin(t, user, with(func(j *contracts.SiteJoin) { j.SigningKey = userPub }))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := verifyJoin("PAR", "CHD", tt.rec, tt.body, tt.sig, now)
			if tt.want == "" {
				if err != nil || j.SigningKey != pub {
					t.Fatalf("got %+v, %v, want the join with key %s", j, err, pub)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPeerView(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	rec := func(last time.Duration, connected bool, interval time.Duration) peerRecord {
		return peerRecord{SitePeer: contracts.SitePeer{Site: "CHD", LastContact: now.Add(-last), Connected: connected}, Interval: contracts.Duration(interval)}
	}
	tests := []struct {
		name string
		rec  peerRecord
		want bool
	}{
		{"heard just now", rec(0, true, 0), true},
		{"heard within three beats", rec(89*time.Second, true, 0), true},
		{"silent for over three beats", rec(91*time.Second, true, 0), false},
		{"a slower peer's beat counts", rec(5*time.Minute, true, 2*time.Minute), true},
		{"its last heartbeat failed", rec(0, false, 0), false},
	}
	for _, tt := range tests {
		if got := peerView(tt.rec, 30*time.Second, now).Connected; got != tt.want {
			t.Errorf("%s: connected %v, want %v", tt.name, got, tt.want)
		}
	}
}

// testService runs admin on a plain server (no callout): its domain
// functions are called directly.
func testService(t *testing.T, site string, parent *Parent) (*Service, nkeys.KeyPair) {
	t.Helper()
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	siteKey, _ := nkeys.CreateOperator()
	issuer, _ := nkeys.CreateAccount()
	adminKP, _ := nkeys.CreateUser()
	adminPub, _ := adminKP.PublicKey()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := New(ctx, Config{NC: nc, Site: site, SiteKey: siteKey, Issuer: issuer, Bootstrap: adminPub, Parent: parent,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Collections: noCollections{}, Membership: noMembership{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.svc.Stop(); s.stopWatch() })
	return s, siteKey
}

type noCollections struct{}

func (noCollections) ResolveCollection(context.Context, string, string) (contracts.Named, error) {
	return contracts.Named{}, errors.New("none")
}

type noMembership struct{}

func (noMembership) IsMember(context.Context, string, string, string) (bool, error) {
	return false, nil
}

// TestLinkAndJoin runs the parent's side of a link on a real bucket: the
// token's one use, a token bound to a child, a code taken by another key,
// the join pinning the key, heartbeats.
func TestLinkAndJoin(t *testing.T) {
	s, _ := testService(t, "PAR", nil)
	ctx := context.Background()
	op := contracts.SubjectInfo{Site: "PAR", Space: "op", Principal: "admin", Direction: "up"}
	newToken := func(child string) string {
		t.Helper()
		resp, err := s.createSiteToken(ctx, op, &contracts.SiteTokenCreateRequest{TTL: contracts.Duration(time.Hour), Child: child})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := contracts.ParseSiteToken(resp.Token)
		if err != nil || tok.Site != "PAR" || tok.SiteKey != s.siteKey {
			t.Fatalf("token %+v, %v: want one of PAR with its key", tok, err)
		}
		return resp.Token
	}
	if _, err := s.createSiteToken(ctx, contracts.SubjectInfo{Principal: "nobody"}, &contracts.SiteTokenCreateRequest{TTL: contracts.Duration(time.Hour)}); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("token by an unknown operator: got %v, want permission denied", err)
	}
	if _, err := s.createSiteToken(ctx, op, &contracts.SiteTokenCreateRequest{TTL: contracts.Duration(time.Hour), Child: "PAR"}); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("token for the site itself: got %v, want bad request", err)
	}
	leaf := func() string { kp, _ := nkeys.CreateUser(); pub, _ := kp.PublicKey(); return pub }
	chdKey, othKey := leaf(), leaf()

	tok := newToken("")
	g, err := s.admitLeaf(ctx, chdKey, "CHD", tok, "10.0.0.2")
	if err != nil || g.Name != "site:CHD" {
		t.Fatalf("first link: got %+v, %v, want a grant for CHD", g, err)
	}
	if id, _, err := s.ids.get(ctx, chdKey); err != nil || id.Kind != KindSite || id.Name != "CHD" {
		t.Fatalf("leaf identity: got %+v, %v, want site CHD", id, err)
	}
	if g, err := s.admitLeaf(ctx, chdKey, "", "", "10.0.0.2"); err != nil || g.Name != "site:CHD" {
		t.Fatalf("relink by key: got %+v, %v, want a grant for CHD", g, err)
	}
	// A link whose identity was not recorded (a failure after the token's
	// use) is finished by the same key and token, and by nothing else.
	if err := s.ids.delete(ctx, chdKey); err != nil {
		t.Fatal(err)
	}
	wrong, _ := contracts.ParseSiteToken(tok)
	wrong.Secret = "guess"
	if _, err := s.admitLeaf(ctx, chdKey, "CHD", wrong.String(), "10.0.0.2"); contracts.CodeOf(err) != contracts.CodeTokenInvalid {
		t.Fatalf("resuming with a wrong secret: got %v, want token_invalid", err)
	}
	if g, err := s.admitLeaf(ctx, chdKey, "CHD", tok, "10.0.0.2"); err != nil || g.Name != "site:CHD" {
		t.Fatalf("resumed link: got %+v, %v, want a grant for CHD", g, err)
	}
	if id, _, err := s.ids.get(ctx, chdKey); err != nil || id.Kind != KindSite {
		t.Fatalf("leaf identity after the resumed link: got %+v, %v", id, err)
	}
	if _, err := s.admitLeaf(ctx, othKey, "OTH", tok, "10.0.0.3"); contracts.CodeOf(err) != contracts.CodeTokenSpent {
		t.Fatalf("a spent token: got %v, want token_spent", err)
	}
	bound := newToken("BR1")
	if _, err := s.admitLeaf(ctx, othKey, "OTH", bound, "10.0.0.3"); err == nil || !strings.Contains(err.Error(), "is for site BR1") {
		t.Fatalf("a token for BR1 used by OTH: got %v, want refused", err)
	}
	if _, err := s.admitLeaf(ctx, othKey, "BR1", bound, "10.0.0.3"); err != nil {
		t.Fatalf("the token for BR1, by BR1: got %v (was it consumed by the refusal?)", err)
	}
	takeover := newToken("")
	if _, err := s.admitLeaf(ctx, leaf(), "CHD", takeover, "10.0.0.4"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("a new key for CHD: got %v, want conflict (a token does not take over a site)", err)
	}
	if _, err := s.admitLeaf(ctx, leaf(), "NEW", takeover, "10.0.0.4"); err != nil {
		t.Fatalf("the refused takeover's token, for a new site: got %v, want it unspent", err)
	}

	// Heartbeats before the join are answered not found (join first).
	from := func(site string) contracts.SubjectInfo {
		return contracts.SubjectInfo{Site: "PAR", Space: "site", Principal: site}
	}
	hb := &contracts.SiteHeartbeat{Interval: contracts.Duration(time.Minute)}
	if _, err := s.siteHeartbeat(ctx, from("CHD"), hb); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("heartbeat before the join: got %v, want not found", err)
	}
	chdSite, _ := nkeys.CreateOperator()
	chdSitePub, _ := chdSite.PublicKey()
	body, sig := signedJoin(t, chdSite, contracts.SiteJoin{Parent: "PAR", Child: "CHD", LeafKey: chdKey, Time: time.Now().UTC()})
	resp, err := s.siteJoin(ctx, from("CHD"), &contracts.SiteJoinRequest{Join: body, Signature: sig})
	if err != nil || resp.Site != "PAR" || resp.SigningKey != s.siteKey {
		t.Fatalf("join: got %+v, %v, want PAR's key", resp, err)
	}
	impostor, _ := nkeys.CreateOperator()
	body2, sig2 := signedJoin(t, impostor, contracts.SiteJoin{Parent: "PAR", Child: "CHD", LeafKey: chdKey, Time: time.Now().UTC()})
	if _, err := s.siteJoin(ctx, from("CHD"), &contracts.SiteJoinRequest{Join: body2, Signature: sig2}); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("join with another key: got %v, want permission denied", err)
	}
	if _, err := s.siteJoin(ctx, from("NOPE"), &contracts.SiteJoinRequest{Join: body, Signature: sig}); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("join of an unlinked site: got %v, want not found", err)
	}
	if _, err := s.siteHeartbeat(ctx, from("CHD"), hb); err != nil {
		t.Fatalf("heartbeat after the join: %v", err)
	}
	if _, err := s.siteHeartbeat(ctx, from("NOPE"), hb); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("heartbeat of an unknown site: got %v, want not found", err)
	}

	list, err := s.sitePeers(ctx, contracts.SubjectInfo{}, &contracts.SitePeersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, p := range list.Peers {
		codes = append(codes, p.Site)
	}
	if !slices.Equal(codes, []string{"BR1", "CHD", "NEW"}) {
		t.Fatalf("peers: got %v, want [BR1 CHD NEW]", codes)
	}
	one, err := s.sitePeers(ctx, contracts.SubjectInfo{}, &contracts.SitePeersRequest{Site: "CHD"})
	if err != nil || len(one.Peers) != 1 {
		t.Fatalf("peer CHD: got %+v, %v", one, err)
	}
	p := one.Peers[0]
	// The refused join of another key shows until the next good join.
	if p.Role != contracts.PeerChild || p.SigningKey != chdSitePub || p.LeafKey != chdKey || !p.Connected || !strings.Contains(p.Error, "is pinned") {
		t.Fatalf("peer CHD: got %+v, want a connected child with its pinned key and the refused join", p)
	}
	if _, err := s.listSites(ctx, contracts.SubjectInfo{Principal: "nobody"}, &contracts.SitePeersRequest{}); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("sites.list by an unknown operator: got %v, want permission denied", err)
	}
}

// TestParentRecord: a child records its parent, pinned from parent.json,
// and refuses a parent that is one of its children.
func TestParentRecord(t *testing.T) {
	parentKey, _ := nkeys.CreateOperator()
	parentPub, _ := parentKey.PublicKey()
	linked := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s, _ := testService(t, "CHD", &Parent{Site: "PAR", SigningKey: parentPub, LeafKey: "ULEAF", Linked: linked})
	resp, err := s.sitePeers(context.Background(), contracts.SubjectInfo{}, &contracts.SitePeersRequest{Site: "PAR"})
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Peers[0]; p.Role != contracts.PeerParent || p.SigningKey != parentPub || !p.Linked.Equal(linked) || p.Connected {
		t.Fatalf("parent record: got %+v", p)
	}
	for _, bad := range []*Parent{
		{Site: "CHD", SigningKey: parentPub},
		{Site: "P.R", SigningKey: parentPub},
		{Site: "PAR", SigningKey: "UNOTASITEKEY"},
	} {
		if err := s.ensureParent(context.Background(), bad); err == nil {
			t.Errorf("parent %+v: got nil, want an error", bad)
		}
	}
}
