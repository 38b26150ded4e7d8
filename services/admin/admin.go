// Package admin is the admin service: identities of agents and operators,
// the NATS auth callout that grants each principal only its own subjects,
// enrollment and enrollment tokens, client approval and blocking, and
// role-based administration: administrative users and groups, security
// roles (it writes the RBAC model every service authorises with, see
// package rbac), site accounts with sealed secrets, and the audit trail.
//
// Every connection that is not a service asks this service, through the
// server's auth callout, who it is. The answer is a user JWT whose
// permissions are the principal's own subjects and nothing else; an unknown
// key may only ask to enroll. The decision reads the identity bucket on each
// connect, so a block made by one instance is enforced by every instance, and
// any failure to decide is a refusal.
package admin

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

// Names of what the admin service owns. Never rename them: they are durable.
const (
	ServiceName    = "steward-admin"
	ServiceVersion = "0.1.0"
	EventStream    = "ADMIN_EVENTS"
	IdentityBucket = "admin-identities"
	TokenBucket    = "admin-tokens"
	AccountBucket  = "admin-accounts"
	// RBACBucket is the published RBAC model (rbac.Bucket).
	RBACBucket = rbac.Bucket
	// Account is the NATS account every Steward principal and service lives in.
	Account = "STEWARD"
	// AuthSubject is where the server sends auth callout requests.
	AuthSubject = "$SYS.REQ.USER.AUTH"
)

// Config of the admin service.
type Config struct {
	NC        *nats.Conn // a service connection in the STEWARD account
	Sys       *nats.Conn // a connection in the system account (kick, $SRV is on NC)
	Site      string
	SiteKey   nkeys.KeyPair // the site signing key
	Issuer    nkeys.KeyPair // the auth callout issuer (account key)
	Bootstrap string        // public key of the bootstrap Full Administrator, "admin"
	// SealKey is the site's curve key pair (X...), which seals account
	// secrets. Without it the accounts endpoints answer unavailable.
	SealKey nkeys.KeyPair
	// CAFingerprint is the site CA's fingerprint, put in every enrollment
	// token so that agents pin it ("" when the site has no CA).
	CAFingerprint string
	// Collections resolves the collections an operator gives someone.
	// Default: ask the discovery service (BusCollections).
	Collections CollectionResolver
	// Membership says whether a client is in a collection, for actions on
	// clients by operators scoped to collections. Default: ask the
	// discovery service (BusMembership).
	Membership Membership
	// SiteNC is a service connection whose inbox prefix is
	// contracts.SiteInbox(Site): admin's requests to other sites (join,
	// heartbeats) go on it, since the leaf connection between two sites
	// carries answers only to those inboxes. Nil: this instance does not
	// talk to other sites (it still answers them).
	SiteNC *nats.Conn
	// Parent is the site this site links to as a child (nil: none).
	Parent *Parent
	// SiteHeartbeat is how often admin beats its peer sites (default
	// contracts.SiteHeartbeatInterval).
	SiteHeartbeat time.Duration
	Replicas      int
	Log           *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.NC == nil:
		return errors.New("admin: NC is required")
	case c.SiteKey == nil || c.Issuer == nil:
		return errors.New("admin: SiteKey and Issuer are required")
	}
	if err := contracts.ValidToken(c.Site); err != nil {
		return fmt.Errorf("admin: site code: %w", err)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if _, expanded := c.Issuer.(*sign.KeyPair); !expanded {
		// The callout signs two JWTs per connection: expand the key once.
		ex, err := sign.Expand(c.Issuer)
		if err != nil {
			return fmt.Errorf("admin: issuer: %w", err)
		}
		c.Issuer = ex
	}
	if c.SealKey != nil {
		if pub, err := c.SealKey.PublicKey(); err != nil || !nkeys.IsValidPublicCurveKey(pub) {
			return errors.New("admin: SealKey must be a curve key pair")
		}
	}
	if c.Collections == nil {
		c.Collections = BusCollections{NC: c.NC, Site: c.Site}
	}
	if c.Membership == nil {
		c.Membership = BusMembership{NC: c.NC, Site: c.Site}
	}
	if c.SiteHeartbeat <= 0 {
		c.SiteHeartbeat = contracts.SiteHeartbeatInterval
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.Log = c.Log.With("component", "admin")
	return nil
}

// Service is a running admin service instance.
type Service struct {
	cfg       Config
	js        jetstream.JetStream
	ids       *identities
	tokens    *tokens
	rbac      *rbacStore
	accts     *accounts
	watch     *rbac.Watcher
	stopWatch context.CancelFunc
	siteKey   string
	svc       micro.Service
	auth      authQueue // callout requests waiting to be decided
	emit      *status.Emitter

	peers      *peers
	siteTokens *tokens
	refusals   sync.Map // leaf key -> time.Time of the last status message of a refused link
}

// New creates the admin's streams and buckets (idempotently), ensures the
// bootstrap administrator exists (identity, and Full Administrator over All
// Systems in a new RBAC model), loads the model into its watcher and
// registers the micro service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NC)
	if err != nil {
		return nil, err
	}
	site := cfg.Site
	evSubj, _ := contracts.EventAll(site, "admin")
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       EventStream,
		Subjects:   []string{evSubj},
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.Replicas,
		Duplicates: contracts.DedupWindow,
	}); err != nil {
		return nil, fmt.Errorf("admin: event stream: %w", err)
	}
	idKV, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: IdentityBucket, Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("admin: identity bucket: %w", err)
	}
	tokKV, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: TokenBucket, Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("admin: token bucket: %w", err)
	}
	rbacKV, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: RBACBucket, Description: "Steward RBAC model (written by admin, watched by every service)", Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("admin: rbac bucket: %w", err)
	}
	accKV, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: AccountBucket, Description: "Steward site accounts (secrets sealed with the site key)", Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("admin: account bucket: %w", err)
	}
	peerKV, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: PeerBucket, Description: "Steward sites linked to this one, with their pinned signing keys", Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("admin: site peer bucket: %w", err)
	}
	stokKV, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: SiteTokenBucket, Description: "Steward site tokens (secrets hashed)", Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("admin: site token bucket: %w", err)
	}
	pub, err := cfg.SiteKey.PublicKey()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, js: js, ids: &identities{kv: idKV}, tokens: &tokens{kv: tokKV}, rbac: &rbacStore{kv: rbacKV}, accts: &accounts{kv: accKV}, siteKey: pub,
		peers: &peers{kv: peerKV}, siteTokens: &tokens{kv: stokKV, noun: "site token"}}
	if cfg.Parent != nil {
		if err := s.ensureParent(ctx, cfg.Parent); err != nil {
			return nil, fmt.Errorf("admin: parent site: %w", err)
		}
	}
	if cfg.SealKey != nil {
		s.accts.seal = cfg.SealKey
		s.accts.pub, _ = cfg.SealKey.PublicKey()
	}
	// The bootstrap administrator is made once, with the first model (the
	// identity first: an interrupted start is redone). Once a model exists
	// it is the truth: a bootstrap administrator deleted by another Full
	// Administrator stays deleted across restarts.
	if exists, err := s.rbac.exists(ctx); err != nil {
		return nil, fmt.Errorf("admin: rbac model: %w", err)
	} else if !exists {
		if cfg.Bootstrap != "" {
			if err := s.ids.ensureOperator(ctx, cfg.Bootstrap, "admin", []string{contracts.RoleFullAdministrator}); err != nil {
				return nil, fmt.Errorf("admin: bootstrap administrator: %w", err)
			}
		}
		if err := s.rbac.ensure(ctx, cfg.Bootstrap); err != nil {
			return nil, fmt.Errorf("admin: rbac model: %w", err)
		}
	}
	// The watcher lives as long as the service (until Run returns).
	wctx, stop := context.WithCancel(context.Background())
	if s.watch, err = rbac.Watch(wctx, js); err != nil {
		stop()
		return nil, err
	}
	s.stopWatch = stop
	if err := s.ids.watch(wctx, func(was Identity) { go s.sweepRevoked(wctx, was) }); err != nil {
		stop()
		return nil, err
	}
	if _, err := s.watch.Wait(ctx, 0); err != nil {
		stop()
		return nil, fmt.Errorf("admin: load rbac model: %w (last problem: %v)", err, s.watch.Err())
	}
	s.emit, err = status.NewEmitter(status.EmitterConfig{NC: cfg.NC, Site: cfg.Site, Component: contracts.ComponentAdmin,
		Instance: ServiceName, Log: cfg.Log})
	if err != nil {
		stop()
		return nil, err
	}
	if err := s.register(); err != nil {
		_ = s.emit.Close(ctx)
		stop()
		return nil, err
	}
	s.emit.Emit(ctx, contracts.StatusServiceStarted, map[string]string{"service": ServiceName, "instance": s.svc.Info().ID, "version": ServiceVersion})
	return s, nil
}

// Watcher is the service's watcher of the RBAC model.
func (s *Service) Watcher() *rbac.Watcher { return s.watch }

// register adds the micro service with every endpoint in one table.
func (s *Service) register() error {
	svc, err := micro.AddService(s.cfg.NC, micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "identities, auth callout, enrollment, tokens, administrative users, roles, accounts, site peers",
		QueueGroup:  ServiceName, // never the shared default "q": services must not split each other's messages
	})
	if err != nil {
		return fmt.Errorf("admin: micro service: %w", err)
	}
	s.svc = svc
	// Errors the handlers log become status messages too.
	site, log := s.cfg.Site, status.ErrorsAsStatus(s.cfg.Log, s.emit, ServiceName)
	enroll, _ := contracts.EnrollAll(site)
	op := func(kind string) string { subj, _ := contracts.OpUpAll(site, kind); return subj }
	verb := func(v string) string { subj, _ := contracts.Svc(site, ServiceName, v); return subj }
	fromSites := func(kind string) string { subj, _ := contracts.SiteSubjectAll(site, kind); return subj }
	table := []struct {
		name    string
		subject string
		handler micro.Handler
	}{
		{"auth", AuthSubject, micro.HandlerFunc(s.authConcurrently)},
		{"enroll", enroll, rpc.Handler(log, contracts.TypeEnrollRequest, s.enroll)},
		{"tokens-create", op(contracts.KindTokensCreate), rpc.Handler(log, contracts.TypeTokenCreateRequest, s.createToken)},
		{"tokens-list", op(contracts.KindTokensList), rpc.Handler(log, contracts.TypeTokenListRequest, s.listTokens)},
		{"tokens-revoke", op(contracts.KindTokensRevoke), rpc.Handler(log, contracts.TypeTokenRevokeRequest, s.revokeToken)},
		{"clients-approve", op(contracts.KindClientsApprove), rpc.Handler(log, contracts.TypeClientRequest, s.approveClient)},
		{"clients-block", op(contracts.KindClientsBlock), rpc.Handler(log, contracts.TypeClientRequest, s.blockClient)},
		{"clients-delete", op(contracts.KindClientsDelete), rpc.Handler(log, contracts.TypeClientRequest, s.deleteClient)},
		{"site-services", op(contracts.KindSiteServices), rpc.Handler(log, contracts.TypeServiceListRequest, s.listServices)},
		{"admins-add", op(contracts.KindAdminsAdd), rpc.Handler(log, contracts.TypeAdminAddRequest, s.addAdmin)},
		{"admins-update", op(contracts.KindAdminsUpdate), rpc.Handler(log, contracts.TypeAdminUpdateRequest, s.updateAdmin)},
		{"admins-list", op(contracts.KindAdminsList), rpc.Handler(log, contracts.TypeAdminListRequest, s.listAdmins)},
		{"admins-show", op(contracts.KindAdminsShow), rpc.Handler(log, contracts.TypeAdminRequest, s.showAdmin)},
		{"admins-revoke", op(contracts.KindAdminsRevoke), rpc.Handler(log, contracts.TypeAdminRequest, s.revokeAdmin)},
		{"admins-delete", op(contracts.KindAdminsDelete), rpc.Handler(log, contracts.TypeAdminRequest, s.deleteAdmin)},
		{"roles-list", op(contracts.KindRolesList), rpc.Handler(log, contracts.TypeRoleListRequest, s.listRoles)},
		{"roles-show", op(contracts.KindRolesShow), rpc.Handler(log, contracts.TypeRoleRequest, s.showRole)},
		{"roles-copy", op(contracts.KindRolesCopy), rpc.Handler(log, contracts.TypeRoleCopyRequest, s.copyRole)},
		{"roles-update", op(contracts.KindRolesUpdate), rpc.Handler(log, contracts.TypeRoleUpdateRequest, s.updateRole)},
		{"roles-delete", op(contracts.KindRolesDelete), rpc.Handler(log, contracts.TypeRoleRequest, s.deleteRole)},
		{"accounts-key", op(contracts.KindAccountsKey), rpc.Handler(log, contracts.TypeAccountKeyRequest, s.accountKey)},
		{"accounts-add", op(contracts.KindAccountsAdd), rpc.Handler(log, contracts.TypeAccountAddRequest, s.addAccount)},
		{"accounts-list", op(contracts.KindAccountsList), rpc.Handler(log, contracts.TypeAccountListRequest, s.listAccounts)},
		{"accounts-remove", op(contracts.KindAccountsRemove), rpc.Handler(log, contracts.TypeAccountRemoveRequest, s.removeAccount)},
		{"sites-list", op(contracts.KindSitesList), rpc.Handler(log, contracts.TypeSitePeersRequest, s.listSites)},
		{"sites-token-create", op(contracts.KindSitesTokenCreate), rpc.Handler(log, contracts.TypeSiteTokenCreateRequest, s.createSiteToken)},
		{"sites-token-list", op(contracts.KindSitesTokenList), rpc.Handler(log, contracts.TypeTokenListRequest, s.listSiteTokens)},
		{"sites-token-revoke", op(contracts.KindSitesTokenRevoke), rpc.Handler(log, contracts.TypeTokenRevokeRequest, s.revokeSiteToken)},
		{"site-peers", verb(contracts.VerbSitePeers), rpc.Handler(log, contracts.TypeSitePeersRequest, s.sitePeers)},
		{"collection-uses", verb(contracts.SvcCollectionUses), rpc.Handler(log, contracts.TypeCollectionUsesRequest, s.collectionUses)},
		{"site-join", fromSites(contracts.KindSiteJoin), rpc.Handler(log, contracts.TypeSiteJoinRequest, s.siteJoin)},
		{"site-heartbeat", fromSites(contracts.KindSiteHeartbeat), rpc.Handler(log, contracts.TypeSiteHeartbeat, s.siteHeartbeat)},
	}
	for _, e := range table {
		if err := svc.AddEndpoint(e.name, e.handler, micro.WithEndpointSubject(e.subject)); err != nil {
			return fmt.Errorf("admin: endpoint %s: %w", e.name, err)
		}
	}
	return nil
}

// Run serves until ctx ends. With a cross-site connection it also joins
// the parent and beats the peer sites.
func (s *Service) Run(ctx context.Context) error {
	sites := make(chan struct{})
	go func() {
		defer close(sites)
		s.runSites(ctx)
	}()
	<-ctx.Done()
	<-sites
	s.emit.Emit(context.Background(), contracts.StatusServiceStopping, map[string]string{"service": ServiceName, "instance": s.svc.Info().ID})
	err := s.svc.Stop()
	s.stopWatch()
	flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, s.emit.Close(flush))
}
