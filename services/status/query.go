package status

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
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
// severities, clients or else sources) into subject filters of the stream
// of token that the server answers from its index; the rest of f is
// checked per message.
func filterSubjects(site, token string, f contracts.StatusFilter) []string {
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
	all := storedSubjectAll(site, token)
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
				out = append(out, retoken(subj, token))
			}
		}
	}
	return out
}

// cursor is where a scan goes on: for each stream of messages (in the
// order of Service.stores), the sequence of the first message it has not
// handed out. It travels as "<seq>-<seq>".
type cursor []uint64

func (c cursor) String() string {
	parts := make([]string, len(c))
	for i, seq := range c {
		parts[i] = strconv.FormatUint(seq, 10)
	}
	return strings.Join(parts, "-")
}

// parseCursor reads the Next of an earlier page, for n streams.
func parseCursor(s string, n int) (cursor, error) {
	parts := strings.Split(s, "-")
	if len(parts) != n {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "cursor %q: want the next value of a previous page (a cursor of an earlier version: list again without it)", s)
	}
	c := make(cursor, n)
	for i, p := range parts {
		seq, err := strconv.ParseUint(p, 10, 64)
		if err != nil || seq == 0 {
			return nil, contracts.Errorf(contracts.CodeBadRequest, "cursor %q: want the next value of a previous page", s)
		}
		c[i] = seq
	}
	return c, nil
}

// scanResult is where a scan ended.
type scanResult struct {
	scanned int
	next    cursor // where to go on; nil when every stream is exhausted
}

// verdict is what a scan's callback makes of a matching message.
type verdict int

const (
	takeMore  verdict = iota // taken; go on
	takeStop                 // taken; stop
	leaveStop                // not taken; stop, and the next scan starts with it
)

// scanSource is one stream's part of a scan.
type scanSource struct {
	cons      jetstream.Consumer
	buf       []scanItem // fetched, not handed out, in stream order
	exhausted bool       // nothing more after buf
	next      uint64     // the first sequence not handed out, once buf is empty
}

type scanItem struct {
	seq  uint64
	at   time.Time // when the stream stored it
	data []byte
}

// position is where the source goes on.
func (src *scanSource) position() uint64 {
	if len(src.buf) > 0 {
		return src.buf[0].seq
	}
	return src.next
}

// fill fetches the next messages when none is waiting.
func (src *scanSource) fill() error {
	if len(src.buf) > 0 || src.exhausted {
		return nil
	}
	batch, err := src.cons.FetchNoWait(scanBatch)
	if err != nil {
		return err
	}
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		src.buf = append(src.buf, scanItem{seq: md.Sequence.Stream, at: md.Timestamp, data: msg.Data()})
		if md.NumPending == 0 {
			src.exhausted = true
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return err
	}
	if len(src.buf) == 0 { // nothing more is pending
		src.exhausted = true
	}
	return nil
}

// scan reads the stored messages matching f from both streams, merged in
// the order they were stored, from cursor start (or, with nil, from
// f.Since), calling fn for each match until fn stops, the matches run out
// or limit messages were scanned. Each stream is read by an ephemeral
// consumer that the server drops after use.
func (s *Service) scan(ctx context.Context, f contracts.StatusFilter, start cursor, limit int, fn func(m *contracts.StatusMessage, size int) verdict) (scanResult, error) {
	srcs := make([]*scanSource, len(s.stores))
	for i, st := range s.stores {
		var from uint64
		if start != nil {
			from = start[i]
		}
		src, cleanup, err := s.openScan(ctx, st, f, from)
		if err != nil {
			return scanResult{}, err
		}
		defer cleanup()
		srcs[i] = src
	}
	var res scanResult
	end := func() scanResult {
		res.next = nil
		for _, src := range srcs {
			if len(src.buf) > 0 || !src.exhausted {
				res.next = make(cursor, len(srcs))
				for i, src := range srcs {
					res.next[i] = src.position()
				}
				break
			}
		}
		return res
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var pick *scanSource
		for _, src := range srcs {
			if err := src.fill(); err != nil {
				return res, err
			}
			if len(src.buf) > 0 && (pick == nil || src.buf[0].at.Before(pick.buf[0].at)) {
				pick = src
			}
		}
		if pick == nil {
			return end(), nil
		}
		it := pick.buf[0]
		var m contracts.StatusMessage
		v := takeMore
		if err := json.Unmarshal(it.data, &m); err == nil && f.Match(&m) {
			v = fn(&m, len(it.data))
		}
		if v == leaveStop {
			return end(), nil
		}
		pick.buf, pick.next = pick.buf[1:], it.seq+1
		res.scanned++
		if v == takeStop || res.scanned >= limit {
			return end(), nil
		}
	}
}

// openScan creates the consumer of one stream for a scan from sequence
// from (0: from f.Since, or the start).
func (s *Service) openScan(ctx context.Context, st storeStream, f contracts.StatusFilter, from uint64) (*scanSource, func(), error) {
	ccfg := jetstream.ConsumerConfig{
		FilterSubjects:    filterSubjects(s.cfg.Site, st.token, f),
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 30 * time.Second,
		MemoryStorage:     true,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
	}
	switch {
	case from > 0:
		ccfg.DeliverPolicy, ccfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	case !f.Since.IsZero():
		// A message is received no earlier than it happened, less the
		// clock skew allowed, so nothing since f.Since was received before.
		t := f.Since.Add(-s.cfg.MaxClockSkew)
		ccfg.DeliverPolicy, ccfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if len(ccfg.FilterSubjects) == 1 {
		ccfg.FilterSubject, ccfg.FilterSubjects = ccfg.FilterSubjects[0], nil
	}
	// Where the scan goes on in this stream if nothing in it matches: after
	// what it holds now (a message stored later is seen by the consumer).
	info, err := st.stream.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	cons, err := s.js.CreateConsumer(ctx, st.name, ccfg)
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.js.DeleteConsumer(dctx, st.name, cons.CachedInfo().Name)
	}
	src := &scanSource{cons: cons, next: max(from, info.State.LastSeq+1)}
	src.exhausted = cons.CachedInfo().NumPending == 0
	return src, cleanup, nil
}

// Answers are bounded in bytes: the server carries at most its
// max_payload (1 MiB by default) in one message.
const (
	// maxPageBytes bounds the messages of one page of list or rules test.
	maxPageBytes = 900 << 10
	// replyHeaderRoom is left in an answer for its headers.
	replyHeaderRoom = 8 << 10
	// defaultMaxPayload stands in for a connection's unknown max_payload.
	defaultMaxPayload = 1 << 20
)

// maxReply is the largest answer the server carries on s's connection.
func (s *Service) maxReply() int {
	mp := int(s.cfg.NC.MaxPayload())
	if mp <= 0 {
		mp = defaultMaxPayload
	}
	return mp - replyHeaderRoom
}

// pageBudget is how many bytes of messages one answer may carry: a page
// stops there, and Next goes on.
func (s *Service) pageBudget() int {
	return min(maxPageBytes, s.maxReply()*7/8)
}

// list answers status.list: a page of matching messages, oldest first. A
// page ends at its limit or when the next message would take it over
// pageBudget bytes; Next goes on from there.
func (s *Service) list(ctx context.Context, _ contracts.SubjectInfo, req *contracts.StatusListRequest) (*contracts.StatusListResponse, error) {
	limit := req.Limit
	if limit == 0 {
		limit = contracts.DefaultStatusLimit
	}
	var start cursor
	if req.After != "" {
		var err error
		if start, err = parseCursor(req.After, len(s.stores)); err != nil {
			return nil, err
		}
	}
	out := &contracts.StatusListResponse{Header: contracts.NewHeader(contracts.TypeStatusListResponse), Messages: []contracts.StatusMessage{}}
	budget, size := s.pageBudget(), 0
	res, err := s.scan(ctx, req.Filter, start, maxScan, func(m *contracts.StatusMessage, n int) verdict {
		if len(out.Messages) > 0 && size+n > budget {
			return leaveStop
		}
		size += n + 1
		out.Messages = append(out.Messages, *m)
		if len(out.Messages) >= limit {
			return takeStop
		}
		return takeMore
	})
	if err != nil {
		return nil, err
	}
	out.Scanned = res.scanned
	if res.next != nil {
		out.Next = res.next.String()
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
	for start := cursor(nil); ; {
		res, err := s.scan(ctx, f, start, maxScan, func(m *contracts.StatusMessage, _ int) verdict {
			if m.ID == req.MessageID {
				found = m
				return takeStop
			}
			return takeMore
		})
		if err != nil {
			return nil, err
		}
		if found != nil {
			return &contracts.StatusShowResponse{Header: contracts.NewHeader(contracts.TypeStatusShowResponse), Message: *found}, nil
		}
		if res.next == nil {
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
	// Like Limit, the byte budget bounds the results shown; Matched
	// counts them all.
	budget, size, full := s.pageBudget(), 0, false
	res, err := s.scan(ctx, req.Filter, nil, maxScan, func(m *contracts.StatusMessage, n int) verdict {
		ok, err := r.matches(m)
		if err != nil || !ok {
			return takeMore
		}
		out.Matched++
		if len(out.Results) >= limit || full {
			return takeMore
		}
		res := contracts.StatusRuleTestResult{Message: *m, Would: r.describe(m), ShadowedBy: set.shadow(r, m)}
		n += len(res.Would)*6 + len(res.ShadowedBy) + 64 // escaped at worst
		if len(out.Results) > 0 && size+n > budget {
			full = true
			return takeMore
		}
		size += n
		out.Results = append(out.Results, res)
		return takeMore
	})
	if err != nil {
		return nil, err
	}
	out.Scanned, out.Truncated = res.scanned, res.next != nil
	return out, nil
}
