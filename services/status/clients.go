package status

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// clientStore is the last-status-per-client summarizer: ClientBucket holds
// one contracts.ClientStatusSummary per client. The rules processor notes
// each stored message of a client here; flush merges the notes into the
// bucket with compare-and-set, so instances never overwrite each other's
// counts, and a newer last message is never replaced by an older one.
type clientStore struct {
	kv      jetstream.KeyValue
	mu      sync.Mutex
	pending map[string]*contracts.ClientStatusSummary
}

// note records m (a message from a client) for the next flush.
func (c *clientStore) note(m *contracts.StatusMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]*contracts.ClientStatusSummary{}
	}
	p := c.pending[m.Client]
	if p == nil {
		p = &contracts.ClientStatusSummary{Client: m.Client, Since: m.Time}
		c.pending[m.Client] = p
	}
	addCount(p, m.Severity, 1)
	if !m.Time.Before(p.Last.Time) {
		p.Last = *m
	}
	if m.Time.Before(p.Since) {
		p.Since = m.Time
	}
}

func addCount(p *contracts.ClientStatusSummary, severity string, n int) {
	switch severity {
	case contracts.SeverityError:
		p.Error += n
	case contracts.SeverityWarning:
		p.Warning += n
	default:
		p.Info += n
	}
}

// flush merges the pending notes into the bucket. Notes it cannot write
// stay pending for the next flush.
func (c *clientStore) flush(ctx context.Context) error {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	var errs []error
	for id, p := range pending {
		if validKey(id) != nil {
			continue // not a client ID
		}
		if err := c.merge(ctx, id, p); err != nil {
			errs = append(errs, fmt.Errorf("client %s: %w", id, err))
			c.requeue(p)
		}
	}
	return errors.Join(errs...)
}

func (c *clientStore) requeue(p *contracts.ClientStatusSummary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]*contracts.ClientStatusSummary{}
	}
	cur := c.pending[p.Client]
	if cur == nil {
		c.pending[p.Client] = p
		return
	}
	mergeSummary(cur, p)
}

// mergeSummary adds p's counts to cur and keeps the newer last message and
// the older start.
func mergeSummary(cur, p *contracts.ClientStatusSummary) {
	cur.Info += p.Info
	cur.Warning += p.Warning
	cur.Error += p.Error
	if cur.Last.ID == "" || !p.Last.Time.Before(cur.Last.Time) {
		cur.Last = p.Last
	}
	if cur.Since.IsZero() || (!p.Since.IsZero() && p.Since.Before(cur.Since)) {
		cur.Since = p.Since
	}
}

func (c *clientStore) merge(ctx context.Context, id string, p *contracts.ClientStatusSummary) error {
	return casUpdate(ctx, c.kv, id, func(cur *contracts.ClientStatusSummary) {
		cur.Client = id
		mergeSummary(cur, p)
	})
}

func (c *clientStore) get(ctx context.Context, id string) (contracts.ClientStatusSummary, uint64, error) {
	if validKey(id) != nil {
		return contracts.ClientStatusSummary{}, 0, contracts.Errorf(contracts.CodeNotFound, "no status from client %q", id)
	}
	e, err := c.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return contracts.ClientStatusSummary{}, 0, contracts.Errorf(contracts.CodeNotFound, "no status from client %q", id)
	}
	if err != nil {
		return contracts.ClientStatusSummary{}, 0, err
	}
	var sum contracts.ClientStatusSummary
	if err := json.Unmarshal(e.Value(), &sum); err != nil {
		return contracts.ClientStatusSummary{}, 0, fmt.Errorf("client status %s is unreadable: %w", id, err)
	}
	return sum, e.Revision(), nil
}

// clientStatus answers status.clients: one client's summary, or every
// client's, newest last message first. Every client's must fit in one
// answer (pageBudget): past it, each summary's last message is trimmed to
// what the table shows (its properties dropped, its text cut; `status
// show UUID` has it whole), and if that is still too much the summaries
// of the clients that reported longest ago are left out (and logged).
func (s *Service) clientStatus(ctx context.Context, _ contracts.SubjectInfo, req *contracts.StatusClientsRequest) (*contracts.StatusClientsResponse, error) {
	out := &contracts.StatusClientsResponse{Header: contracts.NewHeader(contracts.TypeStatusClientsResponse), Clients: []contracts.ClientStatusSummary{}}
	if req.Client != "" {
		sum, _, err := s.clients.get(ctx, req.Client)
		if err != nil {
			return nil, err
		}
		out.Clients = append(out.Clients, sum)
		return out, nil
	}
	err := readAll(ctx, s.clients.kv, func(key string, value []byte) error {
		var sum contracts.ClientStatusSummary
		if err := json.Unmarshal(value, &sum); err != nil {
			return fmt.Errorf("client status %s is unreadable: %w", key, err)
		}
		out.Clients = append(out.Clients, sum)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out.Clients, func(a, b contracts.ClientStatusSummary) int {
		return cmp.Or(b.Last.Time.Compare(a.Last.Time), strings.Compare(a.Client, b.Client))
	})
	if req.After != "" {
		at, id, err := parseClientsCursor(req.After)
		if err != nil {
			return nil, err
		}
		// The first summary past the cursor, in the same order (a client
		// that reported since moved up, and is on an earlier page).
		i, _ := slices.BinarySearchFunc(out.Clients, struct{}{}, func(sum contracts.ClientStatusSummary, _ struct{}) int {
			if t := sum.Last.Time.UnixNano(); t < at || t == at && sum.Client > id {
				return 1 // past the cursor
			}
			return -1
		})
		out.Clients = out.Clients[i:]
	}
	all := len(out.Clients)
	out.Clients = fitSummaries(out.Clients, s.pageBudget())
	switch n := len(out.Clients); {
	case n == 0 && all > 0:
		return nil, contracts.Errorf(contracts.CodeTooLarge, "a client's status summary does not fit in an answer")
	case n < all:
		last := out.Clients[n-1]
		out.Next = strconv.FormatInt(last.Last.Time.UnixNano(), 10) + "." + last.Client
	}
	return out, nil
}

// parseClientsCursor reads a status clients cursor: "<unix ns>.<client ID>"
// of the last summary of the page before.
func parseClientsCursor(c string) (int64, string, error) {
	ns, id, ok := strings.Cut(c, ".")
	at, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", contracts.Errorf(contracts.CodeBadRequest, "cursor %q: not one this service gave (want <unix ns>.<client ID>)", c)
	}
	return at, id, nil
}

// trimmedText is how much of a last message's text a trimmed summary keeps
// (the table shows 80 characters).
const trimmedText = 200

// fitSummaries returns sums (newest first) within budget bytes of JSON:
// whole if they fit; else with each last message trimmed; else the newest
// of those that fit.
func fitSummaries(sums []contracts.ClientStatusSummary, budget int) []contracts.ClientStatusSummary {
	size := func(sum *contracts.ClientStatusSummary) int {
		b, _ := json.Marshal(sum)
		return len(b) + 1
	}
	total := 0
	for i := range sums {
		total += size(&sums[i])
	}
	if total <= budget {
		return sums
	}
	total = 0
	for i := range sums {
		last := &sums[i].Last
		last.Properties = nil
		if r := []rune(last.Text); len(r) > trimmedText {
			last.Text = string(r[:trimmedText]) + "…"
		}
		last.Instance = truncate(last.Instance, 64)
		n := size(&sums[i])
		if total+n > budget {
			return sums[:i]
		}
		total += n
	}
	return sums
}
