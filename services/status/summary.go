package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// componentStore is the component status summarizer: ComponentBucket
// holds, per component, its message counts by severity in one-minute
// buckets over the last Window. The rules processor notes each stored
// message here; flush merges the notes into the bucket with
// compare-and-set, so that instances add to each other's counts. Every
// instance answers status.components from the bucket.
type componentStore struct {
	kv      jetstream.KeyValue
	window  time.Duration
	mu      sync.Mutex
	pending map[string]*componentRecord
}

// componentRecord is one component's entry in ComponentBucket.
type componentRecord struct {
	Component string           `json:"component"`
	Minutes   map[int64][3]int `json:"minutes"` // unix minute -> info, warning, error
	Last      time.Time        `json:"last"`
}

func severityIndex(sev string) int {
	switch sev {
	case contracts.SeverityWarning:
		return 1
	case contracts.SeverityError:
		return 2
	}
	return 0
}

// note counts m at the time it happened. A message older than the window
// is not counted; one from the future counts as now.
func (c *componentStore) note(m *contracts.StatusMessage, now time.Time) {
	at := m.Time
	if at.After(now) {
		at = now
	}
	if !at.After(now.Add(-c.window)) || validKey(m.Component) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]*componentRecord{}
	}
	r := c.pending[m.Component]
	if r == nil {
		r = &componentRecord{Component: m.Component, Minutes: map[int64][3]int{}}
		c.pending[m.Component] = r
	}
	minute := at.Unix() / 60
	n := r.Minutes[minute]
	n[severityIndex(m.Severity)]++
	r.Minutes[minute] = n
	if at.After(r.Last) {
		r.Last = at
	}
}

// flush merges the pending counts into the bucket; what it cannot write
// stays pending.
func (c *componentStore) flush(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	var errs []error
	for name, p := range pending {
		err := casUpdate(ctx, c.kv, name, func(cur *componentRecord) {
			if cur.Minutes == nil {
				cur.Component, cur.Minutes = name, map[int64][3]int{}
			}
			mergeMinutes(cur, p)
			oldest := now.Add(-c.window-time.Minute).Unix() / 60
			for m := range cur.Minutes {
				if m < oldest {
					delete(cur.Minutes, m)
				}
			}
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("component %s: %w", name, err))
			c.requeue(p)
		}
	}
	return errors.Join(errs...)
}

func mergeMinutes(cur, p *componentRecord) {
	for m, n := range p.Minutes {
		c := cur.Minutes[m]
		for i := range c {
			c[i] += n[i]
		}
		cur.Minutes[m] = c
	}
	if p.Last.After(cur.Last) {
		cur.Last = p.Last
	}
}

func (c *componentStore) requeue(p *componentRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]*componentRecord{}
	}
	if cur := c.pending[p.Component]; cur != nil {
		mergeMinutes(cur, p)
		return
	}
	c.pending[p.Component] = p
}

// snapshot reads every component's counts within the window ending now.
func (c *componentStore) snapshot(ctx context.Context, now time.Time) (map[string][3]int, map[string]time.Time, error) {
	counts, last := map[string][3]int{}, map[string]time.Time{}
	from := now.Add(-c.window)
	err := readAll(ctx, c.kv, func(key string, value []byte) error {
		var r componentRecord
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("component status %s is unreadable: %w", key, err)
		}
		var sum [3]int
		for m, n := range r.Minutes {
			if m < from.Unix()/60 {
				continue
			}
			for i := range sum {
				sum[i] += n[i]
			}
		}
		counts[key] = sum
		if r.Last.After(from) {
			last[key] = r.Last
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return counts, last, nil
}

// componentState applies the thresholds to counts (info, warning, error):
// the worst level any severity reaches, with the reason.
func componentState(counts [3]int, th contracts.StatusThresholds) (string, string) {
	state, reason := contracts.ComponentOK, ""
	names := [3]string{"informational messages", "warnings", "errors"}
	for i, t := range [3]contracts.StatusThreshold{th.Info, th.Warning, th.Error} {
		n := counts[i]
		switch {
		case t.Critical > 0 && n >= t.Critical:
			if state != contracts.ComponentCritical {
				state, reason = contracts.ComponentCritical, fmt.Sprintf("%d %s (critical at %d)", n, names[i], t.Critical)
			}
		case t.Warning > 0 && n >= t.Warning:
			if state == contracts.ComponentOK {
				state, reason = contracts.ComponentWarning, fmt.Sprintf("%d %s (warning at %d)", n, names[i], t.Warning)
			}
		}
	}
	return state, reason
}

func (s *Service) thresholds(component string) contracts.StatusThresholds {
	if th, ok := s.cfg.ComponentThresholds[component]; ok {
		return th
	}
	return s.cfg.Thresholds
}

// components answers status.components: every known component, and any
// other that sent messages within the window, by name.
func (s *Service) components(ctx context.Context, _ contracts.SubjectInfo, _ *contracts.StatusComponentsRequest) (*contracts.StatusComponentsResponse, error) {
	counts, last, err := s.comps.snapshot(ctx, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	names := contracts.Components()
	for c := range counts {
		if !slices.Contains(names, c) {
			names = append(names, c)
		}
	}
	slices.Sort(names)
	out := &contracts.StatusComponentsResponse{
		Header:     contracts.NewHeader(contracts.TypeStatusComponentsResponse),
		Window:     contracts.Duration(s.cfg.Window),
		Components: make([]contracts.ComponentState, 0, len(names)),
	}
	for _, name := range names {
		n, th := counts[name], s.thresholds(name)
		state, reason := componentState(n, th)
		out.Components = append(out.Components, contracts.ComponentState{
			Component: name, State: state, Info: n[0], Warning: n[1], Error: n[2],
			Last: last[name], Reason: reason, Thresholds: th,
		})
	}
	return out, nil
}
