package policy

import (
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/services/internal/jsbatch"
)

// clientRecord is what the site holds for one client (ClientsBucket, key
// the client ID): the collections with settings deployed that it is a
// member of, and its current policy revision with the hash of what that
// revision says and the catalog revision it was computed from.
type clientRecord struct {
	ID          string    `json:"id"`
	Collections []string  `json:"collections,omitempty"` // sorted collection IDs
	Revision    uint64    `json:"revision,omitempty"`
	Hash        string    `json:"hash,omitempty"`
	Catalog     uint64    `json:"catalog,omitempty"`
	Issued      time.Time `json:"issued,omitzero"`
	// Events are the membership events applied to the client, one per
	// collection (the last): a members list read before such an event
	// must not undo it (reconcile).
	Events []eventMark `json:"events,omitempty"`
}

// eventMark is the last membership event of one collection applied to a
// client: its sequence in discovery's events stream.
type eventMark struct {
	Collection string `json:"c"`
	Seq        uint64 `json:"seq"`
}

// eventSeq is the sequence of the last membership event of collection
// applied to the record (0: none).
func (rec *clientRecord) eventSeq(collection string) uint64 {
	for _, e := range rec.Events {
		if e.Collection == collection {
			return e.Seq
		}
	}
	return 0
}

// markEvent records seq as the last event of collection applied to the
// record; it reports whether that changed the record (an older sequence
// does not). The slice is copied: records read from the model share it.
func (rec *clientRecord) markEvent(collection string, seq uint64) bool {
	if seq <= rec.eventSeq(collection) {
		return false
	}
	ev := slices.DeleteFunc(slices.Clone(rec.Events), func(e eventMark) bool { return e.Collection == collection })
	rec.Events = append(ev, eventMark{Collection: collection, Seq: seq})
	return true
}

// complianceRecord is what a client last reported (ComplianceBucket, key
// the client ID).
type complianceRecord struct {
	AppliedRevision  uint64    `json:"appliedRevision"`
	AppliedAt        time.Time `json:"appliedAt,omitzero"` // the agent's clock
	Reported         time.Time `json:"reported"`           // the site's clock
	RejectedRevision uint64    `json:"rejectedRevision,omitempty"`
	Code             string    `json:"code,omitempty"`
	Reason           string    `json:"reason,omitempty"`
	RejectedAt       time.Time `json:"rejectedAt,omitzero"`
}

// kvPut is a put of value to key in bucket for a jsbatch.Writer: with cas,
// only if the key is still at revision last (0: only if it does not exist).
func kvPut(bucket, key string, value []byte, cas bool, last uint64) jsbatch.Write {
	return jsbatch.Write{Msg: &nats.Msg{Subject: "$KV." + bucket + "." + key, Data: value}, CAS: cas, Last: last}
}

// kvDel is a delete of key in bucket for a jsbatch.Writer (the marker the
// KV watches read as a deletion): with cas, only if the key is still at
// revision last.
func kvDel(bucket, key string, cas bool, last uint64) jsbatch.Write {
	m := &nats.Msg{Subject: "$KV." + bucket + "." + key, Header: nats.Header{}}
	m.Header.Set("KV-Operation", "DEL")
	return jsbatch.Write{Msg: m, CAS: cas, Last: last}
}
