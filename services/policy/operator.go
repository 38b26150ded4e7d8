package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// catalogAttempts bounds the compare-and-set retries of one catalog change.
const catalogAttempts = 20

// changeCatalog applies change to the stored catalog with compare-and-set,
// retrying when another instance wrote first, and returns the new catalog
// and its revision once this instance's model holds it (so the next
// request, to any endpoint, sees it). change returns the catalog as it was
// (the same pointer) to change nothing, and the IDs of the settings
// objects it changed, whose revision is stamped.
func (s *Service) changeCatalog(ctx context.Context, change func(cur *Catalog) (*Catalog, []string, error)) (*Catalog, uint64, error) {
	for range catalogAttempts {
		e, err := s.settingsKV.Get(ctx, CatalogKey)
		if err != nil {
			return nil, 0, fmt.Errorf("read the settings catalog: %w", err)
		}
		cur, err := DecodeCatalog(e.Value())
		if err != nil {
			return nil, 0, err
		}
		next, touched, err := change(cur)
		if err != nil {
			return nil, 0, err
		}
		if next == cur {
			return cur, e.Revision(), nil
		}
		// The bucket holds only the catalog, so a write that wins the
		// compare-and-set gets the next revision.
		for i := range next.Settings {
			if slices.Contains(touched, next.Settings[i].ID) {
				next.Settings[i].Revision = e.Revision() + 1
			}
		}
		data := next.Encode()
		if limit := s.catalogLimit(); len(data) > limit {
			return nil, 0, contracts.Errorf(contracts.CodeTooLarge,
				"the settings catalog would be %d bytes, over the %d the site's server carries in one message: delete or shrink settings objects (or deployments)", len(data), limit)
		}
		rev, err := s.settingsKV.Update(ctx, CatalogKey, data, e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("write the settings catalog: %w", err)
		}
		if err := s.model.waitCatalog(ctx, rev); err != nil {
			return nil, 0, err
		}
		return next, rev, nil
	}
	return nil, 0, contracts.Errorf(contracts.CodeConflict, "the settings catalog kept changing; try again")
}

// catalogHeadroom is what a write of the catalog carries besides the
// document (subject, compare-and-set and other headers), within the
// server's max_payload.
const catalogHeadroom = 1024

// catalogLimit is the largest catalog document the site's server takes
// in one message: its max_payload (1 MiB by default) less the headroom.
// The catalog is one value, so it bounds the settings objects and
// deployments of a site together.
func (s *Service) catalogLimit() int {
	return int(s.cfg.NC.MaxPayload()) - catalogHeadroom
}

// affected lists the clients whose records put them in any of the
// deployments' collections.
func (s *Service) affected(info contracts.SettingsInfo) []string {
	if info.BuiltIn {
		return s.model.allClients()
	}
	set := map[string]bool{}
	for _, d := range info.Deployments {
		for _, id := range s.model.membersOf(d.Collection.ID) {
			set[id] = true
		}
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// prune drops from a record the collections nothing is deployed to any
// more: their membership no longer matters.
func prune(cat *Catalog) mutation {
	return func(rec *clientRecord) (bool, bool) {
		kept := slices.DeleteFunc(slices.Clone(rec.Collections), func(c string) bool { return !cat.Tracked(c) })
		events := slices.DeleteFunc(slices.Clone(rec.Events), func(e eventMark) bool { return !cat.Tracked(e.Collection) })
		if len(kept) == len(rec.Collections) && len(events) == len(rec.Events) {
			return false, false
		}
		rec.Collections, rec.Events = kept, events
		return true, false
	}
}

// apply answers settings.apply.
func (s *Service) apply(ctx context.Context, from contracts.SubjectInfo, req *contracts.SettingsApplyRequest) (*contracts.SettingsApplyResponse, error) {
	op := from.Principal
	var (
		info   contracts.SettingsInfo
		result string
	)
	next, _, err := s.changeCatalog(ctx, func(c *Catalog) (*Catalog, []string, error) {
		// Decided on the catalog the change is made to: an object created
		// or deployed meanwhile is checked as it is now.
		if err := s.mayApply(op, c, req.Settings.Name); err != nil {
			return nil, nil, err
		}
		n, i, r, err := c.Apply(req.Settings, op, s.cfg.Now().UTC())
		info, result = i, r
		return n, []string{i.ID}, err
	})
	if err != nil {
		return nil, err
	}
	resp := &contracts.SettingsApplyResponse{Header: contracts.NewHeader(contracts.TypeSettingsApplyResponse), Result: result}
	if got := next.byID(info.ID); got != nil {
		info = *got
	}
	resp.Settings = info
	if result == contracts.ApplyUnchanged {
		return resp, nil
	}
	s.emit(ctx, contracts.StatusSettingsChanged, map[string]string{"settings": info.Name, "by": op, "change": result + " (priority " + strconv.Itoa(info.Priority) + ")"})
	s.log.Info("settings "+result, "settings", info.Name, "id", info.ID, "by", op)
	out, err := s.updateKnown(ctx, s.affected(info), noChange, true)
	resp.Clients = changedCount(out)
	if err != nil {
		s.log.Warn("settings stored; some clients get them at their next fetch", "settings", info.Name, "err", err)
	}
	return resp, nil
}

// mayApply checks that op may apply a settings object named name to
// catalog c: a new one needs ClientSettings:Create; an existing one
// ClientSettings:Modify and the right to change the policy of every
// collection it is deployed to (All Systems for the Default Client
// Settings).
func (s *Service) mayApply(op string, c *Catalog, name string) error {
	cur := c.Named(name)
	if cur == nil {
		return s.allowed(op, rbac.ClientSettingsCreate)
	}
	if err := s.allowed(op, rbac.ClientSettingsModify); err != nil {
		return err
	}
	return s.mayChange(op, cur, false)
}

// list answers settings.list.
func (s *Service) list(ctx context.Context, from contracts.SubjectInfo, _ *contracts.SettingsListRequest) (*contracts.SettingsListResponse, error) {
	if err := s.allowed(from.Principal, rbac.ClientSettingsRead); err != nil {
		return nil, err
	}
	cat, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	list := cat.Sorted()
	names := s.liveNames(ctx, from.Principal, cat)
	for i := range list {
		list[i].Deployments = named(list[i].Deployments, names)
	}
	return &contracts.SettingsListResponse{Header: contracts.NewHeader(contracts.TypeSettingsListResponse), Settings: list}, nil
}

// maxLiveNames bounds the collections whose names one answer asks
// discovery for; past it, the names the deployments stored are shown.
const maxLiveNames = 100

// liveNames asks discovery, on op's behalf, for the current name of each
// collection cat has settings deployed to: a deployment stores the name
// the collection had then, and collections are renamed. A collection
// discovery does not answer for (deleted, outside op's scope, discovery
// down) keeps its stored name.
func (s *Service) liveNames(ctx context.Context, op string, cat *Catalog) map[string]string {
	names := map[string]string{}
	for _, d := range cat.Deployments() {
		id := d.Deployment.Collection.ID
		if _, asked := names[id]; asked || len(names) >= maxLiveNames {
			continue
		}
		names[id] = d.Deployment.Collection.Name
		if c, err := s.cfg.Directory.Collection(ctx, op, id); err == nil && c.ID == id && c.Name != "" {
			names[id] = c.Name
		}
	}
	return names
}

// named returns deployments with the collections' names from names (a
// copy: the catalog's own are never changed).
func named(deployments []contracts.Deployment, names map[string]string) []contracts.Deployment {
	out := slices.Clone(deployments)
	for i := range out {
		if n, ok := names[out[i].Collection.ID]; ok {
			out[i].Collection.Name = n
		}
	}
	return out
}

// show answers settings.show.
func (s *Service) show(ctx context.Context, from contracts.SubjectInfo, req *contracts.SettingsRequest) (*contracts.SettingsResponse, error) {
	if err := s.allowed(from.Principal, rbac.ClientSettingsRead); err != nil {
		return nil, err
	}
	cat, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	info, err := cat.Find(req.Ref)
	if err != nil {
		return nil, err
	}
	out := *info
	out.Deployments = named(info.Deployments, s.liveNames(ctx, from.Principal, &Catalog{Settings: []contracts.SettingsInfo{*info}}))
	return &contracts.SettingsResponse{Header: contracts.NewHeader(contracts.TypeSettingsResponse), Settings: out}, nil
}

// delete answers settings.delete.
func (s *Service) delete(ctx context.Context, from contracts.SubjectInfo, req *contracts.SettingsRequest) (*contracts.SettingsResponse, error) {
	op := from.Principal
	if err := s.allowed(op, rbac.ClientSettingsDelete); err != nil {
		return nil, err
	}
	var gone contracts.SettingsInfo
	next, _, err := s.changeCatalog(ctx, func(c *Catalog) (*Catalog, []string, error) {
		// Deleting a deployed object (--force) undeploys it from every
		// collection: it needs the right to undeploy from each.
		if cur, err := c.Find(req.Ref); err == nil && !cur.BuiltIn {
			if err := s.mayChange(op, cur, true); err != nil {
				return nil, nil, err
			}
		}
		n, g, err := c.Delete(req.Ref, req.Force)
		gone = g
		return n, nil, err
	})
	if err != nil {
		return nil, err
	}
	s.emit(ctx, contracts.StatusSettingsChanged, map[string]string{"settings": gone.Name, "by": op, "change": "deleted"})
	s.log.Info("settings deleted", "settings", gone.Name, "id", gone.ID, "by", op, "deployments", len(gone.Deployments))
	out, err := s.updateKnown(ctx, s.affected(gone), prune(next), true)
	if err != nil {
		s.log.Warn("settings deleted; some clients get the change at their next fetch", "settings", gone.Name, "err", err)
	}
	return &contracts.SettingsResponse{Header: contracts.NewHeader(contracts.TypeSettingsResponse), Settings: gone, Clients: changedCount(out)}, nil
}

// deploy answers settings.deploy: the collection is resolved by discovery
// on the operator's behalf (an unknown collection is refused), the
// deployment is stored, and then the collection's members, as discovery
// lists them now, get their policy.
func (s *Service) deploy(ctx context.Context, from contracts.SubjectInfo, req *contracts.SettingsDeployRequest) (*contracts.SettingsDeployResponse, error) {
	op := from.Principal
	if err := s.allowed(op, rbac.ClientSettingsRead); err != nil {
		return nil, err
	}
	cur, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := cur.Find(req.Ref); err != nil {
		return nil, err
	}
	coll, err := s.cfg.Directory.Collection(ctx, op, req.Collection)
	if err != nil {
		return nil, err
	}
	if err := s.allowedOn(op, rbac.CollectionDeploySettings, coll); err != nil {
		return nil, err
	}
	var (
		info    contracts.SettingsInfo
		changed bool
	)
	_, _, err = s.changeCatalog(ctx, func(c *Catalog) (*Catalog, []string, error) {
		n, i, ch, err := c.Deploy(req.Ref, coll, op, s.cfg.Now().UTC())
		if err != nil {
			return nil, nil, err
		}
		info, changed = i, ch
		// Discovery named the collection just now: deployments to it
		// that stored an older name say the current one.
		return n.WithCollectionName(coll), []string{i.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	resp := &contracts.SettingsDeployResponse{Header: contracts.NewHeader(contracts.TypeSettingsDeployResponse), Result: contracts.DeployUnchanged, Collection: coll}
	if changed {
		resp.Result = contracts.DeployDeployed
		s.emit(ctx, contracts.StatusSettingsChanged, map[string]string{"settings": info.Name, "by": op, "change": fmt.Sprintf("deployed to collection %q", coll.Name)})
		s.log.Info("settings deployed", "settings", info.Name, "collection", coll.Name, "by", op)
	}
	asOf := s.eventsPublished(ctx)
	members, err := s.cfg.Directory.Members(ctx, op, coll.ID)
	if err != nil {
		return nil, fmt.Errorf("settings deployed, but the members of %q could not be read (they get the settings at their next fetch): %w", coll.Name, err)
	}
	n, err := s.reconcile(ctx, coll.ID, members, asOf)
	if err != nil {
		s.log.Warn("settings deployed; some clients get them at their next fetch", "settings", info.Name, "err", err)
	}
	cat, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	if got := cat.byID(info.ID); got != nil {
		info = *got
	}
	resp.Settings, resp.Members, resp.Clients = info, len(members), n
	return resp, nil
}

// undeploy answers settings.undeploy. The collection is resolved by
// discovery first, on the operator's behalf, and the deployment matched by
// its ID: a deployment stores the collection's name at the time, and the
// name may have moved since (renamed, and another collection given the old
// name). Only a collection discovery does not know (deleted) is matched by
// the ID or name its deployment stored, so its deployment can be removed.
func (s *Service) undeploy(ctx context.Context, from contracts.SubjectInfo, req *contracts.SettingsDeployRequest) (*contracts.SettingsDeployResponse, error) {
	op := from.Principal
	if err := s.allowed(op, rbac.ClientSettingsRead); err != nil {
		return nil, err
	}
	cur, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	info, err := cur.Find(req.Ref)
	if err != nil {
		return nil, err
	}
	coll, err := s.cfg.Directory.Collection(ctx, op, req.Collection)
	live := err == nil
	switch {
	case contracts.CodeOf(err) == contracts.CodeNotFound:
		stored, serr := StoredDeployment(info, req.Collection)
		if serr != nil {
			if contracts.CodeOf(serr) == contracts.CodeNotFound {
				return nil, contracts.Errorf(contracts.CodeNotFound, "%v; %v", err, serr)
			}
			return nil, serr
		}
		coll = stored
	case err != nil:
		return nil, err
	}
	if err := s.allowedOn(op, rbac.CollectionDeploySettings, coll); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(info.Deployments, func(d contracts.Deployment) bool { return d.Collection.ID == coll.ID }) {
		// Said with the names discovery gives the collections now.
		shown := *info
		shown.Deployments = named(info.Deployments, s.liveNames(ctx, op, &Catalog{Settings: []contracts.SettingsInfo{*info}}))
		return nil, notDeployed(&shown, coll)
	}
	var after contracts.SettingsInfo
	next, _, err := s.changeCatalog(ctx, func(c *Catalog) (*Catalog, []string, error) {
		n, i, err := c.Undeploy(req.Ref, coll, op, s.cfg.Now().UTC())
		if err != nil {
			return nil, nil, err
		}
		if live {
			n = n.WithCollectionName(coll)
		}
		after = i
		return n, []string{i.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	resp := &contracts.SettingsDeployResponse{Header: contracts.NewHeader(contracts.TypeSettingsDeployResponse), Result: contracts.DeployUndeployed, Collection: coll, Settings: after}
	s.emit(ctx, contracts.StatusSettingsChanged, map[string]string{"settings": after.Name, "by": op, "change": fmt.Sprintf("undeployed from collection %q", coll.Name)})
	s.log.Info("settings undeployed", "settings", after.Name, "collection", coll.Name, "id", coll.ID, "by", op)
	members := s.model.membersOf(coll.ID)
	out, err := s.updateKnown(ctx, members, prune(next), true)
	if err != nil {
		s.log.Warn("settings undeployed; some clients get the change at their next fetch", "settings", after.Name, "err", err)
	}
	resp.Members, resp.Clients = len(members), changedCount(out)
	return resp, nil
}

// reconcile makes the records agree with members, the collection's
// members as discovery listed them after publishing the events up to
// sequence asOf: members get the collection, the records that have it and
// are not members lose it, except a client a later membership event of the
// collection has decided (the list, read before that event, is older than
// what the record says). It returns how many clients got a new revision.
func (s *Service) reconcile(ctx context.Context, collection string, members []contracts.Named, asOf uint64) (int, error) {
	in := make(map[string]bool, len(members))
	ids := make([]string, 0, len(members))
	for _, m := range members {
		in[m.ID] = true
		ids = append(ids, m.ID)
	}
	var gone []string
	for _, id := range s.model.membersOf(collection) {
		// A client out of All Systems is gone from the site: its record
		// is removed (resyncAllSystems), not given a new revision.
		if !in[id] && collection != contracts.AllSystemsID {
			gone = append(gone, id)
		}
	}
	added, err1 := s.update(ctx, ids, listed(collection, true, asOf), true)
	removed, err2 := s.updateKnown(ctx, gone, listed(collection, false, asOf), true)
	return changedCount(added) + changedCount(removed), errors.Join(err1, err2)
}

// listed puts a client in (in) or out of collection as a members list read
// after the events up to asOf says, unless the record holds a later event
// of the collection.
func listed(collection string, in bool, asOf uint64) mutation {
	put := withCollection(collection, in)
	return func(rec *clientRecord) (bool, bool) {
		if rec.eventSeq(collection) > asOf {
			return false, false
		}
		return put(rec)
	}
}

// withCollection puts a client in (in) or out of collection.
func withCollection(collection string, in bool) mutation {
	return func(rec *clientRecord) (bool, bool) {
		i, found := slices.BinarySearch(rec.Collections, collection)
		switch {
		case in && !found:
			rec.Collections = slices.Insert(rec.Collections, i, collection)
			return true, false
		case !in && found:
			rec.Collections = slices.Delete(rec.Collections, i, i+1)
			return true, false
		}
		return false, false
	}
}

// compliance answers settings.compliance: every client the settings apply
// to, as discovery lists the members of its collections for the operator
// (for the Default Client Settings, All Systems), with its state.
func (s *Service) compliance(ctx context.Context, from contracts.SubjectInfo, req *contracts.SettingsComplianceRequest) (*contracts.SettingsComplianceResponse, error) {
	op := from.Principal
	if err := s.allowed(op, rbac.ClientSettingsRead); err != nil {
		return nil, err
	}
	cat, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	info, err := cat.Find(req.Ref)
	if err != nil {
		return nil, err
	}
	colls := []string{contracts.AllSystemsID}
	if !info.BuiltIn {
		colls = colls[:0]
		for _, d := range info.Deployments {
			colls = append(colls, d.Collection.ID)
		}
	}
	targets := map[string]contracts.Named{}
	for _, c := range colls {
		members, err := s.cfg.Directory.Members(ctx, op, c)
		if contracts.CodeOf(err) == contracts.CodeNotFound {
			continue // the collection was deleted; its deployment stays until undeployed
		}
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			targets[m.ID] = m
		}
	}
	resp := &contracts.SettingsComplianceResponse{
		Header:   contracts.NewHeader(contracts.TypeSettingsComplianceResponse),
		Settings: contracts.Named{ID: info.ID, Name: info.Name},
		Clients:  []contracts.ClientCompliance{},
	}
	for _, c := range targets {
		cc := s.clientCompliance(c)
		resp.Summary.Add(cc.State)
		if !req.SummaryOnly {
			resp.Clients = append(resp.Clients, cc)
		}
	}
	slices.SortFunc(resp.Clients, func(a, b contracts.ClientCompliance) int {
		if d := strings.Compare(a.Client.Name, b.Client.Name); d != 0 {
			return d
		}
		return strings.Compare(a.Client.ID, b.Client.ID)
	})
	return resp, nil
}

// clientCompliance is where client c stands.
func (s *Service) clientCompliance(c contracts.Named) contracts.ClientCompliance {
	e, _ := s.model.client(c.ID)
	cc := contracts.ClientCompliance{Client: c, Revision: e.rec.Revision}
	var rp *complianceRecord
	if r, ok := s.model.report(c.ID); ok {
		rp = &r
		cc.AppliedRevision, cc.Applied, cc.Reported, cc.Rejected = r.AppliedRevision, r.AppliedAt, r.Reported, r.RejectedRevision
	}
	cc.State, cc.Reason = complianceState(e.rec.Revision, rp)
	return cc
}

// clientPolicy answers clients.policy: the client is resolved by discovery
// on the operator's behalf (one it may not see is not found).
func (s *Service) clientPolicy(ctx context.Context, from contracts.SubjectInfo, req *contracts.ClientPolicyRequest) (*contracts.ClientPolicyResponse, error) {
	op := from.Principal
	if err := s.allowed(op, rbac.ClientSettingsRead); err != nil {
		return nil, err
	}
	c, err := s.cfg.Directory.Client(ctx, op, req.Ref)
	if err != nil {
		return nil, err
	}
	cat, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	e, _ := s.model.client(c.ID)
	res := cat.Resolve(e.rec.Collections)
	cc := s.clientCompliance(contracts.Named{ID: c.ID, Name: c.Name})
	resp := &contracts.ClientPolicyResponse{
		Header:          contracts.NewHeader(contracts.TypeClientPolicyResponse),
		Client:          cc.Client,
		Revision:        e.rec.Revision,
		AppliedRevision: cc.AppliedRevision,
		State:           cc.State,
		Issued:          e.rec.Issued,
		Reason:          cc.Reason,
		Collections:     []contracts.Named{},
		Settings:        res.Values(),
	}
	names := map[string]string{}
	for _, d := range cat.Deployments() {
		names[d.Deployment.Collection.ID] = d.Deployment.Collection.Name
	}
	for _, id := range e.rec.Collections {
		n, ok := names[id]
		if !ok {
			continue
		}
		// The name as discovery says it now (the deployment stored the
		// one the collection had then).
		if c, err := s.cfg.Directory.Collection(ctx, op, id); err == nil && c.ID == id && c.Name != "" {
			n = c.Name
		}
		resp.Collections = append(resp.Collections, contracts.Named{ID: id, Name: n})
	}
	return resp, nil
}

// freshCatalog is the catalog as the bucket holds it now: it waits until
// this instance's model has caught up with the latest write, which may have
// been another instance's (an operator's apply answered by one instance,
// then its deploy by the other, must find the settings).
// collectionUses answers discovery before it deletes a collection: the
// settings deployed to it.
func (s *Service) collectionUses(ctx context.Context, _ contracts.SubjectInfo, req *contracts.CollectionUsesRequest) (*contracts.CollectionUsesResponse, error) {
	cat, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	resp := &contracts.CollectionUsesResponse{Header: contracts.NewHeader(contracts.TypeCollectionUsesResponse), Uses: []string{}}
	for _, d := range cat.Deployments() {
		if d.Deployment.Collection.ID == req.Collection {
			resp.Uses = append(resp.Uses, fmt.Sprintf("settings %q are deployed to it", d.Settings.Name))
		}
	}
	return resp, nil
}

func (s *Service) freshCatalog(ctx context.Context) (*Catalog, error) {
	e, err := s.settingsKV.Get(ctx, CatalogKey)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "read the settings catalog: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.model.waitCatalog(wctx, e.Revision()); err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "%v", err)
	}
	cat, _ := s.model.current()
	return cat, nil
}

// effectivePolicy answers the session broker (svc subject: services only):
// a client's resultant settings as resolved now. A client the service has
// no record of gets what applies to every client (the Default Client
// Settings and anything deployed to All Systems).
func (s *Service) effectivePolicy(ctx context.Context, _ contracts.SubjectInfo, req *contracts.EffectivePolicyRequest) (*contracts.EffectivePolicyResponse, error) {
	if req.ClientID == "" {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "name the client")
	}
	cat, err := s.freshCatalog(ctx)
	if err != nil {
		return nil, err
	}
	e, ok := s.model.client(req.ClientID)
	collections := []string{contracts.AllSystemsID}
	if ok {
		collections = e.rec.Collections
	}
	return &contracts.EffectivePolicyResponse{Header: contracts.NewHeader(contracts.TypeEffectivePolicyResponse),
		ClientID: req.ClientID, Revision: e.rec.Revision, Settings: cat.Resolve(collections).Settings}, nil
}
