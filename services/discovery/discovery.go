// Package discovery is the site's discovery service: it keeps a record of
// every client (identity from the admin service's events, machine facts and
// liveness from the agents' heartbeats), stores the clients' inventory and
// its history, and evaluates collections, incrementally, on every change.
//
// How the parts fit:
//
//	admin events (JetStream ADMIN_EVENTS) ──consumer──┐
//	agent heartbeats (micro endpoint) ─────────────────┼─> records.go (domain) ─> store.go (KV, CAS) ─> discovery-clients
//	$SYS disconnect advisories, sweeper ───────────────┘
//	agent inventory reports (outbox batches) ─> ingest.go + inventory.go ─> DISCOVERY_INVENTORY_HISTORY, discovery-inventory
//	collections.create/update/delete ─> collections.go (checked by the engine) ─> discovery-collections
//
//	discovery-clients, discovery-inventory, discovery-collections ──watches──> model.go
//	    model: view of records + inventory + definitions ─> collections.Engine (incremental)
//	    membership changes ─> publisher ─> DISCOVERY_EVENTS (steward.<site>.event.discovery.membership)
//	view and model ─> clients.*, inventory.*, collections.* answers, sweeper
//
// Any number of instances may run at once: endpoints share a queue group,
// events are consumed by one durable consumer, every write to a bucket is a
// compare-and-set on the key's revision, and every instance keeps its own
// model from the watches (their membership events share Nats-Msg-Ids, so the
// stream keeps each once).
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
	"github.com/stewardhq/steward/services/status"
)

// collectionsHistory is how many revisions of each collection definition
// the bucket keeps. A watch delivers only revisions still in the stream:
// with one, an instance that lags behind two quick writes of a definition
// (create then update) sees only the second, evaluates both changes as one
// and publishes that under another event ID than the instances that saw
// both, so the stream would hold the change twice, and could order it
// after a later removal. Definitions are few and small; keeping the last
// 16 lets an instance lag that far behind one collection and still see
// every revision.
const collectionsHistory = 16

// Names fixed on the wire and on the server.
const (
	ServiceName    = "steward-discovery"
	ServiceVersion = "0.2.0"
	// Bucket is the KV bucket of client records: key client ID, value the
	// JSON of a contracts.Client (with one extra field, heartbeatInterval).
	Bucket = "discovery-clients"
	// InventoryBucket holds each client's current inventory: key client
	// ID, value the JSON of a storedInventory.
	InventoryBucket = "discovery-inventory"
	// CollectionsBucket holds the collection definitions: key collection
	// ID, value the JSON of a collectionRecord.
	CollectionsBucket = "discovery-collections"
	// CollectionNamesBucket reserves collection names: key a hash of the
	// name in lower case, value the ID of the collection that holds it
	// (names.go).
	CollectionNamesBucket = "discovery-collection-names"
	// HistoryStream keeps the changes of every client's inventory
	// (contracts.InventoryChanged on steward.<site>.event.discovery.inventory.<clientID>)
	// for Config.HistoryMaxAge.
	HistoryStream = "DISCOVERY_INVENTORY_HISTORY"
	// DiscoveryEventsStream keeps the service's domain events for other
	// services: contracts.MembershipChanged on steward.<site>.event.discovery.membership.
	DiscoveryEventsStream = "DISCOVERY_EVENTS"
)

// Defaults of Config.
const (
	DefaultAccount       = "STEWARD"
	DefaultSweepEvery    = 10 * time.Second
	DefaultHistoryMaxAge = 90 * 24 * time.Hour
	DefaultEventsMaxAge  = 30 * 24 * time.Hour
)

// historyPerClient bounds the reports kept in the history of one client
// (a misbehaving agent must not fill the stream).
const historyPerClient = 2000

// writeTimeout bounds one change of a record.
const writeTimeout = 5 * time.Second

// Config configures the discovery service.
type Config struct {
	// NC is the service's connection to the site account.
	NC *nats.Conn
	// Sys, when set, is a connection in the NATS system account, on which
	// the service hears that agent connections closed and marks them
	// offline at once. Without it clients go offline when the sweeper finds
	// them missing heartbeats.
	Sys *nats.Conn
	// Site is the site code.
	Site string
	// Log receives the service's logs; component=discovery is added.
	Log *slog.Logger
	// Replicas of the bucket: 1 (default) on a single server, 3 clustered.
	Replicas int
	// Account is the NATS account the agents connect to, whose disconnect
	// advisories Sys receives. Default STEWARD.
	Account string
	// SweepEvery is how often the sweeper looks for clients that missed
	// their heartbeats. Default 10s.
	SweepEvery time.Duration
	// Authz gives the RBAC model every operator request is decided from
	// (an *rbac.Watcher). Required unless NoAuthz.
	Authz rbac.Source
	// NoAuthz serves operator requests without authorization: only for
	// tests of the service alone.
	NoAuthz bool
	// NoStatusMessages keeps the service from emitting its own status
	// messages (started, stopping): only for tests without a status service.
	NoStatusMessages bool
	// FlushEvery is how often heartbeats that only move a client's
	// last-seen time are written (see heartbeats.go). Default 2s.
	FlushEvery time.Duration
	// Now is the site clock. Default time.Now.
	Now func() time.Time
	// HistoryMaxAge is how long inventory changes are kept. Default 90 days.
	HistoryMaxAge time.Duration
	// EventsMaxAge is how long membership events are kept for the services
	// that consume them. Default 30 days.
	EventsMaxAge time.Duration
}

// CheckAndSetDefaults checks the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.NC == nil {
		return errors.New("discovery: a NATS connection is required")
	}
	if err := contracts.ValidToken(c.Site); err != nil {
		return fmt.Errorf("discovery: site code: %w", err)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("discovery: replicas %d: must be 1 to 5", c.Replicas)
	}
	if c.Account == "" {
		c.Account = DefaultAccount
	}
	if err := contracts.ValidToken(c.Account); err != nil {
		return fmt.Errorf("discovery: account: %w", err)
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = DefaultSweepEvery
	}
	if c.Authz == nil && !c.NoAuthz {
		return errors.New("discovery: Authz (the RBAC model) is required")
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = DefaultFlushEvery
	}
	if c.SweepEvery < 0 {
		return fmt.Errorf("discovery: sweep interval %s: must be positive", c.SweepEvery)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HistoryMaxAge == 0 {
		c.HistoryMaxAge = DefaultHistoryMaxAge
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.HistoryMaxAge < 0 || c.EventsMaxAge < 0 {
		return fmt.Errorf("discovery: retention must be positive")
	}
	return nil
}

// Service is one instance of the discovery service.
type Service struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	store   *store
	view    *view
	beats   *beats
	invKV   jetstream.KeyValue
	collKV  jetstream.KeyValue
	namesKV jetstream.KeyValue // collection names reserved (names.go)
	model   *model
	events  chan *pendingEvent // membership events for the publisher
	ready   chan struct{}
	// emitter sends the service's status messages (nil without them);
	// set before the handlers start.
	emitter *status.Emitter
}

// emit sends status message id when the service sends status messages.
func (s *Service) emit(ctx context.Context, id int, props map[string]string) {
	if s.emitter != nil {
		s.emitter.Emit(ctx, id, props)
	}
}

// eventQueue is how many membership events may wait for the publisher
// before the watches feeding the model wait too.
const eventQueue = 4096

// New checks cfg and creates the buckets and streams that do not exist.
// Run starts the service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NC)
	if err != nil {
		return nil, fmt.Errorf("discovery: jetstream: %w", err)
	}
	bucket := func(name, desc string, history uint8) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      name,
			Description: desc,
			History:     history,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("discovery: bucket %s: %w", name, err)
		}
		return kv, nil
	}
	kv, err := bucket(Bucket, "Steward discovery: one record per client", 1)
	if err != nil {
		return nil, err
	}
	invKV, err := bucket(InventoryBucket, "Steward discovery: the current inventory of every client", 1)
	if err != nil {
		return nil, err
	}
	collKV, err := bucket(CollectionsBucket, "Steward discovery: collection definitions", collectionsHistory)
	if err != nil {
		return nil, err
	}
	namesKV, err := bucket(CollectionNamesBucket, "Steward discovery: collection names reserved", 1)
	if err != nil {
		return nil, err
	}
	histSubj, err := contracts.InventorySubjectAll(cfg.Site)
	if err != nil {
		return nil, err
	}
	evSubj, err := contracts.MembershipSubject(cfg.Site)
	if err != nil {
		return nil, err
	}
	for _, sc := range []jetstream.StreamConfig{{
		Name:              HistoryStream,
		Description:       "Steward discovery: changes of every client's inventory",
		Subjects:          []string{histSubj},
		MaxAge:            cfg.HistoryMaxAge,
		MaxMsgsPerSubject: historyPerClient,
	}, {
		Name:        DiscoveryEventsStream,
		Description: "Steward discovery: domain events (collection membership changes)",
		Subjects:    []string{evSubj},
		MaxAge:      cfg.EventsMaxAge,
	}} {
		sc.Storage, sc.Replicas, sc.Retention, sc.Discard = jetstream.FileStorage, cfg.Replicas, jetstream.LimitsPolicy, jetstream.DiscardOld
		sc.Duplicates = contracts.DedupWindow
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("discovery: stream %s: %w", sc.Name, err)
		}
	}
	events := make(chan *pendingEvent, eventQueue)
	return &Service{
		cfg:     cfg,
		log:     cfg.Log.With("component", "discovery"),
		js:      js,
		store:   &store{kv: kv},
		view:    newView(),
		beats:   newBeats(),
		invKV:   invKV,
		collKV:  collKV,
		namesKV: namesKV,
		model:   newModel(cfg.Site, events),
		events:  events,
		ready:   make(chan struct{}),
	}, nil
}

// Ready is closed once Run has loaded the records and serves requests.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx ends, then stops the endpoints, the event consumer,
// the advisory subscription and the sweeper, and returns. Call it once.
func (s *Service) Run(ctx context.Context) error {
	// Deferred calls run last to first: unsubscribe, stop the endpoints,
	// stop the watch, then end the workers and wait for them.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	// Load every bucket, then build the model's engine at once, then
	// follow the changes.
	watches := []struct {
		kv    jetstream.KeyValue
		apply func(context.Context, jetstream.KeyValueEntry) error
	}{
		{s.store.kv, s.applyRecord},
		{s.invKV, s.applyInventory},
		{s.collKV, s.applyCollection},
	}
	var ws []jetstream.KeyWatcher
	for _, wt := range watches {
		w, err := wt.kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("discovery: watch %s: %w", wt.kv.Bucket(), err)
		}
		defer w.Stop()
		if err := s.load(ctx, w, wt.kv.Bucket(), wt.apply); err != nil {
			return err
		}
		ws = append(ws, w)
	}
	start := time.Now()
	s.model.build()
	s.log.Info("collections evaluated", "collections", len(s.model.defs)+1, "clients", len(s.view.all()), "took", time.Since(start).Round(time.Millisecond))
	for i, w := range ws {
		wg.Go(func() { s.follow(ctx, w, watches[i].kv.Bucket(), watches[i].apply) })
	}
	wg.Go(func() { s.publish(ctx) })

	var (
		emit *status.Emitter
		err  error
	)
	if !s.cfg.NoStatusMessages {
		emit, err = status.NewEmitter(status.EmitterConfig{NC: s.cfg.NC, Site: s.cfg.Site, Component: contracts.ComponentDiscovery,
			Instance: ServiceName, Log: s.log})
		if err != nil {
			return err
		}
		// Errors the handlers log become status messages too.
		s.log = status.ErrorsAsStatus(s.log, emit, ServiceName)
		s.emitter = emit
	}
	svc, err := s.addService()
	if err != nil {
		if emit != nil {
			_ = emit.Close(context.Background())
		}
		return err
	}
	defer svc.Stop()
	if emit != nil {
		emit.Emit(ctx, contracts.StatusServiceStarted, map[string]string{"service": ServiceName, "instance": svc.Info().ID, "version": ServiceVersion})
		defer func() {
			emit.Emit(context.Background(), contracts.StatusServiceStopping, map[string]string{"service": ServiceName, "instance": svc.Info().ID})
			flush, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			_ = emit.Close(flush)
		}()
	}

	if s.cfg.Sys != nil {
		subj := disconnectSubject(s.cfg.Account)
		sub, err := s.cfg.Sys.QueueSubscribe(subj, ServiceName, s.onDisconnect)
		if err != nil {
			return fmt.Errorf("discovery: subscribe %s: %w", subj, err)
		}
		defer sub.Unsubscribe()
	}

	wg.Go(func() { s.consumeEvents(ctx) })
	wg.Go(func() { s.sweep(ctx) })
	wg.Go(func() { s.flushBeats(ctx) })

	// Ready means served: the server has the subscriptions. While
	// disconnected they are sent on reconnect, so a failed flush only delays.
	for _, nc := range []*nats.Conn{s.cfg.NC, s.cfg.Sys} {
		if nc == nil {
			continue
		}
		if err := nc.FlushTimeout(writeTimeout); err != nil {
			s.log.Warn("subscriptions not confirmed by the server yet", "err", err)
		}
	}
	close(s.ready)
	s.log.Info("discovery running", "site", s.cfg.Site, "clients", len(s.view.all()), "disconnect_advisories", s.cfg.Sys != nil)
	<-ctx.Done()
	s.log.Info("discovery stopping")
	return nil
}

// load applies a bucket's current entries.
func (s *Service) load(ctx context.Context, w jetstream.KeyWatcher, bucket string, apply func(context.Context, jetstream.KeyValueEntry) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("discovery: watch of %s closed while loading", bucket)
			}
			if e == nil { // every current entry has been delivered
				return nil
			}
			if err := apply(ctx, e); err != nil {
				s.log.Error("skipping entry", "bucket", bucket, "key", e.Key(), "err", err)
			}
		}
	}
}

// follow applies a bucket's changes until the watch stops.
func (s *Service) follow(ctx context.Context, w jetstream.KeyWatcher, bucket string, apply func(context.Context, jetstream.KeyValueEntry) error) {
	for e := range w.Updates() {
		if e == nil {
			continue
		}
		if err := apply(ctx, e); err != nil {
			s.log.Error("skipping entry", "bucket", bucket, "key", e.Key(), "err", err)
		}
	}
}

// applyRecord applies a change of a client record to the view and the model.
func (s *Service) applyRecord(ctx context.Context, e jetstream.KeyValueEntry) error {
	err := s.view.apply(e)
	var rec *record
	if r, ok := s.view.get(e.Key()); ok {
		rec = &r
	}
	s.model.setRecord(ctx, e.Key(), rec, cause{Bucket, e.Revision(), contracts.CauseClient})
	return err
}

// applyInventory applies a change of a client's inventory to the model.
func (s *Service) applyInventory(ctx context.Context, e jetstream.KeyValueEntry) error {
	c := cause{InventoryBucket, e.Revision(), contracts.CauseInventory}
	if e.Operation() != jetstream.KeyValuePut {
		s.model.setInventory(ctx, e.Key(), nil, c)
		return nil
	}
	var inv storedInventory
	if err := json.Unmarshal(e.Value(), &inv); err != nil {
		s.model.setInventory(ctx, e.Key(), nil, c)
		return fmt.Errorf("stored inventory unreadable: %w", err)
	}
	s.model.setInventory(ctx, e.Key(), &inv, c)
	return nil
}

// applyCollection applies a change of a collection definition to the model.
func (s *Service) applyCollection(ctx context.Context, e jetstream.KeyValueEntry) error {
	c := cause{CollectionsBucket, e.Revision(), contracts.CauseCollection}
	if e.Operation() != jetstream.KeyValuePut {
		s.model.setDefinition(ctx, e.Key(), nil, e.Revision(), c)
		return nil
	}
	var rec collectionRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.ID != e.Key() {
		s.model.setDefinition(ctx, e.Key(), nil, e.Revision(), c)
		return fmt.Errorf("stored collection unreadable: %v", err)
	}
	s.model.setDefinition(ctx, e.Key(), &rec, e.Revision(), c)
	return nil
}

// addService registers the micro service and every endpoint. The queue
// group is the service's own name, so that instances share the work while
// another service subscribed to the same subject (heartbeats, say) still
// gets its own copy.
func (s *Service) addService() (micro.Service, error) {
	table := []rpc.Endpoint{
		rpc.Route("heartbeat", rpc.AgentUp(contracts.KindHeartbeat), rpc.Handler(s.log, contracts.TypeHeartbeat, s.heartbeat)),
		rpc.Route("inventory", rpc.AgentUp(contracts.KindInventory), rpc.BatchHandler(s.log, s.ingestInventory)),
		rpc.Route("clients-list", rpc.OpUp(contracts.KindClientsList), rpc.Handler(s.log, contracts.TypeClientListRequest, s.list)),
		rpc.Route("clients-show", rpc.OpUp(contracts.KindClientsShow), rpc.Handler(s.log, contracts.TypeClientRequest, s.show)),
		rpc.Route("inventory-show", rpc.OpUp(contracts.KindInventoryShow), rpc.Handler(s.log, contracts.TypeInventoryRequest, guard(s.inventoryShow, s.canInventory))),
		rpc.Route("inventory-history", rpc.OpUp(contracts.KindInventoryHistory), rpc.Handler(s.log, contracts.TypeInventoryRequest, guard(s.inventoryHistory, s.canInventory))),
		rpc.Route("inventory-refresh", rpc.OpUp(contracts.KindInventoryRefreshOp), rpc.Handler(s.log, contracts.TypeInventoryRequest, guard(s.inventoryRefresh, s.canInventory))),
		rpc.Route("collections-create", rpc.OpUp(contracts.KindCollectionsCreate), rpc.Handler(s.log, contracts.TypeCollectionCreateRequest, guard(s.collectionCreate, s.canCreate))),
		rpc.Route("collections-update", rpc.OpUp(contracts.KindCollectionsUpdate), rpc.Handler(s.log, contracts.TypeCollectionUpdateRequest, s.collectionUpdate)),
		rpc.Route("collections-delete", rpc.OpUp(contracts.KindCollectionsDelete), rpc.Handler(s.log, contracts.TypeCollectionRequest, guard(s.collectionDelete, s.canDelete))),
		rpc.Route("collections-list", rpc.OpUp(contracts.KindCollectionsList), rpc.Handler(s.log, contracts.TypeCollectionListRequest, s.collectionList)),
		rpc.Route("collections-show", rpc.OpUp(contracts.KindCollectionsShow), rpc.Handler(s.log, contracts.TypeCollectionRequest, guard(s.collectionShow, s.canRead))),
		rpc.Route("collections-members", rpc.OpUp(contracts.KindCollectionsMembers), rpc.Handler(s.log, contracts.TypeCollectionMembersRequest, guard(s.collectionMembers, s.canMembers))),
		rpc.Route("collections-preview", rpc.OpUp(contracts.KindCollectionsPreview), rpc.Handler(s.log, contracts.TypeCollectionPreviewRequest, guard(s.collectionPreview, s.canPreview))),
		rpc.Route("client-facts", rpc.Svc(ServiceName, contracts.SvcClientFacts), rpc.Handler(s.log, contracts.TypeClientFactsRequest, s.clientFacts)),
	}
	return rpc.AddService(s.cfg.NC, s.cfg.Site, ServiceName, ServiceVersion, "Steward discovery: client records, inventory and collections", table)
}

// heartbeat records a heartbeat of the client named by the subject.
func (s *Service) heartbeat(ctx context.Context, from contracts.SubjectInfo, hb *contracts.Heartbeat) (*struct{}, error) {
	cur, known := s.view.get(from.Principal)
	if !known {
		// The view follows the bucket a moment behind: a client enrolled
		// just now may be in the bucket already. Only a miss costs a read.
		cur, known = s.store.read(ctx, from.Principal)
	}
	if !known {
		// Records come from identity events; the server lets only enrolled
		// agents publish here, so this is a client deleted moments ago (or
		// enrolled a moment ago: its next heartbeat finds the record).
		s.log.Debug("heartbeat from a client without a record ignored", "client", from.Principal)
		return nil, nil
	}
	if cur.Status == contracts.ClientBlocked {
		return nil, nil
	}
	s.beats.note(from.Principal, beat{hb: *hb, seen: s.cfg.Now()}, significant(cur, hb))
	return nil, nil
}

// list answers clients.list.
func (s *Service) list(_ context.Context, from contracts.SubjectInfo, req *contracts.ClientListRequest) (*contracts.ClientListResponse, error) {
	clients, err := listClients(s.view.all(), req.Status)
	if err != nil {
		return nil, err
	}
	if clients, err = s.visible(from.Principal, clients); err != nil {
		return nil, err
	}
	return clientPage(clients, req.Offset, req.Max), nil
}

// clientPage is the page of clients at offset.
func clientPage(all []contracts.Client, offset, max int) *contracts.ClientListResponse {
	if max <= 0 || max > contracts.MaxClientsPage {
		max = contracts.MaxClientsPage
	}
	resp := &contracts.ClientListResponse{Header: contracts.NewHeader(contracts.TypeClientListResponse), Total: len(all)}
	resp.Clients, resp.Next = pageOf(all, offset, max)
	return resp
}

// pageOf is the page of all from offset, at most max long (offset and max
// at least 0), and the offset of the next page (0 after the last).
func pageOf[T any](all []T, offset, max int) ([]T, int) {
	if offset >= len(all) {
		return []T{}, 0
	}
	end := offset + min(max, len(all)-offset)
	if end < len(all) {
		return all[offset:end], end
	}
	return all[offset:end], 0
}

// show answers clients.show.
func (s *Service) show(_ context.Context, from contracts.SubjectInfo, req *contracts.ClientRequest) (*contracts.ClientResponse, error) {
	c, err := s.findClientFor(from.Principal, req.Ref)
	if err != nil {
		return nil, err
	}
	return &contracts.ClientResponse{Header: contracts.NewHeader(contracts.TypeClientResponse), Client: c}, nil
}

// onDisconnect marks the client of a closed agent connection offline.
func (s *Service) onDisconnect(m *nats.Msg) {
	d, err := parseDisconnect(m.Data)
	if err != nil {
		s.log.Debug("disconnect advisory ignored", "err", err)
		return
	}
	id := d.ClientID
	if id == "" {
		var ok bool
		if id, ok = s.view.idOfKey(d.Key); !ok {
			return // an operator or a service, not an agent
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err = s.store.modify(ctx, id, func(cur *record) (*record, bool, error) {
		if cur == nil {
			return nil, false, nil
		}
		r, write := applyDisconnect(*cur, d.Stop)
		return &r, write, nil
	})
	if err != nil {
		s.log.Warn("mark client offline after disconnect", "client", id, "err", err)
		return
	}
	s.log.Debug("client disconnected", "client", id, "stop", d.Stop)
}

// sweep marks offline, every SweepEvery, the clients that missed
// missedBeats heartbeats. It is the service's only timer.
func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweepOnce(ctx)
		}
	}
}

func (s *Service) sweepOnce(ctx context.Context) {
	now := s.cfg.Now()
	for _, e := range s.view.entries() {
		if !stale(e.rec, now) {
			continue
		}
		if seen, ok := s.beats.lastSeen(e.rec.ID); ok {
			r := e.rec
			r.LastSeen = seen
			if !stale(r, now) {
				continue // a heartbeat is on its way to the bucket
			}
		}
		r := e.rec
		r.Online = false
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		// A conflict means a heartbeat (or another instance's sweeper) wrote
		// first; the next sweep looks again.
		ok, err := s.store.updateAt(wctx, r, e.rev)
		cancel()
		switch {
		case err != nil:
			s.log.Warn("mark client offline", "client", r.ID, "err", err)
		case ok:
			s.log.Info("client offline: missed heartbeats", "client", r.ID, "name", r.Name, "last_seen", r.LastSeen)
		}
	}
}
