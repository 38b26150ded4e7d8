package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// Grant is what one connection may do: the subjects it may publish and
// subscribe, and a name tag the server reports in its events.
type Grant struct {
	Name      string
	Pub       []string
	Sub       []string
	Responses bool      // may answer requests it received (once each)
	Expires   time.Time // zero: no expiry
	Leaf      bool      // a child site's leaf connection (and nothing else)
}

// decide returns the grant for a connecting key whose identity lookup gave
// id and err. It is the whole authorization policy, free of NATS, so a table
// test covers every case. Any doubt is a refusal.
func decide(site, key string, id Identity, lookupErr error, now time.Time) (Grant, error) {
	switch {
	case errors.Is(lookupErr, errNoIdentity):
		return enrollOnly(key), nil
	case lookupErr != nil:
		return Grant{}, fmt.Errorf("cannot decide for %s: %w", key, lookupErr)
	}
	switch id.Kind {
	case KindAgent:
		switch id.Status {
		case contracts.ClientPending:
			return enrollOnly(key), nil
		case contracts.ClientApproved:
			up, err1 := contracts.AgentSpace(site, id.ClientID, "up")
			down, err2 := contracts.AgentSpace(site, id.ClientID, "down")
			inbox, err3 := contracts.Inbox(id.ClientID)
			if err := errors.Join(err1, err2, err3); err != nil {
				return Grant{}, fmt.Errorf("client %s: %w", id.ClientID, err)
			}
			return Grant{Name: "agent:" + id.ClientID, Pub: []string{up}, Sub: []string{down, inbox + ".>"}, Responses: true}, nil
		case contracts.ClientBlocked:
			return Grant{}, fmt.Errorf("client %s (%s) is blocked", id.Name, id.ClientID)
		}
		return Grant{}, fmt.Errorf("client %s has unknown status %q", id.ClientID, id.Status)
	case KindOperator:
		if id.Revoked {
			return Grant{}, fmt.Errorf("operator %s is revoked", id.Name)
		}
		if !id.Expires.IsZero() && !now.Before(id.Expires) {
			return Grant{}, fmt.Errorf("operator %s expired at %s", id.Name, id.Expires.Format(time.RFC3339))
		}
		up, err1 := contracts.OpSpace(site, id.Name, "up")
		down, err2 := contracts.OpSpace(site, id.Name, "down")
		inbox, err3 := contracts.Inbox(id.Name)
		if err := errors.Join(err1, err2, err3); err != nil {
			return Grant{}, fmt.Errorf("operator %s: %w", id.Name, err)
		}
		return Grant{Name: "op:" + id.Name, Pub: []string{up}, Sub: []string{down, inbox + ".>"}, Expires: id.Expires}, nil
	case KindSite:
		return Grant{}, fmt.Errorf("key %s is the leaf key of site %s: it may only link as a leaf node", key, id.Name)
	}
	return Grant{}, fmt.Errorf("identity %s has unknown kind %q", key, id.Kind)
}

// enrollOnly lets an unknown or pending key ask any site on this server to
// enroll it, as itself, and hear the answer.
func enrollOnly(key string) Grant {
	return Grant{
		Name: "enroll:" + key,
		Pub:  []string{contracts.Root + ".*.enroll." + key},
		Sub:  []string{"_INBOX." + key + ".>"},
	}
}

// verifyNonce checks that the connecting client holds the key it claims:
// the server's nonce signed by the key.
func verifyNonce(key, nonce, sig string) error {
	if key == "" {
		return errors.New("no nkey presented (steward clients authenticate with an NKey)")
	}
	if !nkeys.IsValidPublicUserKey(key) {
		return fmt.Errorf("%q is not a user NKey", key)
	}
	if nonce == "" || sig == "" {
		return errors.New("no signed nonce")
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return errors.New("nonce signature is not base64")
		}
	}
	pk, err := nkeys.FromPublicKey(key)
	if err != nil {
		return err
	}
	if err := pk.Verify([]byte(nonce), raw); err != nil {
		return errors.New("nonce signature does not verify")
	}
	return nil
}

// authWorkers bounds the auth callout requests decided at once. A micro
// handler runs serially on its subscription; the decisions (two
// signatures checked, two made, a bucket read for keys the cache does not
// decide) run on the workers.
const authWorkers = 32

// AuthTimeout is the embedded server's authorization timeout (nats.conf):
// how long a connection may take from its accept to the callout's answer.
// Long enough that a reconnect storm of 10,000 agents is admitted in one
// wave, newest first (authQueue), instead of timing out and retrying in
// waves; a connection that never authenticates is closed after it.
const AuthTimeout = 15 * time.Second

// authMaxWait is how long a callout request may wait for a worker before
// it is dropped undecided: an answer after AuthTimeout is work thrown
// away, and the request travelled from the server and the answer must
// travel back (each hop slow in a storm), so a third of it is left for
// that.
const authMaxWait = AuthTimeout * 2 / 3

// authQueueMax bounds the requests waiting; beyond it the oldest go.
const authQueueMax = 1 << 16

// authQueue holds callout requests waiting for a worker, newest first.
//
// A reconnect storm brings more connections than the site can admit
// within the server's timeout. Served oldest first, every request would
// be answered after its connection had already been refused, and the site
// would admit no one while working at full speed. Served newest first, the
// site admits as many as it can decide in time; the ones left behind time
// out at the server, retry later with backoff, and are dropped here
// without being decoded once they are older than authMaxWait.
type authQueue struct {
	mu      sync.Mutex
	items   []queuedAuth // oldest first
	workers int          // running workers
	dropped int          // requests dropped since the last report
	lastLog time.Time
}

type queuedAuth struct {
	r  micro.Request
	at time.Time
}

// push queues r, arrived at now, and says whether a worker should be
// started for it.
func (q *authQueue) push(r micro.Request, now time.Time) (startWorker bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= authQueueMax {
		n := len(q.items) / 2
		q.dropped += n
		q.items = append(q.items[:0], q.items[n:]...)
	}
	q.items = append(q.items, queuedAuth{r: r, at: now})
	if q.workers < authWorkers {
		q.workers++
		return true
	}
	return false
}

// pop takes the newest request waiting at most authMaxWait at now. When
// there is none the calling worker ends (ok false). Requests past
// authMaxWait are dropped: when the newest is that old, so is every other.
func (q *authQueue) pop(now time.Time) (r micro.Request, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.items); n > 0 {
		it := q.items[n-1]
		q.items[n-1] = queuedAuth{}
		q.items = q.items[:n-1]
		if now.Sub(it.at) <= authMaxWait {
			return it.r, true
		}
		q.dropped += n
		clear(q.items)
		q.items = q.items[:0]
	}
	q.workers--
	return nil, false
}

// overload returns how many requests were dropped since the last call that
// returned some, at most once per interval.
func (q *authQueue) overload(now time.Time, interval time.Duration) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropped == 0 || now.Sub(q.lastLog) < interval {
		return 0
	}
	n := q.dropped
	q.dropped, q.lastLog = 0, now
	return n
}

// authConcurrently queues each callout request for the workers, starting
// one when fewer than authWorkers run.
func (s *Service) authConcurrently(r micro.Request) {
	// Decided after this handler returns: answered on the connection,
	// not through micro's request (rpc.Detach).
	if s.auth.push(rpc.Detach(r, s.cfg.NC), time.Now()) {
		go s.authWorker()
	}
}

// authWorker decides queued requests, newest first, until none is left.
func (s *Service) authWorker() {
	for {
		now := time.Now()
		r, ok := s.auth.pop(now)
		if n := s.auth.overload(now, 10*time.Second); n > 0 {
			s.cfg.Log.Warn("auth callout overloaded: requests dropped undecided (their connections time out at the server and retry with backoff)",
				"dropped", n, "max_wait", authMaxWait)
		}
		if !ok {
			return
		}
		s.handleAuth(r)
	}
}

// expired says whether a callout request whose claims expire at expires
// (Unix seconds; 0: never) is past it at now: the server has stopped
// waiting for the answer.
func expired(expires int64, now time.Time) bool {
	return expires > 0 && now.Unix() >= expires
}

// handleAuth answers the server's auth callout request.
func (s *Service) handleAuth(r micro.Request) {
	log := s.cfg.Log
	req, err := jwt.DecodeAuthorizationRequestClaims(string(r.Data()))
	if err != nil {
		log.Warn("auth callout: undecodable request", "err", err)
		return // no answer: the server refuses after its timeout
	}
	if expired(req.Expires, time.Now()) {
		// The server has given up on this connection (its authorization
		// timeout): deciding would only delay the ones still waiting.
		log.Debug("auth callout: request expired before its turn; dropped", "key", req.ConnectOptions.Nkey)
		return
	}
	respond := func(userJWT, denial string) {
		rc := jwt.NewAuthorizationResponseClaims(req.UserNkey)
		rc.Audience = req.Server.ID
		rc.Jwt = userJWT
		rc.Error = denial
		token, err := rc.Encode(s.cfg.Issuer)
		if err != nil {
			log.Error("auth callout: sign response", "err", err)
			return
		}
		_ = r.Respond([]byte(token))
	}
	key := req.ConnectOptions.Nkey
	if err := verifyNonce(key, req.ClientInformation.Nonce, req.ConnectOptions.SignedNonce); err != nil {
		log.Warn("auth denied", "key", key, "host", req.ClientInformation.Host, "reason", err)
		respond("", err.Error())
		return
	}
	var grant Grant
	if req.ClientInformation.Kind == leafConnection {
		// A child site linking: its leaf key, or a site token to consume
		// (admitLeaf logs a refusal itself).
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		if grant, err = s.admitLeaf(ctx, key, req.ConnectOptions.Username, req.ConnectOptions.Password, req.ClientInformation.Host); err != nil {
			respond("", err.Error())
			return
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		id, lookupErr := s.ids.forAuth(ctx, key)
		if grant, err = decide(s.cfg.Site, key, id, lookupErr, time.Now()); err != nil {
			log.Warn("auth denied", "key", key, "host", req.ClientInformation.Host, "reason", err)
			respond("", err.Error())
			return
		}
	}
	uc := userClaims(req.UserNkey, grant)
	userJWT, err := uc.Encode(s.cfg.Issuer)
	if err != nil {
		log.Error("auth callout: sign user", "err", err)
		respond("", "internal error")
		return
	}
	log.Debug("auth granted", "key", key, "as", grant.Name)
	respond(userJWT, "")
}

// userClaims are the user JWT claims of a grant.
func userClaims(userNkey string, grant Grant) *jwt.UserClaims {
	uc := jwt.NewUserClaims(userNkey)
	uc.Audience = Account
	uc.Name = grant.Name
	uc.Pub.Allow.Add(grant.Pub...)
	uc.Sub.Allow.Add(grant.Sub...)
	if grant.Responses {
		// Once per request, and for as long as the longest request an
		// agent answers takes: a session grant waits for the user's
		// consent up to MaxPromptTimeout.
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: contracts.MaxPromptTimeout + time.Minute}
	}
	if !grant.Expires.IsZero() {
		uc.Expires = grant.Expires.Unix()
	}
	if grant.Leaf {
		uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeLeafnode)
	}
	return uc
}
