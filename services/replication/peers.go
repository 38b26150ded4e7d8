package replication

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/sitepeers"
)

// PeerSource gives the peer record of a site linked to this one, with the
// signing key this site pinned for it. An unknown site is CodeNotFound.
type PeerSource interface {
	Peer(ctx context.Context, site string) (contracts.SitePeer, error)
}

// BusPeers asks the admin service of site Site (which keeps the peers) on
// its svc subject contracts.VerbSitePeers.
type BusPeers struct {
	NC   *nats.Conn
	Site string
}

// Peer implements PeerSource.
func (b BusPeers) Peer(ctx context.Context, site string) (contracts.SitePeer, error) {
	peers, err := sitepeers.Ask(ctx, b.NC, b.Site, site)
	if err != nil {
		return contracts.SitePeer{}, err
	}
	for _, p := range peers {
		if p.Site == site {
			return p, nil
		}
	}
	return contracts.SitePeer{}, contracts.Errorf(contracts.CodeNotFound, "site %s is not linked to site %s", site, b.Site)
}

// StaticPeers is a fixed set of peers, by site code (tests, tools).
type StaticPeers map[string]contracts.SitePeer

// Peer implements PeerSource.
func (p StaticPeers) Peer(_ context.Context, site string) (contracts.SitePeer, error) {
	if peer, ok := p[site]; ok {
		return peer, nil
	}
	return contracts.SitePeer{}, contracts.Errorf(contracts.CodeNotFound, "site %s is not linked to this site", site)
}

// CachedPeers remembers what another PeerSource answered for a while, so
// that a transfer does not ask admin for every message. Failures are not
// remembered.
type CachedPeers struct {
	src PeerSource
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	peers map[string]cachedPeer
}

type cachedPeer struct {
	peer contracts.SitePeer
	at   time.Time
}

// NewCachedPeers caches src's answers for ttl.
func NewCachedPeers(src PeerSource, ttl time.Duration) *CachedPeers {
	return &CachedPeers{src: src, ttl: ttl, now: time.Now, peers: map[string]cachedPeer{}}
}

// Peer implements PeerSource.
func (c *CachedPeers) Peer(ctx context.Context, site string) (contracts.SitePeer, error) {
	now := c.now()
	c.mu.Lock()
	if p, ok := c.peers[site]; ok && now.Sub(p.at) < c.ttl {
		c.mu.Unlock()
		return p.peer, nil
	}
	c.mu.Unlock()
	p, err := c.src.Peer(ctx, site)
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peers[site] = cachedPeer{peer: p, at: now}
	if len(c.peers) > 1024 {
		maps.DeleteFunc(c.peers, func(_ string, v cachedPeer) bool { return now.Sub(v.at) >= c.ttl })
	}
	return p, nil
}
