package policy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/follow"
	"github.com/stewardhq/steward/services/internal/jsbatch"
	"github.com/stewardhq/steward/services/rbac"
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
	switch {
	case len(ev.Removed) == 0:
	case ev.Collection.ID == contracts.AllSystemsID:
		// Out of All Systems: deleted from the site (or blocked). Its
		// records go; it is no longer counted, signed for or pushed to.
		n, err := s.forget(ctx, ev.Removed)
		errs = append(errs, err)
		if n > 0 {
			s.log.Info("policy records of clients gone from the site removed", "clients", n, "cause", ev.Cause)
		}
	case cat.Tracked(ev.Collection.ID):
		_, err := s.updateKnown(ctx, ev.Removed, fromEvent(ev.Collection.ID, false, seq), true)
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

// forget removes the records of clients ids (policy-clients, by
// compare-and-set, and policy-compliance): they left All Systems, deleted
// from the site (or blocked; a client that returns gets a new record, and
// its agent, which reports the revision it runs, one above it). It returns
// how many records it removed.
func (s *Service) forget(ctx context.Context, ids []string) (int, error) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	removed := 0
	var errs []error
	todo := ids
	for attempt := 0; len(todo) > 0; attempt++ {
		var (
			writes []jsbatch.Write
			whose  []string
			retry  []string
		)
		for _, id := range todo {
			if e, ok := s.model.client(id); ok {
				writes = append(writes, kvDel(ClientsBucket, id, true, e.rev))
				whose = append(whose, id)
			}
		}
		if len(writes) == 0 {
			break
		}
		if attempt == maxAttempts {
			errs = append(errs, fmt.Errorf("%d client records kept changing under %d attempts to remove them", len(writes), maxAttempts))
			break
		}
		for i, r := range s.clients.Write(ctx, writes...) {
			id := whose[i]
			switch {
			case r.Err == nil:
				s.model.setClient(id, nil, r.Seq)
				removed++
			case errors.Is(r.Err, jsbatch.ErrConflict):
				if err := s.refresh(ctx, id); err != nil {
					errs = append(errs, err)
					continue
				}
				retry = append(retry, id)
			default:
				errs = append(errs, fmt.Errorf("remove the record of client %s: %w", id, r.Err))
			}
		}
		todo = retry
	}
	var reports []jsbatch.Write
	var whose []string
	for _, id := range ids {
		if _, ok := s.model.report(id); ok {
			reports = append(reports, kvDel(ComplianceBucket, id, false, 0))
			whose = append(whose, id)
		}
	}
	if len(reports) > 0 {
		for i, r := range s.reports.Write(ctx, reports...) {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("remove the compliance record of client %s: %w", whose[i], r.Err))
				continue
			}
			s.model.setReport(whose[i], nil, r.Seq)
		}
	}
	return removed, errors.Join(errs...)
}

// forgetMargin: a record issued less than this before All Systems was
// listed is kept by the resync, whatever the list says (a client new since,
// or another instance's clock ahead of this one's).
const forgetMargin = time.Minute

// resyncAllSystems removes the records of clients discovery no longer
// lists in All Systems: deleted or blocked while their membership event
// was lost. All Systems is read as an operator whose Collection:Read
// covers All Systems (a partial list would remove records of clients
// outside it): one who made a deployment, or else a Full Administrator.
// Without one, nothing is removed.
func (s *Service) resyncAllSystems(ctx context.Context, cat *Catalog) error {
	readers := s.allSystemsReaders(cat)
	if len(readers) == 0 {
		s.log.Debug("resync: no operator to read All Systems as; records of deleted clients are removed by their membership events only")
		return nil
	}
	listed := s.cfg.Now()
	var (
		members []contracts.Named
		err     error
	)
	for _, op := range readers {
		if members, err = s.cfg.Directory.Members(ctx, op, contracts.AllSystemsID); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("All Systems not read: %w", err)
	}
	in := make(map[string]bool, len(members))
	for _, m := range members {
		in[m.ID] = true
	}
	var gone []string
	for _, id := range s.model.allClients() {
		if e, ok := s.model.client(id); ok && !in[id] && e.rec.Issued.Before(listed.Add(-forgetMargin)) {
			gone = append(gone, id)
		}
	}
	n, err := s.forget(ctx, gone)
	if n > 0 {
		s.log.Info("resync removed the policy records of clients no longer in All Systems", "clients", n)
	}
	return err
}

// allSystemsReaders lists the operators to read All Systems as: those who
// made a deployment, then the Full Administrators, each only when its
// Collection:Read covers All Systems. Without authorization (a service
// tested alone) those who made a deployment.
func (s *Service) allSystemsReaders(cat *Catalog) []string {
	var cands []string
	for _, d := range cat.Deployments() {
		if !slices.Contains(cands, d.Deployment.By) {
			cands = append(cands, d.Deployment.By)
		}
	}
	m, err := s.authz()
	if err != nil {
		return nil
	}
	if m == nil {
		return cands
	}
	var out []string
	for _, op := range append(cands, m.FullAdministrators()...) {
		if sc, err := m.Scoped(op, rbac.CollectionRead); err == nil && sc.All && !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out
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
	if err := s.resyncAllSystems(ctx, cat); err != nil && ctx.Err() == nil {
		complete = false
		logf("resync: records of clients gone from the site not checked; tried again soon", "err", err)
	}
	for id, tried := range unread {
		if !done[id] && ctx.Err() == nil {
			complete = false
			logf("resync: no operator who deployed to the collection could read its members; tried again soon", "collection", id, "tried", strings.Join(tried, "; "))
		}
	}
	return complete
}
