package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stewardhq/steward/contracts"
	bolt "go.etcd.io/bbolt"
)

// PolicyState is the policy the agent holds (schema 3): the last policy it
// applied (its revision, times, the signed message as received and the
// resultant settings), its local configuration layer of Remote Assistance,
// the local user's own Remote Assistance values, the Remote Control Users
// record and the last policy it rejected. It changes only through
// UpdatePolicy, in one transaction with the acknowledgement that reports
// the change.
type PolicyState struct {
	Revision uint64                     `json:"revision"`
	Issued   time.Time                  `json:"issued,omitzero"`
	Expires  time.Time                  `json:"expires,omitzero"`
	Applied  time.Time                  `json:"applied,omitzero"`
	Settings contracts.SettingsSections `json:"settings"`
	// Origins and Signed are replaced by an update, never changed in
	// place: copies of a PolicyState share them.
	Origins map[string]contracts.Named       `json:"origins,omitempty"`
	Signed  json.RawMessage                  `json:"-"` // the contracts.SignedPolicy as received
	Local   LocalConfig                      `json:"-"`
	User    contracts.RemoteAssistanceValues `json:"-"`
	// RemoteControlUsers is the local "Remote Control Users" record: the
	// permitted viewers, kept while remote tools are enabled and left in
	// place after they are disabled, until a reset; nil when there is none.
	RemoteControlUsers *RemoteControlUsers        `json:"-"`
	LastRejection      *contracts.PolicyRejection `json:"-"`
}

// LocalConfig is the site's layer of the client's local Remote Assistance
// configuration: the values the site wrote while it managed Remote
// Assistance (Values nil: it wrote none, or they were reset). Managed is
// false once the site stopped managing and the values stay in force
// ("tattooed"). Override and RevertOnUnmanage are those of the policy that
// wrote the values.
type LocalConfig struct {
	Values           *contracts.RemoteAssistanceValues `json:"values,omitempty"`
	Managed          bool                              `json:"managed"`
	Override         bool                              `json:"override"`
	RevertOnUnmanage bool                              `json:"revertOnUnmanage"`
	Revision         uint64                            `json:"revision,omitempty"` // the policy that wrote them
	Written          time.Time                         `json:"written,omitzero"`
}

// RemoteControlUsers is the local record of who may control the client.
type RemoteControlUsers struct {
	Members  []string  `json:"members"`
	Revision uint64    `json:"revision"`
	Updated  time.Time `json:"updated"`
}

// ErrNoChange is returned by an UpdatePolicy function to write nothing.
var ErrNoChange = errors.New("no change")

// The policy bucket (schema 3):
//
//	policy/
//	|--> applied   -> JSON: revision, issued, expires, applied, settings, origins
//	|--> signed    -> the signed policy as received (JSON contracts.SignedPolicy)
//	|--> local     -> JSON LocalConfig: the site's Remote Assistance values
//	|--> user      -> JSON contracts.RemoteAssistanceValues: the user's own
//	|--> rcu       -> JSON RemoteControlUsers (absent: none)
//	|--> rejected  -> JSON contracts.PolicyRejection: the last one (absent: none)
var (
	policyBucket = []byte("policy")
	appliedKey   = []byte("applied")
	signedKey    = []byte("signed")
	localKey     = []byte("local")
	userKey      = []byte("user")
	rcuKey       = []byte("rcu")
	rejectedKey  = []byte("rejected")
)

// readPolicy decodes the policy bucket.
func readPolicy(b *bolt.Bucket) (PolicyState, error) {
	var p PolicyState
	dec := func(key []byte, v any) error {
		data := b.Get(key)
		if data == nil {
			return nil
		}
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("%w: policy %s: %v", ErrCorrupt, key, err)
		}
		return nil
	}
	for _, kv := range []struct {
		k []byte
		v any
	}{{appliedKey, &p}, {localKey, &p.Local}, {userKey, &p.User}, {rcuKey, &p.RemoteControlUsers}, {rejectedKey, &p.LastRejection}} {
		if err := dec(kv.k, kv.v); err != nil {
			return PolicyState{}, err
		}
	}
	if s := b.Get(signedKey); s != nil {
		p.Signed = append(json.RawMessage(nil), s...)
	}
	return p, nil
}

// writePolicy stores p in the policy bucket.
func writePolicy(b *bolt.Bucket, p PolicyState) error {
	put := func(key []byte, v any, absent bool) error {
		if absent {
			return b.Delete(key)
		}
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return b.Put(key, data)
	}
	for _, kv := range []struct {
		k      []byte
		v      any
		absent bool
	}{
		{appliedKey, p, false},
		{localKey, p.Local, false},
		{userKey, p.User, false},
		{rcuKey, p.RemoteControlUsers, p.RemoteControlUsers == nil},
		{rejectedKey, p.LastRejection, p.LastRejection == nil},
	} {
		if err := put(kv.k, kv.v, kv.absent); err != nil {
			return err
		}
	}
	if p.Signed == nil {
		return b.Delete(signedKey)
	}
	return b.Put(signedKey, p.Signed)
}

// Policy implements Store.
func (s *BoltStore) Policy() (PolicyState, error) {
	var p PolicyState
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(policyBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, policyBucket)
		}
		var err error
		p, err = readPolicy(b)
		return err
	})
	return p, err
}

// UpdatePolicy implements Store: the read, the change and the outbox
// entries are one transaction, one commit.
func (s *BoltStore) UpdatePolicy(max int, fn func(p *PolicyState) ([]Entry, error)) (dropped int, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		dropped = 0 // a retried transaction starts afresh
		b, ob := tx.Bucket(policyBucket), tx.Bucket(outboxBucket)
		if b == nil || ob == nil {
			return fmt.Errorf("%w: policy or outbox bucket is missing", ErrSchema)
		}
		p, err := readPolicy(b)
		if err != nil {
			return err
		}
		entries, err := fn(&p)
		if err != nil {
			return err
		}
		if !stateRoom(max, ob.Stats().KeyN, len(entries)) {
			dropped, entries = len(entries), nil
		}
		if _, err := putEntries(ob, entries); err != nil {
			return err
		}
		return writePolicy(b, p)
	})
	return dropped, err
}

// clonePolicy is a copy that shares nothing a change may alter in place.
// Origins and Signed are shared: they are never changed in place, only
// replaced (see PolicyState), and copying them was a third of the
// in-memory store's cost of applying a policy.
func clonePolicy(p PolicyState) PolicyState {
	out := p
	out.Settings = p.Settings.Clone()
	if p.Local.Values != nil {
		v := cloneRA(*p.Local.Values)
		out.Local.Values = &v
	}
	out.User = cloneRA(p.User)
	if p.RemoteControlUsers != nil {
		r := *p.RemoteControlUsers
		r.Members = append([]string{}, r.Members...)
		out.RemoteControlUsers = &r
	}
	if p.LastRejection != nil {
		r := *p.LastRejection
		out.LastRejection = &r
	}
	return out
}

func cloneRA(v contracts.RemoteAssistanceValues) contracts.RemoteAssistanceValues {
	out := contracts.RemoteAssistanceValues{}
	if v.Unsolicited != nil {
		b := *v.Unsolicited
		out.Unsolicited = &b
	}
	if v.Solicited != nil {
		b := *v.Solicited
		out.Solicited = &b
	}
	if v.Level != nil {
		l := *v.Level
		out.Level = &l
	}
	return out
}

// Policy implements Store.
func (m *MemStore) Policy() (PolicyState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return PolicyState{}, ErrClosed
	}
	return clonePolicy(m.policy), nil
}

// UpdatePolicy implements Store.
func (m *MemStore) UpdatePolicy(max int, fn func(p *PolicyState) ([]Entry, error)) (dropped int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	p := clonePolicy(m.policy)
	entries, err := fn(&p)
	if err != nil {
		return 0, err
	}
	if !stateRoom(max, len(m.outbox), len(entries)) {
		dropped, entries = len(entries), nil
	}
	for _, e := range entries {
		m.seq++
		e.Seq = m.seq
		m.outbox = append(m.outbox, e)
	}
	m.policy = p // fn's copy: the store never changes it in place
	return dropped, nil
}
