// Package policy is the site's policy service: client settings objects with
// priorities, their deployments to collections, each client's resultant
// policy signed with the site key and pushed to its agent, and compliance
// (which revision each client reports applied).
//
// How the parts fit:
//
//	operators: settings.{apply,list,show,delete,deploy,undeploy,compliance}, clients.policy
//	    └─> operator.go ─> catalog.go (domain: one document, compare-and-set) ─> policy-settings
//	discovery membership events (DISCOVERY_EVENTS) ─consumer─> membership.go ─┐
//	deploy / undeploy / apply / delete ───────────────────────────────────────┼─> update.go
//	agents: policy.fetch (at connect, every policyRefresh) ─> agents.go ───────┘     │
//	    update.go: record (collections, revision, hash) ─> resolve.go (merge by priority)
//	               ─> writer (atomic batches) ─> policy-clients ─> sign.go ─> push on
//	               steward.<site>.agent.<id>.down.policy
//	agents: policy.ack (outbox batches) ─> agents.go ─> policy-compliance (+ status 3002 on a rejection)
//	policy-settings, policy-clients, policy-compliance ──watches──> model.go (every answer)
//
// Any number of instances may run: endpoints share the queue group
// steward-policy, the membership consumer is durable and shared, every
// write is a compare-and-set (the catalog document, each client record),
// and a client record remembers the catalog revision it was computed
// from, so an instance whose view lags never overwrites a newer policy.
package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/jsbatch"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/rbac"
	"github.com/stewardhq/steward/services/status"
)

// Names fixed on the wire and on the server. Never rename a bucket or the
// consumer: a new name starts from nothing.
const (
	ServiceName    = "steward-policy"
	ServiceVersion = "0.1.0"
	// SettingsBucket holds the catalog: key CatalogKey, the JSON of a Catalog.
	SettingsBucket = "policy-settings"
	CatalogKey     = "catalog"
	// ClientsBucket holds one record per client: key client ID.
	ClientsBucket = "policy-clients"
	// ComplianceBucket holds each client's last policy report: key client ID.
	ComplianceBucket = "policy-compliance"
	// MembershipConsumer is the durable consumer of discovery's membership
	// events on the DISCOVERY_EVENTS stream.
	MembershipConsumer = "policy-membership"
	// DiscoveryEventsStream is discovery's stream of membership events.
	DiscoveryEventsStream = "DISCOVERY_EVENTS"
)

// Defaults of Config.
const (
	DefaultResyncEvery = time.Hour
	DefaultWorkers     = 256
)

// writeTimeout bounds the wait for the server to store a batch of records.
const writeTimeout = 10 * time.Second

// Emitter sends the service's status messages (a *status.Emitter does).
type Emitter = status.Sink

// Config configures the policy service.
type Config struct {
	// NC is the service's connection to the site account.
	NC *nats.Conn
	// Site is the site code.
	Site string
	// SiteKey is the site signing key (keys/site.nk): policies are signed
	// with it, and agents verify with the public key they pinned.
	SiteKey nkeys.KeyPair
	// Log receives the service's logs; component=policy is added.
	Log *slog.Logger
	// Replicas of the buckets: 1 (default) on a single server, 3 clustered.
	Replicas int
	// Authz gives the RBAC model every operator request is decided from.
	// Required unless NoAuthz.
	Authz rbac.Source
	// NoAuthz serves operator requests without authorization: only for
	// tests of the service alone.
	NoAuthz bool
	// Directory asks discovery about collections and clients. Default: the
	// bus, on the asking operator's own subjects.
	Directory Directory
	// Emitter, when set, receives the service's status messages (settings
	// changed, policy rejected by a client).
	Emitter Emitter
	// Validity is how long a signed policy is accepted. Default
	// contracts.PolicyValidity (7 days).
	Validity time.Duration
	// ResyncEvery is how often the members of every collection with
	// settings deployed are read again from discovery, in case a
	// membership event was lost. Default 1h; negative turns it off.
	ResyncEvery time.Duration
	// Workers bounds the agent requests (fetches, acknowledgements) served
	// at once. Default 256.
	Workers int
	// Now is the site clock. Default time.Now.
	Now func() time.Time
}

// CheckAndSetDefaults checks the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.NC == nil {
		return errors.New("policy: a NATS connection is required")
	}
	if err := contracts.ValidToken(c.Site); err != nil {
		return fmt.Errorf("policy: site code: %w", err)
	}
	if c.SiteKey == nil {
		return errors.New("policy: the site signing key is required")
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("policy: replicas %d: must be 1 to 5", c.Replicas)
	}
	if c.Authz == nil && !c.NoAuthz {
		return errors.New("policy: Authz (the RBAC model) is required")
	}
	if c.Directory == nil {
		c.Directory = BusDirectory{NC: c.NC, Site: c.Site}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Validity == 0 {
		c.Validity = contracts.PolicyValidity
	}
	if c.Validity < time.Minute {
		return fmt.Errorf("policy: validity %s: must be at least a minute", c.Validity)
	}
	if c.ResyncEvery == 0 {
		c.ResyncEvery = DefaultResyncEvery
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Service is one instance of the policy service.
type Service struct {
	cfg        Config
	log        *slog.Logger
	js         jetstream.JetStream
	settingsKV jetstream.KeyValue
	clientsKV  jetstream.KeyValue
	complKV    jetstream.KeyValue
	signer     *Signer
	model      *model
	clients    *jsbatch.Writer
	reports    *jsbatch.Writer
	reportMu   sync.Mutex
	building   map[string]complianceRecord // each client's last report record built, until stored
	updateMu   sync.Mutex                  // one update at a time (update.go)
	fetches    chan *fetchWait
	sem        chan struct{}
	ready      chan struct{}
}

// New checks cfg and creates the buckets that do not exist. Run starts
// the service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	signer, err := NewSigner(cfg.SiteKey)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NC)
	if err != nil {
		return nil, fmt.Errorf("policy: jetstream: %w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Log.With("component", "policy"), js: js, signer: signer, model: newModel(),
		sem: make(chan struct{}, cfg.Workers), ready: make(chan struct{}), building: map[string]complianceRecord{}, fetches: make(chan *fetchWait, cfg.Workers)}
	for _, b := range []struct {
		name, desc string
		dst        *jetstream.KeyValue
	}{
		{SettingsBucket, "Steward policy: the settings catalog (settings objects and deployments)", &s.settingsKV},
		{ClientsBucket, "Steward policy: each client's collections and current policy revision", &s.clientsKV},
		{ComplianceBucket, "Steward policy: each client's last policy report", &s.complKV},
	} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: b.name, Description: b.desc, History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("policy: bucket %s: %w", b.name, err)
		}
		*b.dst = kv
	}
	atomic := map[string]bool{}
	for _, b := range []string{ClientsBucket, ComplianceBucket} {
		if err := jsbatch.EnableAtomic(ctx, js, "KV_"+b); err != nil {
			s.log.Warn("atomic batch publish unavailable; writing records one at a time", "bucket", b, "err", err)
			continue
		}
		atomic[b] = true
	}
	s.clients = jsbatch.New(cfg.NC, js, "KV_"+ClientsBucket, atomic[ClientsBucket], writeTimeout, s.log)
	s.reports = jsbatch.New(cfg.NC, js, "KV_"+ComplianceBucket, atomic[ComplianceBucket], writeTimeout, s.log)
	if _, err := s.settingsKV.Create(ctx, CatalogKey, NewCatalog(cfg.Now().UTC()).Encode()); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("policy: create the settings catalog: %w", err)
	}
	return s, nil
}

// Ready is closed once Run has loaded the buckets and serves requests.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx ends. Call it once.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	watches := []struct {
		kv    jetstream.KeyValue
		apply func(jetstream.KeyValueEntry) error
	}{
		{s.settingsKV, s.model.applySettingsEntry},
		{s.clientsKV, s.model.applyClientEntry},
		{s.complKV, s.model.applyComplianceEntry},
	}
	for _, wt := range watches {
		w, err := wt.kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("policy: watch %s: %w", wt.kv.Bucket(), err)
		}
		defer w.Stop()
		if err := s.load(ctx, w, wt.kv.Bucket(), wt.apply); err != nil {
			return err
		}
		wg.Go(func() {
			for e := range w.Updates() {
				if e == nil {
					continue
				}
				if err := wt.apply(e); err != nil {
					s.log.Error("skipping entry", "bucket", wt.kv.Bucket(), "key", e.Key(), "err", err)
				}
			}
		})
	}
	wg.Go(func() { s.clients.Run(ctx) })
	wg.Go(func() { s.reports.Run(ctx) })
	wg.Go(func() { s.serveFetches(ctx) })

	svc, err := s.addService()
	if err != nil {
		return err
	}
	defer svc.Stop()
	wg.Go(func() { s.consumeMembership(ctx) })
	if s.cfg.ResyncEvery > 0 {
		wg.Go(func() { s.resyncLoop(ctx) })
	}
	if err := s.cfg.NC.FlushTimeout(5 * time.Second); err != nil {
		s.log.Warn("subscriptions not confirmed by the server yet", "err", err)
	}
	close(s.ready)
	cat, rev := s.model.current()
	s.log.Info("policy running", "site", s.cfg.Site, "settings", len(cat.Settings), "catalog_revision", rev, "clients", len(s.model.allClients()))
	<-ctx.Done()
	s.log.Info("policy stopping")
	return nil
}

// load applies a bucket's current entries.
func (s *Service) load(ctx context.Context, w jetstream.KeyWatcher, bucket string, apply func(jetstream.KeyValueEntry) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("policy: watch of %s closed while loading", bucket)
			}
			if e == nil {
				return nil
			}
			if err := apply(e); err != nil {
				s.log.Error("skipping entry", "bucket", bucket, "key", e.Key(), "err", err)
			}
		}
	}
}

// addService registers the micro service and every endpoint, in one
// table. Agent endpoints are served concurrently (up to Workers at once):
// a reconnect storm's fetches and a fan-out's acknowledgements then share
// each disk sync.
func (s *Service) addService() (micro.Service, error) {
	table := []rpc.Endpoint{
		rpc.Route("settings-apply", rpc.OpUp(contracts.KindSettingsApply), rpc.Handler(s.log, contracts.TypeSettingsApplyRequest, s.apply)),
		rpc.Route("settings-list", rpc.OpUp(contracts.KindSettingsList), rpc.Handler(s.log, contracts.TypeSettingsListRequest, s.list)),
		rpc.Route("settings-show", rpc.OpUp(contracts.KindSettingsShow), rpc.Handler(s.log, contracts.TypeSettingsRequest, s.show)),
		rpc.Route("settings-delete", rpc.OpUp(contracts.KindSettingsDelete), rpc.Handler(s.log, contracts.TypeSettingsRequest, s.delete)),
		rpc.Route("settings-deploy", rpc.OpUp(contracts.KindSettingsDeploy), rpc.Handler(s.log, contracts.TypeSettingsDeployRequest, s.deploy)),
		rpc.Route("settings-undeploy", rpc.OpUp(contracts.KindSettingsUndeploy), rpc.Handler(s.log, contracts.TypeSettingsDeployRequest, s.undeploy)),
		rpc.Route("settings-compliance", rpc.OpUp(contracts.KindSettingsCompliance), rpc.Handler(s.log, contracts.TypeSettingsComplianceRequest, s.compliance)),
		rpc.Route("clients-policy", rpc.OpUp(contracts.KindClientsPolicy), rpc.Handler(s.log, contracts.TypeClientPolicyRequest, s.clientPolicy)),
		rpc.Route("effective-policy", rpc.Svc(ServiceName, contracts.SvcEffectivePolicy), rpc.Handler(s.log, contracts.TypeEffectivePolicyRequest, s.effectivePolicy)),
		rpc.Route("collection-uses", rpc.Svc(ServiceName, contracts.SvcCollectionUses), rpc.Handler(s.log, contracts.TypeCollectionUsesRequest, s.collectionUses)),
		rpc.Route("policy-fetch", rpc.AgentUp(contracts.KindPolicyFetch), s.concurrent(rpc.Handler(s.log, contracts.TypePolicyFetchRequest, s.fetch))),
		rpc.Route("policy-ack", rpc.AgentUp(contracts.KindPolicyAck), s.concurrent(rpc.BatchHandler(s.log, s.ack))),
	}
	return rpc.AddService(s.cfg.NC, s.cfg.Site, ServiceName, ServiceVersion, "Steward policy: client settings, deployments, signed per-client policy, compliance", table)
}

// concurrent serves h's requests on goroutines, at most Workers at once;
// beyond that the subscription waits (and the server buffers).
func (s *Service) concurrent(h micro.Handler) micro.Handler {
	return rpc.Concurrent(s.cfg.NC, s.sem, nil, h)
}

// emit sends a status message when the service has an emitter.
func (s *Service) emit(ctx context.Context, id int, props map[string]string) {
	if s.cfg.Emitter != nil {
		s.cfg.Emitter.Emit(ctx, id, props)
	}
}
