package status

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// Follow limits of one instance.
const (
	maxFollowsPerOperator = 16
	maxFollows            = 1024
)

// A follow is an operator's live tail. Operators may not subscribe to the
// status stream (they reach only their own subjects), so the operator asks
// with a StatusFollowRequest and this service publishes each new matching
// message to the operator's own down subject
// StatusFollowSubject(site, operator, followID). The follow lives until its
// TTL passes without a renewal (the CLI renews every third of it) or it is
// cancelled. A renewal that reaches another instance starts the follow
// there too, while the first instance's copy runs out its TTL, so a
// follower may see a message twice for a while: the client drops repeats
// by uuid.
type follow struct {
	operator string
	id       string
	subject  string
	filter   contracts.StatusFilter
	expires  time.Time
	after    map[string]uint64 // per stream: deliver only sequences above this
}

type follows struct {
	mu   sync.Mutex
	m    map[string]*follow // operator + "/" + id
	wake chan struct{}      // a follow was registered
}

func newFollows() *follows { return &follows{m: map[string]*follow{}, wake: make(chan struct{}, 1)} }

// register starts or renews a follow. after is each stream's last sequence
// now; a renewal keeps the sequences it started at.
func (f *follows) register(operator, id, subject string, filter contracts.StatusFilter, expires time.Time, after func() (map[string]uint64, error)) error {
	key := operator + "/" + id
	f.mu.Lock()
	if cur, ok := f.m[key]; ok {
		cur.filter, cur.expires = filter, expires
		f.mu.Unlock()
		return nil
	}
	n := 0
	for _, fl := range f.m {
		if fl.operator == operator {
			n++
		}
	}
	total := len(f.m)
	f.mu.Unlock()
	if n >= maxFollowsPerOperator || total >= maxFollows {
		return contracts.Errorf(contracts.CodeUnavailable, "too many follows (at most %d per operator, %d per instance); end some first", maxFollowsPerOperator, maxFollows)
	}
	seq, err := after()
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.m[key]; ok { // registered meanwhile
		cur.filter, cur.expires = filter, expires
		return nil
	}
	f.m[key] = &follow{operator: operator, id: id, subject: subject, filter: filter, expires: expires, after: seq}
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// expire drops the follows whose TTL passed and returns how many remain
// and, per stream, the lowest sequence any of them starts after.
func (f *follows) expire(now time.Time) (n int, after map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	after = map[string]uint64{}
	for key, fl := range f.m {
		if now.After(fl.expires) {
			delete(f.m, key)
			continue
		}
		for stream, seq := range fl.after {
			if cur, ok := after[stream]; !ok || seq < cur {
				after[stream] = seq
			}
		}
	}
	return len(f.m), after
}

func (f *follows) cancel(operator, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, operator+"/"+id)
}

// deliver publishes the message stored at seq of stream (m, its JSON
// data) to every live follow that wants it.
func (f *follows) deliver(stream string, seq uint64, m *contracts.StatusMessage, data []byte, now time.Time, publish func(subject string, data []byte)) {
	f.mu.Lock()
	var to []string
	for key, fl := range f.m {
		if now.After(fl.expires) {
			delete(f.m, key)
			continue
		}
		if seq > fl.after[stream] && fl.filter.Match(m) {
			to = append(to, fl.subject)
		}
	}
	f.mu.Unlock()
	for _, subj := range to {
		publish(subj, data)
	}
}

// feedCheck is how often the live feed looks for follows that ran out.
const feedCheck = 5 * time.Second

// feed runs, while this instance has follows, an ordered consumer of new
// stored messages of each stream and delivers them to the follows that
// want them, leaving out the messages the rules discard. With no follows
// it stops the consumers and waits for one. It returns when ctx ends.
func (s *Service) feed(ctx context.Context) {
	t := time.NewTicker(feedCheck)
	defer t.Stop()
	var ccs []jetstream.ConsumeContext
	stop := func() {
		for _, cc := range ccs {
			cc.Stop()
			<-cc.Closed()
		}
		ccs = nil
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.follows.wake:
		}
		n, after := s.follows.expire(s.cfg.Now())
		switch {
		case n == 0:
			stop()
		case ccs == nil:
			// Start right after the earliest follow's registration, so
			// that nothing stored since is missed.
			for _, st := range s.stores {
				cons, err := s.js.OrderedConsumer(ctx, st.name, jetstream.OrderedConsumerConfig{
					FilterSubjects: []string{storedSubjectAll(s.cfg.Site, st.token)},
					DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
					OptStartSeq:    after[st.name] + 1,
				})
				var cc jetstream.ConsumeContext
				if err == nil {
					cc, err = cons.Consume(s.deliver)
				}
				if err != nil {
					if ctx.Err() == nil {
						s.log.Warn("follow feed; will retry", "stream", st.name, "err", err)
					}
					stop()
					break
				}
				ccs = append(ccs, cc)
			}
		}
	}
}

// deliver hands one stored message to the follows that want it.
func (s *Service) deliver(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	var sm contracts.StatusMessage
	if err := json.Unmarshal(m.Data(), &sm); err != nil || !s.rules.current().keeps(&sm) {
		return
	}
	s.follows.deliver(md.Stream, md.Sequence.Stream, &sm, m.Data(), s.cfg.Now(), func(subject string, data []byte) {
		if err := s.cfg.NC.Publish(subject, data); err != nil {
			s.log.Debug("follow delivery", "subject", subject, "err", err)
		}
	})
}

// follow answers status.follow: register, renew or cancel.
func (s *Service) follow(ctx context.Context, from contracts.SubjectInfo, req *contracts.StatusFollowRequest) (*contracts.StatusFollowResponse, error) {
	subject, err := contracts.StatusFollowSubject(s.cfg.Site, from.Principal, req.FollowID)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	now := s.cfg.Now()
	resp := &contracts.StatusFollowResponse{Header: contracts.NewHeader(contracts.TypeStatusFollowResponse), FollowID: req.FollowID, Subject: subject, Expires: now.UTC()}
	if req.Cancel {
		s.follows.cancel(from.Principal, req.FollowID)
		return resp, nil
	}
	ttl := time.Duration(req.TTL)
	if ttl == 0 {
		ttl = contracts.DefaultFollowTTL
	}
	resp.Expires = now.Add(ttl).UTC()
	err = s.follows.register(from.Principal, req.FollowID, subject, req.Filter, resp.Expires, func() (map[string]uint64, error) {
		after := map[string]uint64{}
		for _, st := range s.stores {
			info, err := st.stream.Info(ctx)
			if err != nil {
				return nil, err
			}
			after[st.name] = info.State.LastSeq
		}
		return after, nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
