package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
)

// record is a session as the sessions bucket keeps it: the session and the
// collections its client was in when it was opened (what decides who may
// list it and play its recording).
type record struct {
	Info        contracts.SessionInfo `json:"info"`
	Collections []string              `json:"collections"`
}

func (r record) memberOf(id string) bool { return slices.Contains(r.Collections, id) }

func (s *Service) putRecord(ctx context.Context, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err = s.kv.Put(ctx, r.Info.ID, b); err != nil {
		return err
	}
	return s.index(ctx, r.Info)
}

// index keeps the open-sessions bucket in step with a record: a session
// not ended is listed there with its broker instance, so that the list of
// active sessions and the sweep read only open sessions, never the whole
// history.
func (s *Service) index(ctx context.Context, info contracts.SessionInfo) error {
	if info.State == contracts.SessionEnded {
		if err := s.openKV.Delete(ctx, info.ID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("unlist session %s: %w", info.ID, err)
		}
		return nil
	}
	_, err := s.openKV.Put(ctx, info.ID, []byte(info.Instance))
	return err
}

// createRecord stores a new session; an ID in use is a conflict.
func (s *Service) createRecord(ctx context.Context, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.kv.Create(ctx, r.Info.ID, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return contracts.Errorf(contracts.CodeConflict, "session %s exists already: pick a new ID", r.Info.ID)
	}
	if err != nil {
		return err
	}
	return s.index(ctx, r.Info)
}

func (s *Service) getRecord(ctx context.Context, id string) (record, error) {
	var r record
	e, err := s.kv.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return r, contracts.Errorf(contracts.CodeNotFound, "no session %q", id)
	case err != nil:
		return r, fmt.Errorf("read session %s: %w", id, err)
	}
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return r, fmt.Errorf("session %s: unreadable record: %w", id, err)
	}
	return r, nil
}

// allRecords reads every session record, or with open only those of the
// sessions not ended.
func (s *Service) allRecords(ctx context.Context, open bool) ([]record, error) {
	kv := s.kv
	if open {
		kv = s.openKV
	}
	keys, err := kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var out []record
	for k := range keys.Keys() {
		r, err := s.getRecord(ctx, k)
		if err != nil {
			if contracts.CodeOf(err) == contracts.CodeNotFound {
				continue
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// liveInstances asks every running broker instance for its ID.
func (s *Service) liveInstances() map[string]bool {
	live := map[string]bool{s.instance: true}
	inbox := s.cfg.NC.NewRespInbox()
	sub, err := s.cfg.NC.SubscribeSync(inbox)
	if err != nil {
		return live
	}
	defer sub.Unsubscribe()
	subj, err := micro.ControlSubject(micro.PingVerb, ServiceName, "")
	if err != nil || s.cfg.NC.PublishRequest(subj, inbox, nil) != nil {
		return live
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return live
		}
		var p micro.Ping
		if json.Unmarshal(m.Data, &p) == nil && p.ID != "" {
			live[p.ID] = true
		}
	}
}

// sweep ends the records of open sessions whose broker instance is gone
// (it stopped without ending them, or died): audited as ended abnormally,
// and the client and the operators are told, in case they still wait.
func (s *Service) sweep(ctx context.Context) {
	recs, err := s.allRecords(ctx, true)
	if err != nil {
		s.log.Warn("sweep of open sessions failed", "err", err)
		return
	}
	var live map[string]bool
	for _, r := range recs {
		if r.Info.State == contracts.SessionEnded {
			continue
		}
		if live == nil {
			live = s.liveInstances()
		}
		if live[r.Info.Instance] {
			continue
		}
		s.mu.Lock()
		_, mine := s.sessions[r.Info.ID]
		s.mu.Unlock()
		if mine {
			continue
		}
		e := contracts.SessionEnd{Reason: "the session broker relaying it stopped or restarted", By: "site", Abnormal: true}
		now := s.cfg.Now().UTC()
		r.Info.State, r.Info.Ended, r.Info.EndReason, r.Info.Abnormal = contracts.SessionEnded, now, e.Reason, true
		for i := range r.Info.Participants {
			if r.Info.Participants[i].Left.IsZero() {
				r.Info.Participants[i].Left = now
			}
		}
		if _, err := s.obs.GetInfo(ctx, recordingName(r.Info.ID)); err != nil {
			r.Info.Recording = "" // the broker died before the recording was complete
		}
		if err := s.putRecord(ctx, r); err != nil {
			s.log.Warn("session record not written", "session", r.Info.ID, "err", err)
			continue
		}
		if down, err := s.agentData(r.Info.Client.ID, r.Info.ID, "down"); err == nil {
			_ = s.cfg.NC.PublishMsg(endFrame(down, e))
		}
		for _, p := range r.Info.Participants {
			if down, err := s.opData(p.Operator, r.Info.ID, "down"); err == nil {
				_ = s.cfg.NC.PublishMsg(endFrame(down, e))
			}
		}
		props := auditProps(r.Info)
		started := r.Info.Started
		if started.IsZero() {
			started = r.Info.Requested
		}
		props["duration"] = now.Sub(started).Round(time.Second).String()
		props["reason"] = e.Reason
		s.emit(ctx, contracts.StatusSessionAbnormal, props)
		s.log.Warn("ended a session of a broker instance that is gone", "session", r.Info.ID, "instance", r.Info.Instance)
	}
}
