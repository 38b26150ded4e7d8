package state

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout of state.db this agent reads and writes.
//
//   - 1: meta/version and identity/.
//   - 2: outbox/ (store-and-forward of messages to the site) and report/
//     (the last inventory reported, base of the next delta).
//   - 3: policy/ (the applied policy, the local configuration layer, the
//     user's own values, the Remote Control Users record).
//   - 4: grants/ (the session grants taken, against replays) and
//     sessionlog/ (the remote sessions that ran, and the grants refused).
//   - 5: content/ (the index of the package versions held under
//     <state dir>/content).
const SchemaVersion = 5

// upgrades[v] brings a database at schema version v to v+1, inside the one
// write transaction that also records the new version. Version 0 is a new,
// empty file. Add a step (and a testdata/state-v<N>.db written by the old
// agent) for every schema change; never edit a released step.
var upgrades = []func(tx *bolt.Tx) error{
	0: upgradeV0ToV1,
	1: upgradeV1ToV2,
	2: upgradeV2ToV3,
	3: upgradeV3ToV4,
	4: upgradeV4ToV5,
}

// upgradeV4ToV5 adds the content index, empty: the agent holds no content.
func upgradeV4ToV5(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(contentBucket); err != nil {
		return fmt.Errorf("create bucket %q: %w", contentBucket, err)
	}
	return nil
}

// upgradeV3ToV4 adds the grants and session log buckets, empty.
func upgradeV3ToV4(tx *bolt.Tx) error {
	for _, name := range [][]byte{grantsBucket, sessionLogBucket} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	return nil
}

// upgradeV2ToV3 adds the policy bucket, empty: the agent has applied no
// policy yet.
func upgradeV2ToV3(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(policyBucket); err != nil {
		return fmt.Errorf("create bucket %q: %w", policyBucket, err)
	}
	return nil
}

// upgradeV1ToV2 adds the outbox and the last inventory report.
func upgradeV1ToV2(tx *bolt.Tx) error {
	for _, name := range [][]byte{outboxBucket, reportBucket} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	return nil
}

// upgradeV0ToV1 lays out a new database.
func upgradeV0ToV1(tx *bolt.Tx) error {
	for _, name := range [][]byte{metaBucket, identityBucket} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	return nil
}

// readVersion returns the schema version recorded in tx: 0 for an empty
// file, ErrSchema for a bbolt file that is not agent state.
func readVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return 0, fmt.Errorf("%w: the file has no schema version; it is not a steward-agent state file", ErrSchema)
		}
		return 0, nil
	}
	raw := meta.Get(versionKey)
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%w: schema version %q is not a positive number", ErrSchema, raw)
	}
	return v, nil
}

// migrate checks the schema version of db and runs the upgrade steps it
// needs, all in one transaction.
func migrate(db *bolt.DB, path string) error {
	var v int
	if err := db.View(func(tx *bolt.Tx) (err error) { v, err = readVersion(tx); return err }); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case v == SchemaVersion:
		return nil
	case v > SchemaVersion:
		return fmt.Errorf("%w: %s has schema version %d, newer than this agent understands (%d); run a newer steward-agent",
			ErrSchema, path, v, SchemaVersion)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for step := v; step < SchemaVersion; step++ {
			if err := upgrades[step](tx); err != nil {
				return fmt.Errorf("upgrade schema %d to %d: %w", step, step+1, err)
			}
		}
		return tx.Bucket(metaBucket).Put(versionKey, []byte(strconv.Itoa(SchemaVersion)))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
