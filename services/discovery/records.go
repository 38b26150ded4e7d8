package discovery

import (
	"cmp"
	"slices"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/lookup"
)

// This file is the domain: what an identity event, a heartbeat, a disconnect
// or the passing of time does to a client record, and how records are listed
// and found. Nothing here knows of NATS; store.go persists the results.

// record is the value kept in the bucket under a client's ID: the
// contracts.Client the API returns (its fields inline, so the value reads as
// a contracts.Client) plus the heartbeat interval the sweeper needs. It is
// kept in the record rather than in memory because heartbeats are spread
// over every instance of the service while each instance runs the sweeper.
type record struct {
	contracts.Client
	Interval contracts.Duration `json:"heartbeatInterval,omitempty"`
}

// missedBeats is how many heartbeat intervals may pass without a heartbeat
// before a client is marked offline.
const missedBeats = 3

// defaultInterval stands in for the interval of a record written before it
// was kept.
const defaultInterval = time.Minute

// applyEvent returns the record after identity event ev. cur is nil when
// there is no record. A nil result with write true deletes the record;
// write false leaves the store untouched.
//
//   - enrolled, queued: create or update the identity (status approved or
//     pending; name and key from the event). FirstSeen is set once. The
//     machine facts (hostname, os, arch, version, capability) come from the
//     event only until the first heartbeat, which is fresher.
//   - approved, blocked: set the status; blocked also sets Online false (the
//     server disconnects the client). A missing record is created from the
//     event's client, so records survive a trimmed event stream.
//   - deleted: remove the record.
func applyEvent(cur *record, ev *contracts.ClientEvent, now time.Time) (next *record, write bool, err error) {
	var status string
	switch ev.Action {
	case contracts.ClientEnrolled, contracts.ClientAdmitted:
		status = contracts.ClientApproved
	case contracts.ClientQueued:
		status = contracts.ClientPending
	case contracts.ClientBlockedE:
		status = contracts.ClientBlocked
	case contracts.ClientDeleted:
		return nil, cur != nil, nil
	default:
		return nil, false, contracts.Errorf(contracts.CodeBadRequest, "client event action %q is not one of enrolled, queued, approved, blocked, deleted", ev.Action)
	}
	in := ev.Client
	if cur == nil {
		first := in.FirstSeen
		if first.IsZero() {
			first = ev.Time
		}
		if first.IsZero() {
			first = now
		}
		r := &record{Client: contracts.Client{
			ID:           in.ID,
			Name:         in.Name,
			Hostname:     in.Hostname,
			OS:           in.OS,
			Arch:         in.Arch,
			AgentVersion: in.AgentVersion,
			Capability:   in.Capability,
			Status:       status,
			FirstSeen:    first.UTC(),
			Key:          in.Key,
		}}
		if status == contracts.ClientPending {
			r.PendingReason = in.PendingReason
		}
		return r, true, nil
	}
	r := *cur
	r.Status = status
	if status == contracts.ClientPending {
		r.PendingReason = cmp.Or(in.PendingReason, r.PendingReason)
	} else {
		r.PendingReason = ""
	}
	if status == contracts.ClientBlocked {
		r.Online = false
	}
	if ev.Action == contracts.ClientEnrolled || ev.Action == contracts.ClientQueued {
		if in.Name != "" {
			r.Name = in.Name
		}
		if in.Key != "" {
			r.Key = in.Key
		}
		if r.LastSeen.IsZero() {
			r.Hostname, r.OS, r.Arch = in.Hostname, in.OS, in.Arch
			r.AgentVersion, r.Capability = in.AgentVersion, in.Capability
		}
	}
	return &r, r != *cur, nil
}

// applyHeartbeat returns the record after heartbeat hb received at now, and
// whether to write it. A blocked client's heartbeat (one in flight while the
// server disconnects it) changes nothing.
func applyHeartbeat(cur record, hb *contracts.Heartbeat, now time.Time) (record, bool) {
	if cur.Status == contracts.ClientBlocked {
		return cur, false
	}
	r := cur
	r.Name = hb.Name
	r.Hostname = hb.Hostname
	r.OS = hb.OS
	r.Arch = hb.Arch
	r.AgentVersion = hb.AgentVersion
	r.Capability = hb.Capability
	r.LastSeen = now.UTC()
	r.Online = true
	r.Interval = hb.Interval
	return r, true
}

// applyDisconnect returns the record after the server reported that the
// client's connection closed at stop, and whether to write it. A heartbeat
// received after stop means the client has already reconnected: it stays
// online.
func applyDisconnect(cur record, stop time.Time) (record, bool) {
	if !cur.Online || cur.LastSeen.After(stop) {
		return cur, false
	}
	cur.Online = false
	return cur, true
}

// stale reports whether an online record has missed missedBeats heartbeats
// by now.
func stale(r record, now time.Time) bool {
	if !r.Online {
		return false
	}
	iv := time.Duration(r.Interval)
	if iv <= 0 {
		iv = defaultInterval
	}
	return now.Sub(r.LastSeen) > missedBeats*iv
}

// listClients returns the clients of recs in status (every client when
// status is empty), sorted by name then ID. The result is never nil.
func listClients(recs []record, status string) ([]contracts.Client, error) {
	switch status {
	case "", contracts.ClientPending, contracts.ClientApproved, contracts.ClientBlocked:
	default:
		return nil, contracts.Errorf(contracts.CodeBadRequest, "status %q: must be %s, %s or %s", status, contracts.ClientPending, contracts.ClientApproved, contracts.ClientBlocked)
	}
	out := make([]contracts.Client, 0, len(recs))
	for _, r := range recs {
		if status == "" || r.Status == status {
			out = append(out, r.Client)
		}
	}
	slices.SortFunc(out, func(a, b contracts.Client) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// findClient resolves ref, an ID or a name, to one client.
func findClient(recs []record, ref string) (contracts.Client, error) {
	r, err := lookup.One("client", ref, recs,
		func(r record) string { return r.ID },
		func(r record) string { return r.Name })
	return r.Client, err
}
