// Package state is the agent's durable local state: who this agent is (its
// client ID and the site it enrolled with, including the pinned site signing
// key), kept in a bbolt database at <state dir>/state.db.
//
// Store is the interface the agent uses; BoltStore is the real one and
// MemStore keeps everything in memory for tests. One test suite runs against
// both, so they cannot drift apart.
//
// The outbox keeps messages for the site (status messages, inventory
// reports, policy acknowledgements) from before they are sent until the
// site acknowledges them. The policy bucket (schema 3) holds the applied
// policy, the local configuration layer and the Remote Control Users
// record. The grants and session log buckets (schema 4) hold the session
// grants taken (against replays) and the log of remote sessions. The
// content bucket (schema 5) is the index of the package versions the agent
// holds under <state dir>/content. Each schema adds its top-level buckets
// in an upgrade step (see upgrade.go).
package state

import (
	"errors"
	"fmt"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// FileName is the name of the database inside the state dir.
const FileName = "state.db"

// Errors the store returns, to be tested with errors.Is. Their messages say
// what the operator can do.
var (
	// ErrLocked means another process (normally another steward-agent) has
	// the state dir's database open.
	ErrLocked = errors.New("state.db is locked")

	// ErrCorrupt means state.db is not a readable bbolt database.
	ErrCorrupt = errors.New("state.db is damaged")

	// ErrSchema means state.db was written by an incompatible agent version
	// (newer than this one), or is a bbolt file that is not agent state.
	ErrSchema = errors.New("state.db has an unknown schema")

	// ErrDirUnusable means the state dir cannot be created or written.
	ErrDirUnusable = errors.New("state dir is not usable")

	// ErrClosed is returned by a store after Close.
	ErrClosed = errors.New("state store is closed")
)

// Identity is who this agent is at its site. It is written once, in one
// transaction, when the site approves the enrollment.
type Identity struct {
	ClientID   string    // the client ID the site assigned (a UUID)
	AgentKey   string    // the agent's NKey public key the site admitted
	Site       string    // site code
	SiteKey    string    // the site signing key (NKey public key), pinned
	Name       string    // the client name the agent enrolled with
	Server     string    // the NATS URL the agent enrolled through
	EnrolledAt time.Time // when the site admitted the agent (site clock)
	// CAFingerprint is the pinned site CA (contracts.CertFingerprint), from
	// the token or first use; "" when the agent has only met the site in
	// plain text on loopback.
	CAFingerprint string
}

// Validate checks that the identity is complete and that its names can
// stand in subjects.
func (id Identity) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"client id", id.ClientID},
		{"agent key", id.AgentKey},
		{"site", id.Site},
		{"site key", id.SiteKey},
	} {
		if err := contracts.ValidToken(f.v); err != nil {
			return fmt.Errorf("identity %s: %w", f.name, err)
		}
	}
	if err := contracts.ValidName(id.Name); err != nil {
		return fmt.Errorf("identity name: %w", err)
	}
	if id.EnrolledAt.IsZero() {
		return errors.New("identity enrolled-at time is missing")
	}
	if id.CAFingerprint != "" {
		if err := contracts.ValidFingerprint(id.CAFingerprint); err != nil {
			return fmt.Errorf("identity site CA: %w", err)
		}
	}
	return nil
}

// Store is the agent's state. Implementations are safe for concurrent use.
type Store interface {
	// GetIdentity returns the stored identity; ok is false when the agent
	// has not enrolled yet.
	GetIdentity() (id Identity, ok bool, err error)

	// PutIdentity validates and stores id, replacing any previous identity,
	// in one transaction.
	PutIdentity(id Identity) error

	// Enqueue appends entries to the outbox in one transaction (durable
	// when it returns) and returns their sequence numbers. With max > 0 it
	// refuses with ErrOutboxFull rather than grow past max entries.
	Enqueue(max int, entries ...Entry) ([]uint64, error)

	// Pending returns up to limit outbox entries, oldest first (all when
	// limit <= 0), leaving out entries of the kinds in skip.
	Pending(limit int, skip ...string) ([]Entry, error)

	// Remove deletes acknowledged entries in one transaction.
	Remove(seqs ...uint64) error

	// OutboxLen counts the entries waiting.
	OutboxLen() (int, error)

	// LastReport returns the inventory last reported; ok is false before
	// the first report.
	LastReport() (r Report, ok bool, err error)

	// EnqueueReport enqueues an inventory report and records r as the last
	// report, in one transaction, so the next delta's base is exactly what
	// the outbox holds.
	EnqueueReport(max int, e Entry, r Report) error

	// Policy returns the policy state (its zero value before the first
	// policy).
	Policy() (PolicyState, error)

	// UpdatePolicy runs fn on the policy state and, unless fn returns an
	// error (ErrNoChange to write nothing), stores the state as fn left it
	// and enqueues the entries fn returns, all in one transaction. A full
	// outbox does not stop the change: past max (and a reserve, see
	// stateRoom) the entries are dropped and counted in dropped.
	UpdatePolicy(max int, fn func(p *PolicyState) ([]Entry, error)) (dropped int, err error)

	// UseGrant records a session grant's ID as taken, remembered until
	// until, in one transaction; fresh is false when the ID was taken
	// before (a replay). IDs remembered until before now are forgotten.
	UseGrant(id string, until, now time.Time) (fresh bool, err error)

	// LogSession writes rec to the session log: a new record when rec.Seq
	// is 0, else it replaces record rec.Seq. It returns the record's
	// sequence number. The log keeps the last SessionLogMax records.
	LogSession(rec SessionRecord) (uint64, error)

	// SessionLog returns up to limit records of the session log, newest
	// first (all when limit <= 0).
	SessionLog(limit int) ([]SessionRecord, error)

	// ContentIndex returns the content index, sorted by package then
	// version.
	ContentIndex() ([]ContentEntry, error)

	// UpdateContent runs fn on the content index (keyed by
	// "<package>@<version>"; fn adds, changes and deletes entries) and,
	// unless fn returns an error, stores the index as fn left it and
	// enqueues the entries fn returns, all in one transaction; a full
	// outbox drops the entries as UpdatePolicy's does. Entries must
	// Validate.
	UpdateContent(max int, fn func(idx map[string]ContentEntry) ([]Entry, error)) (dropped int, err error)

	// Close releases the store; later calls return ErrClosed.
	Close() error
}
