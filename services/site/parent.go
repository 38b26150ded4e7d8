package site

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/admin"
)

// A child site links to its parent with a leaf connection that its
// embedded server solicits (docs/replication.md, "Site hierarchy"):
//
//	<data>/
//	  parent.json      the parent: code, signing key and CA fingerprint
//	                   pinned from the site token, its leaf URL, when this
//	                   site first linked (0600)
//	  keys/leaf.nk     this site's leaf key, a user NKey (0600)
//
// The first start presents the site token as the leaf connection's
// password (user: this site's code); the token lives in memory only, on
// the server's options, never in nats.conf or any file. Later starts link
// with the leaf key alone.

// DefaultLeafPort is the port of a parent's leaf listener when a --parent
// URL names none.
const DefaultLeafPort = "7422"

// ParentLink is the parent a child site links to, kept in parent.json.
type ParentLink struct {
	Site    string    `json:"site"`
	SiteKey string    `json:"siteKey"`      // the parent's signing key, pinned from the token
	CA      string    `json:"ca,omitempty"` // the parent's CA fingerprint, pinned from the token
	URL     string    `json:"url"`          // the parent's leaf listener
	Linked  time.Time `json:"linked"`       // when this site first linked
}

// parentPath is parent.json in data dir dir.
func parentPath(dir string) string { return filepath.Join(dir, "parent.json") }

// ReadParent reads the parent of the site in data dir dir; nil when it
// has none.
func ReadParent(dir string) (*ParentLink, error) {
	data, err := os.ReadFile(parentPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p ParentLink
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", parentPath(dir), err)
	}
	if contracts.ValidName(p.Site) != nil || !nkeys.IsValidPublicOperatorKey(p.SiteKey) || p.URL == "" {
		return nil, fmt.Errorf("%s is incomplete: it needs the parent's site code, signing key and URL", parentPath(dir))
	}
	return &p, nil
}

// parentLink is the link a start makes: the parent, this site's leaf key,
// and the token to present (first link only).
type parentLink struct {
	ParentLink
	leaf  nkeys.KeyPair
	token string
}

// linkParent prepares the link of site (data dir dir) to its parent from
// the --parent URL and --parent-token: the first link pins the parent from
// the token and makes the leaf key; later ones read parent.json (the URL
// may change: the pins do not). nil when the site has no parent.
func linkParent(dir, site, rawURL, token string) (*parentLink, error) {
	known, err := ReadParent(dir)
	if err != nil {
		return nil, err
	}
	var tok contracts.SiteToken
	if token != "" {
		if tok, err = contracts.ParseSiteToken(token); err != nil {
			return nil, fmt.Errorf("--parent-token: %w", err)
		}
		if tok.Site == site {
			return nil, fmt.Errorf("--parent-token: the token is site %s's own: a site cannot be its own parent", site)
		}
		if known != nil && (known.Site != tok.Site || known.SiteKey != tok.SiteKey) {
			return nil, fmt.Errorf("--parent-token: data dir %s is linked to parent %s (key %.12s…), and the token is site %s's: one data dir links to one parent", dir, known.Site, known.SiteKey, tok.Site)
		}
	}
	switch {
	case known == nil && rawURL == "" && token == "":
		return nil, nil
	case known == nil && rawURL == "":
		return nil, errors.New("--parent-token needs --parent, the parent's leaf URL (nats://parent:7422)")
	case known == nil && token == "":
		return nil, fmt.Errorf("the first link to %s needs --parent-token (steward sites token create, at the parent)", rawURL)
	}
	p := known
	changed := false
	if p == nil {
		p = &ParentLink{Site: tok.Site, SiteKey: tok.SiteKey, CA: tok.CA, Linked: time.Now().UTC()}
		changed = true
	}
	if rawURL != "" {
		u, err := leafURL(rawURL)
		if err != nil {
			return nil, err
		}
		if u != p.URL {
			p.URL, changed = u, true
		}
	}
	if p.CA == "" && !contracts.LoopbackOnly(p.URL) {
		return nil, fmt.Errorf("parent %s at %s is off loopback, but its site token pins no CA: the link must be TLS with the parent's pinned CA", p.Site, p.URL)
	}
	leaf, err := loadOrCreateKey(filepath.Join(dir, "keys", "leaf.nk"), nkeys.CreateUser)
	if err != nil {
		return nil, err
	}
	if changed {
		data, _ := json.MarshalIndent(p, "", "  ")
		if err := writeFileAtomic(parentPath(dir), data, 0o600); err != nil {
			return nil, err
		}
	}
	return &parentLink{ParentLink: *p, leaf: leaf, token: token}, nil
}

// leafURL checks a parent's leaf URL and completes it: nats:// or tls://,
// a host, the default port, nothing else (credentials never travel in it).
func leafURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("--parent %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "nats" && u.Scheme != "tls":
		return "", fmt.Errorf("--parent %q: the scheme must be nats:// or tls://", raw)
	case u.User != nil:
		return "", fmt.Errorf("--parent %q: no credentials in the URL (the token goes in --parent-token)", raw)
	case u.Hostname() == "":
		return "", fmt.Errorf("--parent %q: no host", raw)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "":
		return "", fmt.Errorf("--parent %q: want scheme://host:port only", raw)
	}
	port := u.Port()
	if port == "" {
		port = DefaultLeafPort
	}
	return u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port), nil
}

// leafRemote is the server's leaf remote of the link: this site's STEWARD
// account to the parent's, authenticated with the leaf key (and the token
// as the password the first time), and TLS with the parent's pinned CA off
// loopback (or with tls://).
func (p *parentLink) leafRemote(site, compression string) (*server.RemoteLeafOpts, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, err
	}
	if p.token != "" {
		u.User = url.UserPassword(site, p.token)
	}
	seed, err := p.leaf.Seed()
	if err != nil {
		return nil, err
	}
	r := &server.RemoteLeafOpts{LocalAccount: admin.Account, URLs: []*url.URL{u}, Nkey: string(seed),
		Compression: server.CompressionOpts{Mode: compression},
		DenyImports: linkDenyImports(site), DenyExports: linkDenyExports(site)}
	if u.Scheme == "tls" || !contracts.LoopbackOnly(p.URL) {
		pin := p.CA
		if pin == "" {
			return nil, fmt.Errorf("parent %s: TLS needs the parent's CA fingerprint, and parent.json pins none", p.Site)
		}
		r.TLS = true
		r.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The parent is whoever presents a chain holding the pinned CA
			// (any name or address may reach it), checked here instead.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				_, err := contracts.VerifySiteChain(pin, cs.PeerCertificates)
				return err
			},
		}
	}
	return r, nil
}

// The child enforces the link's shape itself rather than trusting the
// parent's server to: site-to-site traffic is steward.<dest>.site.<from>.>
// with answers to steward.<asker>.inbox.site (contracts.SiteInbox). What
// deny lists cannot say: the parent's server may still publish as another
// site (steward.<site>.site.<other>.>); the services check the sending
// site against their peers.
//
// linkDenyImports is what this site refuses from its parent: its own
// agents', operators', services' and events' subjects (a parent's server
// publishing steward.<site>.op.admin.… would otherwise act as this site's
// administrator), and JetStream's and the system's APIs. New subject kinds
// of contracts must be added here.
func linkDenyImports(site string) []string {
	out := linkPrivate()
	for _, kind := range []string{"enroll", "agent", "op", "svc", "event"} {
		out = append(out, contracts.Root+"."+site+"."+kind+".>")
	}
	return out
}

// linkDenyExports is what this site never sends its parent: anything of
// its own subjects (the parent is reached on steward.<parent>.site.<site>.>
// and answered on its site inbox), any _INBOX reply (its operators',
// agents' and services' answers, JetStream's included), and JetStream's
// and the system's APIs.
func linkDenyExports(site string) []string {
	return append(linkPrivate(), contracts.Root+"."+site+".>", "_INBOX.>")
}

// linkPrivate is what neither side of a link carries: each site has its
// own JetStream domain and system account.
func linkPrivate() []string {
	return []string{"$JS.>", "$JSC.>", "$KV.>", "$O.>", "$SYS.>", "$SRV.>"}
}

// leafPublic is this site's leaf key (public).
func (p *parentLink) leafPublic() string {
	pub, _ := p.leaf.PublicKey()
	return pub
}
