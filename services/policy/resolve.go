package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// Resolved is a client's resultant policy before it is signed: the merged
// settings, the settings object each setting came from, and a hash of both
// that says whether anything changed since the last revision.
type Resolved struct {
	Settings contracts.SettingsSections
	Origins  map[string]contracts.Named
	Priority map[string]int // setting path -> priority of its settings object
	Hash     string

	// The JSON of Settings and Origins, encoded once: every client with
	// the same resolution shares them in its signed body.
	settingsJSON, originsJSON json.RawMessage
}

// Applicable returns the settings objects that apply to a client that is a
// member of collections (IDs): every object deployed to one of them, by
// priority (lower first), then the Default Client Settings.
func (c *Catalog) Applicable(collections []string) []contracts.SettingsInfo {
	var out []contracts.SettingsInfo
	for _, s := range c.Settings {
		if s.BuiltIn {
			continue
		}
		for _, d := range s.Deployments {
			if slices.Contains(collections, d.Collection.ID) {
				out = append(out, s)
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b contracts.SettingsInfo) int { return a.Priority - b.Priority })
	if d := c.Default(); d != nil {
		out = append(out, *d)
	}
	return out
}

// Resolve merges the settings that apply to a client in collections, per
// setting: the lowest priority that configures a setting wins it.
func (c *Catalog) Resolve(collections []string) Resolved {
	objs := c.Applicable(collections)
	layers := make([]contracts.SettingsSections, len(objs))
	for i, o := range objs {
		layers[i] = o.SettingsSections
	}
	merged, from := contracts.Merge(layers)
	r := Resolved{Settings: merged, Origins: map[string]contracts.Named{}, Priority: map[string]int{}}
	for path, i := range from {
		r.Origins[path] = contracts.Named{ID: objs[i].ID, Name: objs[i].Name}
		r.Priority[path] = objs[i].Priority
	}
	r.settingsJSON, _ = json.Marshal(r.Settings)
	r.originsJSON, _ = json.Marshal(r.Origins)
	h := sha256.New()
	h.Write(r.settingsJSON)
	h.Write([]byte{0})
	h.Write(r.originsJSON)
	r.Hash = hex.EncodeToString(h.Sum(nil)[:16])
	return r
}

// policyHead is contracts.Policy without its settings and origins: Body
// encodes it and appends the settings and origins encoded once per
// resolution, which is the same JSON as encoding the whole policy.
type policyHead struct {
	contracts.Header
	Site     string    `json:"site"`
	ClientID string    `json:"clientId"`
	Revision uint64    `json:"revision"`
	Issued   time.Time `json:"issued"`
	Expires  time.Time `json:"expires"`
}

// Body is the JSON of r.Policy(...): what the site signs. The settings and
// origins are appended as encoded (json.Marshal would validate and compact
// them again for every client, a fifth of signing's cost).
func (r Resolved) Body(site, client string, revision uint64, now time.Time, validity time.Duration) ([]byte, error) {
	p := r.Policy(site, client, revision, now, validity)
	if r.settingsJSON == nil {
		return json.Marshal(p)
	}
	head, err := json.Marshal(policyHead{Header: p.Header, Site: p.Site, ClientID: p.ClientID, Revision: p.Revision,
		Issued: p.Issued, Expires: p.Expires})
	if err != nil {
		return nil, err
	}
	const settingsKey, originsKey = `,"settings":`, `,"origins":`
	body := make([]byte, 0, len(head)+len(settingsKey)+len(r.settingsJSON)+len(originsKey)+len(r.originsJSON))
	body = append(body, head[:len(head)-1]...) // without its closing brace
	body = append(append(body, settingsKey...), r.settingsJSON...)
	body = append(append(body, originsKey...), r.originsJSON...)
	return append(body, '}'), nil
}

// Values lists every setting of r for an operator: its value, or null when
// nothing configures it, and where it came from.
func (r Resolved) Values() []contracts.PolicyValue {
	vals := r.Settings.Values()
	var out []contracts.PolicyValue
	for _, path := range contracts.SettingPaths() {
		v := contracts.PolicyValue{Setting: path, Value: vals[path]}
		if v.Value == nil {
			v.Value = json.RawMessage("null")
		}
		if o, ok := r.Origins[path]; ok {
			o := o
			v.From, v.Priority = &o, r.Priority[path]
		}
		out = append(out, v)
	}
	return out
}

// Policy is the body to sign for client of site at revision, issued now.
func (r Resolved) Policy(site, client string, revision uint64, now time.Time, validity time.Duration) *contracts.Policy {
	return &contracts.Policy{
		Header:   contracts.Header{Type: contracts.TypePolicy, ID: contracts.NewHeader(contracts.TypePolicy).ID, Time: now},
		Site:     site,
		ClientID: client,
		Revision: revision,
		Issued:   now,
		Expires:  now.Add(validity),
		Settings: r.Settings,
		Origins:  r.Origins,
	}
}

// complianceState is where a client stands, from the revision the site
// holds for it and what the client last reported.
func complianceState(revision uint64, c *complianceRecord) (string, string) {
	switch {
	case revision == 0 || c == nil:
		return contracts.ComplianceUnknown, ""
	case c.AppliedRevision >= revision:
		return contracts.ComplianceApplied, ""
	case c.RejectedRevision >= revision:
		return contracts.ComplianceFailed, c.Reason
	}
	return contracts.CompliancePending, ""
}
