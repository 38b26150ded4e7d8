// Package site composes Steward's services into one process: it initialises
// the data directory, runs the embedded nats-server with JetStream on disk
// and the auth callout wired to the admin service, connects each service with
// its own connection, and shuts everything down cleanly.
package site

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/admin"
	"github.com/stewardhq/steward/services/discovery"
	"github.com/stewardhq/steward/services/policy"
	"github.com/stewardhq/steward/services/rbac"
	"github.com/stewardhq/steward/services/replication"
	"github.com/stewardhq/steward/services/sessions"
	"github.com/stewardhq/steward/services/status"
)

// AllServices are the services `steward serve` runs by default, in start order.
var AllServices = []string{"admin", "status", "discovery", "policy", "sessions", "replication"}

// Config of a site process.
type Config struct {
	DataDir  string   // default ./steward-data
	Listen   string   // embedded server listen address, default 127.0.0.1:4222
	Site     string   // site code, default LAB
	SiteSet  bool     // Site was given explicitly (must match the data dir)
	Services []string // default AllServices
	Server   string   // external NATS URL(s), comma-separated; empty runs the embedded server
	// Replicas of every stream, bucket and object store the services make:
	// 1 (default) on one server, 3 on a cluster.
	Replicas int
	// TLSHosts are names and addresses the servers' certificate must carry
	// besides loopback, this machine's name and the listen addresses.
	TLSHosts []string
	// LeafListen is where the embedded server accepts child sites' leaf
	// connections, host:port ("" none). TLS with the site's certificate
	// off loopback, as the client listener.
	LeafListen string
	// Parent is the leaf URL of the parent site to link to
	// (nats://parent:7422). Remembered in <data>/parent.json at the first
	// link; given again, it replaces the remembered URL.
	Parent string
	// ParentToken is the site token of the first link to the parent
	// (`steward sites token create` there). It stays in memory: it is set
	// on the embedded server's options, never written to a file.
	ParentToken string
	// LinkCompression is the compression of the links to the parent and
	// from child sites: auto (default), off, fast, better or best
	// (LinkCompressions).
	LinkCompression string
	Log             *slog.Logger
}

// CheckAndSetDefaults validates the config and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DataDir == "" {
		c.DataDir = "./steward-data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4222"
	}
	if c.Site == "" {
		c.Site = "LAB"
	}
	if err := contracts.ValidName(c.Site); err != nil {
		return fmt.Errorf("site code: %w", err)
	}
	if len(c.Services) == 0 {
		c.Services = AllServices
	}
	for _, s := range c.Services {
		if !slices.Contains(AllServices, s) {
			return fmt.Errorf("unknown service %q (known: %s)", s, strings.Join(AllServices, ", "))
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if c.LeafListen != "" {
		if _, _, err := net.SplitHostPort(c.LeafListen); err != nil {
			return fmt.Errorf("--leaf-listen %q: %w", c.LeafListen, err)
		}
	}
	if c.Server != "" && (c.LeafListen != "" || c.Parent != "" || c.ParentToken != "" || (c.LinkCompression != "" && c.LinkCompression != "auto")) {
		return errors.New("--leaf-listen, --parent, --parent-token and --link-compression configure the embedded server; with --server, configure the leaf node listener in the servers' configuration (steward site nats-config --leaf-listen --link-compression)")
	}
	if c.LinkCompression == "" {
		c.LinkCompression = "auto"
	}
	if _, err := linkCompression(c.LinkCompression); err != nil {
		return err
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas %d: must be 1 to 5", c.Replicas)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	return nil
}

// Site is a running site process.
type Site struct {
	cfg  Config
	Info Info
	keys Keys
	ns   *server.Server
	// clientsLater: the embedded server's client listener opens only once
	// the admin service (the auth callout) is up; the connections made
	// before that are in-process.
	clientsLater bool
	url          string
	tls          *tls.Config // the services' TLS; nil: plain (loopback)
	tlsRequired  bool
	parent       *parentLink        // the link to the parent site; nil: none
	leafURL      string             // the leaf listener, when there is one
	stopAttempt  context.CancelFunc // ends the context the services were made with (external mode)
	conns        []*nats.Conn
	runs         []func(context.Context) error
	unlock       func() // releases the data dir (lockDataDir)
}

// New starts a site process. With the embedded server it initialises the
// data directory (Init) and starts the server; against an external server
// (Config.Server) it reads the site initialised by `steward site init`
// (Load, read-only) and waits for the server. Then it starts the services.
// Call Run to serve.
func New(ctx context.Context, cfg Config) (*Site, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	var info Info
	var keys Keys
	var err error
	unlock := func() {}
	if cfg.Server == "" {
		// The embedded server's store is in the data dir: one process.
		if unlock, err = lockDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
		hosts := slices.Clip(cfg.TLSHosts)
		for _, l := range []string{cfg.Listen, cfg.LeafListen} {
			if host, _, _ := net.SplitHostPort(l); host != "" && !net.ParseIP(host).IsUnspecified() {
				hosts = append(hosts, host)
			}
		}
		info, keys, err = Init(cfg.DataDir, cfg.Site, cfg.SiteSet, hosts...)
	} else {
		info, keys, err = Load(cfg.DataDir)
		if err == nil && cfg.SiteSet && cfg.Site != info.Site {
			err = fmt.Errorf("data dir %s belongs to site %s, not %s", cfg.DataDir, info.Site, cfg.Site)
		}
	}
	if err != nil {
		unlock()
		return nil, err
	}
	s := &Site{cfg: cfg, Info: info, keys: keys, url: cfg.Server, unlock: unlock}
	if cfg.Server == "" {
		if s.parent, err = linkParent(cfg.DataDir, info.Site, cfg.Parent, cfg.ParentToken); err != nil {
			unlock()
			return nil, err
		}
		if err := s.startServer(); err != nil {
			s.close()
			return nil, err
		}
	}
	if err := s.siteTLS(); err != nil {
		s.close()
		return nil, err
	}
	if cfg.Server != "" {
		if err := s.waitServer(ctx); err != nil {
			return nil, err
		}
		if err := s.startExternal(ctx); err != nil {
			s.close()
			return nil, err
		}
		return s, nil
	}
	if err := s.startServices(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// storeFreeSpace reads the free space of the embedded server's JetStream
// store, within which the despooler keeps what it takes from the parent
// (docs/replication.md, "Sender and despooler"); nil with an external
// cluster, whose disks are not seen from here.
func (s *Site) storeFreeSpace() func() (int64, error) {
	if s.cfg.Server != "" {
		return nil
	}
	return replication.DirFreeSpace(jetStreamDir(s.cfg.DataDir))
}

// URL is the client URL of the site's NATS server.
func (s *Site) URL() string { return s.url }

// LeafURL is the embedded server's leaf listener for child sites ("" when
// it has none).
func (s *Site) LeafURL() string { return s.leafURL }

// Parent is the parent site this one links to (nil: none).
func (s *Site) Parent() *ParentLink {
	if s.parent == nil {
		return nil
	}
	p := s.parent.ParentLink
	return &p
}

// AdminIdentity is the path of the bootstrap administrator's identity file.
func (s *Site) AdminIdentity() string { return filepath.Join(s.cfg.DataDir, "admin.nk") }

func (s *Site) startServices(ctx context.Context) error {
	log := s.cfg.Log
	sys, err := s.connect("steward-system", true)
	if err != nil {
		return err
	}
	// One watcher of the RBAC model serves every service of this process.
	// Until admin has written the model it is empty, and the services refuse
	// operator requests (fail closed).
	svcConn, err := s.connect("steward-rbac", false)
	if err != nil {
		return err
	}
	js, err := jetstream.New(svcConn)
	if err != nil {
		return err
	}
	// The watcher starts after admin (AllServices begins with it) has
	// written the first model, and the other services start once it has
	// loaded: an operator's first request after the site is up must not be
	// refused as "not loaded yet". Without admin in this process the model
	// is another process's to write; the services refuse until it comes.
	var authz *rbac.Watcher
	for _, name := range AllServices {
		if !slices.Contains(s.cfg.Services, name) {
			continue
		}
		if name != "admin" {
			if authz == nil {
				if authz, err = rbac.Watch(ctx, js); err != nil {
					return err
				}
				if slices.Contains(s.cfg.Services, "admin") {
					wctx, cancel := context.WithTimeout(ctx, modelWait)
					_, err := authz.Wait(wctx, 0)
					cancel()
					if err != nil {
						return fmt.Errorf("the authorization model written by admin did not load: %w (%v)", err, authz.Err())
					}
				}
			}
			if err := s.openClients(); err != nil {
				return err
			}
		}
		nc, err := s.connect("steward-"+name, false)
		if err != nil {
			return err
		}
		switch name {
		case "admin":
			siteNC, err := s.connectSite("steward-admin-sites")
			if err != nil {
				return err
			}
			var parent *admin.Parent
			if p := s.parent; p != nil {
				parent = &admin.Parent{Site: p.Site, SigningKey: p.SiteKey, LeafKey: p.leafPublic(), Linked: p.Linked}
			}
			svc, err := admin.New(ctx, admin.Config{
				NC: nc, Sys: sys, Site: s.Info.Site, SiteKey: s.keys.Site, Issuer: s.keys.Callout,
				Bootstrap: s.Info.BootstrapAdmin, SealKey: s.keys.Seal, Log: log,
				CAFingerprint: s.Info.CAFingerprint, Replicas: s.cfg.Replicas,
				SiteNC: siteNC, Parent: parent,
			})
			if err != nil {
				return err
			}
			s.runs = append(s.runs, svc.Run)
		case "status":
			siteNC, err := s.connectSite("steward-status-sites")
			if err != nil {
				return err
			}
			svc, err := status.New(ctx, status.Config{NC: nc, SiteNC: siteNC, Site: s.Info.Site, Log: log, Authz: authz, Replicas: s.cfg.Replicas})
			if err != nil {
				return err
			}
			s.runs = append(s.runs, svc.Run)
		case "discovery":
			svc, err := discovery.New(ctx, discovery.Config{NC: nc, Sys: sys, Site: s.Info.Site, Log: log, Authz: authz, Replicas: s.cfg.Replicas})
			if err != nil {
				return err
			}
			s.runs = append(s.runs, svc.Run)
		case "policy":
			emit, err := status.NewEmitter(status.EmitterConfig{NC: nc, Site: s.Info.Site, Component: contracts.ComponentPolicy, Instance: policy.ServiceName, Log: log})
			if err != nil {
				return err
			}
			svc, err := policy.New(ctx, policy.Config{NC: nc, Site: s.Info.Site, SiteKey: s.keys.Site, Log: status.ErrorsAsStatus(log, emit, policy.ServiceName), Authz: authz, Emitter: emit, Replicas: s.cfg.Replicas})
			if err != nil {
				return err
			}
			s.runs = append(s.runs, withEmitter(emit, policy.ServiceName, policy.ServiceVersion, svc.Run))
		case "sessions":
			emit, err := status.NewEmitter(status.EmitterConfig{NC: nc, Site: s.Info.Site, Component: contracts.ComponentSessions, Instance: sessions.ServiceName, Log: log})
			if err != nil {
				return err
			}
			svc, err := sessions.New(ctx, sessions.Config{NC: nc, Site: s.Info.Site, SiteKey: s.keys.Site, Log: status.ErrorsAsStatus(log, emit, sessions.ServiceName), Authz: authz, Emitter: emit, Replicas: s.cfg.Replicas})
			if err != nil {
				return err
			}
			s.runs = append(s.runs, withEmitter(emit, sessions.ServiceName, sessions.ServiceVersion, svc.Run))
		case "replication":
			siteNC, err := s.connectSite("steward-replication-sites")
			if err != nil {
				return err
			}
			emit, err := status.NewEmitter(status.EmitterConfig{NC: nc, Site: s.Info.Site, Component: contracts.ComponentDespooler, Instance: replication.ServiceName, Log: log})
			if err != nil {
				return err
			}
			rcfg := replication.Config{NC: nc, SiteNC: siteNC, Site: s.Info.Site, SiteKey: s.keys.Site,
				Log: status.ErrorsAsStatus(log, emit, replication.ServiceName), Authz: authz, Emitter: emit, Replicas: s.cfg.Replicas}
			rcfg.FreeSpace = s.storeFreeSpace()
			svc, err := replication.New(ctx, rcfg)
			if err != nil {
				return err
			}
			// The service says started and stopping itself.
			s.runs = append(s.runs, func(ctx context.Context) error {
				defer func() {
					cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_ = emit.Close(cctx)
				}()
				return svc.Run(ctx)
			})
		}
		log.Info("service started", "component", "site", "service", name)
	}
	return s.openClients()
}

// modelWait bounds the wait for the RBAC model admin wrote at start.
const modelWait = 30 * time.Second

// withEmitter runs a service that was given emit: a started and a
// stopping status message around run, and the emitter flushed after.
func withEmitter(emit *status.Emitter, service, version string, run func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		emit.Emit(ctx, contracts.StatusServiceStarted, map[string]string{"service": service, "instance": service, "version": version})
		defer func() {
			emit.Emit(context.Background(), contracts.StatusServiceStopping, map[string]string{"service": service, "instance": service})
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = emit.Close(cctx)
		}()
		return run(ctx)
	}
}

// Run serves until ctx ends, then stops the services, closes their
// connections and shuts the embedded server down.
func (s *Site) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(s.runs))
	for _, run := range s.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	s.close()
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func (s *Site) close() {
	if s.stopAttempt != nil {
		s.stopAttempt()
	}
	for _, nc := range s.conns {
		nc.Close()
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.cfg.Log.Info("embedded NATS server stopped", "component", "site")
	}
	if s.unlock != nil {
		s.unlock()
	}
}
