package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// model is this instance's view of the small buckets, kept by watches:
// version summaries (packages, without their manifests), deployments,
// routes and jobs. Writers wait until the view holds their write (wait),
// so an instance reads its own writes.
type model struct {
	mu          sync.RWMutex
	versions    map[string]contracts.PackageInfo       // versionKey
	deleting    map[string]bool                        // versionKey: marked Deleting
	deployments map[string]contracts.PackageDeployment // deploymentKey
	routes      map[string]route                       // site code (the key unescaped)
	jobs        map[string]jobEntry                    // jobKey
	seen        map[string]uint64                      // bucket -> last revision applied
	changed     map[string]chan struct{}               // bucket -> closed and replaced on its every change

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// jobEntry is a job with the revision it was read at.
type jobEntry struct {
	job job
	rev uint64
}

func newModel() *model {
	return &model{
		versions: map[string]contracts.PackageInfo{}, deleting: map[string]bool{}, deployments: map[string]contracts.PackageDeployment{},
		routes: map[string]route{}, jobs: map[string]jobEntry{}, seen: map[string]uint64{},
		changed: map[string]chan struct{}{},
	}
}

// start loads every bucket (under ctx) and keeps watching them until stop.
func (m *model) start(ctx context.Context, log *slog.Logger, buckets map[string]jetstream.KeyValue) error {
	wctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for name, kv := range buckets {
		w, err := kv.WatchAll(wctx)
		if err != nil {
			cancel()
			return fmt.Errorf("replication: watch %s: %w", name, err)
		}
		if err := m.load(ctx, w, name, log); err != nil {
			_ = w.Stop()
			cancel()
			return err
		}
		m.wg.Go(func() {
			defer func() { _ = w.Stop() }()
			for e := range w.Updates() {
				if e != nil {
					m.apply(name, e, log)
				}
			}
		})
	}
	return nil
}

// stop ends the watches.
func (m *model) stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
}

func (m *model) load(ctx context.Context, w jetstream.KeyWatcher, bucket string, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("replication: watch of %s closed while loading", bucket)
			}
			if e == nil {
				return nil
			}
			m.apply(bucket, e, log)
		}
	}
}

// apply applies one entry of bucket.
func (m *model) apply(bucket string, e jetstream.KeyValueEntry, log *slog.Logger) {
	del := e.Operation() != jetstream.KeyValuePut
	m.mu.Lock()
	defer func() {
		m.seen[bucket] = max(m.seen[bucket], e.Revision())
		if ch, ok := m.changed[bucket]; ok {
			close(ch)
			delete(m.changed, bucket)
		}
		m.mu.Unlock()
	}()
	var err error
	switch bucket {
	case PackagesBucket:
		if del {
			delete(m.versions, e.Key())
			delete(m.deleting, e.Key())
			return
		}
		var rec versionInfoOnly
		if err = json.Unmarshal(e.Value(), &rec); err == nil {
			m.versions[e.Key()] = rec.Info
			if rec.Deleting {
				m.deleting[e.Key()] = true
			} else {
				delete(m.deleting, e.Key())
			}
		}
	case DeploymentsBucket:
		if del {
			delete(m.deployments, e.Key())
			return
		}
		var d contracts.PackageDeployment
		if err = json.Unmarshal(e.Value(), &d); err == nil {
			m.deployments[e.Key()] = d
		}
	case RoutesBucket:
		if del {
			site, _ := unkeyToken(e.Key())
			delete(m.routes, site)
			return
		}
		var r route
		if r, err = decodeRoute(e.Value()); err == nil {
			m.routes[r.Site] = r
		}
	case JobsBucket:
		if del {
			delete(m.jobs, e.Key())
			return
		}
		var j job
		if err = json.Unmarshal(e.Value(), &j); err == nil {
			m.jobs[e.Key()] = jobEntry{job: j, rev: e.Revision()}
		}
	}
	if err != nil {
		log.Error("skipping entry", "bucket", bucket, "key", e.Key(), "err", err)
	}
}

// wait returns once the view of bucket holds revision rev.
func (m *model) wait(ctx context.Context, bucket string, rev uint64) error {
	for {
		ch := m.waitChange(bucket)
		m.mu.RLock()
		seen := m.seen[bucket]
		m.mu.RUnlock()
		if seen >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// waitChange returns a channel closed at the next change of bucket.
func (m *model) waitChange(bucket string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.changed[bucket]
	if !ok {
		ch = make(chan struct{})
		m.changed[bucket] = ch
	}
	return ch
}

// version is the summary of an installed version.
func (m *model) version(pkg, version string) (contracts.PackageInfo, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.versions[versionKey(pkg, version)]
	return v, ok
}

// versionState is version plus whether the version is marked Deleting.
func (m *model) versionState(pkg, version string) (v contracts.PackageInfo, ok, deleting bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k := versionKey(pkg, version)
	v, ok = m.versions[k]
	return v, ok, m.deleting[k]
}

// versionList lists the versions of pkg ("" every package), by package
// then creation.
func (m *model) versionList(pkg string) []contracts.PackageInfo {
	m.mu.RLock()
	out := make([]contracts.PackageInfo, 0, len(m.versions))
	for _, v := range m.versions {
		if pkg == "" || v.Package == pkg {
			out = append(out, v)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b contracts.PackageInfo) int {
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// deploymentList lists deployments, of one version when pkg and version
// are set, of one package when only pkg is, else all; sorted.
func (m *model) deploymentList(pkg, version string) []contracts.PackageDeployment {
	m.mu.RLock()
	out := []contracts.PackageDeployment{}
	for _, d := range m.deployments {
		if (pkg == "" || d.Package == pkg) && (version == "" || d.Version == version) {
			out = append(out, d)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b contracts.PackageDeployment) int {
		return strings.Compare(deploymentKey(a.Package, a.Version, a.Collection.ID), deploymentKey(b.Package, b.Version, b.Collection.ID))
	})
	return out
}

// route is the route to site (the default, unlimited and always open,
// when none is set).
func (m *model) route(site string) route {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r, ok := m.routes[site]; ok {
		return r
	}
	return route{Site: site}
}

// jobList lists jobs matching keep.
func (m *model) jobList(keep func(job) bool) []jobEntry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []jobEntry
	for _, e := range m.jobs {
		if keep(e.job) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b jobEntry) int {
		if c := a.job.Created.Compare(b.job.Created); c != 0 {
			return c
		}
		return strings.Compare(jobKey(a.job.Package, a.job.Version, a.job.Site), jobKey(b.job.Package, b.job.Version, b.job.Site))
	})
	return out
}
