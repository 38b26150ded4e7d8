package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/lookup"
)

// CatalogSchema is the version of the catalog document this package
// writes; a newer one is refused rather than misread.
const CatalogSchema = 1

// Catalog is every settings object of the site with its deployments. It is
// stored as one document (CatalogKey in SettingsBucket) and changed only by
// compare-and-set, so invariants across objects (one priority each, unique
// names) hold on one consistent state. The functions below are the domain:
// they change a catalog and know nothing of NATS.
type Catalog struct {
	Schema   int                      `json:"schema"`
	Settings []contracts.SettingsInfo `json:"settings"`
}

func ptr[T any](v T) *T { return &v }

// FactoryDefaults are the built-in values of the Default Client Settings.
// The agent section is left unconfigured: agents keep their command line's
// intervals until an operator sets them.
func FactoryDefaults() contracts.SettingsSections {
	return contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{
			Enabled:          ptr(false),
			AccessLevel:      ptr(contracts.AccessFull),
			PromptUser:       ptr(true),
			PromptTimeout:    ptr(contracts.Duration(30 * time.Second)),
			AllowWhenNoUser:  ptr(false),
			ShowIndicator:    ptr(true),
			PlaySound:        ptr(false),
			PermittedViewers: ptr([]string{}),
			TunnelPorts:      ptr([]int{}),
		},
		RemoteAssistance: &contracts.RemoteAssistanceSettings{
			Manage:               ptr(false),
			OverrideUserSettings: ptr(false),
			Unsolicited:          ptr(false),
			Solicited:            ptr(true),
			Level:                ptr(contracts.AccessFull),
			RevertOnUnmanage:     ptr(false),
		},
	}
}

// NewCatalog is the catalog of a new site: the Default Client Settings.
func NewCatalog(now time.Time) *Catalog {
	return &Catalog{Schema: CatalogSchema, Settings: []contracts.SettingsInfo{defaultInfo(FactoryDefaults(), now)}}
}

func defaultInfo(sections contracts.SettingsSections, now time.Time) contracts.SettingsInfo {
	return contracts.SettingsInfo{
		Settings: contracts.Settings{
			Name:             contracts.DefaultSettingsName,
			Description:      "Built in: every client gets these, below every deployed settings object.",
			Priority:         contracts.DefaultSettingsPriority,
			SettingsSections: sections,
		},
		ID:        contracts.DefaultSettingsID,
		BuiltIn:   true,
		Created:   now,
		CreatedBy: "site",
	}
}

// DecodeCatalog reads a stored catalog.
func DecodeCatalog(data []byte) (*Catalog, error) {
	var c Catalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("the settings catalog is unreadable: %w", err)
	}
	if c.Schema > CatalogSchema {
		return nil, fmt.Errorf("the settings catalog has schema %d; this version reads up to %d", c.Schema, CatalogSchema)
	}
	if c.Default() == nil {
		c.Settings = append(c.Settings, defaultInfo(FactoryDefaults(), time.Now().UTC()))
	}
	return &c, nil
}

// Encode writes the catalog for storage.
func (c *Catalog) Encode() []byte {
	c.Schema = CatalogSchema
	data, _ := json.Marshal(c)
	return data
}

// clone is a deep copy to change.
func (c *Catalog) clone() *Catalog {
	var out Catalog
	_ = json.Unmarshal(c.Encode(), &out)
	return &out
}

// Default returns the Default Client Settings.
func (c *Catalog) Default() *contracts.SettingsInfo {
	for i := range c.Settings {
		if c.Settings[i].ID == contracts.DefaultSettingsID {
			return &c.Settings[i]
		}
	}
	return nil
}

// Find returns the settings object ref names (ID, or name in any case).
// A ref that is one object's ID and another's name (a name from before
// such names were refused) is ambiguous, not the object with the ID.
func (c *Catalog) Find(ref string) (*contracts.SettingsInfo, error) {
	if i := slices.IndexFunc(c.Settings, func(s contracts.SettingsInfo) bool { return s.ID == ref }); i >= 0 {
		var others []string
		for j, s := range c.Settings {
			if j != i && strings.EqualFold(s.Name, ref) {
				others = append(others, s.ID)
			}
		}
		if len(others) > 0 {
			return nil, contracts.Errorf(contracts.CodeAmbiguous, "%q is the id of settings object %q and the name of another (id %s): name the first %q, the other by its id",
				ref, c.Settings[i].Name, strings.Join(others, ", "), c.Settings[i].Name)
		}
	}
	idx := make([]int, len(c.Settings))
	for i := range idx {
		idx[i] = i
	}
	i, err := lookup.One("settings object", ref, idx,
		func(i int) string { return c.Settings[i].ID },
		func(i int) string { return c.Settings[i].Name })
	if err != nil {
		if contracts.CodeOf(err) == contracts.CodeNotFound {
			return nil, contracts.Errorf(contracts.CodeNotFound, "no settings object named or with id %q (steward settings list shows them)", ref)
		}
		return nil, err
	}
	return &c.Settings[i], nil
}

// byID returns the settings object with ID id, or nil.
func (c *Catalog) byID(id string) *contracts.SettingsInfo {
	for i := range c.Settings {
		if c.Settings[i].ID == id {
			return &c.Settings[i]
		}
	}
	return nil
}

// Named returns the settings object named name (any case), or nil: what
// apply creates or replaces. Unlike Find it never matches an ID.
func (c *Catalog) Named(name string) *contracts.SettingsInfo {
	if strings.EqualFold(name, contracts.DefaultSettingsName) {
		return c.Default()
	}
	for i := range c.Settings {
		if strings.EqualFold(c.Settings[i].Name, name) {
			return &c.Settings[i]
		}
	}
	return nil
}

// Sorted returns the settings objects by priority, the Default last.
func (c *Catalog) Sorted() []contracts.SettingsInfo {
	out := slices.Clone(c.Settings)
	slices.SortFunc(out, func(a, b contracts.SettingsInfo) int { return a.Priority - b.Priority })
	return out
}

// Tracked reports whether collection id has settings deployed to it: the
// policy service follows the membership of those collections only.
func (c *Catalog) Tracked(id string) bool {
	for _, s := range c.Settings {
		for _, d := range s.Deployments {
			if d.Collection.ID == id {
				return true
			}
		}
	}
	return false
}

// Deployments lists every deployment with its settings object.
func (c *Catalog) Deployments() []struct {
	Settings   contracts.Named
	Deployment contracts.Deployment
} {
	var out []struct {
		Settings   contracts.Named
		Deployment contracts.Deployment
	}
	for _, s := range c.Settings {
		for _, d := range s.Deployments {
			out = append(out, struct {
				Settings   contracts.Named
				Deployment contracts.Deployment
			}{contracts.Named{ID: s.ID, Name: s.Name}, d})
		}
	}
	return out
}

// Apply creates or replaces the settings object named s.Name and returns
// the new catalog, the object and what happened (created, updated,
// unchanged; an unchanged catalog is returned as it was). Applying the
// Default Client Settings replaces their settings, the factory value
// standing in for each one left out.
func (c *Catalog) Apply(s contracts.Settings, by string, now time.Time) (*Catalog, contracts.SettingsInfo, string, error) {
	if err := s.Validate(); err != nil {
		return nil, contracts.SettingsInfo{}, "", contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	s = normal(s) // a copy: the catalog never shares the caller's pointers
	next := c.clone()
	if strings.EqualFold(s.Name, contracts.DefaultSettingsName) {
		d := next.Default()
		merged, _ := contracts.Merge([]contracts.SettingsSections{s.SettingsSections, FactoryDefaults()})
		if s.Description != "" && s.Description != d.Description {
			d.Description = s.Description
		} else if reflect.DeepEqual(merged, d.SettingsSections) {
			return c, *c.Default(), contracts.ApplyUnchanged, nil
		}
		d.SettingsSections, d.Updated, d.UpdatedBy = merged, now, by
		return next, *d, contracts.ApplyUpdated, nil
	}
	var cur *contracts.SettingsInfo
	for i := range next.Settings {
		if strings.EqualFold(next.Settings[i].Name, s.Name) {
			cur = &next.Settings[i]
		}
	}
	for _, o := range next.Settings {
		if o.Priority == s.Priority && (cur == nil || o.ID != cur.ID) {
			return nil, contracts.SettingsInfo{}, "", contracts.Errorf(contracts.CodeConflict,
				"priority %d is taken by settings object %q; every settings object needs a priority of its own (lower wins)", s.Priority, o.Name)
		}
	}
	if cur == nil {
		if len(next.Settings) >= contracts.MaxSettingsObjects {
			return nil, contracts.SettingsInfo{}, "", contracts.Errorf(contracts.CodeConflict, "the site holds %d settings objects, the most it may", len(next.Settings))
		}
		info := contracts.SettingsInfo{Settings: s, ID: uuid.NewString(), Created: now, CreatedBy: by}
		if err := checkSize(info); err != nil {
			return nil, contracts.SettingsInfo{}, "", err
		}
		next.Settings = append(next.Settings, info)
		return next, info, contracts.ApplyCreated, nil
	}
	if reflect.DeepEqual(normal(cur.Settings), s) {
		return c, *cur, contracts.ApplyUnchanged, nil
	}
	cur.Settings, cur.Updated, cur.UpdatedBy = s, now, by
	if err := checkSize(*cur); err != nil {
		return nil, contracts.SettingsInfo{}, "", err
	}
	return next, *cur, contracts.ApplyUpdated, nil
}

// normal is s as it reads back from JSON, for comparing (a section with
// nothing configured is no section).
func normal(s contracts.Settings) contracts.Settings {
	data, _ := json.Marshal(s)
	var out contracts.Settings
	_ = json.Unmarshal(data, &out)
	if out.RemoteTools != nil && reflect.ValueOf(*out.RemoteTools).IsZero() {
		out.RemoteTools = nil
	}
	if out.RemoteAssistance != nil && reflect.ValueOf(*out.RemoteAssistance).IsZero() {
		out.RemoteAssistance = nil
	}
	if out.Agent != nil && reflect.ValueOf(*out.Agent).IsZero() {
		out.Agent = nil
	}
	return out
}

func checkSize(info contracts.SettingsInfo) error {
	data, _ := json.Marshal(info.Settings)
	if len(data) > contracts.MaxSettingsBytes {
		return contracts.Errorf(contracts.CodeTooLarge, "settings object %q is %d bytes as JSON: at most %d", info.Name, len(data), contracts.MaxSettingsBytes)
	}
	return nil
}

// Delete removes the settings object ref. One that is deployed is refused,
// naming its collections, unless force (which undeploys it everywhere).
// The Default Client Settings cannot be deleted.
func (c *Catalog) Delete(ref string, force bool) (*Catalog, contracts.SettingsInfo, error) {
	cur, err := c.Find(ref)
	if err != nil {
		return nil, contracts.SettingsInfo{}, err
	}
	if cur.BuiltIn {
		return nil, contracts.SettingsInfo{}, contracts.Errorf(contracts.CodeConflict, "the %s are built in and cannot be deleted; change them with settings apply", cur.Name)
	}
	if len(cur.Deployments) > 0 && !force {
		var names []string
		for _, d := range cur.Deployments {
			names = append(names, fmt.Sprintf("%q", d.Collection.Name))
		}
		return nil, contracts.SettingsInfo{}, contracts.Errorf(contracts.CodeConflict,
			"settings object %q is deployed to %s; undeploy it first, or delete with --force to undeploy it everywhere", cur.Name, strings.Join(names, ", "))
	}
	gone := *cur
	next := c.clone()
	next.Settings = slices.DeleteFunc(next.Settings, func(s contracts.SettingsInfo) bool { return s.ID == gone.ID })
	return next, gone, nil
}

// Deploy deploys the settings object ref to collection coll. Deploying
// where it already is changes nothing (changed false).
func (c *Catalog) Deploy(ref string, coll contracts.Named, by string, now time.Time) (*Catalog, contracts.SettingsInfo, bool, error) {
	cur, err := c.Find(ref)
	if err != nil {
		return nil, contracts.SettingsInfo{}, false, err
	}
	if cur.BuiltIn {
		return nil, contracts.SettingsInfo{}, false, contracts.Errorf(contracts.CodeBadRequest, "the %s apply to every client already; they are not deployed", cur.Name)
	}
	for _, d := range cur.Deployments {
		if d.Collection.ID == coll.ID {
			return c, *cur, false, nil
		}
	}
	if len(cur.Deployments) >= contracts.MaxDeployments {
		return nil, contracts.SettingsInfo{}, false, contracts.Errorf(contracts.CodeConflict, "settings object %q is deployed to %d collections, the most it may", cur.Name, len(cur.Deployments))
	}
	next := c.clone()
	s := next.byID(cur.ID)
	s.Deployments = append(s.Deployments, contracts.Deployment{Collection: coll, By: by, At: now})
	s.Updated, s.UpdatedBy = now, by
	return next, *s, true, nil
}

// Undeploy removes the deployment of ref to the collection coll, matched
// by ID only (a name may have moved to another collection since the
// deployment was made). One not deployed there is not_found, naming where
// it is deployed.
func (c *Catalog) Undeploy(ref string, coll contracts.Named, by string, now time.Time) (*Catalog, contracts.SettingsInfo, error) {
	cur, err := c.Find(ref)
	if err != nil {
		return nil, contracts.SettingsInfo{}, err
	}
	i := slices.IndexFunc(cur.Deployments, func(d contracts.Deployment) bool { return d.Collection.ID == coll.ID })
	if i < 0 {
		return nil, contracts.SettingsInfo{}, notDeployed(cur, coll)
	}
	next := c.clone()
	s := next.byID(cur.ID)
	s.Deployments = slices.Delete(s.Deployments, i, i+1)
	s.Updated, s.UpdatedBy = now, by
	return next, *s, nil
}

// notDeployed is the not_found error of undeploying info from coll, a
// collection it is not deployed to (by ID; coll.ID is empty when only a
// name is known). Where a name is shared, the IDs tell them apart.
func notDeployed(info *contracts.SettingsInfo, coll contracts.Named) error {
	clash := coll.ID != "" && slices.ContainsFunc(info.Deployments, func(d contracts.Deployment) bool {
		return strings.EqualFold(d.Collection.Name, coll.Name)
	})
	name := func(c contracts.Named) string {
		if clash {
			return c.Name + " (" + c.ID + ")"
		}
		return c.Name
	}
	var names []string
	for _, d := range info.Deployments {
		names = append(names, name(d.Collection))
	}
	where := "it is deployed to no collection"
	if len(names) > 0 {
		where = "deployed to: " + strings.Join(names, ", ")
	}
	return contracts.Errorf(contracts.CodeNotFound, "%s is not deployed to %s (%s)", info.Name, name(coll), where)
}

// StoredDeployment finds info's deployment to the collection ref, by the
// ID or the name (any case) the deployment stored: for a collection
// discovery no longer knows (deleted), whose deployment is still to be
// removed. Two deployments with that stored name are ambiguous.
func StoredDeployment(info *contracts.SettingsInfo, ref string) (contracts.Named, error) {
	for _, d := range info.Deployments {
		if d.Collection.ID == ref {
			return d.Collection, nil
		}
	}
	var found []contracts.Named
	for _, d := range info.Deployments {
		if strings.EqualFold(d.Collection.Name, ref) {
			found = append(found, d.Collection)
		}
	}
	switch len(found) {
	case 0:
		return contracts.Named{}, notDeployed(info, contracts.Named{Name: ref})
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.ID
	}
	return contracts.Named{}, contracts.Errorf(contracts.CodeAmbiguous, "%s is deployed to %d collections once named %q, none of which discovery knows now; use an id: %s", info.Name, len(found), ref, strings.Join(ids, ", "))
}

// WithCollectionName returns the catalog with every deployment to
// coll.ID naming it coll.Name, as discovery names it now (a deployment
// stores the name it had then); c itself when no name changes.
func (c *Catalog) WithCollectionName(coll contracts.Named) *Catalog {
	stale := false
	for _, d := range c.Deployments() {
		if d.Deployment.Collection.ID == coll.ID && d.Deployment.Collection.Name != coll.Name {
			stale = true
		}
	}
	if !stale || coll.Name == "" {
		return c
	}
	next := c.clone()
	for i := range next.Settings {
		for j := range next.Settings[i].Deployments {
			if d := &next.Settings[i].Deployments[j]; d.Collection.ID == coll.ID {
				d.Collection.Name = coll.Name
			}
		}
	}
	return next
}
