package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"golang.org/x/time/rate"
)

// route is how the sender sends to one site (RoutesBucket, key the site
// code): at most Rate bytes a second (0: unlimited), only while Schedule
// is open ("": always).
type route struct {
	Site     string    `json:"site"`
	Rate     int64     `json:"rate"`
	Schedule string    `json:"schedule,omitempty"`
	By       string    `json:"by,omitempty"`
	Updated  time.Time `json:"updated"`

	sched Schedule
}

func decodeRoute(b []byte) (route, error) {
	var r route
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	sched, err := ParseSchedule(r.Schedule)
	if err != nil {
		return r, err
	}
	r.sched = sched
	return r, nil
}

// SetRoute sets how this site sends to site: at most rate bytes a second
// (0: unlimited) and only within schedule ("": always; see Schedule). The
// schedule is stored in its canonical form. A bad schedule or rate is
// CodeBadRequest, with the reason.
func (s *Service) SetRoute(ctx context.Context, site string, rate int64, schedule, by string) (contracts.RouteInfo, error) {
	if err := contracts.ValidName(site); err != nil {
		return contracts.RouteInfo{}, contracts.Errorf(contracts.CodeBadRequest, "site: %v", err)
	}
	if site == s.cfg.Site {
		return contracts.RouteInfo{}, contracts.Errorf(contracts.CodeBadRequest, "a route leads to another site, not to %s itself", site)
	}
	if rate < 0 {
		return contracts.RouteInfo{}, contracts.Errorf(contracts.CodeBadRequest, "rate %d: want bytes per second, 0 for unlimited", rate)
	}
	if rate > 0 && rate < minRate {
		return contracts.RouteInfo{}, contracts.Errorf(contracts.CodeBadRequest, "rate %d bytes/s: at least %d (or 0 for unlimited)", rate, minRate)
	}
	sched, err := ParseSchedule(schedule)
	if err != nil {
		return contracts.RouteInfo{}, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	r := route{Site: site, Rate: rate, Schedule: sched.String(), By: by, Updated: s.now(), sched: sched}
	b, _ := json.Marshal(r)
	rev, err := s.routesKV.Put(ctx, keyToken(site), b)
	if err != nil {
		return contracts.RouteInfo{}, contracts.Errorf(contracts.CodeUnavailable, "routes: %v", err)
	}
	if err := s.model.wait(ctx, RoutesBucket, rev); err != nil {
		return contracts.RouteInfo{}, err
	}
	s.log.Info("route set", "site", site, "rate", rate, "schedule", r.Schedule, "by", by)
	rateText := "unlimited"
	if rate > 0 {
		rateText = strconv.FormatInt(rate, 10) + " bytes/s"
	}
	s.emit(ctx, contracts.StatusRouteSet, map[string]string{"site": site, "rate": rateText, "schedule": r.Schedule, "by": by})
	return s.routeInfo(r), nil
}

// DeleteRoute returns site to the default route: unlimited, always open
// (audited, for by).
func (s *Service) DeleteRoute(ctx context.Context, site, by string) error {
	if err := contracts.ValidName(site); err != nil {
		return contracts.Errorf(contracts.CodeBadRequest, "site: %v", err)
	}
	if _, err := s.routesKV.Get(ctx, keyToken(site)); errors.Is(err, jetstream.ErrKeyNotFound) {
		return contracts.Errorf(contracts.CodeNotFound, "no route to site %s was set", site)
	}
	if err := s.routesKV.Purge(ctx, keyToken(site)); err != nil {
		return contracts.Errorf(contracts.CodeUnavailable, "routes: %v", err)
	}
	s.log.Info("route deleted", "site", site, "by", by)
	s.emit(ctx, contracts.StatusRouteDeleted, map[string]string{"site": site, "by": by})
	return s.syncModel(ctx, s.routesKV, RoutesBucket)
}

// Routes lists the routes that were set, by site. A site without one is
// sent to unlimited and always (Route gives its default).
func (s *Service) Routes() []contracts.RouteInfo {
	s.model.mu.RLock()
	rs := make([]route, 0, len(s.model.routes))
	for _, r := range s.model.routes {
		rs = append(rs, r)
	}
	s.model.mu.RUnlock()
	out := make([]contracts.RouteInfo, len(rs))
	for i, r := range rs {
		out[i] = s.routeInfo(r)
	}
	slices.SortFunc(out, func(a, b contracts.RouteInfo) int { return strings.Compare(a.Site, b.Site) })
	return out
}

// Route is the route to site, the default when none was set.
func (s *Service) Route(site string) contracts.RouteInfo { return s.routeInfo(s.model.route(site)) }

// routeInfo describes r now: open or not, and the bytes queued for its site.
func (s *Service) routeInfo(r route) contracts.RouteInfo {
	info := contracts.RouteInfo{Site: r.Site, Rate: r.Rate, Schedule: r.Schedule, Updated: r.Updated, By: r.By,
		Open: r.sched.Open(s.cfg.Now().In(s.cfg.Location))}
	for _, e := range s.model.jobList(func(j job) bool { return j.Site == r.Site && !j.done() }) {
		if e.job.Total > 0 {
			info.Backlog += e.job.Total - e.job.Bytes
		} else if v, ok := s.model.version(e.job.Package, e.job.Version); ok {
			info.Backlog += v.Size
		}
	}
	return info
}

// minRate is the lowest rate a route may have (1 KiB/s): one chunk then
// takes over eight minutes; anything lower is a typo.
const minRate = 1 << 10

// pacer holds the sender to a route's rate. Its burst is one chunk: a
// message larger than that waits for its bytes a burst at a time.
type pacer struct {
	rate  int64
	lim   *rate.Limiter
	burst int
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

// newPacer paces to bps bytes a second (0: does not pace).
func newPacer(bps int64) *pacer {
	p := &pacer{rate: bps, burst: contracts.ChunkSize, sleep: sleepCtx, now: time.Now}
	if bps > 0 {
		p.lim = rate.NewLimiter(rate.Limit(bps), p.burst)
	}
	return p
}

// wait returns once n more bytes may be sent, and the time it waited.
func (p *pacer) wait(ctx context.Context, n int) (time.Duration, error) {
	if p.lim == nil {
		return 0, nil
	}
	var waited time.Duration
	for n > 0 {
		k := min(n, p.burst)
		now := p.now()
		r := p.lim.ReserveN(now, k)
		if !r.OK() {
			return waited, fmt.Errorf("pacer: %d bytes exceed the burst of %d", k, p.burst)
		}
		if d := r.DelayFrom(now); d > 0 {
			if err := p.sleep(ctx, d); err != nil {
				r.CancelAt(p.now())
				return waited, err
			}
			waited += d
		}
		n -= k
	}
	return waited, nil
}

// sleepCtx sleeps d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
