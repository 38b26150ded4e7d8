package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// Clients pending approval or blocked are in no collection, so approving
// needs Collection:ModifyResource over All Systems; blocking needs it on a
// collection holding the client, deleting Collection:DeleteResource.

func (s *Service) approveClient(ctx context.Context, from contracts.SubjectInfo, req *contracts.ClientRequest) (*contracts.ClientResponse, error) {
	target, err := s.clientFor(ctx, from, req.Ref, rbac.CollectionModifyResource, true)
	if err != nil {
		return nil, err
	}
	id, err := s.ids.update(ctx, target.Key, func(i *Identity) error {
		if i.Status == contracts.ClientApproved {
			return contracts.Errorf(contracts.CodeConflict, "client %s (%s) is already approved", i.Name, i.ClientID)
		}
		i.Status, i.By, i.Reason = contracts.ClientApproved, from.Principal, ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.publishClientEvent(ctx, contracts.ClientAdmitted, id, from.Principal); err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditClientApproved, contracts.StatusClientApproved, from.Principal, "Client", id.ClientID, map[string]string{"client": id.ClientID, "name": id.Name})
	// Tell the waiting agent now; it also retries enrollment on its own.
	if resp, err := s.approved(id, time.Now().UTC()); err == nil {
		data, _ := json.Marshal(resp)
		if inbox, err := contracts.Inbox(id.Key); err == nil {
			_ = s.cfg.NC.Publish(inbox+"."+contracts.KindApproval, data)
		}
	}
	return clientResponse(id), nil
}

func (s *Service) blockClient(ctx context.Context, from contracts.SubjectInfo, req *contracts.ClientRequest) (*contracts.ClientResponse, error) {
	target, err := s.clientFor(ctx, from, req.Ref, rbac.CollectionModifyResource, false)
	if err != nil {
		return nil, err
	}
	id, err := s.ids.update(ctx, target.Key, func(i *Identity) error {
		i.Status, i.By = contracts.ClientBlocked, from.Principal
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The identity is blocked, here and in this instance's callout cache,
	// before anything is kicked, so the reconnect that follows the kick is
	// refused by the callout.
	if err := s.ids.settle(ctx, id.Key); err != nil {
		s.cfg.Log.Warn("kicking a blocked client before the callout's cache saw the block", "client", id.ClientID, "err", err)
	}
	kicked, kerr := s.disconnect(ctx, connUsers(id)...)
	if err := s.publishClientEvent(ctx, contracts.ClientBlockedE, id, from.Principal); err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditClientBlocked, contracts.StatusClientBlocked, from.Principal, "Client", id.ClientID, map[string]string{"client": id.ClientID, "name": id.Name, "connections": strconv.Itoa(kicked)})
	if kerr != nil {
		return nil, fmt.Errorf("client %s is blocked but its connections could not be closed: %w", id.ClientID, kerr)
	}
	return clientResponse(id), nil
}

func (s *Service) deleteClient(ctx context.Context, from contracts.SubjectInfo, req *contracts.ClientRequest) (*contracts.ClientResponse, error) {
	id, err := s.clientFor(ctx, from, req.Ref, rbac.CollectionDeleteResource, false)
	if err != nil {
		return nil, err
	}
	if err := s.ids.delete(ctx, id.Key); err != nil {
		return nil, err
	}
	if err := s.ids.settle(ctx, id.Key); err != nil {
		s.cfg.Log.Warn("kicking a deleted client before the callout's cache saw the deletion", "client", id.ClientID, "err", err)
	}
	kicked, kerr := s.disconnect(ctx, connUsers(id)...)
	if err := s.publishClientEvent(ctx, contracts.ClientDeleted, id, from.Principal); err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditClientDeleted, contracts.StatusClientDeleted, from.Principal, "Client", id.ClientID, map[string]string{"client": id.ClientID, "name": id.Name, "connections": strconv.Itoa(kicked)})
	if kerr != nil {
		return nil, fmt.Errorf("client %s is deleted but its connections could not be closed: %w", id.ClientID, kerr)
	}
	return clientResponse(id), nil
}

// revokeSweep is how long after its cache sees an approved agent blocked
// or deleted an instance closes the agent's connections (sweepRevoked):
// long after the instance that blocked it kicked it, and after any
// admission another instance's lagging cache granted meanwhile has
// reached the server.
const revokeSweep = 2 * time.Second

// sweepRevoked closes, revokeSweep from now, any connection of an agent
// this instance's cache has just seen blocked or deleted: the instance
// that blocked it kicked it already, but another instance whose cache had
// not yet seen the block may have admitted it again meanwhile.
func (s *Service) sweepRevoked(ctx context.Context, was Identity) {
	if s.cfg.Sys == nil {
		return // nothing can be kicked (blocking says so)
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(revokeSweep):
	}
	// Approved again meanwhile (unblocked), or enrolling again after a
	// deletion: its connection now is a rightful one.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if now, err := s.ids.forAuth(ctx, was.Key); err == nil && (now.Status == contracts.ClientApproved || now.Status == contracts.ClientPending) {
		return
	}
	kicked, err := s.disconnect(ctx, connUsers(was)...)
	switch {
	case err != nil && ctx.Err() == nil:
		s.cfg.Log.Warn("a blocked or deleted client's connections could not be checked", "client", was.ClientID, "err", err)
	case kicked > 0:
		s.cfg.Log.Warn("a blocked or deleted client was connected after it was kicked (admitted by an admin instance that had not seen the change yet): closed", "client", was.ClientID, "connections", kicked)
	}
}

func clientResponse(id Identity) *contracts.ClientResponse {
	return &contracts.ClientResponse{Header: contracts.NewHeader(contracts.TypeClientResponse), Client: id.Client()}
}

// serverAPI is the envelope of a $SYS server request's answer.
type serverAPI struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Data struct {
		Conns []struct {
			CID uint64 `json:"cid"`
		} `json:"connections"`
	} `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

// connUsers are the connection user names an identity may be connected
// under: the server reports a callout-admitted connection by the name of its
// grant ("agent:<id>", or "enroll:<key>" while it is pending).
func connUsers(id Identity) []string {
	users := []string{enrollOnly(id.Key).Name}
	if id.ClientID != "" {
		users = append(users, "agent:"+id.ClientID)
	}
	return users
}

// disconnect closes every connection of the given users on every server of
// the site: CONNZ (filtered by user) to find them, KICK to close them.
func (s *Service) disconnect(ctx context.Context, users ...string) (int, error) {
	if s.cfg.Sys == nil {
		return 0, fmt.Errorf("no system-account connection configured")
	}
	kicked := 0
	for _, user := range users {
		n, err := s.kick(ctx, user)
		kicked += n
		if err != nil {
			return kicked, err
		}
	}
	return kicked, nil
}

func (s *Service) kick(ctx context.Context, user string) (int, error) {
	query, _ := json.Marshal(map[string]any{"user": user, "acc": Account, "limit": 1024})
	answers, err := gather(ctx, s.cfg.Sys, "$SYS.REQ.SERVER.PING.CONNZ", query, 250*time.Millisecond)
	if err != nil {
		return 0, err
	}
	kicked := 0
	for _, a := range answers {
		var r serverAPI
		if err := json.Unmarshal(a, &r); err != nil || r.Error != nil {
			continue
		}
		for _, c := range r.Data.Conns {
			body, _ := json.Marshal(map[string]uint64{"cid": c.CID})
			if _, err := s.cfg.Sys.RequestWithContext(ctx, "$SYS.REQ.SERVER."+r.Server.ID+".KICK", body); err != nil {
				return kicked, fmt.Errorf("kick connection %d on %s: %w", c.CID, r.Server.ID, err)
			}
			kicked++
		}
	}
	return kicked, nil
}

// gather sends one request that many may answer ($SYS PING, $SRV) and
// collects answers until quiet has passed with none, or ctx ends.
func gather(ctx context.Context, nc *nats.Conn, subject string, body []byte, quiet time.Duration) ([][]byte, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, body); err != nil {
		return nil, err
	}
	var out [][]byte
	wait := 2 * time.Second // the first answer may take a while
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil && len(out) == 0 {
				return nil, ctx.Err()
			}
			return out, nil
		}
		out = append(out, msg.Data)
		wait = quiet
	}
}
