package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// The sender: Distribute queues one job per destination site in
// JobsBucket; this instance runs at most one worker per destination, which
// takes that destination's jobs oldest first. A job is claimed by writing
// this instance as its Owner (compare-and-set) and its lease is renewed by
// every progress write; a job whose owner stopped writing for Lease is
// free again. Each attempt offers the manifest, signed again with this
// site's key, sends the chunks the destination lacks (paced by the route,
// only while its schedule is open), then commits. A failure the
// destination refused (quarantined, conflicting) fails the job; anything
// else is retried with exponential backoff.

// Timeouts of the requests to a destination.
const (
	offerTimeout  = time.Minute
	chunkTimeout  = 30 * time.Second
	commitTimeout = time.Minute
	// saveEvery is how often progress is written while chunks flow.
	saveEvery = 500 * time.Millisecond
)

// job is the sending of one version to one site (JobsBucket).
type job struct {
	Package     string    `json:"package"`
	Version     string    `json:"version"`
	Site        string    `json:"site"` // the destination
	Digest      string    `json:"digest"`
	State       string    `json:"state"` // pending | sending | installed | failed
	Bytes       int64     `json:"bytes"` // chunk bytes sent since the last offer
	Total       int64     `json:"total"` // chunk bytes the last offer asked for
	Chunks      int       `json:"chunks"`
	ChunksTotal int       `json:"chunksTotal"`
	Verified    string    `json:"verified,omitempty"` // the digest the destination installed
	Error       string    `json:"error,omitempty"`    // the last failure
	Attempts    int       `json:"attempts"`
	Next        time.Time `json:"next,omitzero"`     // the next attempt, or the schedule's opening
	Waiting     string    `json:"waiting,omitempty"` // why the job waits, while it does
	By          string    `json:"by"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Owner       string    `json:"owner,omitempty"` // the instance sending it
}

func (j job) done() bool {
	return j.State == contracts.ContentInstalled || j.State == contracts.ContentFailed
}

func (j job) status() contracts.PackageSiteStatus {
	st := contracts.PackageSiteStatus{Site: j.Site, State: j.State, Bytes: j.Bytes, Total: j.Total, Chunks: j.Chunks,
		ChunksTotal: j.ChunksTotal, Verified: j.Verified, Error: j.Error, Attempts: j.Attempts, Updated: j.Updated}
	if j.Waiting != "" && !j.done() {
		st.Error = j.Waiting
	}
	return st
}

// Distribute queues version (version "": the newest) of pkg for each of
// sites, which must be child sites linked to this one. A job already
// queued for a site starts over. It returns the jobs as queued.
func (s *Service) Distribute(ctx context.Context, pkg, version string, sites []string, by string) ([]contracts.PackageSiteStatus, error) {
	if s.cfg.SiteNC == nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "site %s has no connection to other sites", s.cfg.Site)
	}
	info, err := s.Info(ctx, pkg, version)
	if err != nil {
		return nil, err
	}
	if len(sites) == 0 {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "name at least one site to send %s to", contracts.PackageKey(info.Package, info.Version))
	}
	sites = slices.Compact(slices.Sorted(slices.Values(sites)))
	for _, site := range sites {
		if err := contracts.ValidName(site); err != nil {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "site: %v", err)
		}
		if site == s.cfg.Site {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "%s is this site", site)
		}
		p, err := s.cfg.Peers.Peer(ctx, site)
		switch {
		case contracts.CodeOf(err) == contracts.CodeNotFound:
			return nil, contracts.Errorf(contracts.CodeNotFound, "site %s is not linked to site %s", site, s.cfg.Site)
		case err != nil:
			return nil, contracts.Errorf(contracts.CodeUnavailable, "the peers of site %s cannot be read: %v", s.cfg.Site, err)
		case p.Role != contracts.PeerChild:
			return nil, contracts.Errorf(contracts.CodeBadRequest, "site %s is this site's %s: packages go only to child sites", site, p.Role)
		}
	}
	now := s.now()
	out := make([]contracts.PackageSiteStatus, 0, len(sites))
	var last uint64
	var written []string // job keys
	for _, site := range sites {
		j := job{Package: info.Package, Version: info.Version, Site: site, Digest: info.Digest, State: contracts.ContentPending,
			By: by, Created: now, Updated: now}
		b, _ := json.Marshal(j)
		key := jobKey(j.Package, j.Version, site)
		rev, err := s.jobsKV.Put(ctx, key, b)
		if err != nil {
			return nil, contracts.Errorf(contracts.CodeUnavailable, "queue %s for %s: %v", contracts.PackageKey(j.Package, j.Version), site, err)
		}
		last, written = rev, append(written, key)
		out = append(out, j.status())
	}
	if err := s.stillInstalled(ctx, info.Package, info.Version); err != nil {
		// A deletion began before the jobs were written: withdraw them
		// (whatever the sender wrote to them since: its writes are
		// compare-and-set, so it stops at the deletion).
		for _, key := range written {
			if derr := s.jobsKV.Delete(ctx, key); derr != nil {
				s.log.Error("a job of a version being deleted was not withdrawn", "job", key, "err", derr)
			}
		}
		return nil, err
	}
	if err := s.model.wait(ctx, JobsBucket, last); err != nil {
		return nil, err
	}
	s.log.Info("distribution queued", "package", info.Package, "version", info.Version, "sites", strings.Join(sites, ","), "by", by)
	s.emit(ctx, contracts.StatusPackageDistributed, map[string]string{"package": info.Package, "version": info.Version, "sites": strings.Join(sites, ", "), "by": by})
	return out, nil
}

// CancelDistribution deletes the jobs of version (version "": of every
// version) of pkg to each of sites, whatever their state, and returns
// them as they stood. The sites need not be linked any more: this is how
// a distribution to a site that is gone ends. The worker sending a job
// lets it go at its next write (compare-and-set on a deleted key fails)
// or, while it waits, as soon as it sees the deletion. No job is
// CodeNotFound. Audited (8009) for by.
func (s *Service) CancelDistribution(ctx context.Context, pkg, version string, sites []string, by string) ([]contracts.PackageCancelled, error) {
	if len(sites) == 0 {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "name at least one site to stop sending %s to", pkg)
	}
	want := map[string]bool{}
	for _, site := range sites {
		if err := contracts.ValidName(site); err != nil {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "site: %v", err)
		}
		want[site] = true
	}
	if err := s.syncModel(ctx, s.jobsKV, JobsBucket); err != nil {
		return nil, err
	}
	es := s.model.jobList(func(j job) bool { return j.Package == pkg && (version == "" || j.Version == version) && want[j.Site] })
	if len(es) == 0 {
		what := pkg
		if version != "" {
			what = contracts.PackageKey(pkg, version)
		}
		return nil, contracts.Errorf(contracts.CodeNotFound, "%s is not being sent to %s (steward packages status %s lists where it goes)",
			what, strings.Join(slices.Sorted(maps.Keys(want)), ", "), pkg)
	}
	out := make([]contracts.PackageCancelled, 0, len(es))
	byVersion := map[string][]string{} // the sites of each version, for the audit
	for _, e := range es {
		if err := s.jobsKV.Delete(ctx, jobKey(e.job.Package, e.job.Version, e.job.Site)); err != nil {
			return out, contracts.Errorf(contracts.CodeUnavailable, "cancel %s to %s: %v", contracts.PackageKey(e.job.Package, e.job.Version), e.job.Site, err)
		}
		out = append(out, contracts.PackageCancelled{Package: e.job.Package, Version: e.job.Version, PackageSiteStatus: e.job.status()})
		byVersion[e.job.Version] = append(byVersion[e.job.Version], e.job.Site)
	}
	for _, v := range slices.Sorted(maps.Keys(byVersion)) {
		list := strings.Join(slices.Sorted(slices.Values(byVersion[v])), ", ")
		s.log.Info("distribution cancelled", "package", pkg, "version", v, "sites", list, "by", by)
		s.emit(ctx, contracts.StatusPackageDistributionCancelled, map[string]string{"package": pkg, "version": v, "sites": list, "by": by})
	}
	if err := s.syncModel(ctx, s.jobsKV, JobsBucket); err != nil {
		return out, err
	}
	slices.SortFunc(out, func(a, b contracts.PackageCancelled) int {
		return strings.Compare(jobKey(a.Package, a.Version, a.Site), jobKey(b.Package, b.Version, b.Site))
	})
	return out, nil
}

// Jobs lists the jobs of pkg's version (version "": of every version of
// pkg), by site.
func (s *Service) Jobs(pkg, version string) []contracts.PackageSiteStatus {
	es := s.model.jobList(func(j job) bool { return j.Package == pkg && (version == "" || j.Version == version) })
	out := make([]contracts.PackageSiteStatus, len(es))
	for i, e := range es {
		out[i] = e.job.status()
	}
	slices.SortStableFunc(out, func(a, b contracts.PackageSiteStatus) int { return strings.Compare(a.Site, b.Site) })
	return out
}

// sender runs the workers of this instance.
type sender struct {
	s      *Service
	kick   chan struct{}
	mu     sync.Mutex
	active map[string]bool // destinations with a worker
	wg     sync.WaitGroup
	paced  atomic.Int64 // time spent waiting for routes' rates (ns)
	sent   atomic.Int64 // chunks sent
}

func newSender(s *Service) *sender {
	return &sender{s: s, kick: make(chan struct{}, 1), active: map[string]bool{}}
}

// errJobChanged is a job written by someone else since this worker read
// it (distributed again, deleted, taken over): the worker lets it go.
var errJobChanged = errors.New("the job changed under its worker")

// permanentError is a failure that retrying cannot mend.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

func permanent(err error) error { return &permanentError{err} }

// run starts a worker for each destination with a job this instance may
// take, whenever the jobs change, until ctx ends.
func (snd *sender) run(ctx context.Context) {
	defer snd.wg.Wait()
	if snd.s.cfg.SiteNC == nil {
		return
	}
	tick := time.NewTicker(snd.s.cfg.Lease / 3)
	defer tick.Stop()
	for {
		ch := snd.s.model.waitChange(JobsBucket)
		snd.dispatch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-snd.kick:
		case <-tick.C:
		}
	}
}

// claimable says whether this instance may take j now.
func (snd *sender) claimable(j job, now time.Time) bool {
	if j.done() {
		return false
	}
	return j.Owner == "" || j.Owner == snd.s.instance || now.Sub(j.Updated) > snd.s.cfg.Lease
}

func (snd *sender) dispatch(ctx context.Context) {
	now := snd.s.now()
	for _, e := range snd.s.model.jobList(func(j job) bool { return snd.claimable(j, now) }) {
		dest := e.job.Site
		snd.mu.Lock()
		if !snd.active[dest] && ctx.Err() == nil {
			snd.active[dest] = true
			snd.wg.Go(func() { snd.worker(ctx, dest) })
		}
		snd.mu.Unlock()
	}
}

// worker sends dest's jobs, oldest first, until none is left to take,
// while it holds dest's lease (another instance holding it sends them).
func (snd *sender) worker(ctx context.Context, dest string) {
	kick := true
	defer func() {
		snd.mu.Lock()
		delete(snd.active, dest)
		snd.mu.Unlock()
		if !kick {
			return
		}
		select {
		case snd.kick <- struct{}{}:
		default:
		}
	}()
	lease, ok, err := snd.leaseDest(ctx, dest)
	if !ok {
		// Sent by another instance, or the bucket is away: the next
		// change or tick tries again (a kick now would spin).
		kick = false
		if err != nil && ctx.Err() == nil {
			snd.s.log.Warn("destination not leased", "site", dest, "err", err)
		}
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	held := make(chan struct{})
	go func() {
		defer close(held)
		lease.hold(ctx, snd.s.cfg.Lease, func() {
			snd.s.log.Warn("the lease on a destination was lost; another instance sends to it", "site", dest)
			cancel()
		})
	}()
	defer func() {
		cancel()
		<-held
		lease.release()
	}()
	for ctx.Err() == nil {
		now := snd.s.now()
		es := snd.s.model.jobList(func(j job) bool { return j.Site == dest && snd.claimable(j, now) })
		if len(es) == 0 {
			return
		}
		jw, err := snd.claim(ctx, es[0])
		if err != nil {
			if !errors.Is(err, errJobChanged) {
				snd.s.log.Warn("job not claimed", "site", dest, "package", es[0].job.Package, "version", es[0].job.Version, "err", err)
				if sleepCtx(ctx, snd.s.cfg.RetryBase) != nil {
					return
				}
			}
			if err := snd.s.syncModel(ctx, snd.s.jobsKV, JobsBucket); err != nil {
				return
			}
			continue
		}
		snd.process(ctx, jw)
	}
}

// jobWriter is a claimed job and the revision it was last written at;
// every write is a compare-and-set, which also renews the claim.
type jobWriter struct {
	s    *Service
	key  string
	mu   sync.Mutex
	j    job
	rev  uint64
	last time.Time
}

// claim takes e for this instance.
func (snd *sender) claim(ctx context.Context, e jobEntry) (*jobWriter, error) {
	jw := &jobWriter{s: snd.s, key: jobKey(e.job.Package, e.job.Version, e.job.Site), j: e.job, rev: e.rev}
	err := jw.update(ctx, true, func(j *job) {
		j.Owner = snd.s.instance
		if j.State == contracts.ContentPending {
			j.State = contracts.ContentSending
		}
	})
	return jw, err
}

// update applies fn to the job and writes it, at once when force, else
// when the last write is saveEvery old. Only errJobChanged is returned
// for a failed write; others are logged (progress is not worth failing a
// transfer over).
func (jw *jobWriter) update(ctx context.Context, force bool, fn func(*job)) error {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	fn(&jw.j)
	now := jw.s.now()
	if !force && now.Sub(jw.last) < saveEvery {
		return nil
	}
	jw.j.Updated = now
	b, _ := json.Marshal(jw.j)
	rev, err := jw.s.jobsKV.Update(ctx, jw.key, b, jw.rev)
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound):
		return errJobChanged
	case err != nil:
		if ctx.Err() == nil {
			jw.s.log.Warn("job progress not written", "job", jw.key, "err", err)
		}
		return nil
	}
	jw.rev, jw.last = rev, now
	return nil
}

// gone says whether the job was deleted (cancelled, its version deleted)
// or written by someone else since this worker's last write, as this
// instance's view of the jobs shows it: a worker that waits checks it at
// every change of the jobs, so a cancel ends its wait at once.
func (jw *jobWriter) gone() bool {
	jw.mu.Lock()
	rev := jw.rev
	jw.mu.Unlock()
	es := jw.s.model.jobList(func(j job) bool { return jobKey(j.Package, j.Version, j.Site) == jw.key })
	return len(es) == 0 || es[0].rev > rev
}

// snapshot is a copy of the job.
func (jw *jobWriter) snapshot() job {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	return jw.j
}

// process runs a claimed job's attempts until it is installed, fails for
// good, changes under the worker, or ctx ends (the job is then released).
func (snd *sender) process(ctx context.Context, jw *jobWriter) {
	s := snd.s
	failures := 0
	for {
		err := snd.attempt(ctx, jw)
		j := jw.snapshot()
		name := contracts.PackageKey(j.Package, j.Version)
		var perm *permanentError
		switch {
		case err == nil, errors.Is(err, errJobChanged):
			return
		case ctx.Err() != nil:
			snd.release(jw)
			return
		case errors.As(err, &perm):
			s.log.Error("sending failed", "package", name, "site", j.Site, "err", err)
			_ = jw.update(ctx, true, func(j *job) {
				j.State, j.Error, j.Owner, j.Next, j.Waiting = contracts.ContentFailed, err.Error(), "", time.Time{}, ""
			})
			s.emit(ctx, contracts.StatusSendFailed, map[string]string{"package": name, "to": j.Site, "error": err.Error()})
			return
		}
		failures++
		next := s.now().Add(backoff(s.cfg.RetryBase, s.cfg.RetryMax, failures))
		if j.Error != err.Error() {
			s.emit(ctx, contracts.StatusSendRetrying, map[string]string{"package": name, "to": j.Site, "next": next.Format(time.RFC3339), "error": err.Error()})
		}
		s.log.Warn("sending will be retried", "package", name, "site", j.Site, "attempt", j.Attempts, "next", next, "err", err)
		if uerr := jw.update(ctx, true, func(j *job) { j.Error, j.Next = err.Error(), next }); uerr != nil {
			return
		}
		if err := snd.sleepFor(ctx, jw, next.Sub(s.now())); err != nil {
			if ctx.Err() != nil {
				snd.release(jw)
			}
			return
		}
	}
}

// backoff is base doubled for each failure after the first, at most
// limit, less up to a tenth at random so that workers spread out.
func backoff(base, limit time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// release gives a job up when the instance stops: anyone may take it.
func (snd *sender) release(jw *jobWriter) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = jw.update(ctx, true, func(j *job) { j.Owner = "" })
}

// sleepFor waits d, renewing the claim meanwhile; a job cancelled or
// written by someone else ends the wait with errJobChanged.
func (snd *sender) sleepFor(ctx context.Context, jw *jobWriter, d time.Duration) error {
	end := time.Now().Add(d)
	renewed := time.Now()
	every := snd.s.cfg.Lease / 3
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		jobs := snd.s.model.waitChange(JobsBucket)
		if jw.gone() {
			return errJobChanged
		}
		t := time.NewTimer(min(left, every))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-jobs:
			t.Stop()
			continue
		case <-t.C:
		}
		if time.Since(renewed) >= every {
			if err := jw.update(ctx, true, func(*job) {}); err != nil {
				return err
			}
			renewed = time.Now()
		}
	}
}

// awaitOpen returns once the route to the job's site is open, renewing
// the claim and noting the wait in the job meanwhile.
func (snd *sender) awaitOpen(ctx context.Context, jw *jobWriter) error {
	s := snd.s
	dest := jw.snapshot().Site
	noted := false
	for {
		changed := s.model.waitChange(RoutesBucket)
		jobs := s.model.waitChange(JobsBucket)
		r := s.model.route(dest)
		now := s.cfg.Now().In(s.cfg.Location)
		if r.sched.Open(now) {
			if noted {
				return jw.update(ctx, true, func(j *job) { j.Waiting, j.Next = "", time.Time{} })
			}
			return nil
		}
		if jw.gone() {
			return errJobChanged
		}
		next := r.sched.NextOpen(now)
		if !noted || s.now().Sub(jw.snapshot().Updated) >= s.cfg.Lease/3 {
			err := jw.update(ctx, true, func(j *job) {
				j.Waiting = fmt.Sprintf("waiting for the schedule of the route to %s (%s), which opens at %s", dest, r.Schedule, next.Format(time.RFC3339))
				j.Next = next
			})
			if err != nil {
				return err
			}
			if !noted {
				s.log.Info("waiting for the route's schedule", "site", dest, "schedule", r.Schedule, "opens", next)
			}
			noted = true
		}
		t := time.NewTimer(min(next.Sub(now)+time.Second, s.cfg.Lease/3))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-changed:
		case <-jobs:
		case <-t.C:
		}
		t.Stop()
	}
}

// attempt sends the job's version once: offer, missing chunks, commit.
func (snd *sender) attempt(ctx context.Context, jw *jobWriter) error {
	s := snd.s
	j := jw.snapshot()
	first := j.Attempts == 0 // since it was distributed
	name := contracts.PackageKey(j.Package, j.Version)
	v, err := s.readVersion(ctx, j.Package, j.Version)
	if contracts.CodeOf(err) == contracts.CodeNotFound {
		return permanent(fmt.Errorf("%s is no longer in the library of site %s", name, s.cfg.Site))
	}
	if err != nil {
		return err
	}
	if err := snd.awaitOpen(ctx, jw); err != nil {
		return err
	}
	if err := jw.update(ctx, true, func(j *job) {
		j.Attempts++
		j.Digest, j.Next, j.Waiting = v.Info.Digest, time.Time{}, ""
	}); err != nil {
		return err
	}
	sizes, err := v.Manifest.ChunkSizes()
	if err != nil {
		return permanent(fmt.Errorf("the manifest of %s: %w", name, err))
	}

	// Offer, signed again by this site: the destination checks only its
	// direct sender's key.
	offer := contracts.ReplicationOffer{Header: contracts.NewHeader(contracts.TypeReplicationOffer), Manifest: s.sign(v.Signed.Manifest)}
	var reply contracts.ReplicationOfferReply
	if err := snd.call(ctx, j.Site, contracts.KindReplOffer, offer, &reply, offerTimeout); err != nil {
		return classify("offer", j.Site, err)
	}
	if reply.Installed {
		return snd.finish(ctx, jw, v.Info.Digest)
	}
	var total int64
	for _, h := range reply.Missing {
		size, ok := sizes[h]
		if !ok {
			return permanent(fmt.Errorf("site %s asked for chunk %q, which is not in %s", j.Site, clip(h, 64), name))
		}
		total += int64(size)
	}
	if err := jw.update(ctx, true, func(j *job) {
		j.Chunks, j.ChunksTotal, j.Bytes, j.Total, j.Error = 0, len(reply.Missing), 0, total, ""
	}); err != nil {
		return err
	}
	if first {
		s.emit(ctx, contracts.StatusSendStarted, map[string]string{"package": name, "to": j.Site, "chunks": strconv.Itoa(len(reply.Missing))})
	}
	if err := snd.sendChunks(ctx, jw, inManifestOrder(&v.Manifest, reply.Missing), sizes); err != nil {
		return err
	}

	commit := contracts.ReplicationCommit{Header: contracts.NewHeader(contracts.TypeReplicationCommit), Package: j.Package, Version: j.Version, Digest: v.Info.Digest}
	var ack contracts.ReplicationCommitAck
	if err := snd.call(ctx, j.Site, contracts.KindReplCommit, commit, &ack, commitTimeout); err != nil {
		return classify("commit", j.Site, err)
	}
	if ack.Digest != v.Info.Digest {
		return permanent(fmt.Errorf("site %s installed %s with digest %q, not %s", j.Site, name, clip(ack.Digest, 64), v.Info.Digest))
	}
	return snd.finish(ctx, jw, ack.Digest)
}

// finish marks the job installed.
func (snd *sender) finish(ctx context.Context, jw *jobWriter, digest string) error {
	if err := jw.update(ctx, true, func(j *job) {
		j.State, j.Verified, j.Error, j.Owner, j.Next, j.Waiting = contracts.ContentInstalled, digest, "", "", time.Time{}, ""
	}); err != nil {
		return err
	}
	j := jw.snapshot()
	name := contracts.PackageKey(j.Package, j.Version)
	snd.s.log.Info("version installed at site", "package", name, "site", j.Site, "chunks", j.Chunks, "bytes", j.Bytes)
	snd.s.emit(ctx, contracts.StatusSendInstalled, map[string]string{"package": name, "to": j.Site,
		"chunks": strconv.Itoa(j.Chunks), "bytes": strconv.FormatInt(j.Bytes, 10)})
	return nil
}

// inManifestOrder returns the chunks of missing in the order the manifest
// names them (the order they were most likely stored in): read that way,
// the library loads each block of its stream once rather than again for
// chunks scattered by the hash order of the destination's answer.
func inManifestOrder(m *contracts.Manifest, missing []string) []string {
	want := make(map[string]bool, len(missing))
	for _, h := range missing {
		want[h] = true
	}
	out := make([]string, 0, len(missing))
	for _, h := range m.Chunks() {
		if want[h] {
			out = append(out, h)
			delete(want, h)
		}
	}
	return out
}

// sendChunks sends the chunks, up to SendWindow at once, each after the
// route's schedule and rate allow it.
func (snd *sender) sendChunks(ctx context.Context, jw *jobWriter, missing []string, sizes map[string]int) error {
	s := snd.s
	j := jw.snapshot()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, s.cfg.SendWindow)
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	// A slow route may hold a chunk back for minutes: the claim is renewed
	// while the pacer waits.
	pace := func(rate int64) *pacer {
		p := newPacer(rate)
		p.sleep = func(ctx context.Context, d time.Duration) error { return snd.sleepFor(ctx, jw, d) }
		return p
	}
	r := s.model.route(j.Site)
	p := pace(r.Rate)
	for _, h := range missing {
		if err := failed(); err != nil {
			break
		}
		if cur := s.model.route(j.Site); !cur.Updated.Equal(r.Updated) {
			r, p = cur, pace(cur.Rate)
		}
		if err := snd.awaitOpen(ctx, jw); err != nil {
			fail(err)
			break
		}
		waited, err := p.wait(ctx, sizes[h])
		snd.paced.Add(int64(waited))
		if err != nil {
			fail(err)
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(ctx.Err())
		}
		if failed() != nil {
			break
		}
		// Each chunk of the window is read in its own goroutine: reading
		// one after another would bound the whole transfer by the
		// library's read latency.
		wg.Go(func() {
			defer func() { <-sem }()
			data, err := s.ReadChunk(ctx, h)
			if err != nil {
				if contracts.CodeOf(err) == contracts.CodeNotFound {
					err = permanent(fmt.Errorf("chunk %s of %s is missing from the library of site %s", h, contracts.PackageKey(j.Package, j.Version), s.cfg.Site))
				}
				fail(err)
				return
			}
			if err := snd.sendChunk(ctx, j, h, data); err != nil {
				fail(err)
				return
			}
			snd.sent.Add(1)
			if err := jw.update(ctx, false, func(j *job) { j.Chunks++; j.Bytes += int64(len(data)) }); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	if err := failed(); err != nil {
		return err
	}
	return jw.update(ctx, true, func(*job) {})
}

// sendChunk sends one chunk.
func (snd *sender) sendChunk(ctx context.Context, j job, hash string, data []byte) error {
	subj, err := contracts.SiteSubject(j.Site, snd.s.cfg.Site, contracts.KindReplChunk)
	if err != nil {
		return permanent(err)
	}
	msg := nats.NewMsg(subj)
	msg.Header.Set(contracts.HeaderPackage, j.Package)
	msg.Header.Set(contracts.HeaderVersion, j.Version)
	msg.Header.Set(contracts.HeaderChunk, hash)
	msg.Data = data
	cctx, cancel := context.WithTimeout(ctx, chunkTimeout)
	defer cancel()
	if _, err := rpc.CallMsg(cctx, snd.s.cfg.SiteNC, msg); err != nil {
		return classify("chunk", j.Site, err)
	}
	return nil
}

// call sends a JSON request of kind to dest on the site connection.
func (snd *sender) call(ctx context.Context, dest, kind string, req, resp any, timeout time.Duration) error {
	subj, err := contracts.SiteSubject(dest, snd.s.cfg.Site, kind)
	if err != nil {
		return permanent(err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return rpc.Call(cctx, snd.s.cfg.SiteNC, subj, req, resp)
}

// classify tells a failure the destination answered from one to retry:
// what it refused (quarantined, conflicting with what it holds) fails the
// job; a destination that is down, busy, full or lost the offer is
// retried.
func classify(phase, dest string, err error) error {
	var ce *contracts.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Code {
	case contracts.CodeUnavailable, contracts.CodeInternal:
		return fmt.Errorf("%s to site %s: %w", phase, dest, err)
	case contracts.CodeNotFound:
		return fmt.Errorf("%s to site %s: %w", phase, dest, err) // the offer was lost: offer again
	case contracts.CodeConflict:
		if phase == "commit" {
			return fmt.Errorf("%s to site %s: %w", phase, dest, err) // chunks missing or the offer replaced: offer again
		}
	}
	return permanent(fmt.Errorf("site %s refused the %s: %w", dest, phase, err))
}
