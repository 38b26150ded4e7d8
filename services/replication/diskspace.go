package replication

import (
	"context"
	"sync"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// Free disk space. A JetStream file store that meets a full disk keeps
// the write error until its server restarts: the site would stay broken
// after space is freed, and could not even store the status message
// saying so. So the despooler takes an offer only when the chunks it
// lacks fit on the disk of the site's store with DiskReserve to spare, and
// every chunk (from a site or an operator) is stored only when it fits
// with DiskReserve to spare. A refusal is CodeUnavailable: the sender
// shows it in the job and tries again with backoff.

// DefaultDiskReserve is the free space the content library leaves on the
// disk of the site's store for the site's own streams and buckets
// (status messages, inventory, policy, the package records).
const DefaultDiskReserve int64 = 256 << 20

// diskStatusEvery is how often status 6003 is sent for one version from
// one site while the disk stays full (the sender offers again every
// RetryMax).
const diskStatusEvery = time.Hour

// DirFreeSpace is a Config.FreeSpace that reads the free space of dir's
// file system (statfs; unknown, -1, where the system has none).
func DirFreeSpace(dir string) func() (int64, error) {
	return func() (int64, error) { return contracts.DiskFree(dir) }
}

// noDiskError is a refusal for want of disk space: CodeUnavailable.
type noDiskError struct{ err *contracts.Error }

func (e *noDiskError) Error() string { return e.err.Error() }
func (e *noDiskError) Unwrap() error { return e.err }

// errNoDisk is the refusal of need bytes with free bytes free.
func (s *Service) errNoDisk(need, free int64) error {
	return &noDiskError{contracts.Errorf(contracts.CodeUnavailable, "site %s: not enough disk: needs %s, has %s free (%s of it is kept for the site's own data)",
		s.cfg.Site, contracts.HumanBytes(need+s.cfg.DiskReserve), contracts.HumanBytes(free), contracts.HumanBytes(s.cfg.DiskReserve))}
}

// checkDisk refuses to store need more bytes when they do not fit with
// DiskReserve to spare. Free space that cannot be read is not checked.
func (s *Service) checkDisk(need int64) error {
	if s.cfg.FreeSpace == nil {
		return nil
	}
	free, err := s.cfg.FreeSpace()
	if err != nil || free < 0 {
		s.log.Debug("free disk space unknown; not checked", "err", err)
		return nil
	}
	if need+s.cfg.DiskReserve > free {
		return s.errNoDisk(need, free)
	}
	return nil
}

// diskWarnings limits status 6003 for a full disk to one per version and
// sending site per diskStatusEvery.
type diskWarnings struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due says whether key's warning is due at now, and notes it sent.
func (w *diskWarnings) due(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil || len(w.last) > 1024 {
		w.last = map[string]time.Time{}
	}
	if t, ok := w.last[key]; ok && now.Sub(t) < diskStatusEvery {
		return false
	}
	w.last[key] = now
	return true
}

// noDisk reports a refusal for want of disk of what site sent of name:
// logged as a warning each time, status 6003 once per diskStatusEvery.
func (s *Service) noDisk(ctx context.Context, name, site string, err error) error {
	s.log.Warn("not enough disk to store what a site sends; it will send again", "package", name, "from", site, "err", err)
	if s.diskWarned.due(site+" "+name, s.now()) {
		s.emit(ctx, contracts.StatusPackageStoreFailed, map[string]string{"package": name, "from": site, "error": err.Error()})
	}
	return err
}
