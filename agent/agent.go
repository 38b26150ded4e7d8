// Package agent is the Steward client agent: it enrolls this machine with a
// site, keeps its identity in a local bbolt store, and then stays connected
// to the site over NATS, sending heartbeats, for as long as it runs.
//
// The life of an agent:
//
//	New        opens <state dir>/state.db (locked: one agent per state dir),
//	           reads or creates <state dir>/agent.nk (the agent's NKey seed)
//	           and binds the control socket <state dir>/agent.sock.
//	Run        enrolls if the state holds no identity (enroll.go), then
//	           connects as the enrolled client and heartbeats (operate.go),
//	           reconnecting forever, until its context ends.
//	Close      releases the state dir.
//
// The wire protocol is in the contracts module; the site side of enrollment
// is the admin service.
package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/inventory"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// Defaults of Config.
const (
	DefaultServer      = "nats://127.0.0.1:4222"
	DefaultSite        = "LAB"
	DefaultHeartbeat   = 60 * time.Second
	DefaultEnrollRetry = 30 * time.Second
	DefaultRetryMax    = 30 * time.Second
)

// States of the agent, as AgentStatus.State shows them.
const (
	StateEnrolling    = "enrolling"    // asking the site to admit this machine
	StatePending      = "pending"      // waiting for an operator to approve it
	StateConnected    = "connected"    // enrolled and connected
	StateDisconnected = "disconnected" // enrolled, reconnecting
	StateRefused      = "refused"      // the site or server refuses this agent; retrying slowly
	// StateDeleted: the server admits the agent's key, but not as its
	// client: the site deleted the client (or the server serves another
	// site). The agent checks again with backoff, or enrolls again when it
	// has a token of its site.
	StateDeleted = "deleted"
)

// Config configures an agent.
type Config struct {
	Server    string        // NATS URL of the site (default: the enrolled one, else DefaultServer)
	Token     string        // enrollment token ("STW1-..."); empty: wait for an operator's approval
	StateDir  string        // where state.db, agent.nk and agent.sock live (required)
	Name      string        // client name (default: the short host name, or the enrolled name)
	Site      string        // site code without a token (default: the token's, the enrolled one, DefaultSite)
	Heartbeat time.Duration // heartbeat interval (default DefaultHeartbeat)
	Log       *slog.Logger  // default slog.Default()
	Version   string        // agent version sent to the site (default "dev")

	// EnrollRetry is how often a pending agent sends its enrollment request
	// again, in case the approval message was missed (default 30s).
	EnrollRetry time.Duration
	// RetryMax caps the jittered exponential backoff of reconnects and
	// failed enrollment requests; a refused agent retries at about this
	// interval (default 30s).
	RetryMax time.Duration
	// OutboxMax is how many messages the outbox holds while the site is
	// away (default DefaultOutboxMax).
	OutboxMax int
	// Inventory collects the machine's inventory (default inventory.New()).
	Inventory inventory.Collector
	// Store and Key run the agent without a state dir (the fleet
	// simulator: many agents in one process): the state lives in Store
	// (state.NewMemStore()), the NKey is Key, and there is no control
	// socket. StateDir is then unused.
	Store state.Store
	Key   nkeys.KeyPair
	// Dialer dials the site (default: a plain dialer); the simulator
	// sets one with its own source address.
	Dialer *net.Dialer
	// InventoryInterval is how often changes are looked for (default
	// DefaultInventoryInterval); negative turns scheduled reports off (the
	// site can still ask for one, and policy cannot turn them on).
	InventoryInterval time.Duration
	// LoggedOnUsers lists the users logged on to the machine, whom a
	// remote session's consent prompt asks (nobody logged on:
	// remoteTools.allowWhenNoUser decides). Nil: the users the Inventory
	// collector reports, collected when a prompt is needed; a collector
	// that cannot read them refuses the session.
	LoggedOnUsers func() []string
	// SessionShell is the login shell of shell sessions that name no
	// command (default $SHELL, else /bin/sh); it runs with -l.
	SessionShell string
	// PolicyRefresh is how often the agent fetches its policy besides at
	// every connect (default DefaultPolicyRefresh).
	//
	// Heartbeat, InventoryInterval and PolicyRefresh are the values the
	// agent starts with; the agent section of the site's policy changes
	// them while the agent runs, and a setting the policy leaves
	// unconfigured falls back to these.
	PolicyRefresh time.Duration
	// ContentMax is the largest package version the agent downloads
	// (default DefaultContentMax); a larger one fails before anything is
	// fetched, as does one that does not fit the free disk space.
	ContentMax int64
	// ContentSpread is the longest the agent waits, at random, before it
	// asks for its content list after (re)connecting or being told
	// content.changed: the clients of a collection, or a fleet reconnecting
	// after a site restart, spread their requests over it instead of asking
	// at once. Default DefaultContentSpread; negative: no wait.
	ContentSpread time.Duration
}

// CheckAndSetDefaults validates c and fills in defaults. Site defaults to
// the token's site code; the defaults that come from the stored identity
// (Site, Server, Name) and DefaultSite and DefaultServer are applied by New,
// which reads the state.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Store != nil && c.Key == nil:
		return errors.New("an agent with its own Store needs its Key")
	case c.Store == nil && c.StateDir == "":
		return errors.New("a state dir is required (--state-dir)")
	case c.Store == nil:
		dir, err := filepath.Abs(c.StateDir)
		if err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		c.StateDir = dir
	}
	if c.Token != "" {
		tok, err := contracts.ParseEnrollmentToken(c.Token)
		if err != nil {
			return fmt.Errorf("--token: %w", err)
		}
		if c.Site != "" && c.Site != tok.Site {
			return fmt.Errorf("--site %s does not match the token's site %s", c.Site, tok.Site)
		}
		c.Site = tok.Site
	}
	if c.Site != "" {
		if err := contracts.ValidToken(c.Site); err != nil {
			return fmt.Errorf("site code: %w", err)
		}
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --name given and the host name is unknown: %w", err)
		}
		c.Name, _, _ = strings.Cut(h, ".")
	}
	if err := contracts.ValidName(c.Name); err != nil {
		return fmt.Errorf("client name: %w (pass --name)", err)
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.EnrollRetry == 0 {
		c.EnrollRetry = DefaultEnrollRetry
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.OutboxMax == 0 {
		c.OutboxMax = DefaultOutboxMax
	}
	if c.Inventory == nil {
		c.Inventory = inventory.New()
	}
	if c.InventoryInterval == 0 {
		c.InventoryInterval = DefaultInventoryInterval
	}
	if c.PolicyRefresh == 0 {
		c.PolicyRefresh = DefaultPolicyRefresh
	}
	if c.ContentSpread == 0 {
		c.ContentSpread = DefaultContentSpread
	}
	if c.ContentMax == 0 {
		c.ContentMax = DefaultContentMax
	}
	if c.Heartbeat < 0 || c.EnrollRetry < 0 || c.RetryMax < 0 || c.PolicyRefresh < 0 || c.ContentMax < 0 {
		return errors.New("heartbeat, enroll retry, retry max, policy refresh and content max must be positive")
	}
	if c.SessionShell == "" {
		if c.SessionShell = os.Getenv("SHELL"); c.SessionShell == "" {
			c.SessionShell = "/bin/sh"
		}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return nil
}

// Agent is a running client agent. Make one with New, run it with Run, and
// Close it after Run returns.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	store    state.Store
	kp       nkeys.KeyPair
	signKey  ed25519.PrivateKey // kp expanded once: it signs every connect's nonce
	pub      string
	token    *contracts.EnrollmentToken
	site     string // site code to enroll with
	hostname string
	started  time.Time
	ctl      *control.Server
	ctlDone  chan error // Serve's result

	enrolled     chan struct{} // closed once the agent holds an identity
	enrolledOnce sync.Once     // closes enrolled (an agent may enroll again after a deletion)
	recheck      chan struct{} // the server denied one of the client's own subjects (buffered 1)
	outboxWake   chan struct{} // a message was enqueued (buffered 1)
	outboxUp     chan struct{} // the connection is back (buffered 1)
	reportMu     sync.Mutex    // one inventory report at a time
	down         map[string]DownHandler
	pol          *policyRuntime
	sess         *sessionManager // remote sessions and consent prompts (session.go)
	content      *contentRuntime // package content (content.go)
	running      atomic.Bool
	caPin        atomic.Pointer[string] // pinned site CA fingerprint (conn.go); nil: none yet
	closeOnce    sync.Once
	closeErr     error

	mu     sync.Mutex
	st     status
	lostAt time.Time                 // when the enrolled agent lost the site (zero: connected)
	live   atomic.Pointer[nats.Conn] // the connection whose events the status follows
}

// status is what Status reports, guarded by Agent.mu.
type status struct {
	id            *state.Identity
	phase         string // StateEnrolling, StatePending or "" once enrolled
	connected     bool
	message       string
	authRefused   string // the server refuses the key (blocked)
	notKnown      string // the server admits the key, but not as this client (deleted at the site)
	enrollRefused string // the site refuses the enrollment (token, signature)
	pinnedKey     string // before enrollment: the site key pinned by the token or on first contact
	lastHeartbeat time.Time
}

// New checks cfg, opens the state dir (failing fast if another agent has
// it), loads or creates the agent key and binds the control socket.
func New(cfg Config) (*Agent, error) {
	explicitName := cfg.Name != "" // else the enrolled name wins over the host name
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Log.With("component", "agent")
	store := cfg.Store
	if store == nil {
		var err error
		if store, err = state.Open(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	a := &Agent{cfg: cfg, log: log, store: store, started: time.Now().UTC(), enrolled: make(chan struct{}), recheck: make(chan struct{}, 1),
		outboxWake: make(chan struct{}, 1), outboxUp: make(chan struct{}, 1), down: map[string]DownHandler{}, pol: newPolicyRuntime(cfg), sess: newSessionManager(),
		content: newContentRuntime(cfg)}
	a.down[contracts.KindInventoryRefresh] = a.refreshInventory
	a.down[contracts.KindPolicy] = a.onPolicyPush
	a.down[contracts.KindSessionGrant] = a.onSessionGrant
	a.down[contracts.KindContentChanged] = a.onContentChanged
	if err := a.init(explicitName); err != nil {
		if a.kp != nil {
			a.kp.Wipe()
		}
		store.Close()
		return nil, err
	}
	a.sess.updateIndicator(a) // no session runs yet: an indicator left by a crash goes
	return a, nil
}

func (a *Agent) init(explicitName bool) error {
	a.hostname, _ = os.Hostname()
	id, enrolled, err := a.store.GetIdentity()
	if err != nil {
		return err
	}
	keyPath := filepath.Join(a.cfg.StateDir, KeyFileName)
	if a.cfg.Key != nil {
		a.kp, err = a.cfg.Key, nil
	} else {
		a.kp, err = readKey(keyPath, a.log)
	}
	switch {
	case errors.Is(err, errNoKey) && enrolled:
		return fmt.Errorf("%s is missing, but the state says this machine enrolled as client %s with key %s; "+
			"restore %s, or move state.db aside to enroll again", keyPath, id.ClientID, id.AgentKey, KeyFileName)
	case errors.Is(err, errNoKey):
		if a.kp, err = createKey(keyPath); err != nil {
			return err
		}
		pub, _ := a.kp.PublicKey()
		a.log.Info("created the agent key", "path", keyPath, "public_key", pub)
	case err != nil:
		return err
	}
	if a.pub, err = a.kp.PublicKey(); err != nil {
		return fmt.Errorf("agent key: %w", err)
	}
	seed, err := a.kp.Seed()
	if err == nil {
		var raw []byte
		_, raw, err = nkeys.DecodeSeed(seed)
		clear(seed)
		if err == nil {
			a.signKey = ed25519.NewKeyFromSeed(raw)
			clear(raw)
		}
	}
	if err != nil {
		return fmt.Errorf("agent key: %w", err)
	}

	if enrolled {
		if id.AgentKey != a.pub {
			return fmt.Errorf("%s holds key %s, but this machine enrolled as client %s with key %s; "+
				"restore the original %s, or move state.db aside to enroll again", keyPath, a.pub, id.ClientID, id.AgentKey, KeyFileName)
		}
		if a.cfg.Site != "" && a.cfg.Site != id.Site {
			a.log.Warn("already enrolled with another site; the stored identity wins", "site", id.Site, "requested_site", a.cfg.Site)
		}
		if a.cfg.Token != "" {
			tok, _ := contracts.ParseEnrollmentToken(a.cfg.Token) // checked by CheckAndSetDefaults
			a.token = &tok
			a.log.Info("already enrolled; the token is used only if the site no longer knows this client (deleted)",
				"client_id", id.ClientID, "token_id", tok.ID)
		}
		if !explicitName {
			a.cfg.Name = id.Name
		}
		if a.cfg.Server == "" {
			a.cfg.Server = id.Server
		}
		a.site = id.Site
		a.st.id = &id
		if id.CAFingerprint != "" {
			a.caPin.Store(&id.CAFingerprint)
		}
		a.markEnrolled()
	}
	if a.cfg.Server == "" {
		a.cfg.Server = DefaultServer
	}
	if err := a.loadPolicy(); err != nil {
		return err
	}
	if err := a.loadContent(); err != nil {
		return err
	}
	if !enrolled {
		a.st.phase = StateEnrolling
		a.site = a.cfg.Site
		if a.site == "" {
			a.site = DefaultSite
		}
		if a.cfg.Token != "" {
			tok, _ := contracts.ParseEnrollmentToken(a.cfg.Token) // checked by CheckAndSetDefaults
			a.token = &tok
			a.st.pinnedKey = tok.SiteKey
			if tok.CA != "" {
				a.caPin.Store(&tok.CA)
			}
		}
	}

	// The control socket answers from New to Close, so that status works
	// while the agent starts and stops too.
	if a.cfg.Store != nil {
		return nil // embedded (simulator): no state dir, no socket
	}
	handlers := control.Handlers{
		control.VerbStatus:        func(context.Context, []string) (any, error) { return a.Status(), nil },
		control.VerbSettingsReset: func(context.Context, []string) (any, error) { return a.ResetSettings() },
		control.VerbSettingsUser:  func(_ context.Context, args []string) (any, error) { return a.SetUserSettings(args) },
		control.VerbContent:       func(context.Context, []string) (any, error) { return a.ContentList(), nil },
	}
	maps.Copy(handlers, a.sessionHandlers())
	a.ctl, err = control.Listen(control.SocketPath(a.cfg.StateDir), handlers, a.log)
	if err != nil {
		return err
	}
	a.ctl.HandleStream(control.VerbAssist, a.serveAssist)
	a.ctlDone = make(chan error, 1)
	go func() { a.ctlDone <- a.ctl.Serve(context.Background()) }()
	return nil
}

// Run enrolls the agent if needed, then keeps it connected and heartbeating
// until ctx is done; it returns nil then. It returns an error only for
// failures retrying cannot mend (the state store failing).
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	a.log.Info("steward-agent starting", "version", a.cfg.Version, "server", a.cfg.Server, "state_dir", a.cfg.StateDir,
		"name", a.cfg.Name, "site", a.site, "public_key", a.pub, "client_id", a.ClientID())
	err := a.run(ctx)
	a.log.Info("steward-agent stopped")
	return err
}

func (a *Agent) run(ctx context.Context) error {
	id, ok := a.Identity()
	if !ok {
		var err error
		if id, err = a.enroll(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	checks := 0 // connections in a row on which the site did not know the client
	pause := func(n int) bool {
		wait := time.NewTimer(backoff(n, time.Second, a.cfg.RetryMax))
		defer wait.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-wait.C:
			return true
		}
	}
	for {
		known, err := a.operate(ctx, id)
		if !errors.Is(err, errNotKnown) {
			return err
		}
		if known {
			checks = 0
		}
		checks++
		// The site deleted the client (deleted.go): enroll again with a
		// token of its site, or wait and check again.
		usable, _ := a.reenrollToken(id)
		if !usable || checks > 1 { // (enrolled again, and still not known: not in a loop either)
			if !pause(checks) {
				return nil
			}
		}
		if !usable {
			continue
		}
		next, err := a.reenroll(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if next.ClientID != id.ClientID {
			checks = 0
		}
		id = next
	}
}

// markEnrolled closes Enrolled's channel, once.
func (a *Agent) markEnrolled() { a.enrolledOnce.Do(func() { close(a.enrolled) }) }

// Close releases the control socket, the state dir and the key. Call it
// after Run has returned.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.sess.close() // sessions end (abnormally) before the state closes
		var cerr error
		if a.ctl != nil {
			a.ctl.Close()
			cerr = <-a.ctlDone
		}
		a.closeErr = errors.Join(cerr, a.store.Close())
		a.kp.Wipe()
		clear(a.signKey)
	})
	return a.closeErr
}

// Status reports what the agent is doing, as `steward-agent status` shows it.
func (a *Agent) Status() contracts.AgentStatus {
	sessions := a.Sessions()
	content := a.Content()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := contracts.AgentStatus{
		Header:        contracts.NewHeader(contracts.TypeAgentStatus),
		Name:          a.cfg.Name,
		Site:          a.site,
		Server:        a.cfg.Server,
		Connected:     a.st.connected,
		LastHeartbeat: a.st.lastHeartbeat,
		Started:       a.started,
		AgentVersion:  a.cfg.Version,
		Capability:    contracts.CapabilityVersion,
		Message:       a.st.message,
	}
	if len(sessions) > 0 {
		st.Sessions = sessions
	}
	if len(content) > 0 {
		st.Content = content
	}
	// The policy section always: before any policy applied it still
	// shows a rejection (the first policy may be the one rejected), the
	// local user's own Remote Assistance values and what is in force.
	if ps := a.pol.status.Load(); ps != nil {
		p := a.PolicyStatus()
		st.Policy = &p
	}
	st.SiteKey = a.st.pinnedKey
	switch {
	case a.st.id != nil && a.st.phase == "":
		st.ClientID, st.Site, st.SiteKey = a.st.id.ClientID, a.st.id.Site, a.st.id.SiteKey
		st.State = StateDisconnected
		if a.st.connected {
			st.State = StateConnected
		}
	case a.st.id != nil: // enrolling again (the site deleted the client); the message says which
		st.Site, st.SiteKey = a.st.id.Site, a.st.id.SiteKey
		st.State = a.st.phase
	default:
		st.State = a.st.phase
	}
	switch {
	case a.st.authRefused != "":
		st.State, st.Message = StateRefused, a.st.authRefused
	case a.st.enrollRefused != "":
		st.State, st.Message = StateRefused, a.st.enrollRefused
	case a.st.notKnown != "" && a.st.phase == "":
		// Connected to the server, but not as the client.
		st.State, st.Message, st.Connected = StateDeleted, a.st.notKnown, false
	}
	return st
}

// Identity returns the agent's identity; ok is false before enrollment.
func (a *Agent) Identity() (id state.Identity, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.id == nil {
		return state.Identity{}, false
	}
	return *a.st.id, true
}

// Connected says whether the agent is connected to its site now (as its
// client, once enrolled).
func (a *Agent) Connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.connected && a.st.notKnown == ""
}

// Deleted says whether the site did not know the enrolled client at the
// agent's last connect (StateDeleted).
func (a *Agent) Deleted() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.notKnown != ""
}

// Refused says whether the server refused the agent's key at its last
// attempt (it retries slowly).
func (a *Agent) Refused() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.authRefused != ""
}

// ClientID is the client ID the site assigned, "" before enrollment.
func (a *Agent) ClientID() string {
	id, _ := a.Identity()
	return id.ClientID
}

// PublicKey is the agent's NKey public key, its name at the site before it
// has a client ID (operators approve pending clients by it).
func (a *Agent) PublicKey() string { return a.pub }

// Site is the site code the agent enrolls or enrolled with.
func (a *Agent) Site() string { return a.site }

// Name is the client name the agent reports.
func (a *Agent) Name() string { return a.cfg.Name }

// StateDir is the agent's state dir (absolute).
func (a *Agent) StateDir() string { return a.cfg.StateDir }

// SocketPath is the agent's control socket.
func (a *Agent) SocketPath() string {
	if a.ctl == nil {
		return ""
	}
	return a.ctl.Path()
}

// Enrolled is closed once the agent holds an identity (at once when the
// state already had one).
func (a *Agent) Enrolled() <-chan struct{} { return a.enrolled }

// update changes the status under the lock.
func (a *Agent) update(fn func(st *status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(&a.st)
}
