package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// assistRequest records a client user's request for help (solicited
// Remote Assistance). The client is the subject's; the request stays open
// for AssistTTL or until a helper accepts it.
func (s *Service) assistRequest(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionAssistRequest) (*contracts.SessionAssistResponse, error) {
	if _, err := uuid.Parse(req.Request); err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "request %q is not a UUID", req.Request)
	}
	if len(req.Message) > 1024 || len(req.User) > 256 {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "message or user name too long")
	}
	facts, err := s.cfg.Facts.Client(ctx, from.Principal)
	if err != nil {
		return nil, err
	}
	info := contracts.AssistInfo{ID: req.Request, Client: contracts.Named{ID: facts.Client.ID, Name: facts.Client.Name},
		User: req.User, Message: req.Message, Created: s.cfg.Now().UTC()}
	b, _ := json.Marshal(assistRecord{Info: info, Collections: facts.Collections})
	if _, err := s.assistKV.Create(ctx, info.ID, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, contracts.Errorf(contracts.CodeConflict, "request %s exists already", info.ID)
		}
		return nil, err
	}
	s.emit(ctx, contracts.StatusAssistRequested, map[string]string{"user": info.User, "client": info.Client.ID, "name": info.Client.Name, "request": info.ID})
	return &contracts.SessionAssistResponse{Header: contracts.NewHeader(contracts.TypeSessionAssistResponse), Request: info}, nil
}

type assistRecord struct {
	Info        contracts.AssistInfo `json:"info"`
	Collections []string             `json:"collections"`
}

// helperModel is the RBAC model (nil: authorization off) for principal,
// a helper, who must hold RemoteControl on some collection.
func (s *Service) helperModel(principal string) (*rbac.Model, error) {
	m, err := s.authz()
	if err != nil || m == nil {
		return nil, err
	}
	if err := m.Allowed(principal, rbac.CollectionRemoteControl, rbac.Anywhere()); err != nil {
		return nil, err
	}
	return m, nil
}

// mayTake says whether principal holds RemoteControl on r's client.
func mayTake(m *rbac.Model, principal string, r assistRecord) bool {
	if m == nil {
		return true
	}
	in := func(id string) bool { return slices.Contains(r.Collections, id) }
	return m.Allowed(principal, rbac.CollectionRemoteControl, rbac.OnClient(r.Info.Client.Name, in)) == nil
}

// assistList lists open requests on clients where the helper holds
// RemoteControl.
func (s *Service) assistList(ctx context.Context, from contracts.SubjectInfo, _ *contracts.SessionAssistListRequest) (*contracts.SessionAssistListResponse, error) {
	m, err := s.helperModel(from.Principal)
	if err != nil {
		return nil, err
	}
	keys, err := s.assistKV.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := []contracts.AssistInfo{}
	for k := range keys.Keys() {
		e, err := s.assistKV.Get(ctx, k)
		if err != nil {
			continue
		}
		var r assistRecord
		if json.Unmarshal(e.Value(), &r) != nil || r.Info.Session != "" {
			continue
		}
		if !mayTake(m, from.Principal, r) {
			continue
		}
		out = append(out, r.Info)
	}
	slices.SortFunc(out, func(a, b contracts.AssistInfo) int { return a.Created.Compare(b.Created) })
	return &contracts.SessionAssistListResponse{Header: contracts.NewHeader(contracts.TypeSessionAssistListResponse), Requests: out}, nil
}

// assistAccept: a helper takes a request; the session is the user's shared
// terminal, at the Remote Assistance level.
func (s *Service) assistAccept(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionAssistAcceptRequest) (*contracts.SessionOpenResponse, error) {
	notFound := contracts.Errorf(contracts.CodeNotFound, "no open request for assistance %q (steward assist list shows them)", req.Request)
	e, err := s.assistKV.Get(ctx, req.Request)
	if err != nil {
		return nil, notFound
	}
	var r assistRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, err
	}
	// Only a helper who may take it sees it (as in the list) and claims
	// it: anyone else took it from the helpers while start refused them.
	m, err := s.helperModel(from.Principal)
	if err != nil {
		return nil, err
	}
	if !mayTake(m, from.Principal, r) {
		return nil, notFound
	}
	if r.Info.Session != "" {
		return nil, contracts.Errorf(contracts.CodeConflict, "request %s was accepted already (session %s)", r.Info.ID, r.Info.Session)
	}
	// Claim the request first, so that two helpers never both take it.
	r.Info.Session = req.Session
	b, _ := json.Marshal(r)
	if _, err := s.assistKV.Update(ctx, r.Info.ID, b, e.Revision()); err != nil {
		return nil, contracts.Errorf(contracts.CodeConflict, "request %s was taken by another helper", r.Info.ID)
	}
	w := want{operator: from.Principal, kind: contracts.SessionAssist, assist: r.Info.ID}
	resp, err := s.start(ctx, w, &contracts.SessionOpenRequest{Session: req.Session, Ref: r.Info.Client.ID, Kind: contracts.SessionAssist})
	if err != nil {
		if dn := (*denial)(nil); errors.As(err, &dn) && dn.reason == contracts.DenyAssistClosed {
			// The agent has no such shared terminal any more (the user's
			// steward-agent assist ended): the request is over, not given
			// back for the next helper to fail on. Any other refusal (the
			// agent could not record the grant, say) gives it back.
			_ = s.assistKV.Delete(context.Background(), r.Info.ID)
			return nil, err
		}
		r.Info.Session = "" // give the request back
		b, _ := json.Marshal(r)
		_, _ = s.assistKV.Put(context.Background(), r.Info.ID, b)
		return nil, err
	}
	_ = s.assistKV.Delete(context.Background(), r.Info.ID)
	return resp, nil
}

// assistOffer: a helper offers help the user did not ask for (unsolicited
// Remote Assistance); the user must accept it on the client.
func (s *Service) assistOffer(ctx context.Context, from contracts.SubjectInfo, req *contracts.SessionOpenRequest) (*contracts.SessionOpenResponse, error) {
	req.Kind = contracts.SessionAssist
	return s.start(ctx, want{operator: from.Principal, kind: contracts.SessionAssist}, req)
}
