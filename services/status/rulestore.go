package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
)

// ruleStore is the rule bucket and this instance's compiled view of it,
// kept current by a watch.
type ruleStore struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.Mutex
	byName  map[string]*rule
	set     *ruleSet
	rev     uint64        // the bucket revision the view has applied
	changed chan struct{} // closed and replaced whenever rev moves
}

func newRuleStore(kv jetstream.KeyValue, log *slog.Logger) *ruleStore {
	return &ruleStore{kv: kv, log: log, byName: map[string]*rule{}, set: newRuleSet(nil), changed: make(chan struct{})}
}

// current is the compiled rule set now.
func (rs *ruleStore) current() *ruleSet {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.set
}

// byNameNow is the compiled rule of that name now, or nil.
func (rs *ruleStore) byNameNow(name string) *rule {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.byName[name]
}

// start loads the rules and keeps them current until ctx ends.
func (rs *ruleStore) start(ctx context.Context, wg *sync.WaitGroup, site string) error {
	w, err := rs.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("status: watch %s: %w", RuleBucket, err)
	}
	for loaded := false; !loaded; {
		select {
		case <-ctx.Done():
			w.Stop()
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("status: watch of %s closed while loading", RuleBucket)
			}
			if e == nil {
				loaded = true
				continue
			}
			rs.apply(site, e)
		}
	}
	wg.Go(func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					rs.apply(site, e)
				}
			}
		}
	})
	return nil
}

// apply takes one bucket entry into the view.
func (rs *ruleStore) apply(site string, e jetstream.KeyValueEntry) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		delete(rs.byName, e.Key())
	default:
		var def contracts.StatusRule
		if err := json.Unmarshal(e.Value(), &def); err != nil {
			rs.log.Error("status rule unreadable; skipped", "rule", e.Key(), "err", err)
			break
		}
		r, err := compileRule(site, def)
		if err != nil {
			// Rules are compiled before they are stored, so this is a rule
			// stored by a newer version or by hand.
			rs.log.Error("status rule does not compile; skipped", "rule", e.Key(), "err", err)
			delete(rs.byName, e.Key())
			break
		}
		rs.byName[e.Key()] = r
	}
	rules := make([]*rule, 0, len(rs.byName))
	for _, r := range rs.byName {
		rules = append(rules, r)
	}
	rs.set = newRuleSet(rules)
	if e.Revision() > rs.rev {
		rs.rev = e.Revision()
		close(rs.changed)
		rs.changed = make(chan struct{})
	}
}

// waitRevision waits until the view has applied revision rev, so that a
// rule an operator just added is in force here when the answer goes back.
func (rs *ruleStore) waitRevision(ctx context.Context, rev uint64) {
	for {
		rs.mu.Lock()
		done, ch := rs.rev >= rev, rs.changed
		rs.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// list reads every stored rule, in the order they run.
func (rs *ruleStore) list(ctx context.Context) ([]contracts.StatusRule, error) {
	lister, err := rs.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := []contracts.StatusRule{}
	for key := range lister.Keys() {
		def, _, err := rs.get(ctx, key)
		if contracts.CodeOf(err) == contracts.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, def)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Order != out[j].Order {
			return out[i].Order < out[j].Order
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func (rs *ruleStore) get(ctx context.Context, name string) (contracts.StatusRule, uint64, error) {
	if validRuleName(name) != nil {
		return contracts.StatusRule{}, 0, contracts.Errorf(contracts.CodeNotFound, "no status rule %q", name)
	}
	e, err := rs.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return contracts.StatusRule{}, 0, contracts.Errorf(contracts.CodeNotFound, "no status rule %q", name)
	}
	if err != nil {
		return contracts.StatusRule{}, 0, err
	}
	var def contracts.StatusRule
	if err := json.Unmarshal(e.Value(), &def); err != nil {
		return contracts.StatusRule{}, 0, fmt.Errorf("status rule %s is unreadable: %w", name, err)
	}
	return def, e.Revision(), nil
}

// Operator endpoints.

// addRule compiles and stores a rule. Order 0 puts it after the last rule.
func (s *Service) addRule(ctx context.Context, from contracts.SubjectInfo, req *contracts.StatusRuleAddRequest) (*contracts.StatusRuleResponse, error) {
	def := req.Rule
	if err := s.fullOnly(from.Principal, def.Action); err != nil {
		return nil, err
	}
	def.Created, def.By = s.cfg.Now().UTC(), from.Principal
	if def.Order == 0 {
		existing, err := s.rules.list(ctx)
		if err != nil {
			return nil, err
		}
		def.Order = 10
		if n := len(existing); n > 0 {
			def.Order = existing[n-1].Order + 10
		}
	}
	if _, err := compileRule(s.cfg.Site, def); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(def)
	rev, err := s.rules.kv.Create(ctx, def.Name, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, contracts.Errorf(contracts.CodeConflict, "status rule %s already exists (delete it first to replace it)", def.Name)
	}
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	s.rules.waitRevision(wctx, rev)
	cancel()
	s.emit.Emit(ctx, contracts.StatusRuleAdded, map[string]string{
		"rule": def.Name, "action": def.Action, "match": def.Match, "by": from.Principal, "order": strconv.Itoa(def.Order), "target": def.Target,
	})
	return &contracts.StatusRuleResponse{Header: contracts.NewHeader(contracts.TypeStatusRuleResponse), Rule: def}, nil
}

func (s *Service) listRules(ctx context.Context, _ contracts.SubjectInfo, _ *contracts.StatusRuleListRequest) (*contracts.StatusRuleListResponse, error) {
	rules, err := s.rules.list(ctx)
	if err != nil {
		return nil, err
	}
	return &contracts.StatusRuleListResponse{Header: contracts.NewHeader(contracts.TypeStatusRuleListResponse), Rules: rules}, nil
}

func (s *Service) deleteRule(ctx context.Context, from contracts.SubjectInfo, req *contracts.StatusRuleDeleteRequest) (*contracts.StatusRuleResponse, error) {
	def, rev, err := s.rules.get(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	if err := s.fullOnly(from.Principal, def.Action); err != nil {
		return nil, err
	}
	if err := s.rules.kv.Delete(ctx, req.Name, jetstream.LastRevision(rev)); err != nil {
		if cas.Lost(err) {
			return nil, contracts.Errorf(contracts.CodeConflict, "status rule %s changed meanwhile; try again", req.Name)
		}
		return nil, err
	}
	// Wait for the view to drop the rule: the delete marker is at or
	// before the bucket's last revision now.
	if st, err := s.rules.kv.Status(ctx); err == nil {
		if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s.rules.waitRevision(wctx, bs.StreamInfo().State.LastSeq)
			cancel()
		}
	}
	s.emit.Emit(ctx, contracts.StatusRuleDeleted, map[string]string{"rule": def.Name, "by": from.Principal})
	return &contracts.StatusRuleResponse{Header: contracts.NewHeader(contracts.TypeStatusRuleResponse), Rule: def}, nil
}
