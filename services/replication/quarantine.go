package replication

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
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
type QuarantineEntry struct {
	contracts.QuarantineInfo
	Data      []byte `json:"data,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// quarantine records a rejection, sends status 6001 and returns the coded
// error the sender is answered with. data is the rejected message.
func (s *Service) quarantine(ctx context.Context, e QuarantineEntry, rej *rejection, data []byte, keepData bool) error {
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
	if b, err := json.Marshal(e); err != nil {
		s.log.Error("quarantine entry not stored", "id", e.ID, "err", err)
	} else if _, err := s.quarantineKV.Put(ctx, quarantineKey(e.ID), b); err != nil {
		s.log.Error("quarantine entry not stored", "id", e.ID, "err", err)
	}
	s.emit(ctx, contracts.StatusPackageQuarantined, map[string]string{"package": name, "from": e.From, "reason": e.Reason})
	return contracts.Errorf(rej.code, "quarantined by site %s: %s", s.cfg.Site, rej.reason)
}

// Quarantined lists the quarantine, newest first.
func (s *Service) Quarantined(ctx context.Context) ([]QuarantineEntry, error) {
	lister, err := s.quarantineKV.ListKeys(ctx)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
	}
	out := []QuarantineEntry{}
	for k := range lister.Keys() {
		e, err := s.quarantineKV.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
		}
		var q QuarantineEntry
		if err := json.Unmarshal(e.Value(), &q); err != nil {
			s.log.Error("skipping quarantine entry", "key", k, "err", err)
			continue
		}
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b QuarantineEntry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// DeleteQuarantined removes a quarantine entry, for by (audited).
func (s *Service) DeleteQuarantined(ctx context.Context, id, by string) error {
	e, err := s.quarantineKV.Get(ctx, quarantineKey(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return contracts.Errorf(contracts.CodeNotFound, "no quarantine entry %q", id)
	case err != nil:
		return contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
	}
	var q QuarantineEntry
	_ = json.Unmarshal(e.Value(), &q) // an unreadable entry is deleted all the same
	if err := s.quarantineKV.Purge(ctx, quarantineKey(id)); err != nil {
		return contracts.Errorf(contracts.CodeUnavailable, "quarantine: %v", err)
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
