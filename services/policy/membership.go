package policy

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/follow"
)

// Membership event delivery. MaxAckPending 1 keeps events in order across
// instances: they are statements ("X is now a member"), so a later one
// must never be applied before an earlier one.
const (
	eventMaxDeliver = 10
	eventAckWait    = time.Minute
)

// consumeMembership keeps the durable consumer of discovery's membership
// events running until ctx ends, waiting (with backoff) for discovery to
// create its stream.
func (s *Service) consumeMembership(ctx context.Context) {
	subj, err := contracts.MembershipSubject(s.cfg.Site)
	if err != nil {
		s.log.Error("membership subject", "err", err)
		return
	}
	ccfg := jetstream.ConsumerConfig{
		Durable:       MembershipConsumer,
		Description:   "policy follows the members of collections with settings deployed",
		FilterSubject: subj,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       eventAckWait,
		MaxDeliver:    eventMaxDeliver,
		MaxAckPending: 1,
	}
	follow.Durable(ctx, s.log, s.js, DiscoveryEventsStream, ccfg, func(m jetstream.Msg) { s.onMembership(ctx, m) })
}

// onMembership applies one membership event: for a collection with
// settings deployed (All Systems included, when settings are deployed to
// it), the clients added and removed get the collection in or out of
// their record, and a new policy when that changes theirs. A new client
// enters this way (All Systems), and gets its first policy pushed.
func (s *Service) onMembership(ctx context.Context, m jetstream.Msg) {
	var ev contracts.MembershipChanged
	if err := contracts.Decode(m.Data(), contracts.TypeMembershipChanged, &ev); err != nil {
		s.log.Error("membership event dropped (dead letter)", "err", err)
		_ = m.TermWithReason(err.Error())
		return
	}
	cat, _ := s.model.current()
	var added []string
	if cat.Tracked(ev.Collection.ID) {
		added = ev.Added
	} else if ev.Collection.ID == contracts.AllSystemsID {
		// A client new to the site gets a record (and its first policy
		// pushed) even while nothing is deployed to All Systems.
		for _, id := range ev.Added {
			if _, ok := s.model.client(id); !ok {
				added = append(added, id)
			}
		}
	}
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	var errs []error
	if len(added) > 0 {
		mut := fromEvent(ev.Collection.ID, true, seq)
		if !cat.Tracked(ev.Collection.ID) {
			mut = noChange
		}
		_, err := s.update(ctx, added, mut, true)
		errs = append(errs, err)
	}
	if cat.Tracked(ev.Collection.ID) && len(ev.Removed) > 0 {
		_, err := s.update(ctx, ev.Removed, fromEvent(ev.Collection.ID, false, seq), true)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		n := uint64(1)
		if md, merr := m.Metadata(); merr == nil {
			n = md.NumDelivered
		}
		if n >= eventMaxDeliver {
			s.log.Error("membership event dropped after retries (the next resync repairs it)", "collection", ev.Collection.ID, "err", err)
			_ = m.TermWithReason(err.Error())
			return
		}
		s.log.Warn("membership event not applied; will retry", "collection", ev.Collection.ID, "delivery", n, "err", err)
		_ = m.NakWithDelay(min(time.Duration(n)*time.Second, 30*time.Second))
		return
	}
	s.log.Debug("membership applied", "collection", ev.Collection.Name, "added", len(ev.Added), "removed", len(ev.Removed), "cause", ev.Cause)
	if err := m.Ack(); err != nil {
		s.log.Warn("ack membership event", "err", err)
	}
}

// fromEvent puts a client in (in) or out of collection as the membership
// event at sequence seq of discovery's events stream says, and marks the
// record with seq: a members list read before the event was published
// cannot undo it (see reconcile).
func fromEvent(collection string, in bool, seq uint64) mutation {
	put := withCollection(collection, in)
	return func(rec *clientRecord) (bool, bool) {
		changed, _ := put(rec)
		if rec.markEvent(collection, seq) {
			changed = true
		}
		return changed, false
	}
}

// eventsPublished is the sequence of the last event in discovery's events
// stream: a members list read after it includes every change those events
// announce, so reconcile may override no event past it. When the stream
// cannot be read, the list is trusted over every event (the largest
// sequence), as if events were not marked.
func (s *Service) eventsPublished(ctx context.Context) uint64 {
	st, err := s.js.Stream(ctx, DiscoveryEventsStream)
	if err != nil {
		s.log.Warn("membership events stream not read; a members list read now may undo an event applied meanwhile", "err", err)
		return math.MaxUint64
	}
	return st.CachedInfo().State.LastSeq
}

// resyncRetry is the first wait before a resync that could not read every
// collection is tried again (doubling up to ResyncEvery): at a site's
// start discovery may not answer yet.
const resyncRetry = 5 * time.Second

// resyncLoop reads the members of every collection with settings deployed
// again from discovery, at start and every ResyncEvery: discovery does not
// guarantee every membership event (an instance that crashes between a
// write and its event loses the event). A resync left incomplete is tried
// again sooner; its failures are warnings from the third in a row.
func (s *Service) resyncLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.resync(ctx, failed >= 2) {
			failed = 0
			t.Reset(s.cfg.ResyncEvery)
			continue
		}
		failed++
		t.Reset(min(resyncRetry<<min(failed-1, 10), s.cfg.ResyncEvery))
	}
}

// resync reconciles each deployed collection with its members, asked on
// behalf of an operator who made a deployment to it: the next one when one
// cannot read them (deleted since, or no longer granted the collection).
// It reports whether every collection was reconciled; what was not is
// logged as a warning with warn, for information without.
func (s *Service) resync(ctx context.Context, warn bool) (complete bool) {
	logf := s.log.Info
	if warn {
		logf = s.log.Warn
	}
	complete = true
	cat, _ := s.model.current()
	done := map[string]bool{}
	unread := map[string][]string{} // collection ID -> each operator tried and why it failed
	var renamed []contracts.Named
	for _, d := range cat.Deployments() {
		c := d.Deployment.Collection
		if done[c.ID] {
			continue
		}
		asOf := s.eventsPublished(ctx)
		members, err := s.cfg.Directory.Members(ctx, d.Deployment.By, c.ID)
		if err != nil {
			unread[c.ID] = append(unread[c.ID], d.Deployment.By+": "+err.Error())
			continue
		}
		done[c.ID] = true
		// A deployment stores the name its collection had then: the
		// name discovery says now replaces it (collections are renamed).
		if now, err := s.cfg.Directory.Collection(ctx, d.Deployment.By, c.ID); err == nil && now.ID == c.ID {
			renamed = append(renamed, now)
		}
		n, err := s.reconcile(ctx, c.ID, members, asOf)
		if err != nil {
			complete = false
			logf("resync incomplete; tried again soon", "collection", c.Name, "err", err)
		}
		if n > 0 {
			s.log.Info("resync changed policies", "collection", c.Name, "clients", n)
		}
	}
	if len(renamed) > 0 {
		if _, _, err := s.changeCatalog(ctx, func(c *Catalog) (*Catalog, []string, error) {
			n := c
			for _, coll := range renamed {
				n = n.WithCollectionName(coll)
			}
			return n, nil, nil
		}); err != nil {
			logf("resync: renamed collections' names not stored", "err", err)
		}
	}
	for id, tried := range unread {
		if !done[id] && ctx.Err() == nil {
			complete = false
			logf("resync: no operator who deployed to the collection could read its members; tried again soon", "collection", id, "tried", strings.Join(tried, "; "))
		}
	}
	return complete
}
