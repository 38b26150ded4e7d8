package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// Content: the package versions the site assigns this client. The agent
// asks its site for the signed list (content.list) at every connect, when
// the site says content.changed, and every policy refresh interval; it
// trusts a manifest because its digest is in a list its pinned site key
// signed, fetches the chunks it lacks (content.chunk), verifies each, and
// installs a version by renaming its complete staging directory to
// <state dir>/content/<package>/<version>. Outcomes go to the site
// (content.report) and, as status messages, through the outbox.

// DefaultContentMax is the largest package version the agent downloads
// unless Config.ContentMax says otherwise.
const DefaultContentMax = int64(16) << 30

// DefaultContentSpread is Config.ContentSpread's default.
const DefaultContentSpread = 30 * time.Second

// ContentDirName is the content directory's name inside the state dir.
const ContentDirName = "content"

const (
	// stagingDirName holds the versions being fetched, one directory
	// "<package>@<version>" each; a leading dot keeps it clear of package
	// names.
	stagingDirName = ".staging"
	// contentReserve is the free space a download leaves on the content
	// directory's file system.
	contentReserve = int64(64) << 20
	// Time limits of one content request and of one chunk.
	contentRequestTimeout = 15 * time.Second
	chunkRequestTimeout   = 60 * time.Second
	// maxContentReply bounds a list or manifest answer as received.
	maxContentReply = 4 << 20
	// A version that failed is tried again after failedRetryBase,
	// doubling with each failure in a row up to failedRetryMax (every
	// attempt can be a whole download for every client it is assigned
	// to), or at once when the site says the assignments changed.
	failedRetryBase = 10 * time.Minute
	failedRetryMax  = 12 * time.Hour
)

// errNoContentService means nothing at the site answers content requests
// (no replication service runs yet): the agent asks again at its next
// connect, content.changed or refresh.
var errNoContentService = errors.New("no site service answers content requests yet")

// retryable is a failure that says nothing about the content: the site did
// not answer, the connection dropped, the agent is stopping. The version is
// fetched again later, resuming; it is not reported as failed.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func isRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}

// contentRuntime is the agent's content machinery.
type contentRuntime struct {
	dir  string        // <state dir>/content; "" when the agent has no state dir (simulator)
	wake chan struct{} // fetch the list now (connect, content.changed)
	// retryFailed makes the next sync try failed versions before their
	// retry time (content.changed).
	retryFailed atomic.Bool
	index       atomic.Pointer[[]state.ContentEntry]
	syncMu      sync.Mutex // one sync at a time

	mu       sync.Mutex
	progress map[string]int64 // bytes staged of the versions downloading, by package@version

	// freeSpace tells the bytes free for an unprivileged user on dir's
	// file system (-1: unknown); tests replace it.
	freeSpace func(dir string) (int64, error)
}

func newContentRuntime(cfg Config) *contentRuntime {
	c := &contentRuntime{wake: make(chan struct{}, 1), progress: map[string]int64{}, freeSpace: contracts.DiskFree}
	if cfg.Store == nil {
		c.dir = filepath.Join(cfg.StateDir, ContentDirName)
	}
	return c
}

func (c *contentRuntime) setProgress(key string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n < 0 {
		delete(c.progress, key)
		return
	}
	c.progress[key] = n
}

func (c *contentRuntime) addProgress(key string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress[key] += n
}

// loadContent reads the content index at start.
func (a *Agent) loadContent() error {
	idx, err := a.store.ContentIndex()
	if err != nil {
		return err
	}
	a.content.index.Store(&idx)
	return nil
}

// updateContent changes the content index (and enqueues entries) in one
// transaction, and refreshes what Status shows.
func (a *Agent) updateContent(fn func(idx map[string]state.ContentEntry) ([]state.Entry, error)) error {
	var enqueued bool
	dropped, err := a.store.UpdateContent(a.cfg.OutboxMax, func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
		entries, err := fn(idx)
		enqueued = len(entries) > 0
		return entries, err
	})
	if err != nil {
		return err
	}
	if dropped > 0 {
		a.log.Warn("outbox full: a content status message was not queued (the index holds the outcome)", "dropped", dropped, "outbox_max", a.cfg.OutboxMax)
	} else if enqueued {
		a.wakeOutbox()
	}
	return a.loadContent()
}

// Content is what the agent holds, fetches or failed to fetch, sorted by
// package and version.
func (a *Agent) Content() []contracts.ContentHeld {
	p := a.content.index.Load()
	if p == nil {
		return nil
	}
	a.content.mu.Lock()
	defer a.content.mu.Unlock()
	out := make([]contracts.ContentHeld, 0, len(*p))
	for _, e := range *p {
		h := contracts.ContentHeld{
			Package: e.Package, Version: e.Version, Digest: e.Digest, State: e.State, Size: e.Size, Bytes: e.Bytes,
			Path: e.Path, Installed: e.Installed, Updated: e.Updated, Error: e.Error, Assigned: e.Assigned, Reported: e.Reported,
			Retry: e.Retry,
		}
		if e.State == state.ContentDownloading {
			h.Bytes = a.content.progress[e.Key()]
		}
		out = append(out, h)
	}
	return out
}

// ContentList answers the control socket's content verb.
func (a *Agent) ContentList() control.ContentList {
	return control.ContentList{Type: control.TypeContentList, Dir: a.content.dir, Content: a.Content()}
}

// onContentChanged is the site saying the assignments changed: the next
// sync also tries the failed versions again (an operator deploying again
// is how a site asks for that).
func (a *Agent) onContentChanged(context.Context, *nats.Msg) {
	a.content.retryFailed.Store(true)
	signal(a.content.wake)
}

// runContent syncs the content at every (re)connect, on content.changed
// and every policy refresh interval, and with backoff after a failure
// that retrying can mend, until ctx ends.
func (a *Agent) runContent(ctx context.Context, nc *nats.Conn, id state.Identity) {
	if a.content.dir == "" {
		return
	}
	refresh := time.NewTimer(jitter(a.policyRefresh()))
	defer refresh.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.content.wake:
			// A (re)connection or content.changed: every client of a
			// collection, or of a restarted site, was told at once.
			if spread := a.cfg.ContentSpread; spread > 0 {
				wait := time.NewTimer(rand.N(spread))
				select {
				case <-ctx.Done():
					wait.Stop()
					return
				case <-wait.C:
				}
			}
		case <-refresh.C:
		case <-retry.C:
		}
		refresh.Reset(jitter(a.policyRefresh()))
		if !nc.IsConnected() {
			continue // the reconnect wakes us
		}
		err := a.SyncContent(ctx, nc, id)
		switch {
		case err == nil:
			failures = 0
			retry.Stop()
		case ctx.Err() != nil:
			return
		case errors.Is(err, errNoContentService):
			failures = 0
			a.log.Info("content not synced", "err", err)
		case isRetryable(err):
			failures++
			d := backoff(failures, time.Second, a.cfg.RetryMax)
			a.log.Warn("content sync interrupted; will retry", "err", err, "retry_in", d.Round(time.Millisecond))
			retry.Reset(d)
		default:
			a.log.Error("content sync failed", "err", err)
		}
	}
}

// SyncContent fetches the content list and brings the content directory in
// line with it: every version assigned and not held is fetched and
// installed (or fails, reported), one at a time; versions no longer
// assigned stay installed. Outcomes the site has not acknowledged are
// reported again. A retryable error stops the sync (what was staged stays
// for the next one).
func (a *Agent) SyncContent(ctx context.Context, nc *nats.Conn, id state.Identity) error {
	a.content.syncMu.Lock()
	defer a.content.syncMu.Unlock()
	ctx, span := telemetry.Tracer(tracerName).Start(ctx, "agent.content.sync")
	defer span.End()
	// Outcomes not yet acknowledged go first; one the site does not take
	// now is sent again at the end.
	if err := a.sendContentReports(ctx, nc, id); err != nil && (!isRetryable(err) || errors.Is(err, errNoContentService)) {
		return err
	}
	list, err := a.fetchContentList(ctx, nc, id)
	if err != nil {
		span.RecordError(err)
		return err
	}
	if err := a.markAssigned(list); err != nil {
		return err
	}
	retryFailed, now := a.content.retryFailed.Swap(false), time.Now()
	tried := false
	defer func() {
		if !tried && retryFailed { // stopped short: the next sync still owes the site its retry
			a.content.retryFailed.Store(true)
		}
	}()
	for _, asg := range list.Packages {
		if a.holds(asg) {
			continue
		}
		if e, ok := a.contentEntry(asg); ok && !retryFailed && e.State == contracts.ContentFailed && e.Digest == asg.Digest && now.Before(e.Retry) {
			continue // failed, and not yet due again
		}
		if err := a.installContent(ctx, nc, id, asg); err != nil {
			if isRetryable(err) || ctx.Err() != nil {
				return err
			}
			if !isOutcome(err) {
				return err // the state store failed
			}
		}
	}
	tried = true
	return a.sendContentReports(ctx, nc, id)
}

// contentRequest sends v as a request on the agent's up subject of kind and
// returns the answer. No answer is retryable; a coded refusal is an error
// (retryable when the site says it is unavailable or failed).
func (a *Agent) contentRequest(ctx context.Context, nc *nats.Conn, id state.Identity, kind string, v any, timeout time.Duration) (*nats.Msg, error) {
	subject, err := contracts.AgentUp(id.Site, id.ClientID, kind)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	telemetry.Inject(ctx, msg.Header)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(rctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, retryable{errNoContentService}
	case err != nil:
		return nil, retryable{fmt.Errorf("%s: %w", kind, err)}
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		c := contracts.ParseCode(code)
		err := contracts.Errorf(c, "the site refused %s: %s (%s)", kind, reply.Header.Get("Nats-Service-Error"), c)
		if c == contracts.CodeUnavailable || c == contracts.CodeInternal {
			return nil, retryable{err}
		}
		return nil, err
	}
	return reply, nil
}

// fetchContentList asks for the content list and verifies it. A list that
// fails verification is logged and reported as a status message; nothing
// changes.
func (a *Agent) fetchContentList(ctx context.Context, nc *nats.Conn, id state.Identity) (*contracts.ContentList, error) {
	req := contracts.ContentListRequest{Header: contracts.NewHeader(contracts.TypeContentListRequest)}
	reply, err := a.contentRequest(ctx, nc, id, contracts.KindContentList, req, contentRequestTimeout)
	if err != nil {
		return nil, err
	}
	list, err := VerifyContentList(reply.Data, id, time.Now())
	if err != nil {
		a.log.Error("content list rejected; the content held stays as it is", "err", err)
		a.reportStatus(contracts.StatusAgentContentRejected, map[string]string{"site": id.Site, "reason": truncate(err.Error(), 1000)})
		return nil, fmt.Errorf("content list rejected: %w", err)
	}
	return list, nil
}

// VerifyContentList checks data, a contracts.ContentListResponse as
// received, for the client id at now, as VerifyPolicy checks a policy: the
// key must be the site key pinned at enrollment and the signature must
// verify over exactly the signed bytes; then the list's site, client and
// times, and every assignment's names and digest.
func VerifyContentList(data []byte, id state.Identity, now time.Time) (*contracts.ContentList, error) {
	if len(data) > maxContentReply {
		return nil, fmt.Errorf("content list answer of %d bytes: over the %d-byte limit", len(data), maxContentReply)
	}
	var resp contracts.ContentListResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("not a content list answer: %v", err)
	}
	if resp.Type != contracts.TypeContentListResponse {
		return nil, fmt.Errorf("message type %q, want %q", resp.Type, contracts.TypeContentListResponse)
	}
	if len(resp.List) == 0 || len(resp.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("unsigned list: no list, or a signature of %d bytes (want %d)", len(resp.Signature), ed25519.SignatureSize)
	}
	site, err := nkeys.FromPublicKey(id.SiteKey)
	if err != nil {
		return nil, fmt.Errorf("the pinned site key %q is unusable: %v", id.SiteKey, err)
	}
	if resp.Key != id.SiteKey {
		return nil, fmt.Errorf("list signed by key %q, not the pinned key of site %s (%s)", truncate(resp.Key, 60), id.Site, id.SiteKey)
	}
	if err := site.Verify(contracts.ContentListSigningInput(resp.List), resp.Signature); err != nil {
		return nil, fmt.Errorf("the signature does not verify with the pinned site key %s", id.SiteKey)
	}
	var l contracts.ContentList
	if err := json.Unmarshal(resp.List, &l); err != nil {
		return nil, fmt.Errorf("signed list unreadable: %v", err)
	}
	switch {
	case l.Type != contracts.TypeContentList:
		return nil, fmt.Errorf("signed body of type %q, want %q", l.Type, contracts.TypeContentList)
	case l.Site != id.Site:
		return nil, fmt.Errorf("list for site %q; this agent belongs to %q", l.Site, id.Site)
	case l.Client != id.ClientID:
		return nil, fmt.Errorf("list for client %s; this is %s", l.Client, id.ClientID)
	case !now.Before(l.Expires):
		return nil, fmt.Errorf("list expired at %s (now %s)", l.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case l.Issued.After(now.Add(maxClockSkew)):
		return nil, fmt.Errorf("list issued at %s, in the future by this machine's clock (%s)", l.Issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	seen := map[string]bool{}
	for _, p := range l.Packages {
		key := contracts.PackageKey(p.Package, p.Version)
		switch err := validAssignment(p); {
		case err != nil:
			return nil, fmt.Errorf("assignment %q: %w", truncate(key, 200), err)
		case seen[key]:
			return nil, fmt.Errorf("assignment %s appears twice", key)
		}
		seen[key] = true
	}
	return &l, nil
}

func validAssignment(p contracts.ContentAssignment) error {
	if err := contracts.ValidPackageName(p.Package); err != nil {
		return err
	}
	if err := contracts.ValidPackageVersion(p.Version); err != nil {
		return err
	}
	if err := contracts.ValidHash(p.Digest); err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if p.Size < 0 || p.Size > contracts.MaxPackageBytes {
		return fmt.Errorf("size %d out of range", p.Size)
	}
	return nil
}

// markAssigned records which versions the list assigns. A version no
// longer assigned stays installed; one that was downloading or failed is
// forgotten, with its staging directory.
func (a *Agent) markAssigned(list *contracts.ContentList) error {
	assigned := map[string]bool{}
	for _, p := range list.Packages {
		assigned[contracts.PackageKey(p.Package, p.Version)] = true
	}
	var dropped []string
	err := a.updateContent(func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
		for k, e := range idx {
			switch {
			case assigned[k]:
				e.Assigned = true
			case e.State == contracts.ContentInstalled:
				e.Assigned = false
			default:
				delete(idx, k)
				dropped = append(dropped, k)
				continue
			}
			idx[k] = e
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	// Staging directories of versions no longer assigned go.
	staging := filepath.Join(a.content.dir, stagingDirName)
	des, _ := os.ReadDir(staging)
	for _, de := range des {
		if !assigned[de.Name()] {
			if err := os.RemoveAll(filepath.Join(staging, de.Name())); err != nil {
				a.log.Warn("could not remove a staging directory", "path", filepath.Join(staging, de.Name()), "err", err)
			}
		}
	}
	if len(dropped) > 0 {
		a.log.Info("versions no longer assigned forgotten", "versions", dropped)
	}
	return nil
}

// contentEntry is the index's entry of the version asg names.
func (a *Agent) contentEntry(asg contracts.ContentAssignment) (state.ContentEntry, bool) {
	p := a.content.index.Load()
	if p == nil {
		return state.ContentEntry{}, false
	}
	for _, e := range *p {
		if e.Package == asg.Package && e.Version == asg.Version {
			return e, true
		}
	}
	return state.ContentEntry{}, false
}

// holds reports whether the version asg names is installed: recorded with
// its digest, and its directory still there.
func (a *Agent) holds(asg contracts.ContentAssignment) bool {
	e, ok := a.contentEntry(asg)
	if !ok || e.State != contracts.ContentInstalled || e.Digest != asg.Digest || e.Path == "" {
		return false
	}
	fi, err := os.Lstat(e.Path)
	return err == nil && fi.IsDir()
}

// outcome is a version that failed for a reason retrying now will not
// mend: recorded as failed and reported.
type outcome struct{ err error }

func (o outcome) Error() string { return o.err.Error() }
func (o outcome) Unwrap() error { return o.err }

func isOutcome(err error) bool {
	var o outcome
	return errors.As(err, &o)
}

// installContent fetches and installs one version and records the outcome.
// It returns a retryable error when the download stopped short (the staged
// files stay), an outcome when the version failed (recorded and reported),
// and any other error when the state store failed.
func (a *Agent) installContent(ctx context.Context, nc *nats.Conn, id state.Identity, asg contracts.ContentAssignment) error {
	key := contracts.PackageKey(asg.Package, asg.Version)
	ctx, span := telemetry.Tracer(tracerName).Start(ctx, "agent.content.install")
	defer span.End()
	log := a.log.With("package", key, "digest", asg.Digest)
	var prev state.ContentEntry // the outcome of the last attempt, if any
	err := a.updateContent(func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
		e := idx[key]
		prev = e
		if e.State == state.ContentDownloading && e.Digest == asg.Digest {
			return nil, nil
		}
		idx[key] = state.ContentEntry{Package: asg.Package, Version: asg.Version, Digest: asg.Digest, State: state.ContentDownloading,
			Size: asg.Size, Path: e.Path, Updated: time.Now().UTC(), Assigned: true}
		return nil, nil
	})
	if err != nil {
		return err
	}
	log.Info("fetching package version", "size", asg.Size)
	a.content.setProgress(key, 0)
	defer a.content.setProgress(key, -1)

	size, path, err := a.fetchAndInstall(ctx, nc, id, asg)
	if err != nil && (isRetryable(err) || ctx.Err() != nil) {
		log.Warn("download stopped short; it resumes with the chunks still missing", "err", err)
		if !isRetryable(err) {
			err = retryable{err}
		}
		return err
	}
	if err != nil {
		span.RecordError(err)
		log.Error("package version failed", "err", err)
	} else {
		log.Info("package version installed", "path", path, "bytes", size)
	}
	if rerr := a.recordOutcome(asg, prev, size, path, err); rerr != nil {
		return rerr
	}
	if err != nil {
		return outcome{err}
	}
	return nil
}

// recordOutcome writes the outcome of asg to the index, with its status
// message in the same transaction. The same failure as the previous
// attempt's (prev) is neither a new status message nor a new report.
func (a *Agent) recordOutcome(asg contracts.ContentAssignment, prev state.ContentEntry, size int64, path string, failure error) error {
	key := contracts.PackageKey(asg.Package, asg.Version)
	now := time.Now().UTC()
	return a.updateContent(func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
		e := state.ContentEntry{Package: asg.Package, Version: asg.Version, Digest: asg.Digest, Size: asg.Size, Updated: now, Assigned: true}
		if size > 0 {
			e.Size = size
		}
		props := map[string]string{"package": asg.Package, "version": asg.Version, "digest": asg.Digest}
		var msgID int
		if failure == nil {
			e.State, e.Bytes, e.Path, e.Installed = contracts.ContentInstalled, size, path, now
			props["path"], props["bytes"] = path, strconv.FormatInt(size, 10)
			msgID = contracts.StatusAgentPackageInstalled
		} else {
			e.State, e.Error = contracts.ContentFailed, truncate(failure.Error(), 1000)
			e.Failures = 1
			if prev.State == contracts.ContentFailed && prev.Digest == e.Digest {
				e.Failures = prev.Failures + 1
			}
			e.Retry = now.Add(backoff(e.Failures, failedRetryBase, failedRetryMax))
			props["error"] = e.Error
			msgID = contracts.StatusAgentPackageFailed
			if prev.State == contracts.ContentFailed && prev.Digest == e.Digest && prev.Error == e.Error && prev.Reported {
				// The same failure as last time: already said.
				e.Reported, e.Updated = true, prev.Updated
				idx[key] = e
				return nil, nil
			}
		}
		idx[key] = e
		entry, err := newEntry(contracts.KindStatus, contracts.TypeStatusMessage, contracts.NewStatus(msgID, props))
		if err != nil {
			return nil, err
		}
		return []state.Entry{entry}, nil
	})
}

// sendContentReports reports every outcome the site has not acknowledged.
// A report the site refuses for good counts as delivered (logged).
func (a *Agent) sendContentReports(ctx context.Context, nc *nats.Conn, id state.Identity) error {
	p := a.content.index.Load()
	if p == nil {
		return nil
	}
	for _, e := range *p {
		if e.Reported || (e.State != contracts.ContentInstalled && e.State != contracts.ContentFailed) {
			continue
		}
		rep := contracts.ContentReport{
			Header:  contracts.NewHeader(contracts.TypeContentReport),
			Package: e.Package, Version: e.Version, Digest: e.Digest, State: e.State, Bytes: e.Bytes, Error: e.Error,
		}
		reply, err := a.contentRequest(ctx, nc, id, contracts.KindContentReport, rep, contentRequestTimeout)
		switch {
		case isRetryable(err):
			return err
		case err != nil:
			a.log.Error("the site refused a content report for good; not sending it again", "package", e.Key(), "err", err)
		default:
			var ack contracts.ContentReportAck
			if err := json.Unmarshal(reply.Data, &ack); err != nil || ack.Type != contracts.TypeContentReportAck {
				return retryable{fmt.Errorf("malformed content report answer (%v)", err)}
			}
		}
		err = a.updateContent(func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
			cur, ok := idx[e.Key()]
			if ok && cur.State == e.State && cur.Digest == e.Digest && cur.Updated.Equal(e.Updated) {
				cur.Reported = true
				idx[e.Key()] = cur
			}
			return nil, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
