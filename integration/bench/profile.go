package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"
)

// debugArgs are the serve flags that let the bench profile a site: a
// profiler on a free loopback port when the run asks for profiles.
func (e *Env) debugArgs() ([]string, string, error) {
	if e.ProfileDir == "" {
		return nil, "", nil
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	return []string{"--debug-listen", addr}, addr, nil
}

// profile starts CPU profiles of the site (at its profiler, for up to
// limit) and of this process, named after name; the returned stop writes
// them. Without a ProfileDir it does nothing.
func (e *Env) profile(ctx context.Context, s *Site, name string, limit time.Duration) (stop func()) {
	return e.profileSites(ctx, name, limit, map[string]*Site{"site": s})
}

// profileSites is profile for several sites: <name>-<key>.pprof for each
// site of sites, and <name>-fleet.pprof for this process.
func (e *Env) profileSites(ctx context.Context, name string, limit time.Duration, sites map[string]*Site) (stop func()) {
	if e.ProfileDir == "" {
		return func() {}
	}
	if err := os.MkdirAll(e.ProfileDir, 0o755); err != nil {
		e.Log("profile: %v", err)
		return func() {}
	}
	siteDone := make(chan error, len(sites))
	for key, s := range sites {
		if s.DebugAddr == "" {
			siteDone <- nil
			continue
		}
		// Allocations since the site started, now and once the CPU
		// profile ends: `go tool pprof -base <before> <after>` shows what
		// the measured part allocated (what its collector had to chase).
		before := filepath.Join(e.ProfileDir, name+"-"+key+"-allocs-before.pprof")
		after := filepath.Join(e.ProfileDir, name+"-"+key+"-allocs.pprof")
		if err := e.fetchTo(ctx, s, "allocs", before); err != nil {
			e.Log("profile: a site's allocations: %v", err)
		}
		// Opened now: a fleet's sockets may leave no descriptor later.
		out, err := os.Create(filepath.Join(e.ProfileDir, name+"-"+key+".pprof"))
		if err != nil {
			siteDone <- err
			continue
		}
		go func() {
			err := fetchProfile(ctx, s.DebugAddr, limit, out)
			if err == nil {
				err = e.fetchTo(ctx, s, "allocs", after)
			}
			siteDone <- err
		}()
	}
	f, err := os.Create(filepath.Join(e.ProfileDir, name+"-fleet.pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		e.Log("profile: %v", err)
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		for range sites {
			if err := <-siteDone; err != nil {
				e.Log("profile: a site's: %v", err)
			}
		}
		e.Log("profile: %s written to %s", name, e.ProfileDir)
	}
}

// heapProfile writes the site's heap profile as <name>-heap.pprof, when
// the run asks for profiles.
func (e *Env) heapProfile(ctx context.Context, s *Site, name string) {
	if e.ProfileDir == "" || s.DebugAddr == "" {
		return
	}
	if err := os.MkdirAll(e.ProfileDir, 0o755); err != nil {
		e.Log("profile: %v", err)
		return
	}
	if err := e.fetchTo(ctx, s, "heap?gc=1", filepath.Join(e.ProfileDir, name+"-heap.pprof")); err != nil {
		e.Log("profile: the site's heap: %v", err)
	}
}

// fetchTo writes the site's profile of kind (a /debug/pprof name) to path.
func (e *Env) fetchTo(ctx context.Context, s *Site, kind, path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	return fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/%s", s.DebugAddr, kind), out)
}

func fetchProfile(ctx context.Context, addr string, d time.Duration, out *os.File) error {
	return fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))), out)
}

// fetch writes what url answers into out, and closes out.
func fetch(ctx context.Context, url string, out *os.File) error {
	defer out.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// Its own connections: a fleet's sockets may leave few descriptors.
	req.Close = true
	// A site just launched listens soon: try for a few seconds.
	var resp *http.Response
	for try := 0; ; try++ {
		resp, err = http.DefaultClient.Do(req)
		if err == nil || try == 50 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	_, err = io.Copy(out, resp.Body)
	return err
}

// siteMemStats reads the site's runtime memory statistics from its
// profiler's /debug/vars.
func siteMemStats(ctx context.Context, s *Site) (runtime.MemStats, error) {
	var v struct {
		MemStats runtime.MemStats `json:"memstats"`
	}
	if s.DebugAddr == "" {
		return v.MemStats, fmt.Errorf("the site serves no profiler")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.DebugAddr+"/debug/vars", nil)
	if err != nil {
		return v.MemStats, err
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return v.MemStats, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v.MemStats, fmt.Errorf("/debug/vars: %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v.MemStats, err
}
