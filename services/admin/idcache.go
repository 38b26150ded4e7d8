package admin

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// agentCache keeps the approved and blocked agents of the identity bucket
// in memory, fed by a watch of the bucket, for the auth callout.
//
// In a reconnect storm every goroutine of the process (the embedded
// server's two per connection among them) waits its turn for a CPU, so
// each message hop costs up to a second: a bucket read per callout
// request took longer than the server's authorization timeout, and the
// site admitted almost no one while working flat out. An agent's
// decision needs only its status, which changes rarely and only by this
// service's writes.
//
// The cache answers only for approved and blocked agents. An unknown or
// pending key (enrolling right now), an operator or a site's leaf key is
// read from the bucket, so an approval is never missed and an operator's
// revocation is seen at once. Blocking or deleting an agent waits until
// this instance's cache has seen it before the agent is kicked, so the
// reconnect that follows is refused here. Another admin instance's cache
// may lag by its watch's delay (milliseconds; more under load), and a
// blocked agent reconnecting through it within that delay is admitted: so
// every instance, when its cache sees an approved agent blocked or
// deleted, calls revoked, which closes the agent's connections again a
// little later (Service.sweepRevoked).
type agentCache struct {
	mu      sync.RWMutex
	agents  map[string]Identity // key -> approved or blocked agent
	loaded  bool                // the watch delivered every entry once
	change  chan struct{}       // closed and replaced on every applied entry
	revoked func(was Identity)  // an approved agent is blocked or deleted (nil: nothing to do)
}

func newAgentCache(revoked func(was Identity)) *agentCache {
	return &agentCache{agents: map[string]Identity{}, change: make(chan struct{}), revoked: revoked}
}

// cachedStatus says whether the cache decides for an identity: approved
// and blocked agents.
func cachedStatus(id Identity) bool {
	return id.Kind == KindAgent && (id.Status == contracts.ClientApproved || id.Status == contracts.ClientBlocked)
}

// follow applies the bucket's entries until the watch ends; after that
// the cache answers for no one (every read goes to the bucket).
func (c *agentCache) follow(w jetstream.KeyWatcher) {
	defer func() {
		c.mu.Lock()
		c.loaded = false
		close(c.change) // wake awaitNotApproved: the cache decides for no one now
		c.change = make(chan struct{})
		c.mu.Unlock()
	}()
	for e := range w.Updates() {
		var was Identity
		revoked := false
		c.mu.Lock()
		if e == nil {
			c.loaded = true
		} else {
			prev, had := c.agents[e.Key()]
			var id Identity
			if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &id) == nil && cachedStatus(id) {
				// What decide reads, and no more: 50,000 agents stay small.
				c.agents[e.Key()] = Identity{Key: id.Key, Kind: id.Kind, ClientID: id.ClientID, Name: id.Name, Status: id.Status}
			} else {
				delete(c.agents, e.Key())
			}
			now := c.agents[e.Key()]
			was, revoked = prev, had && prev.Status == contracts.ClientApproved && now.Status != contracts.ClientApproved
		}
		close(c.change)
		c.change = make(chan struct{})
		c.mu.Unlock()
		if revoked && c.revoked != nil {
			c.revoked(was)
		}
	}
}

// agent returns the cached identity of key when the cache decides for it.
func (c *agentCache) agent(key string) (Identity, bool) {
	if c == nil {
		return Identity{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.loaded {
		return Identity{}, false
	}
	id, ok := c.agents[key]
	return id, ok
}

// awaitNotApproved waits until the cache no longer admits key as an
// approved agent (blocked, deleted, never cached, or the cache out of use
// because its watch has not loaded or has ended), or ctx ends.
func (c *agentCache) awaitNotApproved(ctx context.Context, key string) error {
	if c == nil {
		return nil
	}
	for {
		c.mu.RLock()
		id, ok := c.agents[key]
		loaded, change := c.loaded, c.change
		c.mu.RUnlock()
		if !loaded || !ok || id.Status != contracts.ClientApproved {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-change:
		}
	}
}

// cacheSettle bounds how long blocking or deleting an agent waits for the
// cache before kicking it anyway.
const cacheSettle = 5 * time.Second
