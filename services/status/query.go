package status

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// Scan bounds. A list page or a rule replay looks at no more than maxScan
// stored messages; a list says where to go on (Next), a replay that it
// stopped (Truncated).
const (
	maxScan       = 200_000
	scanBatch     = 512
	maxSubjectMix = 64 // subject filters a query may expand to
)

// filterSubjects turns the subject-bearing parts of f (components,
// severities, clients or else sources) into stream subject filters the
// server answers from its index; the rest of f is checked per message.
func filterSubjects(site string, f contracts.StatusFilter) []string {
	uniq := func(l []string) []string {
		if len(l) == 0 {
			return []string{""}
		}
		l = slices.Clone(l)
		slices.Sort(l)
		return slices.Compact(l)
	}
	comps, sevs := uniq(f.Components), uniq(f.Severities)
	srcs := uniq(f.Sources)
	if len(f.Clients) > 0 {
		srcs = uniq(f.Clients)
	}
	all, _ := contracts.StatusSubjectAll(site)
	if len(comps)*len(sevs)*len(srcs) > maxSubjectMix {
		return []string{all}
	}
	var out []string
	for _, c := range comps {
		for _, v := range sevs {
			for _, src := range srcs {
				subj, err := contracts.StatusSubjectFilter(site, c, v, src)
				if err != nil { // the filter was validated; fall back to everything
					return []string{all}
				}
				out = append(out, subj)
			}
		}
	}
	if len(out) == 1 && out[0] == all {
		return out
	}
	return out
}

// scanResult is where a scan ended.
type scanResult struct {
	scanned int
	next    uint64 // the sequence to go on from; 0 when the stream is exhausted
}

// scan reads stored messages matching f, in stream order, from sequence
// start (or, with start 0, from f.Since), calling fn for each match until
// fn returns false, the matches run out or limit messages were scanned.
// It uses an ephemeral consumer that the server drops after use.
func (s *Service) scan(ctx context.Context, f contracts.StatusFilter, start uint64, limit int, fn func(seq uint64, m *contracts.StatusMessage) bool) (scanResult, error) {
	ccfg := jetstream.ConsumerConfig{
		FilterSubjects:    filterSubjects(s.cfg.Site, f),
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 30 * time.Second,
		MemoryStorage:     true,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	switch {
	case start > 0:
		ccfg.DeliverPolicy, ccfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	case !f.Since.IsZero():
		// A message is received no earlier than it happened, less the
		// clock skew allowed, so nothing since f.Since was received before.
		t := f.Since.Add(-s.cfg.MaxClockSkew)
		ccfg.DeliverPolicy, ccfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if len(ccfg.FilterSubjects) == 1 {
		ccfg.FilterSubject, ccfg.FilterSubjects = ccfg.FilterSubjects[0], nil
	}
	cons, err := s.js.CreateConsumer(ctx, Stream, ccfg)
	if err != nil {
		return scanResult{}, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.js.DeleteConsumer(dctx, Stream, cons.CachedInfo().Name)
	}()
	var res scanResult
	if cons.CachedInfo().NumPending == 0 {
		return res, nil
	}
	for {
		batch, err := cons.FetchNoWait(scanBatch)
		if err != nil {
			return res, err
		}
		got, done := 0, false
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			res.scanned++
			res.next = md.Sequence.Stream + 1
			if md.NumPending == 0 {
				res.next, done = 0, true
			}
			var m contracts.StatusMessage
			if err := json.Unmarshal(msg.Data(), &m); err == nil && f.Match(&m) {
				if !fn(md.Sequence.Stream, &m) {
					if done {
						res.next = 0
					}
					return res, nil
				}
			}
			if done {
				return res, nil
			}
			if res.scanned >= limit {
				return res, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return res, err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if got == 0 { // nothing more is pending
			res.next = 0
			return res, nil
		}
	}
}

// list answers status.list: a page of matching messages, oldest first.
func (s *Service) list(ctx context.Context, _ contracts.SubjectInfo, req *contracts.StatusListRequest) (*contracts.StatusListResponse, error) {
	limit := req.Limit
	if limit == 0 {
		limit = contracts.DefaultStatusLimit
	}
	var start uint64
	if req.After != "" {
		n, err := strconv.ParseUint(req.After, 10, 64)
		if err != nil || n == 0 {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "cursor %q: want the next value of a previous page", req.After)
		}
		start = n
	}
	out := &contracts.StatusListResponse{Header: contracts.NewHeader(contracts.TypeStatusListResponse), Messages: []contracts.StatusMessage{}}
	res, err := s.scan(ctx, req.Filter, start, maxScan, func(seq uint64, m *contracts.StatusMessage) bool {
		out.Messages = append(out.Messages, *m)
		return len(out.Messages) < limit
	})
	if err != nil {
		return nil, err
	}
	out.Scanned = res.scanned
	if res.next != 0 {
		out.Next = strconv.FormatUint(res.next, 10)
	}
	return out, nil
}

// show answers status.show: the message with that uuid. A version 7 uuid
// says when it was made, so the scan starts there (less the clock skew);
// any other uuid is looked for from the start of the stream.
func (s *Service) show(ctx context.Context, _ contracts.SubjectInfo, req *contracts.StatusShowRequest) (*contracts.StatusShowResponse, error) {
	var f contracts.StatusFilter
	if at, ok := contracts.StatusIDTime(req.MessageID); ok {
		f.Since = at.Add(-s.cfg.MaxClockSkew)
	}
	var found *contracts.StatusMessage
	for start := uint64(0); ; {
		res, err := s.scan(ctx, f, start, maxScan, func(_ uint64, m *contracts.StatusMessage) bool {
			if m.ID == req.MessageID {
				found = m
				return false
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		if found != nil {
			return &contracts.StatusShowResponse{Header: contracts.NewHeader(contracts.TypeStatusShowResponse), Message: *found}, nil
		}
		if res.next == 0 {
			return nil, contracts.Errorf(contracts.CodeNotFound, "no status message %s (it may have aged out of the store)", req.MessageID)
		}
		start = res.next
	}
}

// testRule answers status.rules.test: it replays the stored messages that
// match the request's filter through the rule and says what the rule would
// have done to each, doing nothing.
func (s *Service) testRule(ctx context.Context, _ contracts.SubjectInfo, req *contracts.StatusRuleTestRequest) (*contracts.StatusRuleTestResponse, error) {
	def, _, err := s.rules.get(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	r, err := compileRule(s.cfg.Site, def)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit == 0 {
		limit = contracts.DefaultStatusLimit
	}
	set := s.rules.current()
	out := &contracts.StatusRuleTestResponse{Header: contracts.NewHeader(contracts.TypeStatusRuleTestResponse), Rule: def, Results: []contracts.StatusRuleTestResult{}}
	res, err := s.scan(ctx, req.Filter, 0, maxScan, func(_ uint64, m *contracts.StatusMessage) bool {
		ok, err := r.matches(m)
		if err != nil || !ok {
			return true
		}
		out.Matched++
		if len(out.Results) < limit {
			out.Results = append(out.Results, contracts.StatusRuleTestResult{Message: *m, Would: r.describe(m), ShadowedBy: set.shadow(r, m)})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out.Scanned, out.Truncated = res.scanned, res.next != 0
	return out, nil
}
