package admin

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// audit records a security-relevant change: a log line with audit=true,
// the status audit message of catalog entry statusID (when not 0), and an
// AuditEvent on the ADMIN_EVENTS stream (subject
// steward.<site>.event.admin.audit), published with its ID as Nats-Msg-Id
// and retried. props are the status catalog entry's insertion strings
// ("by" is added). The change is already made when this runs: a failure to
// record it is logged as an error and does not undo it.
func (s *Service) audit(ctx context.Context, action string, statusID int, by, object, target string, props map[string]string) {
	p := maps.Clone(props)
	if p == nil {
		p = map[string]string{}
	}
	p["by"] = by
	ev := contracts.AuditEvent{
		Header: contracts.NewHeader(contracts.TypeAuditEvent),
		Action: action, StatusID: statusID, By: by, Object: object, Target: target, Properties: p,
	}
	attrs := []any{"audit", true, "action", action, "by", by, "object", object, "target", target}
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if k != "by" {
			attrs = append(attrs, k, p[k])
		}
	}
	s.cfg.Log.Info(action, attrs...)
	if statusID != 0 {
		s.emit.Emit(ctx, statusID, p) // the audit status message; never blocks
	}

	subj, err := contracts.AuditSubject(s.cfg.Site)
	if err != nil {
		s.cfg.Log.Error("audit event not recorded", "action", action, "err", err)
		return
	}
	data, _ := json.Marshal(ev)
	msg := nats.NewMsg(subj)
	msg.Data = data
	// Not the request's context alone: an operator giving up must not
	// lose the record of what was done.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.js.PublishMsg(pctx, msg, jetstream.WithMsgID(ev.ID), jetstream.WithRetryAttempts(10)); err != nil {
		s.cfg.Log.Error("audit event not recorded", "action", action, "by", by, "target", target, "err", err)
	}
}
