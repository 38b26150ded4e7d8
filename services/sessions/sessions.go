// Package sessions is the remote-session broker: it authorises an
// operator's session to a client (the operator's role, the client's remote
// tools policy, Permitted Viewers), sends the agent a grant signed by the
// site key, relays the session's frames between the operator's subjects and
// the client's, records terminals as asciicast v2 into a JetStream object
// store, and audits every step as status messages.
//
// Authorization is the three conditions of Configuration Manager's remote
// control (seed Q287710), checked in this order, each refused with its own
// reason and error code:
//
//  1. role: the operator's role has Collection:RemoteControl on a collection
//     that holds the client (contracts.DenyRole, permission_denied);
//  2. policy: the client's resultant remote tools settings are enabled with
//     an access level that allows the kind (shell and tunnel need full,
//     observe needs view), and a tunnel's port is in tunnelPorts
//     (contracts.DenyPolicy, policy_denied);
//  3. viewer: the operator is in the client's Permitted Viewers or is one of
//     its local administrators (contracts.DenyViewer, not_permitted_viewer).
//
// The agent then re-checks the grant against its own policy, asks the
// logged-on user when policy says so, and enforces the access level itself.
//
// A session lives in the memory of the broker instance that opened it: its
// frames travel on per-session subjects only that instance subscribes to,
// so any number of instances may run. Each session also has a record in the
// sessions bucket; when an instance stops or dies, its open sessions are
// ended and audited as ended abnormally (by itself when it stops, by the
// next instance that starts or sweeps otherwise).
package sessions

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
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/internal/sign"
	"github.com/stewardhq/steward/services/rbac"
	"github.com/stewardhq/steward/services/status"
)

// Names of the service and what it owns.
const (
	ServiceName      = "steward-sessions"
	ServiceVersion   = "0.1.0"
	SessionsBucket   = "sessions"           // KV: session ID -> contracts.SessionInfo
	OpenBucket       = "sessions-open"      // KV: ID of a session not ended -> its broker instance
	AssistBucket     = "assist-requests"    // KV: request ID -> contracts.AssistInfo
	RecordingsBucket = "session-recordings" // object store: <session>.cast
)

// Defaults of Config.
const (
	DefaultIdleTimeout   = 15 * time.Minute
	DefaultPromptTimeout = 30 * time.Second
	DefaultSweepEvery    = 30 * time.Second
	DefaultAssistTTL     = time.Hour
)

// Emitter sends the service's status messages (a *status.Emitter does).
type Emitter = status.Sink

// Facts answers what the broker must know of a client and its policy.
// Default: discovery and the policy service, over their svc subjects.
type Facts interface {
	Client(ctx context.Context, ref string) (contracts.ClientFactsResponse, error)
	Policy(ctx context.Context, clientID string) (contracts.SettingsSections, error)
}

// Config configures the broker.
type Config struct {
	NC       *nats.Conn
	Site     string
	SiteKey  nkeys.KeyPair // grants are signed with it
	Log      *slog.Logger
	Replicas int
	// Authz gives the RBAC model (required unless NoAuthz, for tests of
	// the relay alone).
	Authz   rbac.Source
	NoAuthz bool
	Facts   Facts
	Emitter Emitter
	// IdleTimeout ends a session without a frame in either direction for
	// this long (default 15m).
	IdleTimeout time.Duration
	// OperatorTimeout ends a session whose own operator sent no frame (its
	// CLI pings every contracts.SessionPing) for this long, and removes a
	// joined operator who did not. Default contracts.SessionOperatorTimeout.
	OperatorTimeout time.Duration
	// SweepEvery is how often records of sessions whose broker instance is
	// gone are ended (default 30s; negative: only at start).
	SweepEvery time.Duration
	// AssistTTL is how long an unanswered request for assistance stays
	// open (default 1h).
	AssistTTL time.Duration
	Now       func() time.Time
}

// CheckAndSetDefaults checks the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.NC == nil {
		return errors.New("sessions: a NATS connection is required")
	}
	if err := contracts.ValidToken(c.Site); err != nil {
		return fmt.Errorf("sessions: site code: %w", err)
	}
	if c.SiteKey == nil {
		return errors.New("sessions: the site signing key is required")
	}
	if c.Authz == nil && !c.NoAuthz {
		return errors.New("sessions: Authz (the RBAC model) is required")
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.OperatorTimeout < 0 || c.IdleTimeout < 0 || c.SweepEvery < 0 || c.AssistTTL < 0 {
		// A negative timeout would end every session at the first sweep.
		return errors.New("sessions: OperatorTimeout, IdleTimeout, SweepEvery and AssistTTL must not be negative")
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Facts == nil {
		c.Facts = BusFacts{NC: c.NC, Site: c.Site}
	}
	if c.OperatorTimeout == 0 {
		c.OperatorTimeout = contracts.SessionOperatorTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = DefaultSweepEvery
	}
	if c.AssistTTL == 0 {
		c.AssistTTL = DefaultAssistTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Service is one broker instance.
type Service struct {
	cfg      Config
	log      *slog.Logger
	key      *sign.Key
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	openKV   jetstream.KeyValue
	assistKV jetstream.KeyValue
	obs      jetstream.ObjectStore
	svc      micro.Service
	instance string
	ready    chan struct{}

	mu       sync.Mutex
	sessions map[string]*session
	wg       sync.WaitGroup // relays' goroutines
	stopping bool
}

// New checks cfg and creates the bucket and the object store.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	key, err := sign.New(cfg.SiteKey)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	js, err := jetstream.New(cfg.NC)
	if err != nil {
		return nil, fmt.Errorf("sessions: jetstream: %w", err)
	}
	s := &Service{cfg: cfg, log: cfg.Log.With("component", "sessions"), key: key, js: js,
		sessions: map[string]*session{}, ready: make(chan struct{})}
	if s.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: SessionsBucket,
		Description: "Steward sessions: every remote session, open and ended", History: 1,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("sessions: bucket %s: %w", SessionsBucket, err)
	}
	if s.openKV, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: OpenBucket,
		Description: "Steward sessions: the sessions not ended, with their broker instance", History: 1,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("sessions: bucket %s: %w", OpenBucket, err)
	}
	if s.assistKV, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: AssistBucket,
		Description: "Steward sessions: open requests for assistance", History: 1, TTL: cfg.AssistTTL,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("sessions: bucket %s: %w", AssistBucket, err)
	}
	if s.obs, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: RecordingsBucket,
		Description: "Steward sessions: terminal recordings (asciicast v2)", Storage: jetstream.FileStorage,
		Replicas: cfg.Replicas, Compression: true}); err != nil {
		return nil, fmt.Errorf("sessions: object store %s: %w", RecordingsBucket, err)
	}
	return s, nil
}

// Ready is closed once Run serves requests.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Instance is this instance's micro service ID (after Ready).
func (s *Service) Instance() string { return s.instance }

// Run serves until ctx ends; then it ends this instance's open sessions
// (audited as ended abnormally: the broker stopped).
func (s *Service) Run(ctx context.Context) error {
	svc, err := s.addService()
	if err != nil {
		return err
	}
	s.svc = svc
	s.instance = svc.Info().ID
	defer svc.Stop()
	// Joins and ends of this instance's sessions that reach another instance
	// come here.
	fwd, err := contracts.Svc(s.cfg.Site, ServiceName, contracts.SessionForwardVerb(s.instance))
	if err == nil {
		err = svc.AddEndpoint("session-forward", rpc.Handler(s.log, contracts.TypeSessionForward, s.forwarded), micro.WithEndpointSubject(fwd))
	}
	if err != nil {
		return fmt.Errorf("sessions: forward endpoint: %w", err)
	}
	if err := s.cfg.NC.FlushTimeout(5 * time.Second); err != nil {
		s.log.Warn("subscriptions not confirmed by the server yet", "err", err)
	}
	s.sweep(ctx) // sessions of instances that are gone (a restart of this one)
	close(s.ready)
	s.log.Info("sessions running", "site", s.cfg.Site, "instance", s.instance)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sweepEvery := s.cfg.SweepEvery
	lastSweep := s.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			s.log.Info("sessions stopped")
			return nil
		case <-tick.C:
			s.expireIdle()
			if sweepEvery > 0 && s.cfg.Now().Sub(lastSweep) >= sweepEvery {
				lastSweep = s.cfg.Now()
				s.sweep(ctx)
			}
		}
	}
}

// shutdown ends every session of this instance, abnormally.
func (s *Service) shutdown() {
	s.mu.Lock()
	s.stopping = true
	open := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	for _, ss := range open {
		s.end(ss, contracts.SessionEnd{Reason: "the session broker stopped", By: "site", Abnormal: true})
	}
	s.wg.Wait()
}

func (s *Service) addService() (micro.Service, error) {
	conc := func(h micro.Handler) micro.Handler {
		return micro.HandlerFunc(func(r micro.Request) { go h.Handle(r) })
	}
	table := []rpc.Endpoint{
		// open, join and accept wait for the agent (and the user's
		// consent): each is served on its own goroutine.
		rpc.Route("session-open", rpc.OpUp(contracts.KindSessionOpen), conc(rpc.Handler(s.log, contracts.TypeSessionOpenRequest, s.open))),
		rpc.Route("session-join", rpc.OpUp(contracts.KindSessionJoin), conc(rpc.Handler(s.log, contracts.TypeSessionJoinRequest, s.join))),
		rpc.Route("session-check", rpc.OpUp(contracts.KindSessionCheck), conc(rpc.Handler(s.log, contracts.TypeSessionCheckRequest, s.check))),
		rpc.Route("session-end", rpc.OpUp(contracts.KindSessionEnd), rpc.Handler(s.log, contracts.TypeSessionEndRequest, s.endByOperator)),
		rpc.Route("session-list", rpc.OpUp(contracts.KindSessionList), rpc.Handler(s.log, contracts.TypeSessionListRequest, s.list)),
		rpc.Route("session-recordings", rpc.OpUp(contracts.KindSessionRecordings), rpc.Handler(s.log, contracts.TypeSessionListRequest, s.recordings)),
		rpc.Route("session-recording", rpc.OpUp(contracts.KindSessionRecording), conc(rpc.Handler(s.log, contracts.TypeRecordingReadRequest, s.readRecording))),
		rpc.Route("assist-request", rpc.AgentUp(contracts.KindAssistRequest), rpc.Handler(s.log, contracts.TypeSessionAssistRequest, s.assistRequest)),
		rpc.Route("assist-list", rpc.OpUp(contracts.KindAssistList), rpc.Handler(s.log, contracts.TypeSessionAssistListRequest, s.assistList)),
		rpc.Route("assist-accept", rpc.OpUp(contracts.KindAssistAccept), conc(rpc.Handler(s.log, contracts.TypeSessionAssistAccept, s.assistAccept))),
		rpc.Route("assist-offer", rpc.OpUp(contracts.KindAssistOffer), conc(rpc.Handler(s.log, contracts.TypeSessionOpenRequest, s.assistOffer))),
	}
	return rpc.AddService(s.cfg.NC, s.cfg.Site, ServiceName, ServiceVersion,
		"Steward sessions: remote-session broker (authorise, consent, relay, record, audit)", table)
}

// emit sends a status message when the service has an emitter.
func (s *Service) emit(ctx context.Context, id int, props map[string]string) {
	if s.cfg.Emitter != nil {
		s.cfg.Emitter.Emit(ctx, id, props)
	}
}

// authz returns the model to decide with (see rbac.Current).
func (s *Service) authz() (*rbac.Model, error) {
	return rbac.Current(s.cfg.Authz, s.cfg.NoAuthz, "sessions")
}
