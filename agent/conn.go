package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
)

// reconnectBase is the first reconnect delay; it doubles per failed attempt
// up to Config.RetryMax.
const reconnectBase = 250 * time.Millisecond

// connectTimeout bounds one connection handshake, auth callout included.
const connectTimeout = 20 * time.Second

// dial connects to the server as the agent's NKey with replies under inbox.
// The connection retries forever (also when the first attempt fails, and
// when the server refuses the key); up receives a signal (coalesced) on
// every connect and reconnect. Connection events update the status; with
// report set (the enrolled agent) losing and regaining the site are also
// status messages for the site.
func (a *Agent) dial(inbox string, up chan<- struct{}, report bool) (*nats.Conn, error) {
	var current atomic.Pointer[nats.Conn]
	signal := func() {
		select {
		case up <- struct{}{}:
		default:
		}
	}
	onUp := func(nc *nats.Conn) {
		a.live.Store(nc)
		var forgotten bool
		a.update(func(st *status) {
			st.connected, st.authRefused, st.message, forgotten = true, "", "", st.notKnown != ""
		})
		level := slog.LevelInfo
		if forgotten { // checking again whether the site knows the client: said at Error once already
			level = slog.LevelDebug
		}
		a.log.Log(context.Background(), level, "connected to the site", "server", nc.ConnectedUrlRedacted(), "tls", nc.TLSRequired(), "site_ca", a.pinnedCA())
		if report {
			a.keepCAPin()
			a.linkUp()
		}
		signal()
	}
	refused := func(err error) {
		msg := fmt.Sprintf("the server refuses this agent's key (%v): the client may be blocked at the site, "+
			"or the site cannot decide now; retrying about every %s", err, a.cfg.RetryMax)
		var was string
		a.update(func(st *status) { was, st.authRefused, st.connected = st.authRefused, msg, false })
		if was == "" {
			a.log.Error("the server refused the agent", "server", a.cfg.Server, "public_key", a.pub, "err", err)
		}
	}
	dialer := newAttemptDialer(a.cfg.Dialer)
	opts := []nats.Option{
		nats.Name("steward-agent " + a.cfg.Name),
		nats.Nkey(a.pub, a.signNonce),
		nats.CustomInboxPrefix(inbox),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		// A subscription the server denies says so (probeAdmitted), and
		// the probe's is the only synchronous one: no 64K-message queue.
		nats.PermissionErrOnSubscribe(true),
		nats.SyncQueueLen(16),
		// The handshake includes the site's auth callout, which queues
		// behind thousands of others in a reconnect storm: give up on it
		// late, or the retry adds to the storm (nats.go's default is 2s).
		nats.Timeout(connectTimeout),
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			// The delay is asked for after each failed round: nats.go
			// keeps the failed attempt's socket until the next dial (or
			// the garbage collector), so close it now.
			dialer.closeLast()
			// The connection's last error says whether the server
			// refused us.
			if nc := current.Load(); nc != nil && isAuthError(nc.LastError()) {
				refused(nc.LastError())
				return jitter(a.cfg.RetryMax)
			}
			return backoff(attempts, reconnectBase, a.cfg.RetryMax)
		}),
		nats.ConnectHandler(onUp),
		nats.ReconnectHandler(onUp),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			// Callbacks arrive asynchronously: the close of the
			// enrollment connection may come after the enrolled
			// connection is up. Only the live connection speaks.
			if a.live.Load() != nc {
				return
			}
			// The time of the loss is taken before the status shows it,
			// so the status message is never later than what anyone saw.
			at := time.Now()
			a.update(func(st *status) {
				st.connected = false
				if err != nil {
					st.message = "disconnected: " + err.Error()
				}
			})
			if err != nil {
				a.log.Warn("disconnected from the site; reconnecting", "err", err)
			}
			if report && err != nil {
				a.linkDown(at, err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if isAuthError(err) {
				refused(err)
				return
			}
			a.update(func(st *status) {
				st.authRefused = ""
				st.message = fmt.Sprintf("cannot reach %s: %v", a.cfg.Server, err)
			})
			a.log.Debug("reconnect failed", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			switch {
			case isAuthError(err):
				refused(err)
			case a.ownDenied(err):
				// The site grants the client all of its subjects or none:
				// the operate loop asks the server which (deleted.go).
				a.log.Debug("the server denied one of this client's own subjects; checking whether the site still knows it", "err", err)
				select {
				case a.recheck <- struct{}{}:
				default:
				}
			case errors.Is(err, nats.ErrPermissionViolation):
				a.log.Error("the server denied a subject to this agent", "err", err)
			default:
				subject := ""
				if sub != nil {
					subject = sub.Subject
				}
				a.log.Warn("nats error", "err", err, "subject", subject)
			}
		}),
	}
	opts = append(opts, a.siteTLS(), nats.SetCustomDialer(dialer))
	nc, err := nats.Connect(a.cfg.Server, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", a.cfg.Server, err)
	}
	current.Store(nc)
	return nc, nil
}

// attemptDialer dials the site and remembers the last connection it made,
// so that a failed handshake's socket is closed before the agent waits to
// retry. nats.go leaves it open after a refused or timed-out handshake
// until it dials again; thousands of agents refused at once in a
// reconnect storm (or one simulator process) would hold thousands of dead
// sockets, each a file descriptor, at the agents and at the site.
type attemptDialer struct {
	base net.Dialer
	mu   sync.Mutex
	last net.Conn
}

func newAttemptDialer(base *net.Dialer) *attemptDialer {
	d := &attemptDialer{}
	if base != nil {
		d.base = *base
	}
	if d.base.Timeout == 0 {
		d.base.Timeout = connectTimeout
	}
	return d
}

// Dial is nats.CustomDialer's.
func (d *attemptDialer) Dial(network, address string) (net.Conn, error) {
	d.closeLast()
	c, err := d.base.Dial(network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.last = c
	d.mu.Unlock()
	return c, nil
}

// closeLast closes the last connection dialed. It is called only between
// attempts (before the next dial, and when nats.go asks how long to wait
// after a failed round), when that connection is no longer in use.
func (d *attemptDialer) closeLast() {
	d.mu.Lock()
	c := d.last
	d.last = nil
	d.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// isAuthError reports whether the server refused the connection's
// credentials.
func isAuthError(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired))
}

// backoff is the wait before retry number attempt (from 1): base doubled
// per attempt, capped at max, with jitter.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	return jitter(min(d, max))
}

// signNonce signs the server's nonce with the agent key (expanded once).
func (a *Agent) signNonce(nonce []byte) ([]byte, error) {
	return ed25519.Sign(a.signKey, nonce), nil
}

// jitter spreads d over [d/2, d) so that many agents do not retry in step.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d-d/2)
}

// siteTLS is the connection's TLS option. The server's chain must hold the
// pinned site CA (from the token, or stored at enrollment) and the CA must
// have signed the server's certificate (contracts.VerifySiteChain); an agent
// with no pin (enrolled without a token) trusts the CA it meets first and
// pins it, as it does the site key. TLS is required unless every server URL
// is on loopback, where a site's embedded server listens in plain text.
func (a *Agent) siteTLS() nats.Option {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard verification knows nothing of the pin; the chain is
		// checked against it below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			pin := a.pinnedCA()
			fp, err := contracts.VerifySiteChain(pin, cs.PeerCertificates)
			if err != nil {
				a.log.Error("refused the server's certificate", "err", err)
				return err
			}
			if pin == "" && a.caPin.CompareAndSwap(nil, &fp) {
				a.log.Warn("trusting the site CA on first use (no token carried its fingerprint)", "site_ca", fp)
			}
			return nil
		},
	}
	secure := !contracts.LoopbackOnly(a.cfg.Server)
	return func(o *nats.Options) error {
		o.TLSConfig = cfg
		o.Secure = o.Secure || secure
		return nil
	}
}

// pinnedCA is the pinned site CA fingerprint, "" when there is none yet.
func (a *Agent) pinnedCA() string {
	if p := a.caPin.Load(); p != nil {
		return *p
	}
	return ""
}

// keepCAPin stores a CA pinned on first use after enrollment (an agent
// enrolled before its site had TLS), so that it holds across restarts.
func (a *Agent) keepCAPin() {
	pin := a.pinnedCA()
	id, ok := a.Identity()
	if pin == "" || !ok || id.CAFingerprint != "" {
		return
	}
	id.CAFingerprint = pin
	if err := a.store.PutIdentity(id); err != nil {
		a.log.Error("could not store the pinned site CA", "err", err)
		return
	}
	a.update(func(st *status) { st.id = &id })
}
