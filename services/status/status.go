// Package status is the site's status message service: it takes status
// messages in from agents (their outbox batches) and from the other services
// (through an Emitter), stores them durably, answers queries, keeps
// summaries (component status with thresholds, the last status of each
// client) and runs the operators' status filter rules.
//
// How the parts fit:
//
//	agents ── outbox batch ──> ingest.go (rate limit, source from subject,
//	                           catalog) ──> STATUS_AGENTS stream ─┐ (sync,
//	child sites ── forward.go ──────────────> STATUS_AGENTS       │ dedup by
//	services ── Emitter ──────────────────────> STATUS stream ────┤ uuid; each
//	                                                              │ with its
//	                                                              │ own limits)
//	STATUS, STATUS_AGENTS ──durable "status-rules" on each──> processor.go:
//	        rules.go decides; discard deletes; exec/webhook/forward become
//	        jobs ──> STATUS_ACTIONS (bounded)
//	STATUS_ACTIONS ──durable "status-actions"──> actions.go (timeout, retry
//	        with backoff, failures reported as status messages)
//	processor ──CAS──> status-components and status-clients buckets
//	        (summary.go: component status; clients.go: last status per client)
//	both streams ──ordered, per instance, only while someone follows──>
//	        follow.go (live tail to operators)
//	operators ── micro endpoints ──> query.go (merges both streams),
//	        rulestore.go, answers bounded in bytes (reply.go)
//	child sites ── steward.<site>.site.<child>.status.forward ──> forward.go
//	        (child from the subject, rate limit) ──> STATUS_AGENTS; a forward
//	        rule with target "parent" sends to the parent's the same way
//	        (SiteNC)
//
// streams.go says why the site's own messages and agents' are stored
// apart; matchexpr.go how rule expressions are kept from exhausting memory.
//
// Any number of instances may run: endpoints share the queue group
// steward-status, the durable consumers share their work, and every
// write to a bucket is a create or a compare-and-set.
package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/jsbatch"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
)

// Names fixed on the wire and on the server. Never rename them: streams,
// buckets and durable consumers outlive any one version.
const (
	ServiceName    = "steward-status"
	ServiceVersion = "0.1.0"
	// Stream stores the site's own status messages: its services' (the
	// audit records among them) and, from before AgentStream existed,
	// everything else.
	Stream = "STATUS"
	// AgentStream stores agents' status messages and those child sites
	// forward, with limits of its own, so that however much they send they
	// never evict the site's own records from Stream.
	AgentStream = "STATUS_AGENTS"
	// ActionStream is the work queue of rule actions (exec, webhook, forward).
	ActionStream = "STATUS_ACTIONS"
	// RuleBucket holds the status filter rules, keyed by rule name.
	RuleBucket = "status-rules"
	// ClientBucket holds the last status of each client, keyed by client ID.
	ClientBucket = "status-clients"
	// ComponentBucket holds each component's recent message counts, keyed
	// by component.
	ComponentBucket = "status-components"
	// RulesConsumer is the durable consumer of Stream that runs the rules.
	RulesConsumer = "status-rules"
	// ActionsConsumer is the durable consumer of ActionStream.
	ActionsConsumer = "status-actions"
)

// Defaults of Config.
const (
	DefaultMaxAge         = 30 * 24 * time.Hour
	DefaultMaxBytes       = 1 << 30
	DefaultDuplicates     = time.Hour
	DefaultRate           = 100
	DefaultBurst          = 500
	DefaultRateReport     = time.Minute
	DefaultWindow         = time.Hour
	DefaultActionAttempts = 5
	DefaultActionWorkers  = 8
	DefaultStoreTimeout   = 10 * time.Second
	DefaultMaxClockSkew   = 5 * time.Minute
	DefaultIngestWorkers  = 16
	// The action queue's bounds: each job carries a whole message.
	DefaultActionQueueJobs  = 100_000
	DefaultActionQueueBytes = 256 << 20
)

// DefaultActionBackoff is the wait before each retry of a failed action.
var DefaultActionBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// DefaultThresholds are Configuration Manager's component status defaults,
// counted over Window: one error makes a component warning and five make
// it critical; ten warnings make it warning and fifty critical; a flood of
// 2000 (5000) informational messages does too.
var DefaultThresholds = contracts.StatusThresholds{
	Info:    contracts.StatusThreshold{Warning: 2000, Critical: 5000},
	Warning: contracts.StatusThreshold{Warning: 10, Critical: 50},
	Error:   contracts.StatusThreshold{Warning: 1, Critical: 5},
}

// Config configures the status service.
type Config struct {
	// NC is the service's connection to the site account.
	NC *nats.Conn
	// Site is the site code.
	Site string
	// SiteNC is the connection the service asks other sites on (forward
	// rules with target contracts.ForwardParent): its inbox prefix must be
	// contracts.SiteInbox(Site), the only inbox the leaf link carries
	// answers to. Nil: forwarding to the parent fails (and is reported).
	SiteNC *nats.Conn
	// Peers lists the sites linked to this one: the parent forwarded
	// messages go to, the children they are taken from. Default BusPeers
	// (admin's site-peers), cached for a few seconds.
	Peers PeerSource
	// Log receives the service's logs; component=status is added.
	Log *slog.Logger
	// Replicas of the streams and buckets: 1 (default) on one server, 3
	// clustered.
	Replicas int

	// MaxAge and MaxBytes bound the site's own stored messages (Stream:
	// its services', audit records included); the oldest go first.
	// Defaults 30 days and 1 GiB.
	MaxAge   time.Duration
	MaxBytes int64
	// AgentMaxAge and AgentMaxBytes bound the stored messages of agents and
	// child sites (AgentStream), apart from the site's own, so that they
	// cannot evict those. Defaults MaxAge and 1 GiB.
	AgentMaxAge   time.Duration
	AgentMaxBytes int64
	// Duplicates is how long the stream remembers a message uuid, so that
	// an agent's resend within it is never stored twice. Default 1h (the
	// server keeps one small entry per message received within it).
	Duplicates time.Duration

	// Rate and Burst are the token bucket of each source (agent): messages
	// per second and the burst allowed. Items over it are left in the
	// agent's outbox for a later resend. Rate < 0 turns the limit off.
	// Defaults 100/s, burst 500.
	Rate  float64
	Burst int
	// RateReport is how often, at most, one "source rate-limited" message
	// is emitted per source. Default 1m.
	RateReport time.Duration
	// ForwardRate and ForwardBurst are the token bucket of each child site
	// forwarding messages to this one. Over it the forward is refused
	// (unavailable) and the child's action retries later. ForwardRate < 0
	// turns the limit off. Defaults 500/s, burst 5000.
	ForwardRate  float64
	ForwardBurst int
	// MaxClockSkew: a message dated further in the future than this is
	// re-dated to when it was received. Default 5m.
	MaxClockSkew time.Duration

	// Window is the period component status counts over. Default 1h.
	Window time.Duration
	// Thresholds turn counts into component states; ComponentThresholds
	// override them per component. Default DefaultThresholds.
	Thresholds          contracts.StatusThresholds
	ComponentThresholds map[string]contracts.StatusThresholds

	// ActionAttempts is how many times a failing rule action is tried
	// before it is given up (and reported). Default 5.
	ActionAttempts int
	// ActionBackoff is the wait before retry n (the last entry repeats).
	// Default DefaultActionBackoff.
	ActionBackoff []time.Duration
	// ActionWorkers is how many actions one instance runs at once. Default 8.
	ActionWorkers int
	// ActionQueueJobs and ActionQueueBytes bound the queue of actions
	// waiting to run (ActionStream; each job is a copy of its message).
	// When it is full a matching rule's action is not queued, and that is
	// reported (4003). Defaults 100,000 jobs and 256 MiB.
	ActionQueueJobs  int64
	ActionQueueBytes int64
	// IngestWorkers is how many agent batches one instance handles at once.
	// Default 4.
	IngestWorkers int
	// HTTPClient posts webhooks; each post is bounded by its rule's timeout.
	// Default a client that does not follow redirects.
	HTTPClient *http.Client
	// StoreTimeout bounds the wait for the stream to acknowledge a write.
	// Default 10s.
	StoreTimeout time.Duration

	// Authz gives the RBAC model every operator request is decided from
	// (an *rbac.Watcher). Required unless NoAuthz.
	Authz rbac.Source
	// NoAuthz serves operator requests without authorization: only for
	// tests of the service alone.
	NoAuthz bool

	// Now is the site clock. Default time.Now.
	Now func() time.Time
}

// CheckAndSetDefaults checks the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.NC == nil {
		return errors.New("status: a NATS connection is required")
	}
	if err := contracts.ValidToken(c.Site); err != nil {
		return fmt.Errorf("status: site code: %w", err)
	}
	if c.Authz == nil && !c.NoAuthz {
		return errors.New("status: an Authz (the RBAC watcher) is required")
	}
	if c.SiteNC != nil {
		want, err := contracts.SiteInbox(c.Site)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if c.SiteNC.Opts.InboxPrefix != want {
			return fmt.Errorf("status: SiteNC's inbox prefix is %q, want %q (nats.CustomInboxPrefix)", c.SiteNC.Opts.InboxPrefix, want)
		}
	}
	if c.Peers == nil {
		c.Peers = BusPeers{NC: c.NC, Site: c.Site}
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("status: replicas %d: must be 1 to 5", c.Replicas)
	}
	setDefault(&c.MaxAge, DefaultMaxAge)
	setDefault(&c.MaxBytes, DefaultMaxBytes)
	setDefault(&c.AgentMaxAge, c.MaxAge)
	setDefault(&c.AgentMaxBytes, DefaultMaxBytes)
	setDefault(&c.ActionQueueJobs, DefaultActionQueueJobs)
	setDefault(&c.ActionQueueBytes, DefaultActionQueueBytes)
	setDefault(&c.Duplicates, DefaultDuplicates)
	setDefault(&c.Rate, DefaultRate)
	setDefault(&c.Burst, DefaultBurst)
	setDefault(&c.ForwardRate, DefaultForwardRate)
	setDefault(&c.ForwardBurst, DefaultForwardBurst)
	setDefault(&c.RateReport, DefaultRateReport)
	setDefault(&c.MaxClockSkew, DefaultMaxClockSkew)
	setDefault(&c.Window, DefaultWindow)
	setDefault(&c.ActionAttempts, DefaultActionAttempts)
	setDefault(&c.ActionWorkers, DefaultActionWorkers)
	setDefault(&c.IngestWorkers, DefaultIngestWorkers)
	setDefault(&c.StoreTimeout, DefaultStoreTimeout)
	if c.Thresholds == (contracts.StatusThresholds{}) {
		c.Thresholds = DefaultThresholds
	}
	if len(c.ActionBackoff) == 0 {
		c.ActionBackoff = DefaultActionBackoff
	}
	switch {
	case c.MaxAge < 0 || c.MaxBytes < 0 || c.AgentMaxAge < 0 || c.AgentMaxBytes < 0 || c.Duplicates < 0:
		return errors.New("status: MaxAge, MaxBytes, AgentMaxAge, AgentMaxBytes and Duplicates must not be negative")
	case c.Duplicates > c.MaxAge || c.Duplicates > c.AgentMaxAge:
		return fmt.Errorf("status: duplicates window %s is longer than MaxAge %s or AgentMaxAge %s", c.Duplicates, c.MaxAge, c.AgentMaxAge)
	case c.ActionQueueJobs < 1 || c.ActionQueueBytes < contracts.MaxMessageBytes:
		return fmt.Errorf("status: ActionQueueJobs must be positive and ActionQueueBytes at least %d", contracts.MaxMessageBytes)
	case c.Burst < 1 || c.ForwardBurst < 1 || c.RateReport < 0 || c.Window < time.Minute || c.Window > 24*time.Hour:
		return errors.New("status: Burst must be positive and Window from a minute to a day")
	case c.ActionAttempts < 1 || c.ActionWorkers < 1 || c.IngestWorkers < 1:
		return errors.New("status: ActionAttempts, ActionWorkers and IngestWorkers must be positive")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Service is one instance of the status service.
type Service struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	// stream is Stream (the site's own messages), agents AgentStream
	// (agents' and child sites'); stores lists both, in the order queries
	// merge them.
	stream jetstream.Stream
	agents jetstream.Stream
	stores []storeStream
	// store writes agents' messages to AgentStream, many to a disk sync.
	store   *jsbatch.Writer
	actions jetstream.Stream
	rules   *ruleStore
	clients *clientStore
	limiter *limiter
	// fwdLimiter limits each child site forwarding messages to this one.
	fwdLimiter *limiter
	peers      PeerSource
	comps      *componentStore
	follows    *follows
	// dropped reports the jobs the full action queue refused;
	// actionReports bounds the reports of failing actions.
	dropped       droppedJobs
	actionReports *reportBudget
	emit          *Emitter
	// instance names this instance in its status messages (Instance is
	// "steward-status/<instance>") and in its micro metadata.
	instance string
	ready    chan struct{}
}

// New checks cfg and creates the streams, buckets and durable consumers if
// they do not exist. Run starts the service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NC, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return nil, fmt.Errorf("status: jetstream: %w", err)
	}
	s := &Service{
		cfg:           cfg,
		log:           cfg.Log.With("component", "status"),
		js:            js,
		limiter:       newLimiter(cfg.Rate, cfg.Burst),
		fwdLimiter:    newLimiter(cfg.ForwardRate, cfg.ForwardBurst),
		actionReports: newReportBudget(actionReportsPerMinute/60.0, actionReportsBurst),
		peers:         &cachedPeers{src: cfg.Peers, ttl: peerCacheTTL, now: cfg.Now},
		follows:       newFollows(),
		instance:      nuid.Next(),
		ready:         make(chan struct{}),
	}
	if err := s.setup(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) setup(ctx context.Context) error {
	cfg := s.cfg
	var err error
	// Stream keeps its name, subjects and limits from before AgentStream
	// existed: a site that restarts with this version keeps what it
	// stored, and from now on only the site's own services write to it.
	s.stream, err = s.js.CreateOrUpdateStream(ctx, statusStreamConfig(cfg, Stream, "Steward status messages of the site's services (audit records included)", siteToken, cfg.MaxAge, cfg.MaxBytes))
	if err != nil {
		return fmt.Errorf("status: stream %s: %w", Stream, err)
	}
	s.agents, err = s.js.CreateOrUpdateStream(ctx, statusStreamConfig(cfg, AgentStream, "Steward status messages of agents and child sites", agentsToken, cfg.AgentMaxAge, cfg.AgentMaxBytes))
	if err != nil {
		return fmt.Errorf("status: stream %s: %w", AgentStream, err)
	}
	s.stores = []storeStream{{name: Stream, token: siteToken, stream: s.stream}, {name: AgentStream, token: agentsToken, stream: s.agents}}
	atomicBatches := s.agents.CachedInfo().Config.AllowAtomicPublish
	if !atomicBatches {
		s.log.Warn("atomic batch publish unavailable (nats-server before 2.12); storing status messages one at a time", "stream", AgentStream)
	}
	s.store = jsbatch.New(cfg.NC, s.js, AgentStream, atomicBatches, cfg.StoreTimeout, s.log)
	actSubj, _ := contracts.Event(cfg.Site, "status", "action")
	s.actions, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ActionStream,
		Description: "Steward status rule actions waiting to run",
		Subjects:    []string{actSubj},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  contracts.DedupWindow,
		// Bounded: a hanging webhook must not fill the site's disk with
		// copies of messages. When full, new jobs are refused (the rule's
		// action is reported as not run) rather than old ones dropped.
		MaxMsgs:  cfg.ActionQueueJobs,
		MaxBytes: cfg.ActionQueueBytes,
		Discard:  jetstream.DiscardNew,
	})
	if err != nil {
		return fmt.Errorf("status: stream %s: %w", ActionStream, err)
	}
	ruleKV, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: RuleBucket, Description: "Steward status filter rules", History: 1,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("status: bucket %s: %w", RuleBucket, err)
	}
	clientKV, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: ClientBucket, Description: "Steward last status of each client", History: 1,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("status: bucket %s: %w", ClientBucket, err)
	}
	compKV, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: ComponentBucket, Description: "Steward component status counts", History: 1,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("status: bucket %s: %w", ComponentBucket, err)
	}
	s.rules = newRuleStore(ruleKV, s.log)
	s.clients = &clientStore{kv: clientKV}
	s.comps = &componentStore{kv: compKV, window: cfg.Window}
	// The durable consumers exist from the first start on, so that no
	// message stored before Run is missed by the rules.
	for _, st := range s.stores {
		if _, err := s.js.CreateOrUpdateConsumer(ctx, st.name, s.rulesConsumerConfig(st)); err != nil {
			return fmt.Errorf("status: consumer %s of %s: %w", RulesConsumer, st.name, err)
		}
	}
	if _, err := s.js.CreateOrUpdateConsumer(ctx, ActionStream, s.actionsConsumerConfig()); err != nil {
		return fmt.Errorf("status: consumer %s: %w", ActionsConsumer, err)
	}
	return nil
}

// Ready is closed once Run serves requests.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx ends, then stops the endpoints and the workers and
// returns. Call it once.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	var err error
	s.emit, err = NewEmitter(EmitterConfig{
		NC: s.cfg.NC, Site: s.cfg.Site, Component: contracts.ComponentStatus,
		Instance: ServiceName + "/" + s.instance, Log: s.log,
	})
	if err != nil {
		return err
	}
	defer func() {
		// Store the service's own last messages before the connection goes.
		fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer fcancel()
		_ = s.emit.Close(fctx)
	}()
	// Errors the handlers and workers log become status messages too (the
	// emitter reports its own failures to the plain log, so none loops).
	s.log = ErrorsAsStatus(s.log, s.emit, ServiceName)
	if err := s.rules.start(ctx, &wg, s.cfg.Site); err != nil {
		return err
	}
	svc, err := s.addService()
	if err != nil {
		return err
	}
	defer svc.Stop()

	wg.Go(func() { s.store.Run(ctx) })
	wg.Go(func() { s.process(ctx) })
	wg.Go(func() { s.runActions(ctx) })
	wg.Go(func() { s.flushSummaries(ctx) })
	wg.Go(func() { s.feed(ctx) })

	if err := s.cfg.NC.FlushTimeout(5 * time.Second); err != nil {
		s.log.Warn("subscriptions not confirmed by the server yet", "err", err)
	}
	s.emit.Emit(ctx, contracts.StatusServiceStarted, map[string]string{"service": ServiceName, "instance": s.instance, "version": ServiceVersion})
	close(s.ready)
	s.log.Info("status running", "site", s.cfg.Site, "instance", s.instance)
	<-ctx.Done()
	s.log.Info("status stopping")
	s.emit.Emit(context.Background(), contracts.StatusServiceStopping, map[string]string{"service": ServiceName, "instance": s.instance})
	return nil
}

// addService registers the micro service and every endpoint in one table.
// The queue group is the service's own name, so instances share the work
// while another service subscribed to the same subject gets its own copy.
func (s *Service) addService() (micro.Service, error) {
	log := s.log
	table := []rpc.Endpoint{
		rpc.Route("ingest", rpc.AgentUp(contracts.KindStatus), s.concurrent(rpc.BatchHandler(log, s.ingestItem))),
		rpc.Route("list", rpc.OpUp(contracts.KindStatusList), rpc.Handler(log, contracts.TypeStatusListRequest, guard(s, permRead, s.list))),
		rpc.Route("show", rpc.OpUp(contracts.KindStatusShow), rpc.Handler(log, contracts.TypeStatusShowRequest, guard(s, permRead, s.show))),
		rpc.Route("follow", rpc.OpUp(contracts.KindStatusFollow), rpc.Handler(log, contracts.TypeStatusFollowRequest, guard(s, permRead, s.follow))),
		rpc.Route("catalog", rpc.OpUp(contracts.KindStatusCatalog), rpc.Handler(log, contracts.TypeStatusCatalogRequest, guard(s, permRead, s.catalog))),
		rpc.Route("components", rpc.OpUp(contracts.KindStatusComponents), rpc.Handler(log, contracts.TypeStatusComponentsRequest, guard(s, permRead, s.components))),
		rpc.Route("clients", rpc.OpUp(contracts.KindStatusClients), rpc.Handler(log, contracts.TypeStatusClientsRequest, guard(s, permRead, s.clientStatus))),
		rpc.Route("rules-add", rpc.OpUp(contracts.KindStatusRulesAdd), rpc.Handler(log, contracts.TypeStatusRuleAddRequest, guard(s, permRulesEdit, s.addRule))),
		rpc.Route("rules-list", rpc.OpUp(contracts.KindStatusRulesList), rpc.Handler(log, contracts.TypeStatusRuleListRequest, guard(s, permRulesRead, s.listRules))),
		rpc.Route("rules-delete", rpc.OpUp(contracts.KindStatusRulesDelete), rpc.Handler(log, contracts.TypeStatusRuleDeleteRequest, guard(s, permRulesEdit, s.deleteRule))),
		rpc.Route("forward", func(site string) (string, error) { return contracts.SiteSubjectAll(site, contracts.KindStatusForward) },
			s.concurrent(rpc.Handler(log, contracts.TypeStatusMessage, s.receiveForward))),
		rpc.Route("rules-test", rpc.OpUp(contracts.KindStatusRulesTest), rpc.Handler(log, contracts.TypeStatusRuleTestRequest, guard(s, permRulesRead, s.testRule))),
	}
	return rpc.AddService(s.cfg.NC, s.cfg.Site, ServiceName, ServiceVersion, "Steward status messages: ingest, queries, summaries, filter rules", table)
}

// concurrent lets up to IngestWorkers batches be handled at once: a micro
// endpoint otherwise handles its requests one after another, and the
// stream would idle while one batch's answer travels back.
func (s *Service) concurrent(h micro.Handler) micro.Handler {
	return rpc.Concurrent(s.cfg.NC, make(chan struct{}, s.cfg.IngestWorkers), nil, h)
}

// catalog answers status.catalog.
func (s *Service) catalog(context.Context, contracts.SubjectInfo, *contracts.StatusCatalogRequest) (*contracts.StatusCatalogResponse, error) {
	return &contracts.StatusCatalogResponse{Header: contracts.NewHeader(contracts.TypeStatusCatalogResponse), Messages: contracts.Catalog()}, nil
}
