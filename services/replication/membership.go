package replication

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/discovery"
	"github.com/stewardhq/steward/services/internal/follow"
)

// Membership: which collections hold a client decides what it may
// download. The service asks discovery (Directory) and caches the answer
// per client; each instance follows discovery's membership events to
// forget what changed (followMembership), and one durable consumer shared
// by the instances tells the clients joining or leaving a collection with
// a deployment to fetch their content list again, and removes the reports
// of clients that left All Systems (consumeMembership).

// Directory is what the service asks discovery, which owns clients and
// collections.
type Directory interface {
	// Collections lists the IDs of the collections holding a client, All
	// Systems included (an unknown client is CodeNotFound).
	Collections(ctx context.Context, clientID string) ([]string, error)
	// Members lists a collection's members, asked on behalf of operator
	// (discovery answers within the operator's scope).
	Members(ctx context.Context, operator, collectionID string) ([]contracts.Named, error)
}

// BusDirectory asks discovery over NATS: client-facts on its svc subject,
// collection members on the operator's own subjects.
type BusDirectory struct {
	NC   *nats.Conn
	Site string
}

// Collections implements Directory.
func (b BusDirectory) Collections(ctx context.Context, clientID string) ([]string, error) {
	resp, err := discovery.ClientFacts(ctx, b.NC, b.Site, clientID)
	if err != nil {
		return nil, err
	}
	if resp.Client.ID != clientID {
		return nil, contracts.Errorf(contracts.CodeNotFound, "no client %s", clientID)
	}
	return resp.Collections, nil
}

// Members implements Directory.
func (b BusDirectory) Members(ctx context.Context, operator, collectionID string) ([]contracts.Named, error) {
	return discovery.Members(ctx, b.NC, b.Site, operator, collectionID)
}

// memberCache caches each client's collections for at most ttl.
type memberCache struct {
	dir Directory
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	clients map[string]cachedCollections
	// forgets counts forget calls: a look-up that a forget overtook may
	// hold the membership from before the change, and is not cached (it
	// would have stood for ttl).
	forgets uint64
}

type cachedCollections struct {
	ids []string
	at  time.Time
}

// maxCachedClients bounds the cache; past it, it starts over.
const maxCachedClients = 100_000

func newMemberCache(dir Directory, ttl time.Duration, now func() time.Time) *memberCache {
	return &memberCache{dir: dir, ttl: ttl, now: now, clients: map[string]cachedCollections{}}
}

// collections returns the collections holding client, from the cache
// unless fresh.
func (c *memberCache) collections(ctx context.Context, client string, fresh bool) ([]string, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.clients[client]
	forgets := c.forgets
	c.mu.Unlock()
	if !fresh && ok && now.Sub(e.at) < c.ttl {
		return e.ids, nil
	}
	ids, err := c.dir.Collections(ctx, client)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != forgets {
		return ids, nil
	}
	if len(c.clients) >= maxCachedClients {
		clear(c.clients)
	}
	c.clients[client] = cachedCollections{ids: ids, at: now}
	return ids, nil
}

// forget drops clients from the cache (nil: every client).
func (c *memberCache) forget(clients []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgets++
	if clients == nil {
		clear(c.clients)
		return
	}
	for _, id := range clients {
		delete(c.clients, id)
	}
}

// Membership event delivery to the durable consumer.
const (
	eventMaxDeliver = 10
	eventAckWait    = time.Minute
)

// consumeMembership keeps the durable consumer of membership events
// running until ctx ends: a client that joins or leaves a collection with
// a deployment is told content.changed.
func (s *Service) consumeMembership(ctx context.Context) {
	subj, err := contracts.MembershipSubject(s.cfg.Site)
	if err != nil {
		s.log.Error("membership subject", "err", err)
		return
	}
	ccfg := jetstream.ConsumerConfig{
		Durable:       MembershipConsumer,
		Description:   "replication tells clients joining or leaving a collection with a deployment to fetch their content list",
		FilterSubject: subj,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       eventAckWait,
		MaxDeliver:    eventMaxDeliver,
	}
	follow.Durable(ctx, s.log, s.js, DiscoveryEventsStream, ccfg, func(m jetstream.Msg) { s.onMembership(ctx, m) })
}

// onMembership handles one membership event for the durable consumer.
func (s *Service) onMembership(ctx context.Context, m jetstream.Msg) {
	var ev contracts.MembershipChanged
	if err := contracts.Decode(m.Data(), contracts.TypeMembershipChanged, &ev); err != nil {
		s.log.Error("membership event dropped", "err", err)
		_ = m.TermWithReason(err.Error())
		return
	}
	changed := slices.Concat(ev.Added, ev.Removed)
	s.members.forget(changed)
	if ev.Collection.ID == contracts.AllSystemsID {
		// Out of All Systems: the client was deleted (or blocked). Its
		// reports go; a report it wrote meanwhile withdraws itself
		// (confirmReport asks discovery after writing).
		for _, id := range ev.Removed {
			if err := s.dropClientReports(ctx, id); err != nil {
				s.log.Warn("the reports of a client removed from the site not removed; the event comes again", "client", id, "err", err)
				_ = m.NakWithDelay(eventAckWait / 4)
				return
			}
		}
	}
	if s.deployedTo(ev.Collection.ID) {
		n := s.pushChanged(changed)
		s.log.Debug("membership of a collection with deployments changed", "collection", ev.Collection.Name, "told", n)
	}
	_ = m.Ack()
}

// followMembership forgets the cached collections of every client a
// membership event names, on this instance, until ctx ends. Each
// (re)start of the ordered consumer forgets everything: events may have
// been missed.
func (s *Service) followMembership(ctx context.Context) {
	subj, err := contracts.MembershipSubject(s.cfg.Site)
	if err != nil {
		return
	}
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		cons, err := s.js.OrderedConsumer(ctx, DiscoveryEventsStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverNewPolicy,
		})
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				s.log.Warn("follow membership events", "err", err)
			}
			if sleepCtx(ctx, wait) != nil {
				return
			}
			wait = min(wait*2, 5*time.Second)
			continue
		}
		s.members.forget(nil)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			var ev contracts.MembershipChanged
			if contracts.Decode(m.Data(), contracts.TypeMembershipChanged, &ev) == nil {
				s.members.forget(slices.Concat(ev.Added, ev.Removed))
			}
		})
		if err != nil {
			if sleepCtx(ctx, wait) != nil {
				return
			}
			continue
		}
		<-ctx.Done()
		cc.Stop()
		return
	}
}

// deployedTo says whether some version is deployed to collection id.
func (s *Service) deployedTo(id string) bool {
	s.model.mu.RLock()
	defer s.model.mu.RUnlock()
	for _, d := range s.model.deployments {
		if d.Collection.ID == id {
			return true
		}
	}
	return false
}

// pushChanged tells clients content.changed (an empty message: fetch the
// content list again) and returns how many were told.
func (s *Service) pushChanged(clients []string) int {
	n := 0
	for _, id := range slices.Compact(slices.Sorted(slices.Values(clients))) {
		subj, err := contracts.AgentDown(s.cfg.Site, id, contracts.KindContentChanged)
		if err != nil {
			continue
		}
		if err := s.cfg.NC.Publish(subj, nil); err != nil {
			s.log.Warn("content.changed not sent", "client", id, "err", err)
			continue
		}
		n++
	}
	return n
}
