package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// enroll handles an enrollment request. The enrolling key is the last token
// of the subject, which the server let only that key publish on.
func (s *Service) enroll(ctx context.Context, from contracts.SubjectInfo, req *contracts.EnrollRequest) (*contracts.EnrollResponse, error) {
	key := from.Principal
	if !nkeys.IsValidPublicUserKey(key) {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "enrollment subject names %q, not a user NKey", key)
	}
	if from.Site != s.cfg.Site {
		return nil, contracts.Errorf(contracts.CodeTokenForeignSite, "this is site %s, not %s", s.cfg.Site, from.Site)
	}
	now := time.Now().UTC()
	id, _, err := s.ids.get(ctx, key)
	switch {
	case err == nil:
		return s.reenroll(ctx, id, req, now)
	case !errors.Is(err, errNoIdentity):
		return nil, err
	}

	id = Identity{
		Key: key, Kind: KindAgent, ClientID: uuid.NewString(), Name: req.Name,
		Hostname: req.Hostname, OS: req.OS, Arch: req.Arch, AgentVersion: req.AgentVersion, Capability: req.Capability,
		Created: now, Updated: now,
	}
	tokenID, tokErr := s.admitToken(ctx, req.Token, now)
	if tokErr == nil {
		id.Status, id.By = contracts.ClientApproved, "token:"+tokenID
	} else {
		id.Status, id.Reason = contracts.ClientPending, tokErr.Error()
	}
	if err := s.ids.create(ctx, id); err != nil {
		switch {
		case contracts.CodeOf(err) != contracts.CodeConflict:
			return nil, err
		case tokErr == nil:
			// A concurrent request of the same key (an agent's retry)
			// created the identity first, pending if this request had
			// taken the token's last use: that use admits it.
			return s.admitWith(ctx, key, tokenID, now)
		}
		return nil, contracts.Errorf(contracts.CodeConflict, "enrollment of this key is in progress; retry")
	}
	if tokErr == nil {
		if err := s.publishClientEvent(ctx, contracts.ClientEnrolled, id, id.By); err != nil {
			return nil, err
		}
		s.cfg.Log.Info("client enrolled", "client", id.ClientID, "name", id.Name, "token", tokenID)
		s.emit.Emit(ctx, contracts.StatusClientEnrolled, map[string]string{"client": id.ClientID, "name": id.Name, "token": tokenID})
		return s.approved(id, now)
	}
	if err := s.publishClientEvent(ctx, contracts.ClientQueued, id, "enrollment"); err != nil {
		return nil, err
	}
	s.cfg.Log.Warn("client waits for approval", "client", id.ClientID, "name", id.Name, "reason", tokErr)
	s.emit.Emit(ctx, contracts.StatusClientQueued, map[string]string{"client": id.ClientID, "name": id.Name, "reason": tokErr.Error()})
	return pending(id, tokErr), nil
}

// reenroll answers a key that is already known: the same answer again, so
// an agent that lost the reply can retry; a pending key may now present a
// valid token.
func (s *Service) reenroll(ctx context.Context, id Identity, req *contracts.EnrollRequest, now time.Time) (*contracts.EnrollResponse, error) {
	if id.Kind != KindAgent {
		return nil, contracts.Errorf(contracts.CodeConflict, "this key is not an agent's (it is a %s key)", id.Kind)
	}
	switch id.Status {
	case contracts.ClientApproved:
		return s.approved(id, now)
	case contracts.ClientBlocked:
		return nil, contracts.Errorf(contracts.CodeBlocked, "client %s is blocked", id.ClientID)
	}
	if req.Token == "" {
		return pending(id, nil), nil
	}
	tokenID, tokErr := s.admitToken(ctx, req.Token, now)
	if tokErr != nil {
		return pending(id, tokErr), nil
	}
	return s.admitWith(ctx, id.Key, tokenID, now)
}

// admitWith approves the pending agent key with a use of token tokenID
// already taken, and answers it. A key approved meanwhile is answered as
// it is, a blocked one refused.
func (s *Service) admitWith(ctx context.Context, key, tokenID string, now time.Time) (*contracts.EnrollResponse, error) {
	admitted := false
	id, err := s.ids.update(ctx, key, func(i *Identity) error {
		if i.Kind != KindAgent {
			return contracts.Errorf(contracts.CodeConflict, "this key is not an agent's (it is a %s key)", i.Kind)
		}
		admitted = i.Status == contracts.ClientPending
		if admitted {
			i.Status, i.By, i.Reason = contracts.ClientApproved, "token:"+tokenID, ""
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case id.Status == contracts.ClientBlocked:
		return nil, contracts.Errorf(contracts.CodeBlocked, "client %s is blocked", id.ClientID)
	case admitted:
		if err := s.publishClientEvent(ctx, contracts.ClientAdmitted, id, id.By); err != nil {
			return nil, err
		}
	}
	return s.approved(id, now)
}

// admitToken checks and consumes one use of a printed token.
func (s *Service) admitToken(ctx context.Context, printed string, now time.Time) (string, error) {
	if printed == "" {
		return "", contracts.Errorf(0, "no enrollment token was given")
	}
	tok, err := contracts.ParseEnrollmentToken(printed)
	if err != nil {
		return "", err
	}
	if tok.Site != s.cfg.Site || tok.SiteKey != s.siteKey {
		return "", contracts.Errorf(contracts.CodeTokenForeignSite, "enrollment token was issued by site %s (key %.12s…), not this site %s", tok.Site, tok.SiteKey, s.cfg.Site)
	}
	if _, err := s.tokens.consume(ctx, tok, now); err != nil {
		return "", err
	}
	return tok.ID, nil
}

func pending(id Identity, why error) *contracts.EnrollResponse {
	msg := "waiting for an operator to approve: steward clients approve " + id.ClientID
	var reason contracts.Code
	if why != nil {
		reason = contracts.CodeOf(why)
		if reason == contracts.CodeInternal {
			reason = 0
		}
		msg = why.Error() + "; " + msg
	}
	return &contracts.EnrollResponse{
		Header: contracts.NewHeader(contracts.TypeEnrollResponse),
		Status: contracts.EnrollPending, ClientID: id.ClientID, Reason: reason, Message: msg,
	}
}

// approved builds the signed answer that admits the key as client id.
func (s *Service) approved(id Identity, now time.Time) (*contracts.EnrollResponse, error) {
	resp := &contracts.EnrollResponse{
		Header: contracts.NewHeader(contracts.TypeEnrollResponse),
		Status: contracts.EnrollApproved, ClientID: id.ClientID, Site: s.cfg.Site, SiteKey: s.siteKey,
	}
	resp.Time = now
	sig, err := s.cfg.SiteKey.Sign(contracts.EnrollAttestation(s.cfg.Site, id.ClientID, id.Key, now))
	if err != nil {
		return nil, fmt.Errorf("sign enrollment: %w", err)
	}
	resp.Signature = base64.RawURLEncoding.EncodeToString(sig)
	return resp, nil
}

// publishClientEvent records a change of a client identity on the event
// stream, waiting for the stream's acknowledgement.
func (s *Service) publishClientEvent(ctx context.Context, action string, id Identity, by string) error {
	subj, err := contracts.Event(s.cfg.Site, "admin", "client")
	if err != nil {
		return err
	}
	ev := contracts.ClientEvent{Header: contracts.NewHeader(contracts.TypeClientEvent), Action: action, Client: id.Client(), By: by}
	data, _ := json.Marshal(ev)
	msg := nats.NewMsg(subj)
	msg.Data = data
	_, err = s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.ID), jetstream.WithRetryAttempts(5))
	if err != nil {
		return fmt.Errorf("publish client event: %w", err)
	}
	return nil
}
