package replication

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"golang.org/x/time/rate"
)

// maxQuarantineData bounds the rejected bytes kept with an entry; SHA256
// and Size always describe the whole.
const maxQuarantineData = 256 << 10

// What was quarantined.
const (
	QuarantineOffer = "offer"
	QuarantineChunk = "chunk"
)

// QuarantineEntry is one thing a peer site sent that failed verification:
// kept for the operator to inspect, never installed. Data holds the first
// maxQuarantineData bytes of the rejected message (Truncated when there
// were more); for a chunk it is empty: its hash and size say enough.
//
// The bucket holds the entry without its data under quarantineKey, and
// the data under quarantineDataKey, so that a list reads no data. (Entries
// written before the split carry their data inline; they expire with the
// bucket's TTL.)
type QuarantineEntry struct {
	contracts.QuarantineInfo
	Data      []byte `json:"data,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Each sending site may fill the quarantine at quarantineRate entries a
// second after a burst of quarantineBurst (every chunk of a 512 MiB
// package): a peer that sends junk without end cannot fill the bucket (it
// refuses writes once full, and would then record nobody's rejections) or
// flood the status messages. Rejections past the rate are answered all
// the same, and logged as a count.
const (
	quarantineRate  = rate.Limit(1)
	quarantineBurst = 1024
)

// quarantineLimits are the sending sites' quarantine rates.
type quarantineLimits struct {
	mu      sync.Mutex
	sites   map[string]*rate.Limiter
	dropped map[string]int
	logged  map[string]time.Time
}

// allow says whether a rejection of site's is recorded now, and how many
// were not since the last report (reported at most once a minute).
func (q *quarantineLimits) allow(site string, now time.Time) (ok bool, report int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sites == nil {
		q.sites, q.dropped, q.logged = map[string]*rate.Limiter{}, map[string]int{}, map[string]time.Time{}
	}
	lim := q.sites[site]
	if lim == nil {
		lim = rate.NewLimiter(quarantineRate, quarantineBurst)
		q.sites[site] = lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	q.dropped[site]++
	if now.Sub(q.logged[site]) < time.Minute {
		return false, 0
	}
	report, q.dropped[site], q.logged[site] = q.dropped[site], 0, now
	return false, report
}

// quarantine records a rejection, sends status 6001 and returns the coded
// error the sender is answered with. data is the rejected message.
func (s *Service) quarantine(ctx context.Context, e QuarantineEntry, rej *rejection, data []byte, keepData bool) error {
	answer := contracts.Errorf(rej.code, "quarantined by site %s: %s", s.cfg.Site, rej.reason)
	if ok, n := s.qlimits.allow(e.From, s.now()); !ok {
		if n > 0 {
			s.log.Warn("rejections of a site past its quarantine rate were answered but not recorded", "from", e.From, "count", n, "last_reason", rej.reason)
		}
		return answer
	}
	e.ID = newID()
	e.Reason = rej.reason
	e.Code = rej.code.String()
	e.Time = s.now()
	e.Size = len(data)
	e.SHA256 = contracts.ChunkHash(data)
	if keepData {
		e.Data = data[:min(len(data), maxQuarantineData)]
		e.Truncated = len(data) > maxQuarantineData
	}
	name := "(unreadable)"
	if e.Package != "" {
		name = contracts.PackageKey(e.Package, e.Version)
	}
	s.log.Warn("quarantined", "what", e.What, "from", e.From, "package", name, "reason", e.Reason, "id", e.ID)
	if err := s.putQuarantined(ctx, e); err != nil {
		s.log.Error("quarantine entry not stored", "id", e.ID, "err", err)
	}
	s.emit(ctx, contracts.StatusPackageQuarantined, map[string]string{"package": name, "from": e.From, "reason": e.Reason})
	return answer
}

// putQuarantined stores e: its data first, then the entry naming it.
func (s *Service) putQuarantined(ctx context.Context, e QuarantineEntry) error {
	if len(e.Data) > 0 {
		if _, err := s.quarantineKV.Put(ctx, quarantineDataKey(e.ID), e.Data); err != nil {
			return err
		}
	}
	e.Data = nil
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.quarantineKV.Put(ctx, quarantineKey(e.ID), b)
	return err
}

// quarantined reads entry id without its data (found false: no such
// entry).
func (s *Service) quarantined(ctx context.Context, id string) (q QuarantineEntry, found bool, err error) {
	e, err := s.quarantineKV.Get(ctx, quarantineKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return q, false, nil
	case err != nil:
		return q, false, contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
	}
	if err := json.Unmarshal(e.Value(), &q); err != nil {
		return q, true, fmt.Errorf("quarantine entry %s unreadable: %w", id, err)
	}
	return q, true, nil
}

// Quarantined lists the quarantine, newest first, without the entries'
// data (QuarantinedEntry has it).
func (s *Service) Quarantined(ctx context.Context) ([]QuarantineEntry, error) {
	lister, err := s.quarantineKV.ListKeys(ctx)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
	}
	out := []QuarantineEntry{}
	for k := range lister.Keys() {
		if strings.HasPrefix(k, quarantineDataPrefix) {
			continue
		}
		q, found, err := s.quarantined(ctx, k)
		if contracts.CodeOf(err) == contracts.CodeUnavailable {
			return nil, err
		}
		if err != nil {
			s.log.Error("skipping quarantine entry", "key", k, "err", err)
			continue
		}
		if found {
			q.Data = nil // an entry from before the split
			out = append(out, q)
		}
	}
	slices.SortFunc(out, func(a, b QuarantineEntry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// QuarantinedEntry returns entry id with the data kept of it.
func (s *Service) QuarantinedEntry(ctx context.Context, id string) (QuarantineEntry, error) {
	q, found, err := s.quarantined(ctx, id)
	switch {
	case !found && err == nil:
		return q, contracts.Errorf(contracts.CodeNotFound, "no quarantine entry %q", id)
	case err != nil:
		return q, err
	case len(q.Data) > 0: // an entry from before the split
		return q, nil
	}
	d, err := s.quarantineKV.Get(ctx, quarantineDataKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// None kept (a chunk), or the bucket's size limit dropped it.
	case err != nil:
		return q, contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
	default:
		q.Data = d.Value()
	}
	return q, nil
}

// DeleteQuarantined removes a quarantine entry, for by (audited).
func (s *Service) DeleteQuarantined(ctx context.Context, id, by string) error {
	q, found, err := s.quarantined(ctx, id)
	switch {
	case !found && err == nil:
		return contracts.Errorf(contracts.CodeNotFound, "no quarantine entry %q", id)
	case contracts.CodeOf(err) == contracts.CodeUnavailable:
		return err
	}
	// An unreadable entry is deleted all the same.
	for _, k := range []string{quarantineKey(id), quarantineDataKey(id)} {
		if err := s.quarantineKV.Purge(ctx, k); err != nil {
			return contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
		}
	}
	s.emit(ctx, contracts.StatusQuarantineDeleted, map[string]string{"entry": id, "what": cmp.Or(q.What, "an entry"), "from": cmp.Or(q.From, "unknown"), "by": by})
	return nil
}

// newID is a time-ordered UUID.
func newID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}
