package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/jsbatch"
)

// mutation changes a client's record before its policy is resolved (its
// collections, or the revision an agent reports being ahead at). It says
// whether it changed the record, and whether a new revision must be made
// even if the policy says the same (force). It may run more than once.
type mutation func(rec *clientRecord) (changed, force bool)

// noChange is the mutation of a change elsewhere (the catalog): the record
// is resolved again as it is.
func noChange(*clientRecord) (bool, bool) { return false, false }

// outcome is what an update did to one client.
type outcome struct {
	id     string
	rec    clientRecord
	res    Resolved
	newRev bool // a new revision was written (and pushed, when asked)
	err    error
}

// maxAttempts bounds the retries of one client's update under contention.
const maxAttempts = 8

// catalogWait bounds how long an update waits for this instance to see a
// catalog another instance already used.
const catalogWait = 5 * time.Second

// update resolves the policy of each client in ids after mut, writes every
// record that changed (in atomic batches, compare-and-set on each record)
// and, with push, sends each new revision, signed, to its agent. A new
// revision is made only when the resultant policy changed: a change that
// does not touch a client costs one comparison of hashes.
//
// Updates run one at a time in an instance: its model then always holds
// its own writes, so only another instance's write can make a
// compare-and-set lose (and then the record is read again).
//
// A client without a record gets one (a new client, a fetch): use
// updateKnown for clients taken from the records, so that one whose
// record was removed meanwhile (deleted from the site) is not brought back.
func (s *Service) update(ctx context.Context, ids []string, mut mutation, push bool) ([]outcome, error) {
	return s.updateClients(ctx, ids, mut, push, true)
}

// updateKnown is update for the clients among ids that have a record.
func (s *Service) updateKnown(ctx context.Context, ids []string, mut mutation, push bool) ([]outcome, error) {
	return s.updateClients(ctx, ids, mut, push, false)
}

func (s *Service) updateClients(ctx context.Context, ids []string, mut mutation, push, create bool) ([]outcome, error) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	began := time.Now()
	var wrote time.Duration
	pushed := 0
	out := make([]outcome, 0, len(ids))
	todo := ids
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxAttempts {
			for _, id := range todo {
				out = append(out, outcome{id: id, err: fmt.Errorf("client %s: the record kept changing under %d attempts", id, maxAttempts)})
			}
			break
		}
		var (
			writes []jsbatch.Write
			staged []outcome
			retry  []string
		)
		now := s.cfg.Now().UTC()
		cat, catRev := s.model.current()
		// Clients in the same collections resolve the same: once each.
		memo := map[string]Resolved{}
		resolve := func(colls []string) Resolved {
			k := strings.Join(colls, ",")
			r, ok := memo[k]
			if !ok {
				r = cat.Resolve(colls)
				memo[k] = r
			}
			return r
		}
		for _, id := range todo {
			e, ok := s.model.client(id)
			rec := e.rec
			if !ok {
				if !create {
					continue // removed (the client was deleted): not brought back
				}
				// A client whose record was removed has its delete marker
				// as the key's last revision.
				rec, e.rev = clientRecord{ID: id}, s.model.tombstone(id)
			}
			if rec.Catalog > catRev {
				// Another instance resolved this client from a newer
				// catalog than this one has seen: wait for it, or the
				// policy written here would be older than the one there.
				wctx, cancel := context.WithTimeout(ctx, catalogWait)
				err := s.model.waitCatalog(wctx, rec.Catalog)
				cancel()
				if err != nil {
					out = append(out, outcome{id: id, err: err})
					continue
				}
				cat, catRev = s.model.current()
				clear(memo)
			}
			changed, force := mut(&rec)
			res := resolve(rec.Collections)
			o := outcome{id: id, res: res}
			if res.Hash != rec.Hash || force || rec.Revision == 0 {
				rec.Revision++
				rec.Hash, rec.Issued, rec.Catalog = res.Hash, now, catRev
				changed, o.newRev = true, true
			}
			o.rec = rec
			if !changed {
				out = append(out, o)
				continue
			}
			data, _ := json.Marshal(rec)
			writes = append(writes, kvPut(ClientsBucket, id, data, true, e.rev))
			staged = append(staged, o)
		}
		// Sign while the records are written, in the order of the
		// batches: the signatures wait for the disk, never the other way
		// round, and the first batch is pushed before the last is signed.
		var (
			signed  [][]byte
			signing []sync.WaitGroup
		)
		if push {
			signed, signing = s.signAll(staged)
		}
		// A batch at a time, each pushed as soon as it is durable.
		w0 := time.Now()
		results := make([]jsbatch.Result, len(writes))
		var batches sync.WaitGroup
		for from := 0; from < len(writes); from += jsbatch.MaxBatch {
			to := min(from+jsbatch.MaxBatch, len(writes))
			queued := s.clients.Submit(writes[from:to]...) // queued in the order they are signed in
			batches.Go(func() {
				copy(results[from:to], queued.Wait(ctx))
				if !push {
					return
				}
				signing[from/jsbatch.MaxBatch].Wait()
				for i := from; i < to; i++ {
					if results[i].Err == nil && staged[i].newRev {
						s.publish(staged[i], signed[i])
					}
				}
			})
		}
		batches.Wait()
		wrote += time.Since(w0)
		for i, r := range results {
			o := staged[i]
			switch {
			case r.Err == nil:
				s.model.setClient(o.id, &o.rec, r.Seq)
				out = append(out, o)
				if push && o.newRev && signed[i] != nil {
					pushed++
				}
			case errors.Is(r.Err, jsbatch.ErrConflict):
				if err := s.refresh(ctx, o.id); err != nil {
					out = append(out, outcome{id: o.id, err: err})
					continue
				}
				retry = append(retry, o.id)
			default:
				out = append(out, outcome{id: o.id, err: fmt.Errorf("write the record of client %s: %w", o.id, r.Err)})
			}
		}
		todo = retry
	}
	if pushed > 0 {
		if err := s.cfg.NC.FlushTimeout(5 * time.Second); err != nil && ctx.Err() == nil {
			s.log.Warn("flush pushed policies", "err", err)
		}
	}
	if len(ids) > 1 {
		s.log.Debug("policies updated", "clients", len(ids), "new_revisions", changedCount(out), "pushed", pushed,
			"took", time.Since(began).Round(time.Microsecond), "writing", wrote.Round(time.Microsecond))
	}
	var errs []error
	for _, o := range out {
		if o.err != nil {
			errs = append(errs, o.err)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%d of %d clients not updated: %w", len(errs), len(ids), errors.Join(errs[:min(len(errs), 3)]...))
	}
	return out, nil
}

// refresh reads a client's record from the bucket into the model, after a
// compare-and-set found the model's copy stale.
func (s *Service) refresh(ctx context.Context, id string) error {
	e, err := s.clientsKV.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// Removed (or never written): a delete marker is the key's last
		// revision, which the next write must name.
		h, herr := s.clientsKV.History(ctx, id)
		if herr != nil || len(h) == 0 {
			return nil
		}
		return s.model.applyClientEntry(h[len(h)-1])
	case err != nil:
		return fmt.Errorf("read the record of client %s: %w", id, err)
	}
	return s.model.applyClientEntry(e)
}

// signAll signs the new revisions among staged on the CPUs, in the
// background and in order: done[b] says when the b-th batch of jsbatch.MaxBatch writes
// is signed. An agent that is not connected misses its push and fetches
// at connect.
func (s *Service) signAll(staged []outcome) (out [][]byte, done []sync.WaitGroup) {
	out = make([][]byte, len(staged))
	done = make([]sync.WaitGroup, (len(staged)+jsbatch.MaxBatch-1)/jsbatch.MaxBatch)
	for b := range done {
		done[b].Add(min(jsbatch.MaxBatch, len(staged)-b*jsbatch.MaxBatch))
	}
	now := s.cfg.Now().UTC()
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), len(staged)) {
		go func() {
			for i := int(next.Add(1) - 1); i < len(staged); i = int(next.Add(1) - 1) {
				if staged[i].newRev {
					data, err := s.signed(&staged[i], now)
					if err != nil {
						s.log.Warn("policy not signed; the agent gets it at its next fetch", "client", staged[i].id, "err", err)
					}
					out[i] = data
				}
				done[i/jsbatch.MaxBatch].Done()
			}
		}()
	}
	return out, done
}

// publish sends o's signed policy to its agent.
func (s *Service) publish(o outcome, data []byte) {
	if data == nil {
		return
	}
	subj, err := contracts.AgentDown(s.cfg.Site, o.id, contracts.KindPolicy)
	if err == nil {
		err = s.cfg.NC.Publish(subj, data)
	}
	if err != nil {
		s.log.Warn("policy not pushed; the agent gets it at its next fetch", "client", o.id, "revision", o.rec.Revision, "err", err)
	}
}

// signed is the JSON of o's policy, signed now.
func (s *Service) signed(o *outcome, now time.Time) ([]byte, error) {
	sp, err := s.sign(o, now)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sp)
}

func (s *Service) sign(o *outcome, now time.Time) (*contracts.SignedPolicy, error) {
	body, err := o.res.Body(s.cfg.Site, o.id, o.rec.Revision, now, s.cfg.Validity)
	if err != nil {
		return nil, err
	}
	return s.signer.SignBody(body)
}

// changedCount counts the clients that got a new revision.
func changedCount(out []outcome) int {
	n := 0
	for _, o := range out {
		if o.newRev && o.err == nil {
			n++
		}
	}
	return n
}
