package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// This file is inventory at the site: reports in from the agents' outboxes,
// the current inventory (InventoryBucket) and its history of changes
// (HistoryStream), and the operator's show, history and refresh.

// ingestInventory stores one inventory report of an outbox batch (an
// rpc.ItemFunc). The client is the subject's, never the payload's. It
// returns once both writes are durable: first the history event (with
// Nats-Msg-Id = the item's ID, so a resend is stored once), then the
// inventory (compare-and-set on the client's key). A report that is not
// newer than the stored one is acknowledged and dropped: it is a resend or
// was overtaken. Reports that can never be stored are refused with
// CodeBadRequest or CodeTooLarge; any other error leaves the item in the
// agent's outbox for a resend.
func (s *Service) ingestInventory(ctx context.Context, from contracts.SubjectInfo, it contracts.OutboxItem) (func(context.Context) error, error) {
	if it.Type != contracts.TypeInventoryReport {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "item type %q, want %q", it.Type, contracts.TypeInventoryReport)
	}
	var rep contracts.InventoryReport
	if err := contracts.DecodeLimit(it.Data, contracts.TypeInventoryReport, &rep, maxReportBytes); err != nil {
		return nil, err
	}
	if err := checkInventory(&rep.Inventory); err != nil {
		return nil, err
	}
	id := from.Principal
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := s.knownClient(ctx, id); err != nil {
		return nil, err
	}
	for range maxAttempts {
		cur, rev, err := s.getInventory(ctx, id)
		if err != nil {
			return nil, err
		}
		next, changes, askFull := applyReport(cur, &rep, it.ID, s.cfg.Now())
		if next == nil {
			s.log.Debug("inventory report not newer than the stored one", "client", id, "seq", rep.Seq, "item", it.ID)
			return nil, nil
		}
		if len(changes) > 0 {
			if err := s.publishHistory(ctx, id, it.ID, rep.Seq, changes); err != nil {
				return nil, err
			}
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			_, err = s.invKV.Create(ctx, id, data)
		} else {
			_, err = s.invKV.Update(ctx, id, data, rev)
		}
		if conflict(err) {
			continue // another instance stored a report of this client meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("store inventory of %s: %w", id, err)
		}
		// The client may have been deleted since it was looked up: its
		// deletion's purge may have come before this write. Read after the
		// write, a record gone means this write is removed here (whichever
		// of the two comes second removes the inventory and its history).
		if _, err := s.store.kv.Get(ctx, id); errors.Is(err, jetstream.ErrKeyNotFound) {
			s.log.Info("inventory of a client deleted meanwhile removed", "client", id, "item", it.ID)
			if err := s.forgetInventory(ctx, id); err != nil {
				return nil, err
			}
			return nil, nil
		}
		s.log.Debug("inventory stored", "client", id, "seq", rep.Seq, "full", rep.Full, "changes", len(changes), "partial", next.Partial)
		if askFull {
			s.askInventory(id, true)
		}
		return nil, nil
	}
	return nil, fmt.Errorf("inventory of %s: still changing after %d attempts", id, maxAttempts)
}

// knownClient fails unless the site has a record of client id: from this
// instance's view or, when the view lags, the bucket. The server lets only
// enrolled agents publish inventory, so a client without a record is one
// whose record is on its way (identity events are consumed asynchronously):
// the error leaves the report in the agent's outbox for a resend.
func (s *Service) knownClient(ctx context.Context, id string) error {
	if _, ok := s.view.get(id); ok {
		return nil
	}
	_, err := s.store.kv.Get(ctx, id)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return fmt.Errorf("client %s has no record yet", id)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return contracts.Errorf(contracts.CodeBadRequest, "client id %q cannot be a bucket key", id)
	}
	return fmt.Errorf("read client %s: %w", id, err)
}

// getInventory reads a client's stored inventory (nil when none) and its
// revision.
func (s *Service) getInventory(ctx context.Context, id string) (*storedInventory, uint64, error) {
	e, err := s.invKV.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, 0, nil
	case errors.Is(err, jetstream.ErrInvalidKey):
		return nil, 0, contracts.Errorf(contracts.CodeBadRequest, "client id %q cannot be a bucket key", id)
	case err != nil:
		return nil, 0, fmt.Errorf("read inventory of %s: %w", id, err)
	}
	var inv storedInventory
	if err := json.Unmarshal(e.Value(), &inv); err != nil {
		return nil, 0, fmt.Errorf("stored inventory of %s unreadable: %w", id, err)
	}
	return &inv, e.Revision(), nil
}

// publishHistory stores the changes of one report in HistoryStream and
// waits for the server to have them.
func (s *Service) publishHistory(ctx context.Context, id, item string, seq uint64, changes []contracts.InventoryChange) error {
	subj, err := contracts.InventorySubject(s.cfg.Site, id)
	if err != nil {
		return contracts.Errorf(contracts.CodeBadRequest, "client id %q: %v", id, err)
	}
	ev := contracts.InventoryChanged{Header: contracts.NewHeader(contracts.TypeInventoryChanged), ClientID: id, Seq: seq, Changes: changes}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data}, jetstream.WithMsgID(item)); err != nil {
		return fmt.Errorf("store inventory history of %s: %w", id, err)
	}
	return nil
}

// askInventory asks a client's agent to report now (a full report when
// full), on its down subject. The agent may be offline: it reports when it
// connects anyway, and the site asks again on the next delta it cannot
// apply.
func (s *Service) askInventory(id string, full bool) error {
	subj, err := contracts.AgentDown(s.cfg.Site, id, contracts.KindInventoryRefresh)
	if err != nil {
		return err
	}
	data, err := json.Marshal(contracts.InventoryRefresh{Header: contracts.NewHeader(contracts.TypeInventoryRefresh), Full: full})
	if err != nil {
		return err
	}
	if err := s.cfg.NC.Publish(subj, data); err != nil {
		s.log.Warn("ask for an inventory report", "client", id, "err", err)
		return err
	}
	s.log.Debug("asked for an inventory report", "client", id, "full", full)
	return nil
}

// inventoryShow answers inventory.show.
func (s *Service) inventoryShow(ctx context.Context, from contracts.SubjectInfo, req *contracts.InventoryRequest) (*contracts.InventoryResponse, error) {
	c, err := s.findClientFor(from.Principal, req.Ref)
	if err != nil {
		return nil, err
	}
	inv, _, err := s.getInventory(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if inv == nil {
		return nil, contracts.Errorf(contracts.CodeNotFound, "client %s has not reported its inventory yet (steward inventory refresh %s asks it to)", c.Name, c.Name)
	}
	return &contracts.InventoryResponse{
		Header: contracts.NewHeader(contracts.TypeInventoryResponse),
		Client: c, Seq: inv.Seq, Collected: inv.Collected, Received: inv.Received, Inventory: inv.Inventory,
	}, nil
}

// maxHistoryChanges bounds one history answer: the newest are kept.
const maxHistoryChanges = 4000

// inventoryHistory answers inventory.history: the client's changes,
// oldest first, collected after req.Since when it is set.
func (s *Service) inventoryHistory(ctx context.Context, from contracts.SubjectInfo, req *contracts.InventoryRequest) (*contracts.InventoryHistoryResponse, error) {
	c, err := s.findClientFor(from.Principal, req.Ref)
	if err != nil {
		return nil, err
	}
	changes, err := s.readHistory(ctx, c.ID, req.Since)
	if err != nil {
		return nil, err
	}
	if len(changes) > maxHistoryChanges {
		changes = changes[len(changes)-maxHistoryChanges:]
	}
	return &contracts.InventoryHistoryResponse{Header: contracts.NewHeader(contracts.TypeInventoryHistory), Client: c, Changes: changes}, nil
}

// readHistory reads a client's history events with a short-lived consumer.
// The stream keeps a report's changes under the time the site stored them,
// which is after the agent collected them, so starting at since misses none.
func (s *Service) readHistory(ctx context.Context, id string, since time.Time) ([]contracts.InventoryChange, error) {
	subj, err := contracts.InventorySubject(s.cfg.Site, id)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "client id %q: %v", id, err)
	}
	cfg := jetstream.ConsumerConfig{
		FilterSubject:     subj,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.js.CreateConsumer(ctx, HistoryStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("read inventory history of %s: %w", id, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		_ = s.js.DeleteConsumer(dctx, HistoryStream, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	changes := []contracts.InventoryChange{}
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(writeTimeout))
		if err != nil {
			return nil, fmt.Errorf("read inventory history of %s: %w", id, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if md, err := m.Metadata(); err == nil {
				pending = md.NumPending
			}
			var ev contracts.InventoryChanged
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				s.log.Warn("unreadable inventory history event skipped", "client", id, "err", err)
				continue
			}
			for _, ch := range ev.Changes {
				if since.IsZero() || ch.Time.After(since) {
					changes = append(changes, ch)
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("read inventory history of %s: %w", id, err)
		}
		if n == 0 {
			break // nothing came in time; answer with what there is
		}
	}
	slices.SortStableFunc(changes, func(a, b contracts.InventoryChange) int {
		return a.Time.Compare(b.Time)
	})
	return changes, nil
}

// inventoryRefresh answers inventory.refresh: it asks the client's agent
// for a report now and answers with the client.
func (s *Service) inventoryRefresh(_ context.Context, from contracts.SubjectInfo, req *contracts.InventoryRequest) (*contracts.ClientResponse, error) {
	c, err := s.findClientFor(from.Principal, req.Ref)
	if err != nil {
		return nil, err
	}
	if c.Status != contracts.ClientApproved {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "client %s is %s: only approved clients report inventory", c.Name, c.Status)
	}
	if err := s.askInventory(c.ID, false); err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "could not ask %s: %v", c.Name, err)
	}
	return &contracts.ClientResponse{Header: contracts.NewHeader(contracts.TypeClientResponse), Client: c}, nil
}

// forgetInventory removes a deleted client's inventory and history.
func (s *Service) forgetInventory(ctx context.Context, id string) error {
	if err := s.invKV.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrInvalidKey) {
		return fmt.Errorf("purge inventory of %s: %w", id, err)
	}
	subj, err := contracts.InventorySubject(s.cfg.Site, id)
	if err != nil {
		return nil // not a client ID a report could have been stored under
	}
	st, err := s.js.Stream(ctx, HistoryStream)
	if err != nil {
		return fmt.Errorf("purge inventory history of %s: %w", id, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("purge inventory history of %s: %w", id, err)
	}
	return nil
}

// clientFacts answers the session broker (svc subject: services only): the
// client, the collections holding it and the principals its inventory
// reports, for the broker's own authorization of a remote session.
func (s *Service) clientFacts(ctx context.Context, _ contracts.SubjectInfo, req *contracts.ClientFactsRequest) (*contracts.ClientFactsResponse, error) {
	c, err := findClient(s.view.all(), req.Ref)
	if err != nil {
		return nil, err
	}
	resp := &contracts.ClientFactsResponse{Header: contracts.NewHeader(contracts.TypeClientFactsResponse), Client: c,
		Collections: []string{}, Admins: []string{}, Users: []string{}}
	in := s.memberOf(c.ID)
	if in(contracts.AllSystemsID) {
		resp.Collections = append(resp.Collections, contracts.AllSystemsID)
	}
	s.model.mu.RLock()
	if s.model.eng != nil {
		for _, id := range s.model.eng.Collections() {
			if id != contracts.AllSystemsID && s.model.eng.IsMember(id, c.ID) {
				resp.Collections = append(resp.Collections, id)
			}
		}
	}
	s.model.mu.RUnlock()
	inv, _, err := s.getInventory(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if inv != nil {
		resp.Admins = append(resp.Admins, inv.Inventory.Admins...)
		resp.Users = append(resp.Users, inv.Inventory.Users...)
	}
	return resp, nil
}
