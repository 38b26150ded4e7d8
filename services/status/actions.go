package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// actionsAckWait outlasts the longest action (contracts.MaxRuleTimeout).
const actionsAckWait = contracts.MaxRuleTimeout + 30*time.Second

func (s *Service) actionsConsumerConfig() jetstream.ConsumerConfig {
	subj, _ := contracts.Event(s.cfg.Site, "status", "action")
	return jetstream.ConsumerConfig{
		Durable:       ActionsConsumer,
		Description:   "status rule actions: exec, webhook, forward",
		FilterSubject: subj,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       actionsAckWait,
		// The service gives up (and reports it) after ActionAttempts; the
		// server's own limit is off so that it never drops a job silently.
		MaxDeliver:    -1,
		MaxAckPending: 256,
	}
}

// runActions runs queued actions, ActionWorkers at a time, until ctx ends.
func (s *Service) runActions(ctx context.Context) {
	sem := make(chan struct{}, s.cfg.ActionWorkers)
	s.consume(ctx, ActionStream, ActionsConsumer, s.actionsConsumerConfig(), func(m jetstream.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			_ = m.Nak()
			return
		}
		go func() {
			defer func() { <-sem }()
			s.runJob(ctx, m)
		}()
	})
	// Wait for the running actions: every worker slot free again.
	for range cap(sem) {
		sem <- struct{}{}
	}
}

// runJob runs one action. Success acks it. A failure is reported as a
// status message and retried after the backoff; after ActionAttempts it is
// given up and reported as such.
func (s *Service) runJob(ctx context.Context, m jetstream.Msg) {
	var j job
	if err := json.Unmarshal(m.Data(), &j); err != nil {
		s.log.Error("rule action job unreadable; dropped", "err", err)
		_ = m.TermWithReason("unreadable")
		return
	}
	r := s.rules.byNameNow(j.Rule)
	if r == nil {
		s.log.Info("rule deleted; its queued action is dropped", "rule", j.Rule, "uuid", j.Message.ID)
		_ = m.Ack()
		return
	}
	attempt := uint64(1)
	if md, err := m.Metadata(); err == nil {
		attempt = md.NumDelivered
	}
	actx, cancel := context.WithTimeout(ctx, r.timeout())
	err := s.perform(actx, r, &j.Message)
	cancel()
	if err == nil {
		s.log.Debug("rule action done", "rule", r.def.Name, "action", r.def.Action, "uuid", j.Message.ID)
		_ = m.Ack()
		return
	}
	if ctx.Err() != nil { // shutting down: try again later, report nothing
		_ = m.Nak()
		return
	}
	props := map[string]string{
		"rule": r.def.Name, "action": r.def.Action, "message": j.Message.ID,
		"attempt": strconv.FormatUint(attempt, 10), "attempts": strconv.Itoa(s.cfg.ActionAttempts),
		"error": truncate(err.Error(), 512),
	}
	// Reports go to the site's own stream: bounded per rule, so that a
	// failing action on agents' messages cannot flood it in their stead.
	report, unreported := s.actionReports.allow(r.def.Name, s.cfg.Now())
	if report && unreported > 0 {
		props["error"] += fmt.Sprintf(" (and %d earlier failures of this rule not reported: over %d a minute)", unreported, actionReportsPerMinute)
	}
	if attempt >= uint64(s.cfg.ActionAttempts) {
		// Warn, not Error: the status service's errors become status
		// messages (502), which a rule forwarding errors would take up,
		// fail on and give up on again, without end. 4003 reports it.
		s.log.Warn("rule action failed; giving up", "rule", r.def.Name, "action", r.def.Action, "uuid", j.Message.ID, "attempts", attempt, "err", err)
		if report {
			s.emit.Emit(ctx, contracts.StatusRuleActionGaveUp, props)
		}
		_ = m.TermWithReason("gave up")
		return
	}
	delay := s.cfg.ActionBackoff[min(int(attempt), len(s.cfg.ActionBackoff))-1]
	s.log.Warn("rule action failed; will retry", "rule", r.def.Name, "action", r.def.Action, "uuid", j.Message.ID, "attempt", attempt, "retry_in", delay, "err", err)
	if report {
		s.emit.Emit(ctx, contracts.StatusRuleActionFailed, props)
	}
	_ = m.NakWithDelay(delay)
}

// Reports of failing actions (4002, 4003), per rule and instance: a burst
// of actionReportsBurst, then actionReportsPerMinute a minute. The others
// are logged, and counted in the next report.
const (
	actionReportsPerMinute = 60
	actionReportsBurst     = 100
)

// reportBudget is a token bucket per key that counts what it refused.
type reportBudget struct {
	lim     *limiter
	mu      sync.Mutex
	refused map[string]int
}

func newReportBudget(perSecond float64, burst int) *reportBudget {
	return &reportBudget{lim: newLimiter(perSecond, burst), refused: map[string]int{}}
}

// allow takes a token of key; when it may report, it says how many it did
// not since the last.
func (b *reportBudget) allow(key string, now time.Time) (ok bool, refused int) {
	ok, _ = b.lim.allow(key, now, time.Hour)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !ok {
		b.refused[key]++
		return false, 0
	}
	refused = b.refused[key]
	delete(b.refused, key)
	return true, refused
}

// perform runs r's action on msg, bounded by ctx.
func (s *Service) perform(ctx context.Context, r *rule, msg *contracts.StatusMessage) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	switch r.def.Action {
	case contracts.RuleExec:
		return runCommand(ctx, r, msg, body)
	case contracts.RuleWebhook:
		return postWebhook(ctx, s.cfg.HTTPClient, r, msg, body)
	case contracts.RuleForward:
		if r.def.Target == contracts.ForwardParent {
			return s.forwardToParent(ctx, msg)
		}
		return s.forward(ctx, r.def.Target, msg, body)
	}
	return fmt.Errorf("action %q does not run", r.def.Action)
}

// runCommand runs the rule's command without a shell: its words, rendered
// for msg, are the program and its arguments. The message is its stdin as
// JSON, and STEWARD_* variables name the message. A non-zero exit fails.
func runCommand(ctx context.Context, r *rule, msg *contracts.StatusMessage, body []byte) error {
	args, err := r.command(msg)
	if err != nil {
		return fmt.Errorf("render command: %w", err)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append(os.Environ(),
		"STEWARD_STATUS_UUID="+msg.ID,
		"STEWARD_STATUS_ID="+strconv.Itoa(msg.MsgID),
		"STEWARD_STATUS_SEVERITY="+msg.Severity,
		"STEWARD_STATUS_COMPONENT="+msg.Component,
		"STEWARD_STATUS_SOURCE="+msg.Source,
		"STEWARD_STATUS_RULE="+r.def.Name,
	)
	out := &tailBuffer{max: 1024}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second // a child that keeps the pipes open cannot hold us
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: timed out after %s", args[0], r.timeout())
		}
		if o := strings.TrimSpace(out.String()); o != "" {
			return fmt.Errorf("%s: %v: %s", args[0], err, o)
		}
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

// postWebhook POSTs the message as JSON; any 2xx answer is success. The
// Idempotency-Key header is the message uuid, the same on every retry.
func postWebhook(ctx context.Context, client *http.Client, r *rule, msg *contracts.StatusMessage, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.def.Target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "steward-status/"+ServiceVersion)
	req.Header.Set("Idempotency-Key", msg.ID)
	req.Header.Set("X-Steward-Rule", r.def.Name)
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("POST %s: no answer within %s", r.def.Target, r.timeout())
		}
		return fmt.Errorf("POST %s: %w", r.def.Target, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: %s: %s", r.def.Target, resp.Status, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// forward publishes the message to subject through JetStream, with its
// uuid as Nats-Msg-Id: the target must be a subject a stream captures, and
// a resend is deduplicated there. (JetStream never crosses the link to a
// parent site: the target ForwardParent goes through forwardToParent.)
func (s *Service) forward(ctx context.Context, subject string, msg *contracts.StatusMessage, body []byte) error {
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, msg.ID)
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("forward to %s: no stream stores that subject", subject)
		}
		return fmt.Errorf("forward to %s: %w", subject, err)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
