package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The database is a tree of buckets; every value is a byte string:
//
//	meta/
//	|--> version      -> schema version, decimal ("1"); see upgrade.go
//	identity/         (keys absent until the site approves the enrollment)
//	|--> client_id    -> client ID the site assigned
//	|--> agent_key    -> the agent's NKey public key the site admitted
//	|--> site         -> site code
//	|--> site_key     -> pinned site signing key (NKey public key)
//	|--> name         -> client name
//	|--> server       -> NATS URL enrolled through
//	|--> enrolled_at  -> RFC 3339 time with nanoseconds, UTC
//	|--> ca_fingerprint -> pinned site CA, "sha256:<hex>" (absent: none pinned;
//	                     optional, so no schema step added it)
//
//	outbox/           (schema 2) store-and-forward to the site
//	|--> <seq>        -> JSON Entry; seq is 8-byte big-endian from NextSequence
//	report/           (schema 2)
//	|--> last         -> JSON Report: the inventory last enqueued, base of the next delta
//	policy/           (schema 3) see policy.go
//	|--> applied      -> JSON: revision, issued, expires, applied, settings, origins
//	|--> signed       -> the signed policy as received
//	|--> local        -> JSON LocalConfig: the site's Remote Assistance values
//	|--> user         -> JSON: the user's own Remote Assistance values
//	|--> rcu          -> JSON RemoteControlUsers (absent: none)
//	|--> rejected     -> JSON: the last policy rejected (absent: none)
//	grants/           (schema 4) see sessions.go
//	|--> <grant id>   -> RFC 3339 time until which the ID is remembered
//	sessionlog/       (schema 4)
//	|--> <seq>        -> JSON SessionRecord; seq is 8-byte big-endian from NextSequence
//	content/          (schema 5) see content.go
//	|--> <package>@<version> -> JSON ContentEntry
//
// A later schema adds sibling buckets in an upgrade step.
var (
	metaBucket = []byte("meta")
	versionKey = []byte("version")

	identityBucket = []byte("identity")
	clientIDKey    = []byte("client_id")
	agentKeyKey    = []byte("agent_key")
	siteKey        = []byte("site")
	siteKeyKey     = []byte("site_key")
	nameKey        = []byte("name")
	serverKey      = []byte("server")
	enrolledAtKey  = []byte("enrolled_at")
	caKey          = []byte("ca_fingerprint")
)

// lockTimeout is how long Open waits for another process to release the
// database before it reports ErrLocked.
const lockTimeout = time.Second

// BoltStore is the Store kept in <dir>/state.db.
type BoltStore struct {
	dir string
	db  *bolt.DB

	mu      sync.RWMutex
	closed  bool
	commits atomic.Uint64
}

var _ Store = (*BoltStore)(nil)

// Open opens (creating if needed, mode 0700) the state dir and its state.db,
// upgrading the schema when it is older than this agent's. Only one process
// may have a state dir open; a second one fails with ErrLocked after about
// a second. A damaged file fails with ErrCorrupt, never a panic.
func Open(dir string) (*BoltStore, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no state dir given", ErrDirUnusable)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	db, err := openDB(dir, path)
	if err != nil {
		return nil, err
	}
	return &BoltStore{dir: dir, db: db}, nil
}

// checkDir creates dir and proves that this process can write in it.
func checkDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v (choose another --state-dir)", ErrDirUnusable, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("%w: state dir %s is not writable by this user (uid %d): %v", ErrDirUnusable, dir, os.Getuid(), err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("%w: state dir %s: %v", ErrDirUnusable, dir, err)
	}
	return nil
}

// openDB opens the bbolt file and brings its schema up to date. bbolt can
// panic on some damaged files; the panic is turned into ErrCorrupt here and
// nowhere else.
func openDB(dir, path string) (db *bolt.DB, err error) {
	var file *os.File // kept to release the lock if bbolt panics inside Open
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if db != nil {
			closeQuietly(db)
		} else if file != nil {
			file.Close()
		}
		db, err = nil, corrupt(path, fmt.Errorf("bbolt: %v", r))
	}()

	opts := &bolt.Options{
		Timeout: lockTimeout,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		},
	}
	db, err = bolt.Open(path, 0o600, opts)
	if err != nil {
		db = nil
		return nil, openError(dir, path, err)
	}
	if err := migrate(db, path); err != nil {
		closeQuietly(db)
		db = nil
		return nil, err
	}
	return db, nil
}

func openError(dir, path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("state dir %s is in use by another steward-agent (%w)", dir, ErrLocked)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %v", ErrDirUnusable, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return corrupt(path, err)
	}
	// Anything else bbolt says about an existing file is about its content.
	if fi, statErr := os.Stat(path); statErr == nil && fi.Mode().IsRegular() {
		return corrupt(path, err)
	}
	return fmt.Errorf("open %s: %w", path, err)
}

func corrupt(path string, cause error) error {
	return fmt.Errorf("%w: %s cannot be read (%v); stop the agent and move the file aside, "+
		"then run the agent again to enroll this machine anew", ErrCorrupt, path, cause)
}

// closeQuietly closes a database that is being abandoned (perhaps damaged).
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	_ = db.Close()
}

// Close closes the database and releases the state dir.
func (s *BoltStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// view and update run fn in a transaction unless the store is closed.
func (s *BoltStore) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *BoltStore) update(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	err := s.db.Update(fn)
	if err == nil {
		s.commits.Add(1)
	}
	return err
}

// Commits counts the write transactions committed since Open (the
// benchmark of policy apply counts them).
func (s *BoltStore) Commits() uint64 { return s.commits.Load() }

// GetIdentity implements Store.
func (s *BoltStore) GetIdentity() (Identity, bool, error) {
	var id Identity
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(identityBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, identityBucket)
		}
		if b.Get(clientIDKey) == nil {
			return nil
		}
		// string(...) copies: bbolt's slices are only valid inside the tx.
		id = Identity{
			ClientID: string(b.Get(clientIDKey)),
			AgentKey: string(b.Get(agentKeyKey)),
			Site:     string(b.Get(siteKey)),
			SiteKey:  string(b.Get(siteKeyKey)),
			Name:     string(b.Get(nameKey)),
			Server:   string(b.Get(serverKey)),

			CAFingerprint: string(b.Get(caKey)),
		}
		t, err := time.Parse(time.RFC3339Nano, string(b.Get(enrolledAtKey)))
		if err != nil {
			return fmt.Errorf("%w: identity enrolled_at: %v", ErrCorrupt, err)
		}
		id.EnrolledAt = t
		ok = true
		return nil
	})
	if err != nil {
		return Identity{}, false, fmt.Errorf("read identity: %w", err)
	}
	return id, ok, nil
}

// PutIdentity implements Store.
func (s *BoltStore) PutIdentity(id Identity) error {
	if err := id.Validate(); err != nil {
		return err
	}
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(identityBucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrSchema, identityBucket)
		}
		for _, kv := range []struct {
			k []byte
			v string
		}{
			{clientIDKey, id.ClientID},
			{agentKeyKey, id.AgentKey},
			{siteKey, id.Site},
			{siteKeyKey, id.SiteKey},
			{nameKey, id.Name},
			{serverKey, id.Server},
			{enrolledAtKey, id.EnrolledAt.UTC().Format(time.RFC3339Nano)},
		} {
			if err := b.Put(kv.k, []byte(kv.v)); err != nil {
				return err
			}
		}
		if id.CAFingerprint == "" {
			return b.Delete(caKey)
		}
		return b.Put(caKey, []byte(id.CAFingerprint))
	})
	if err != nil {
		return fmt.Errorf("store identity: %w", err)
	}
	return nil
}
