package policy

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// fetch answers an agent's policy.fetch: its record is resolved again
// (which also heals a membership event this instance never saw applied),
// and the current revision is signed now. An agent that reports a revision
// above the site's (the site's records were restored from an older
// backup) gets a revision above its own, so it never refuses the site's
// policy as old.
func (s *Service) fetch(ctx context.Context, from contracts.SubjectInfo, req *contracts.PolicyFetchRequest) (*contracts.PolicyFetchResponse, error) {
	applied := req.AppliedRevision
	w := &fetchWait{id: from.Principal, applied: applied, done: make(chan outcome, 1)}
	select {
	case s.fetches <- w:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var o outcome
	select {
	case o = <-w.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if o.err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "the policy of this client cannot be made now: %v", o.err)
	}
	resp := &contracts.PolicyFetchResponse{Header: contracts.NewHeader(contracts.TypePolicyFetchResponse), Revision: o.rec.Revision}
	if applied == o.rec.Revision {
		resp.Current = true
		return resp, nil
	}
	sp, err := s.sign(&o, s.cfg.Now().UTC())
	if err != nil {
		return nil, err
	}
	resp.Policy = sp
	return resp, nil
}

// ack stores one report from an agent's outbox: the revision it applied,
// or the one it rejected and why. The client is the subject's. A
// rejection is also a status message (3002) for the operators.
func (s *Service) ack(ctx context.Context, from contracts.SubjectInfo, item contracts.OutboxItem) (func(context.Context) error, error) {
	if item.Type != contracts.TypePolicyAck {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "item type %q, want %q", item.Type, contracts.TypePolicyAck)
	}
	var a contracts.PolicyAck
	if err := contracts.Decode(item.Data, contracts.TypePolicyAck, &a); err != nil {
		return nil, err
	}
	id := from.Principal
	// A rejection counts against the client's compliance only when it is
	// of a policy the site issued to this client: one refused as another
	// client's or another site's (code client or site: a policy replayed
	// to it) carries that policy's revision, not this client's, and one
	// above the client's current revision was never issued to it. Either
	// would show the client failed at a revision it never had, and hide
	// its genuine rejections below that number. Older agents send such
	// revisions, newer ones 0.
	mine := !a.Applied && a.Code != contracts.RejectClient && a.Code != contracts.RejectSite
	var current uint64
	if !a.Applied {
		current = s.siteRevision(ctx, id, a.Revision)
		mine = mine && a.Revision <= current
	}
	// The record is built on the last one built for the client, stored or
	// not yet (several reports of one client come in one batch, each
	// started before any is stored), and queued in the order built.
	s.reportMu.Lock()
	rec, ok := s.building[id]
	if !ok {
		rec, _ = s.model.report(id)
	}
	rec.Reported = s.cfg.Now().UTC()
	rec.AppliedRevision = a.AppliedRevision
	switch {
	case a.Applied:
		rec.AppliedRevision, rec.AppliedAt = max(a.Revision, a.AppliedRevision), a.AppliedAt
	case mine && (a.Revision >= rec.RejectedRevision || rec.RejectedRevision > current):
		// A rejection of a lower revision (an old or forged message) does
		// not hide the failure of a newer one; a stored rejection above
		// the client's current revision (recorded before such reports were
		// told apart) hides nothing.
		rec.RejectedRevision, rec.Code, rec.Reason, rec.RejectedAt = a.Revision, a.Code, a.Reason, a.Time
	}
	data, _ := json.Marshal(rec)
	s.building[id] = rec
	queued := s.reports.Submit(kvPut(ComplianceBucket, id, data, false, 0))
	s.reportMu.Unlock()
	return func(ctx context.Context) error {
		r := queued.Wait(ctx)[0]
		if r.Err == nil {
			s.model.setReport(id, &rec, r.Seq)
		}
		s.reportMu.Lock()
		if b, ok := s.building[id]; ok && b == rec {
			delete(s.building, id)
		}
		s.reportMu.Unlock()
		if r.Err != nil {
			return r.Err
		}
		if e, _ := s.model.client(id); !a.Applied && a.Code == contracts.RejectReplay && a.AppliedRevision > e.rec.Revision {
			go s.catchUp(id, a.AppliedRevision)
		}
		if !a.Applied {
			if !mine {
				s.log.Warn("a client rejected a policy not issued to it (compliance unchanged)", "client", id, "revision", a.Revision, "current", current, "code", a.Code, "reason", a.Reason)
			} else {
				s.log.Warn("a client rejected a policy", "client", id, "revision", a.Revision, "code", a.Code, "reason", a.Reason)
			}
			s.emit(ctx, contracts.StatusPolicyRejected, map[string]string{
				"client": id, "revision": strconv.FormatUint(a.Revision, 10), "reason": a.Code + ": " + a.Reason,
			})
		}
		return nil
	}, nil
}

// siteRevision is client id's current policy revision: the model's, or,
// when a report names a higher one (another instance may have written it
// and this one's watch not shown it yet), the stored record's.
func (s *Service) siteRevision(ctx context.Context, id string, reported uint64) uint64 {
	e, _ := s.model.client(id)
	if reported <= e.rec.Revision {
		return e.rec.Revision
	}
	if err := s.refresh(ctx, id); err != nil {
		s.log.Warn("client record not read", "client", id, "err", err)
	}
	e, _ = s.model.client(id)
	return e.rec.Revision
}

// catchUpTo is the mutation for agents ahead of the site (its records
// restored from an older backup): a client whose agent runs applied(id),
// above its record's revision, gets a revision above the agent's.
func catchUpTo(applied func(id string) uint64) mutation {
	return func(rec *clientRecord) (bool, bool) {
		if a := applied(rec.ID); a > rec.Revision {
			rec.Revision = a
			return true, true
		}
		return false, false
	}
}

// catchUp gives client id a revision above applied, the one its agent
// runs, and pushes it: the agent refused the site's lower revision as a
// replay. Without it the client showed as applied (its applied revision
// is above the site's) while running another policy, until its next fetch.
func (s *Service) catchUp(id string, applied uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.updateKnown(ctx, []string{id}, catchUpTo(func(string) uint64 { return applied }), true); err != nil {
		s.log.Warn("a client ahead of the site not caught up; it is at its next fetch", "client", id, "revision", applied, "err", err)
	}
}

// fetchWait is one agent's fetch, waiting for its record.
type fetchWait struct {
	id      string
	applied uint64
	done    chan outcome
}

// maxFetchBatch bounds the fetches resolved in one update.
const maxFetchBatch = 1000

// serveFetches resolves the fetches waiting, together: during a reconnect
// storm, or while a fan-out holds the update, the fetches that piled up
// share one update and its batched writes.
func (s *Service) serveFetches(ctx context.Context) {
	for {
		var batch []*fetchWait
		select {
		case <-ctx.Done():
			return
		case w := <-s.fetches:
			batch = append(batch, w)
		}
	more:
		for len(batch) < maxFetchBatch {
			select {
			case w := <-s.fetches:
				batch = append(batch, w)
			default:
				break more
			}
		}
		applied := make(map[string]uint64, len(batch))
		ids := make([]string, 0, len(batch))
		for _, w := range batch {
			if _, dup := applied[w.id]; !dup {
				ids = append(ids, w.id)
			}
			applied[w.id] = max(applied[w.id], w.applied)
		}
		out, _ := s.update(ctx, ids, catchUpTo(func(id string) uint64 { return applied[id] }), false)
		byID := make(map[string]outcome, len(out))
		for _, o := range out {
			byID[o.id] = o
		}
		for _, w := range batch {
			o, ok := byID[w.id]
			if !ok {
				o = outcome{id: w.id, err: errors.New("not resolved")}
			}
			w.done <- o
		}
	}
}
