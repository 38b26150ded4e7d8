package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
	"github.com/stewardhq/steward/services/internal/lookup"
)

// Kinds of principal.
const (
	KindAgent    = "agent"
	KindOperator = "operator"
)

// Identity is what the site knows of one NKey. Agents carry a client ID and
// status; operators a name, roles, and optional expiry or revocation.
type Identity struct {
	Key      string    `json:"key"`
	Kind     string    `json:"kind"`
	ClientID string    `json:"clientId,omitempty"`
	Name     string    `json:"name"`
	Status   string    `json:"status,omitempty"` // agents: pending | approved | blocked
	Roles    []string  `json:"roles,omitempty"`  // bootstrap operator only, informational: the RBAC model (admin-rbac) decides
	Revoked  bool      `json:"revoked,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	By       string    `json:"by,omitempty"` // who enrolled or created it
	// Reason is why an agent enrolled pending: its token's refusal.
	Reason string `json:"reason,omitempty"`

	// What the agent said of itself at enrollment.
	Hostname     string `json:"hostname,omitempty"`
	OS           string `json:"os,omitempty"`
	Arch         string `json:"arch,omitempty"`
	AgentVersion string `json:"agentVersion,omitempty"`
	Capability   int    `json:"capability,omitempty"`
}

// Client is the identity as a contracts.Client for events and answers.
func (id Identity) Client() contracts.Client {
	return contracts.Client{
		ID: id.ClientID, Name: id.Name, Hostname: id.Hostname, OS: id.OS, Arch: id.Arch,
		AgentVersion: id.AgentVersion, Capability: id.Capability, Status: id.Status,
		FirstSeen: id.Created, Key: id.Key, PendingReason: id.Reason,
	}
}

// identities is the identity bucket, keyed by NKey public key.
type identities struct {
	kv    jetstream.KeyValue
	cache *agentCache // nil: every read goes to the bucket
}

// forAuth returns the identity of key for the auth callout: from the cache
// when it decides for the key, else from the bucket.
func (s *identities) forAuth(ctx context.Context, key string) (Identity, error) {
	if id, ok := s.cache.agent(key); ok {
		return id, nil
	}
	id, _, err := s.get(ctx, key)
	return id, err
}

// settle waits (at most cacheSettle) until this instance's callout no
// longer admits key as an approved agent, so that a kick that follows is
// not undone by the reconnect.
func (s *identities) settle(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, cacheSettle)
	defer cancel()
	return s.cache.awaitNotApproved(ctx, key)
}

// watch starts the cache of approved and blocked agents, fed until ctx
// ends; revoked (may be nil) is called, on the watch's goroutine, with each
// approved agent the watch then sees blocked or deleted.
func (s *identities) watch(ctx context.Context, revoked func(was Identity)) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("admin: watch identities: %w", err)
	}
	s.cache = newAgentCache(revoked)
	go s.cache.follow(w)
	return nil
}

var errNoIdentity = errors.New("no such identity")

// get returns the identity and its revision; errNoIdentity when unknown.
func (s *identities) get(ctx context.Context, key string) (Identity, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Identity{}, 0, errNoIdentity
	}
	if err != nil {
		return Identity{}, 0, err
	}
	var id Identity
	if err := json.Unmarshal(e.Value(), &id); err != nil {
		return Identity{}, 0, fmt.Errorf("identity %s is unreadable: %w", key, err)
	}
	return id, e.Revision(), nil
}

// create stores a new identity; CodeConflict when the key exists.
func (s *identities) create(ctx context.Context, id Identity) error {
	data, _ := json.Marshal(id)
	_, err := s.kv.Create(ctx, id.Key, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return contracts.Errorf(contracts.CodeConflict, "identity %s already exists", id.Key)
	}
	return err
}

// update applies fn to the stored identity with optimistic concurrency,
// retrying when another instance changed it first.
func (s *identities) update(ctx context.Context, key string, fn func(*Identity) error) (Identity, error) {
	for attempt := 0; ; attempt++ {
		id, rev, err := s.get(ctx, key)
		if err != nil {
			return Identity{}, err
		}
		if err := fn(&id); err != nil {
			return Identity{}, err
		}
		id.Updated = time.Now().UTC()
		data, _ := json.Marshal(id)
		_, err = s.kv.Update(ctx, key, data, rev)
		if err == nil {
			return id, nil
		}
		if attempt >= 10 || !cas.Lost(err) {
			return Identity{}, err
		}
	}
}

func (s *identities) delete(ctx context.Context, key string) error {
	return s.kv.Delete(ctx, key)
}

// ensureOperator creates the operator identity if the key is unknown.
func (s *identities) ensureOperator(ctx context.Context, key, name string, roles []string) error {
	now := time.Now().UTC()
	err := s.create(ctx, Identity{Key: key, Kind: KindOperator, Name: name, Roles: roles, Created: now, Updated: now, By: "site-init"})
	if contracts.CodeOf(err) == contracts.CodeConflict {
		return nil
	}
	return err
}

// all lists every identity.
func (s *identities) all(ctx context.Context) ([]Identity, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []Identity
	for key := range lister.Keys() {
		id, _, err := s.get(ctx, key)
		if errors.Is(err, errNoIdentity) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// client resolves a client name or ID to its identity.
func (s *identities) client(ctx context.Context, ref string) (Identity, error) {
	all, err := s.all(ctx)
	if err != nil {
		return Identity{}, err
	}
	var agents []Identity
	for _, id := range all {
		if id.Kind == KindAgent {
			agents = append(agents, id)
		}
	}
	return lookup.One("client", ref, agents,
		func(i Identity) string { return i.ClientID },
		func(i Identity) string { return i.Name })
}
