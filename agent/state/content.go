package state

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/contracts"
	bolt "go.etcd.io/bbolt"
)

// The content index (schema 5): the package versions the agent holds,
// fetches or failed to fetch, one JSON ContentEntry per version.
//
//	content/
//	|--> <package>@<version>  -> JSON ContentEntry
var contentBucket = []byte("content")

// ContentDownloading is the state of a version the agent is fetching (its
// files are in the staging directory); the other states are
// contracts.ContentInstalled and contracts.ContentFailed.
const ContentDownloading = "downloading"

// ContentEntry is one package version in the content index.
type ContentEntry struct {
	Package   string    `json:"package"`
	Version   string    `json:"version"`
	Digest    string    `json:"digest"` // contracts.SignedManifest.Digest
	State     string    `json:"state"`  // ContentDownloading | installed | failed
	Size      int64     `json:"size"`   // the manifest's size (the assignment's before the manifest is known)
	Bytes     int64     `json:"bytes,omitempty"`
	Path      string    `json:"path,omitempty"` // where it is installed
	Installed time.Time `json:"installed,omitzero"`
	Updated   time.Time `json:"updated"`
	Error     string    `json:"error,omitempty"` // why it failed
	// Assigned is whether the last content list the agent accepted names
	// this version; a version no longer assigned stays installed.
	Assigned bool `json:"assigned"`
	// Reported is whether the site acknowledged the report of this state.
	Reported bool `json:"reported"`
	// Failures counts the failed attempts in a row of this digest, and
	// Retry is when a failed version is tried again (sooner when the site
	// says the assignments changed).
	Failures int       `json:"failures,omitempty"`
	Retry    time.Time `json:"retry,omitzero"`
}

// Key is the entry's key in the index, "<package>@<version>".
func (e ContentEntry) Key() string { return contracts.PackageKey(e.Package, e.Version) }

// Validate checks the entry's names (they make paths under the content
// directory) and state.
func (e ContentEntry) Validate() error {
	if err := contracts.ValidPackageName(e.Package); err != nil {
		return fmt.Errorf("content entry: %w", err)
	}
	if err := contracts.ValidPackageVersion(e.Version); err != nil {
		return fmt.Errorf("content entry %s: %w", e.Package, err)
	}
	switch e.State {
	case ContentDownloading, contracts.ContentInstalled, contracts.ContentFailed:
	default:
		return fmt.Errorf("content entry %s: state %q", e.Key(), e.State)
	}
	return nil
}

// sortContent orders entries by package, then version.
func sortContent(out []ContentEntry) {
	slices.SortFunc(out, func(a, b ContentEntry) int {
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
}

// checkIndex validates every entry of idx and that each is under its key.
func checkIndex(idx map[string]ContentEntry) error {
	for k, e := range idx {
		if err := e.Validate(); err != nil {
			return err
		}
		if k != e.Key() {
			return fmt.Errorf("content entry %s stored under key %q", e.Key(), k)
		}
	}
	return nil
}

// ContentIndex implements Store.
func (s *BoltStore) ContentIndex() ([]ContentEntry, error) {
	out := []ContentEntry{}
	err := s.view(func(tx *bolt.Tx) error {
		idx, err := readContent(tx)
		if err != nil {
			return err
		}
		out = slices.AppendSeq(out, maps.Values(idx))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("content index: %w", err)
	}
	sortContent(out)
	return out, nil
}

func readContent(tx *bolt.Tx) (map[string]ContentEntry, error) {
	b := tx.Bucket(contentBucket)
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %q is missing", ErrSchema, contentBucket)
	}
	idx := map[string]ContentEntry{}
	err := b.ForEach(func(k, v []byte) error {
		var e ContentEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("%w: content entry %q: %v", ErrCorrupt, k, err)
		}
		idx[string(k)] = e
		return nil
	})
	return idx, err
}

// UpdateContent implements Store: the read, the change and the outbox
// entries are one transaction.
func (s *BoltStore) UpdateContent(max int, fn func(idx map[string]ContentEntry) ([]Entry, error)) (dropped int, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		dropped = 0 // a retried transaction starts afresh
		b, ob := tx.Bucket(contentBucket), tx.Bucket(outboxBucket)
		if b == nil || ob == nil {
			return fmt.Errorf("%w: content or outbox bucket is missing", ErrSchema)
		}
		before, err := readContent(tx)
		if err != nil {
			return err
		}
		idx := maps.Clone(before)
		entries, err := fn(idx)
		if err != nil {
			return err
		}
		if err := checkIndex(idx); err != nil {
			return err
		}
		if !stateRoom(max, ob.Stats().KeyN, len(entries)) {
			dropped, entries = len(entries), nil
		}
		if _, err := putEntries(ob, entries); err != nil {
			return err
		}
		for k := range before {
			if _, ok := idx[k]; !ok {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		for k, e := range idx {
			if old, ok := before[k]; ok && old == e {
				continue
			}
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("content index: %w", err)
	}
	return dropped, nil
}

// ContentIndex implements Store.
func (m *MemStore) ContentIndex() ([]ContentEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := slices.AppendSeq([]ContentEntry{}, maps.Values(m.content))
	sortContent(out)
	return out, nil
}

// UpdateContent implements Store.
func (m *MemStore) UpdateContent(max int, fn func(idx map[string]ContentEntry) ([]Entry, error)) (dropped int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	idx := maps.Clone(m.content)
	if idx == nil {
		idx = map[string]ContentEntry{}
	}
	entries, err := fn(idx)
	if err != nil {
		return 0, fmt.Errorf("content index: %w", err)
	}
	if err := checkIndex(idx); err != nil {
		return 0, fmt.Errorf("content index: %w", err)
	}
	if !stateRoom(max, len(m.outbox), len(entries)) {
		dropped, entries = len(entries), nil
	}
	for _, e := range entries {
		m.seq++
		e.Seq = m.seq
		m.outbox = append(m.outbox, e)
	}
	m.content = idx
	return dropped, nil
}
