package status

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/jsbatch"
	"golang.org/x/time/rate"
)

// errRateLimited leaves an item in the agent's outbox for a later resend.
var errRateLimited = errors.New("source is over its status rate limit")

// ingestItem stores one status message from an agent's outbox batch. The
// item is queued here for the site's writer, which commits what every
// agent sent meanwhile together; the returned wait reports when the stream
// has it, and rpc.BatchHandler answers the batch once every wait has
// returned.
func (s *Service) ingestItem(ctx context.Context, from contracts.SubjectInfo, item contracts.OutboxItem) (func(context.Context) error, error) {
	now := s.cfg.Now()
	if ok, report := s.limiter.allow(from.Principal, now, s.cfg.RateReport); !ok {
		if report {
			s.emit.Emit(ctx, contracts.StatusRateLimited, map[string]string{
				"source": from.Principal,
				"rate":   strconv.FormatFloat(s.cfg.Rate, 'f', -1, 64),
				"burst":  strconv.Itoa(s.cfg.Burst),
			})
		}
		return nil, errRateLimited
	}
	if item.Type != "" && item.Type != contracts.TypeStatusMessage {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "item type %q, want %q", item.Type, contracts.TypeStatusMessage)
	}
	var m contracts.StatusMessage
	if err := contracts.Decode(item.Data, contracts.TypeStatusMessage, &m); err != nil {
		return nil, err
	}
	if err := fromAgent(&m, s.cfg.Site, from.Principal, item.ID, now, s.cfg.MaxClockSkew); err != nil {
		return nil, err
	}
	msg, err := storeMsg(agentsToken, m, now)
	if err != nil {
		if contracts.CodeOf(err) == contracts.CodeTooLarge {
			return nil, err
		}
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	queued := s.store.Submit(jsbatch.Write{Msg: msg})
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		defer cancel()
		if r := queued.Wait(ctx)[0]; r.Err != nil {
			return fmt.Errorf("store status message %s: %w", item.ID, r.Err)
		}
		return nil
	}, nil
}

// fromAgent makes m, as decoded from client's outbox item itemID, the
// message the site stores. Who sent it comes from the subject, never the
// payload: Site, Source and Client are set here. The uuid is the item's (the
// Nats-Msg-Id). The agent's time is kept (a message sent after an outage
// keeps the time it happened) unless it lies more than skew in the future.
// A known ID takes severity, text and audit mark from this site's catalog,
// and must belong to the agent's block or the generic one; an unknown ID is
// stored, flagged Unknown.
func fromAgent(m *contracts.StatusMessage, site, client, itemID string, now time.Time, skew time.Duration) error {
	if d, ok := contracts.LookupStatus(m.MsgID); ok && d.Component != contracts.ComponentAgent && d.Component != contracts.ComponentAny {
		return contracts.Errorf(contracts.CodeBadRequest, "message id %d belongs to component %s: agents send only agent (10000-10999) and generic (1-999) ids", m.MsgID, d.Component)
	}
	m.Type, m.ID = contracts.TypeStatusMessage, itemID
	m.Site, m.Source, m.Client, m.Instance = site, client, client, ""
	m.Component = contracts.ComponentAgent
	m.Received = now.UTC()
	if m.Time.After(now.Add(skew)) {
		m.Time = m.Received
	}
	m.Time = m.Time.UTC()
	if !validTraceID(m.TraceID) {
		m.TraceID = ""
	}
	contracts.ApplyCatalog(m)
	return nil
}

// validTraceID reports whether id is a W3C trace ID: 32 hex digits.
func validTraceID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// limiter is a token bucket per source. Sources idle for longer than
// limiterIdle are forgotten.
type limiter struct {
	mu        sync.Mutex
	limit     rate.Limit
	burst     int
	off       bool
	sources   map[string]*sourceLimit
	lastSweep time.Time
}

type sourceLimit struct {
	lim      *rate.Limiter
	seen     time.Time
	reported time.Time
}

const limiterIdle = 10 * time.Minute

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{limit: rate.Limit(perSecond), burst: burst, off: perSecond < 0, sources: map[string]*sourceLimit{}}
}

// allow takes one token of src. When there is none it says whether to
// report it: at most once per every interval for each source.
func (l *limiter) allow(src string, now time.Time, every time.Duration) (ok, report bool) {
	if l.off {
		return true, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > limiterIdle {
		for k, v := range l.sources {
			if now.Sub(v.seen) > limiterIdle {
				delete(l.sources, k)
			}
		}
		l.lastSweep = now
	}
	sl := l.sources[src]
	if sl == nil {
		sl = &sourceLimit{lim: rate.NewLimiter(l.limit, l.burst)}
		l.sources[src] = sl
	}
	sl.seen = now
	if sl.lim.AllowN(now, 1) {
		return true, false
	}
	if sl.reported.IsZero() || now.Sub(sl.reported) >= every {
		sl.reported = now
		return false, true
	}
	return false, false
}
