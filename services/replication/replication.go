// Package replication is the site's content service: the content library
// (chunks addressed by SHA-256, package versions as signed manifests), the
// sender that distributes versions to other sites, the despooler that
// receives them, and the endpoints agents download content from.
//
// How the parts fit:
//
//	operator side (Go API, library.go): MissingChunks, PutChunk, CreateVersion
//	    ─> content-chunks (object store) + packages (KV, one signed manifest per version)
//	Distribute (sender.go) ─> replication-jobs (KV) ─watch─> one worker per destination:
//	    repl.offer ─> repl.chunk (missing ones, paced by routes.go) ─> repl.commit
//	    on steward.<dest>.site.<this site>.<kind>, over SiteNC (inbox contracts.SiteInbox)
//	peers: steward.<this site>.site.<from>.repl.* ─> despooler.go:
//	    verify.go (pinned key, signature, Manifest.Validate, chunk hashes)
//	    ─> replication-inbox (KV, offers in progress) ─> commit installs into packages
//	    failures ─> quarantine.go (KV quarantine + status 6001)
//	agents: content.list|manifest|chunk|report (content.go), served only for
//	    versions deployed (deploy.go, KV package-deployments) to a collection
//	    holding the client (membership.go: discovery's client-facts and its
//	    membership events); a deploy change pushes content.changed.
//
// Any number of instances may run: endpoints share the queue group
// steward-replication, every state lives in JetStream, installs are
// create-only KV writes, and a job is sent by the instance holding its lease
// (job.Owner, renewed while it works).
package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/discovery"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/internal/sign"
	"github.com/stewardhq/steward/services/rbac"
	"github.com/stewardhq/steward/services/status"
)

// Names fixed on the wire and on the server. Never rename a bucket or a
// consumer: a new name starts from nothing.
const (
	ServiceName    = "steward-replication"
	ServiceVersion = "0.1.0"
	// ChunksStore is the object store of chunks: object name = hex SHA-256.
	ChunksStore = "content-chunks"
	// PackagesBucket holds every installed version: key "<package>.<version>"
	// (keys.go), value a versionRecord (the signed manifest and its info).
	PackagesBucket = "packages"
	// InboxBucket holds verified offers not yet committed: key
	// "<from>.<package>.<version>".
	InboxBucket = "replication-inbox"
	// QuarantineBucket holds what failed verification: key the entry's ID.
	QuarantineBucket = "quarantine"
	// JobsBucket holds the sender's jobs: key "<package>.<version>.<dest>".
	JobsBucket = "replication-jobs"
	// RoutesBucket holds each destination's route: key the site code.
	RoutesBucket = "routes"
	// DeploymentsBucket holds deployments: key "<package>.<version>.<collection>".
	DeploymentsBucket = "package-deployments"
	// ClientsBucket holds what each client reported: key
	// "<client>.<package>.<version>".
	ClientsBucket = "content-clients"
	// MembershipConsumer is the durable consumer of discovery's membership
	// events that pushes content.changed to clients joining or leaving a
	// collection with a deployment.
	MembershipConsumer = "replication-membership"
	// DiscoveryEventsStream is discovery's stream of membership events.
	DiscoveryEventsStream = discovery.DiscoveryEventsStream
)

// Defaults of Config.
const (
	DefaultRetryBase     = 2 * time.Second
	DefaultRetryMax      = time.Minute
	DefaultLease         = 90 * time.Second
	DefaultWorkers       = 64
	DefaultSendWindow    = 16
	DefaultListValidity  = time.Hour
	DefaultMembershipTTL = 5 * time.Minute
	DefaultPruneEvery    = 24 * time.Hour
	DefaultPruneGrace    = time.Hour
	DefaultQuarantineTTL = 30 * 24 * time.Hour
	DefaultInboxTTL      = 14 * 24 * time.Hour
)

// Emitter sends the service's status messages (a *status.Emitter does).
type Emitter = status.Sink

// Config configures the replication service.
type Config struct {
	// NC is the service's connection to the site account: JetStream, the
	// service's endpoints, questions to admin and discovery.
	NC *nats.Conn
	// SiteNC is the connection the sender asks other sites on: its inbox
	// prefix must be contracts.SiteInbox(Site), the only inboxes a leaf
	// connection carries replies to. Nil: this site sends to no one
	// (Distribute refuses).
	SiteNC *nats.Conn
	// Site is the site code.
	Site string
	// SiteKey is the site signing key: manifests this site sends and the
	// content lists its agents fetch are signed with it.
	SiteKey nkeys.KeyPair
	// Authz gives the RBAC model operator requests (operator.go) are
	// decided from. Required unless NoAuthz.
	Authz rbac.Source
	// NoAuthz serves operator requests without authorization: only for
	// tests of the service alone.
	NoAuthz bool
	// Peers gives the signing key pinned for each linked site. Default:
	// admin's site-peers verb (BusPeers), cached for a short while.
	Peers PeerSource
	// Directory tells which collections hold a client and which clients a
	// collection holds. Default: discovery over the bus (BusDirectory).
	Directory Directory
	// Emitter, when set, receives the status messages (60xx despooler,
	// 70xx sender).
	Emitter Emitter
	// Log receives the service's logs; component=replication is added.
	Log *slog.Logger
	// Replicas of the buckets and the object store: 1 (default) or 3.
	Replicas int
	// MaxChunkBytes bounds the chunk object store (0: no limit but the
	// server's). A full store refuses chunks with CodeUnavailable.
	MaxChunkBytes int64
	// MaxReportBytes bounds ClientsBucket, the clients' reports (default
	// DefaultMaxReportBytes, 512 MiB; a record is at most 4 KiB). A full
	// bucket refuses reports with CodeUnavailable: agents send them again
	// later.
	MaxReportBytes int64
	// FreeSpace tells the bytes free on the disk of the site's JetStream
	// store (-1: unknown; DirFreeSpace reads a directory's). The despooler
	// takes an offer only if the chunks it lacks fit with DiskReserve to
	// spare, and a chunk is stored only if it fits with DiskReserve to
	// spare; otherwise CodeUnavailable, which the sender retries. Nil: not
	// checked (an external cluster, whose disks the service cannot see).
	FreeSpace func() (int64, error)
	// DiskReserve is the free space left for the site's own streams
	// (default DefaultDiskReserve, 256 MiB).
	DiskReserve int64
	// Location is the time zone route schedules are read in. Default
	// time.Local.
	Location *time.Location
	// RetryBase and RetryMax bound the sender's exponential backoff
	// (default 2s doubling to 1m).
	RetryBase, RetryMax time.Duration
	// Lease is how long a job's claim by an instance lasts without renewal
	// (default 90s): after a crash, another instance takes the job over.
	Lease time.Duration
	// SendWindow is how many chunks are in flight to one destination
	// (default 16).
	SendWindow int
	// Workers bounds the agent and peer requests served at once (default 64).
	Workers int
	// ListValidity is how long a signed content list is valid (default 1h).
	ListValidity time.Duration
	// MembershipTTL bounds how long a client's collections are cached
	// between membership events (default 5m).
	MembershipTTL time.Duration
	// PruneEvery is how often chunks no version or offer uses are deleted
	// (default 24h; negative: never). PruneGrace spares chunks younger
	// than it (default 1h): an upload in progress.
	PruneEvery, PruneGrace time.Duration
	// Now is the site clock. Default time.Now.
	Now func() time.Time
}

// CheckAndSetDefaults checks the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.NC == nil {
		return errors.New("replication: a NATS connection is required")
	}
	if err := contracts.ValidName(c.Site); err != nil {
		return fmt.Errorf("replication: site code: %w", err)
	}
	if c.SiteKey == nil {
		return errors.New("replication: the site signing key is required")
	}
	if c.SiteNC != nil {
		want, err := contracts.SiteInbox(c.Site)
		if err != nil {
			return fmt.Errorf("replication: %w", err)
		}
		if c.SiteNC.Opts.InboxPrefix != want {
			return fmt.Errorf("replication: SiteNC's inbox prefix is %q, want %q (nats.CustomInboxPrefix)", c.SiteNC.Opts.InboxPrefix, want)
		}
	}
	if c.Authz == nil && !c.NoAuthz {
		return errors.New("replication: Authz (the RBAC model) is required")
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replication: replicas %d: must be 1 to 5", c.Replicas)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Peers == nil {
		c.Peers = NewCachedPeers(BusPeers{NC: c.NC, Site: c.Site}, 30*time.Second)
	}
	if c.Directory == nil {
		c.Directory = BusDirectory{NC: c.NC, Site: c.Site}
	}
	if c.MaxReportBytes <= 0 {
		c.MaxReportBytes = DefaultMaxReportBytes
	}
	if c.DiskReserve <= 0 {
		c.DiskReserve = DefaultDiskReserve
	}
	if c.Location == nil {
		c.Location = time.Local
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.RetryMax < c.RetryBase {
		c.RetryMax = c.RetryBase
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.SendWindow <= 0 {
		c.SendWindow = DefaultSendWindow
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.ListValidity <= 0 {
		c.ListValidity = DefaultListValidity
	}
	if c.MembershipTTL <= 0 {
		c.MembershipTTL = DefaultMembershipTTL
	}
	if c.PruneEvery == 0 {
		c.PruneEvery = DefaultPruneEvery
	}
	if c.PruneGrace <= 0 {
		c.PruneGrace = DefaultPruneGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Service is one instance of the replication service. Its Go API (the
// library, distribution, routes, deployments, quarantine) is safe for
// concurrent use, and usable as soon as New returns; Run serves peers and
// agents and runs the sender.
type Service struct {
	cfg      Config
	qlimits  quarantineLimits
	log      *slog.Logger
	key      *sign.Key
	js       jetstream.JetStream
	instance string // owner of the jobs this instance sends

	chunks       jetstream.ObjectStore
	chunkStream  jetstream.Stream // the object store's stream: ReadChunk reads a one-message chunk directly
	packagesKV   jetstream.KeyValue
	inboxKV      jetstream.KeyValue
	quarantineKV jetstream.KeyValue
	jobsKV       jetstream.KeyValue
	sendersKV    jetstream.KeyValue
	routesKV     jetstream.KeyValue
	deployKV     jetstream.KeyValue
	clientsKV    jetstream.KeyValue

	model   *model
	members *memberCache
	offers  *offerCache
	served  servedVersions
	sender  *sender

	diskWarned diskWarnings // status 6003 for a full disk, by version and site

	libMu sync.RWMutex // install and create (read) against prune (write)
	// beforePrune, when set (tests), is called before each chunk's removal
	// is decided for good.
	beforePrune func(chunk string)
	sem         chan struct{}
	inflight    sync.WaitGroup // requests being served
	pruneNow    chan struct{}
	ready       chan struct{}
}

// New checks cfg, creates the buckets and the object store that do not
// exist, and loads the service's views of them, which it keeps watching
// until Run returns. Run starts serving.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	key, err := sign.New(cfg.SiteKey)
	if err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	js, err := jetstream.New(cfg.NC)
	if err != nil {
		return nil, fmt.Errorf("replication: jetstream: %w", err)
	}
	s := &Service{
		cfg: cfg, log: cfg.Log.With("component", "replication"), key: key, js: js,
		instance: uuid.NewString(), model: newModel(),
		sem: make(chan struct{}, cfg.Workers), pruneNow: make(chan struct{}, 1), ready: make(chan struct{}),
	}
	s.members = newMemberCache(cfg.Directory, cfg.MembershipTTL, cfg.Now)
	s.offers = newOfferCache(64)
	s.chunks, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: ChunksStore, Description: "Steward content library: chunks by SHA-256",
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas, MaxBytes: cfg.MaxChunkBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("replication: object store %s: %w", ChunksStore, err)
	}
	if s.chunkStream, err = js.Stream(ctx, "OBJ_"+ChunksStore); err != nil {
		return nil, fmt.Errorf("replication: object store %s: %w", ChunksStore, err)
	}
	for _, b := range []struct {
		name, desc string
		ttl        time.Duration
		maxBytes   int64
		dst        *jetstream.KeyValue
		maxValue   int32
	}{
		{PackagesBucket, "Steward content library: installed package versions (signed manifests)", 0, 0, &s.packagesKV, 0},
		{InboxBucket, "Steward despooler: verified offers from other sites, not yet committed", DefaultInboxTTL, 0, &s.inboxKV, 0},
		{QuarantineBucket, "Steward despooler: what failed verification (never installed)", DefaultQuarantineTTL, 256 << 20, &s.quarantineKV, 0},
		{JobsBucket, "Steward sender: one job per version and destination site", 0, 0, &s.jobsKV, 0},
		{RoutesBucket, "Steward sender: rate limit and schedule per destination site", 0, 0, &s.routesKV, 0},
		{DeploymentsBucket, "Steward content: package versions deployed to collections", 0, 0, &s.deployKV, 0},
		{ClientsBucket, "Steward content: what each client reported of each version", 0, cfg.MaxReportBytes, &s.clientsKV, maxReportRecord},
		{SendersBucket, "Steward sender: the instance sending to each destination site now", cfg.Lease, 0, &s.sendersKV, 0},
	} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: b.name, Description: b.desc, History: 1, TTL: b.ttl, MaxBytes: b.maxBytes, MaxValueSize: b.maxValue,
			Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("replication: bucket %s: %w", b.name, err)
		}
		*b.dst = kv
	}
	if err := s.model.start(ctx, s.log, map[string]jetstream.KeyValue{
		PackagesBucket: s.packagesKV, DeploymentsBucket: s.deployKV, RoutesBucket: s.routesKV, JobsBucket: s.jobsKV,
	}); err != nil {
		return nil, err
	}
	s.sender = newSender(s)
	return s, nil
}

// Ready is closed once Run serves requests.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Instance names this instance (the owner of the jobs it sends).
func (s *Service) Instance() string { return s.instance }

// Run serves peers and agents and runs the sender until ctx ends. It
// returns once the requests being served are answered.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		s.model.stop()
	}()
	svc, err := s.addService()
	if err != nil {
		return err
	}
	defer func() {
		_ = svc.Stop()
		s.inflight.Wait()
	}()
	wg.Go(func() { s.consumeMembership(ctx) })
	wg.Go(func() { s.followMembership(ctx) })
	wg.Go(func() { s.sender.run(ctx) })
	if s.cfg.PruneEvery > 0 {
		wg.Go(func() { s.pruneLoop(ctx) })
	}
	if err := s.cfg.NC.FlushTimeout(5 * time.Second); err != nil {
		s.log.Warn("subscriptions not confirmed by the server yet", "err", err)
	}
	close(s.ready)
	s.log.Info("replication running", "site", s.cfg.Site, "instance", s.instance, "versions", len(s.model.versionList("")))
	s.emit(ctx, contracts.StatusServiceStarted, map[string]string{"service": ServiceName, "instance": s.instance, "version": ServiceVersion})
	<-ctx.Done()
	s.log.Info("replication stopping")
	s.emit(context.Background(), contracts.StatusServiceStopping, map[string]string{"service": ServiceName, "instance": s.instance})
	return nil
}

// addService registers the micro service with every endpoint, in one
// table. Peer and agent requests are served concurrently, up to Workers at
// once.
func (s *Service) addService() (micro.Service, error) {
	site := func(kind string) func(string) (string, error) {
		return func(local string) (string, error) { return contracts.SiteSubjectAll(local, kind) }
	}
	table := []rpc.Endpoint{
		rpc.Route("repl-offer", site(contracts.KindReplOffer), s.concurrent(rpc.RawHandler(s.log, contracts.TypeReplicationOffer, s.handleOffer))),
		rpc.Route("collection-uses", rpc.Svc(ServiceName, contracts.SvcCollectionUses), rpc.Handler(s.log, contracts.TypeCollectionUsesRequest, s.collectionUses)),
		rpc.Route("repl-chunk", site(contracts.KindReplChunk), s.concurrent(rpc.RawHandler(s.log, "repl.chunk", s.handleChunk))),
		rpc.Route("repl-commit", site(contracts.KindReplCommit), s.concurrent(rpc.Handler(s.log, contracts.TypeReplicationCommit, s.handleCommit))),
		rpc.Route("content-list", rpc.AgentUp(contracts.KindContentList), s.concurrent(rpc.Handler(s.log, contracts.TypeContentListRequest, s.contentList))),
		rpc.Route("content-manifest", rpc.AgentUp(contracts.KindContentManifest), s.concurrent(rpc.Handler(s.log, contracts.TypeContentManifestReq, s.contentManifest))),
		rpc.Route("content-chunk", rpc.AgentUp(contracts.KindContentChunk), s.concurrent(rpc.RawHandler(s.log, contracts.TypeContentChunkRequest, s.contentChunk))),
		rpc.Route("content-report", rpc.AgentUp(contracts.KindContentReport), s.concurrent(rpc.Handler(s.log, contracts.TypeContentReport, s.contentReport))),
	}
	table = append(table, s.operatorRoutes()...)
	return rpc.AddService(s.cfg.NC, s.cfg.Site, ServiceName, ServiceVersion,
		"Steward replication: content library, sender, despooler, agent content", table)
}

// concurrent serves h's requests on goroutines, at most Workers at once.
func (s *Service) concurrent(h micro.Handler) micro.Handler {
	return rpc.Concurrent(s.cfg.NC, s.sem, &s.inflight, h)
}

// emit sends a status message when the service has an emitter.
func (s *Service) emit(ctx context.Context, id int, props map[string]string) {
	if s.cfg.Emitter != nil {
		s.cfg.Emitter.Emit(ctx, id, props)
	}
}

// now is the site clock in UTC.
func (s *Service) now() time.Time { return s.cfg.Now().UTC() }
