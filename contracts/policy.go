package contracts

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Message type strings of client settings, their deployments, the signed
// per-client policy and compliance.
const (
	TypeSettingsApplyRequest       = "steward.v1.settings_apply_request"
	TypeSettingsApplyResponse      = "steward.v1.settings_apply_response"
	TypeSettingsRequest            = "steward.v1.settings_request"
	TypeSettingsResponse           = "steward.v1.settings_response"
	TypeSettingsListRequest        = "steward.v1.settings_list_request"
	TypeSettingsListResponse       = "steward.v1.settings_list_response"
	TypeSettingsDeployRequest      = "steward.v1.settings_deploy_request"
	TypeSettingsDeployResponse     = "steward.v1.settings_deploy_response"
	TypeSettingsComplianceRequest  = "steward.v1.settings_compliance_request"
	TypeSettingsComplianceResponse = "steward.v1.settings_compliance_response"
	TypeClientPolicyRequest        = "steward.v1.client_policy_request"
	TypeClientPolicyResponse       = "steward.v1.client_policy_response"
	TypePolicy                     = "steward.v1.policy"
	TypeSignedPolicy               = "steward.v1.signed_policy"
	TypePolicyFetchRequest         = "steward.v1.policy_fetch_request"
	TypePolicyFetchResponse        = "steward.v1.policy_fetch_response"
	TypePolicyAck                  = "steward.v1.policy_ack"
	TypeAgentSettingsResponse      = "steward.v1.agent_settings_response"
)

// Subject kinds of policy. The settings kinds and KindClientsPolicy are
// operator requests (OpUp); KindPolicy is the site's push of a signed policy
// to one agent (AgentDown); KindPolicyFetch is the agent's request for its
// policy and KindPolicyAck the outbox kind of its acknowledgements (AgentUp).
const (
	KindSettingsApply      = "settings.apply"
	KindSettingsList       = "settings.list"
	KindSettingsShow       = "settings.show"
	KindSettingsDelete     = "settings.delete"
	KindSettingsDeploy     = "settings.deploy"
	KindSettingsUndeploy   = "settings.undeploy"
	KindSettingsCompliance = "settings.compliance"
	KindClientsPolicy      = "clients.policy"
	KindPolicy             = "policy"
	KindPolicyFetch        = "policy.fetch"
	KindPolicyAck          = "policy.ack"
)

// The built-in settings object every client gets, below everything
// deployed. It can be changed (settings apply with its name) but not
// deleted, deployed or given another priority.
const (
	DefaultSettingsID       = "default-client-settings"
	DefaultSettingsName     = "Default Client Settings"
	DefaultSettingsPriority = 10000
)

// Limits of client settings. Besides these, a site's settings objects
// and deployments are one document, stored in one message: together at
// most the site's server's max_payload (1 MiB by default), some 120
// objects of the full MaxSettingsBytes; the policy service refuses a
// change past it.
const (
	MinSettingsPriority = 1
	MaxSettingsPriority = DefaultSettingsPriority - 1
	MaxSettingsObjects  = 500  // settings objects of a site (small ones: see below)
	MaxViewers          = 256  // permitted viewers of one settings object
	MaxTunnelPorts      = 64   // tunnel ports of one settings object
	MaxViewerLen        = 256  // one permitted viewer
	MaxSettingsBytes    = 8192 // one settings object as JSON, whatever its lists hold
	MaxDeployments      = 256  // collections one settings object is deployed to
)

// Access levels of remote tools and Remote Assistance.
const (
	AccessFull = "full" // control: keyboard and mouse
	AccessView = "view" // see the screen only
	AccessNone = "none" // no access
)

// AccessLevels lists the access levels, most access first.
func AccessLevels() []string { return []string{AccessFull, AccessView, AccessNone} }

// Settings is a client settings object as an operator writes it (the YAML
// file of `steward settings apply`): a name, a priority and sections of
// settings. Every setting is a pointer: nil means "not configured here",
// so a setting left out never overrides one of a lower priority. Lists are
// pointers too: [] (configured, empty) differs from left out.
type Settings struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description"`
	// Priority orders settings objects that apply to the same client:
	// lower wins, per setting. Unique per site; 1 to 9999 (the Default
	// Client Settings are 10000).
	Priority         int `json:"priority" yaml:"priority"`
	SettingsSections `yaml:",inline"`
}

// SettingsSections are the sections of settings. A resultant policy is one
// too: every setting set by the settings object that won it, or nil when
// nothing configures it (the agent keeps its own value).
type SettingsSections struct {
	RemoteTools      *RemoteToolsSettings      `json:"remoteTools,omitempty" yaml:"remoteTools"`
	RemoteAssistance *RemoteAssistanceSettings `json:"remoteAssistance,omitempty" yaml:"remoteAssistance"`
	Agent            *AgentSettings            `json:"agent,omitempty" yaml:"agent"`
}

// RemoteToolsSettings are Steward's own remote control of a client.
type RemoteToolsSettings struct {
	Enabled         *bool     `json:"enabled,omitempty" yaml:"enabled"`
	AccessLevel     *string   `json:"accessLevel,omitempty" yaml:"accessLevel"` // full | view | none
	PromptUser      *bool     `json:"promptUser,omitempty" yaml:"promptUser"`
	PromptTimeout   *Duration `json:"promptTimeout,omitempty" yaml:"promptTimeout"`
	AllowWhenNoUser *bool     `json:"allowWhenNoUser,omitempty" yaml:"allowWhenNoUser"` // no prompt when nobody is logged on
	ShowIndicator   *bool     `json:"showIndicator,omitempty" yaml:"showIndicator"`
	PlaySound       *bool     `json:"playSound,omitempty" yaml:"playSound"`
	// PermittedViewers are the users and groups ("group:NAME") who may
	// control the client besides its local administrators. While remote
	// tools are enabled the agent keeps them as its local "Remote Control
	// Users" record.
	PermittedViewers *[]string `json:"permittedViewers,omitempty" yaml:"permittedViewers"`
	TunnelPorts      *[]int    `json:"tunnelPorts,omitempty" yaml:"tunnelPorts"`
}

// RemoteAssistanceSettings are the client's own Remote Assistance
// configuration, which the site may manage (as Configuration Manager does
// with the Local Group Policy of Windows Remote Assistance).
type RemoteAssistanceSettings struct {
	// Manage: the site writes Unsolicited, Solicited and Level into the
	// agent's local configuration layer.
	Manage *bool `json:"manage,omitempty" yaml:"manage"`
	// OverrideUserSettings: the site's values win over the local user's
	// own choices; otherwise the user's choices win where the user made one.
	OverrideUserSettings *bool   `json:"overrideUserSettings,omitempty" yaml:"overrideUserSettings"`
	Unsolicited          *bool   `json:"unsolicited,omitempty" yaml:"unsolicited"` // helpers may offer help
	Solicited            *bool   `json:"solicited,omitempty" yaml:"solicited"`     // users may ask for help
	Level                *string `json:"level,omitempty" yaml:"level"`             // full | view | none
	// RevertOnUnmanage: when the site stops managing (manage turned off,
	// or the settings no longer apply), return to the user's own values at
	// once instead of leaving the last values in force ("tattooed").
	RevertOnUnmanage *bool `json:"revertOnUnmanage,omitempty" yaml:"revertOnUnmanage"`
}

// AgentSettings are the agent's own intervals. Not configured, the agent
// uses its command line's (or built-in) values.
type AgentSettings struct {
	PolicyRefresh *Duration `json:"policyRefresh,omitempty" yaml:"policyRefresh"` // fetch the policy this often (besides pushes)
	Heartbeat     *Duration `json:"heartbeat,omitempty" yaml:"heartbeat"`
	Inventory     *Duration `json:"inventory,omitempty" yaml:"inventory"` // look for inventory changes this often
}

// MaxPromptTimeout is the longest a client may wait for its user's consent
// (remoteTools.promptTimeout); an agent's answer to a grant must still be
// allowed that long after the grant came.
const MaxPromptTimeout = 10 * time.Minute

// Bounds of the agent intervals a policy may set.
const (
	MinAgentInterval = time.Second
	MaxAgentInterval = 7 * 24 * time.Hour
)

// MarshalText writes the duration as text, for YAML and text encodings.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads duration text such as "30s" (YAML, text encodings).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, such as 30s, 15m or 6h", b)
	}
	*d = Duration(v)
	return nil
}

// FieldError is a problem with one setting, named by its path
// ("remoteTools.accessLevel"), so that a tool reading a file can point at
// the line that holds it.
type FieldError struct {
	Path    string
	Message string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Message }

func fieldErr(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Message: fmt.Sprintf(format, args...)}
}

// ValidSettingsName checks a settings object's name: 1 to 128 characters,
// no control characters, no leading or trailing space.
func ValidSettingsName(n string) error {
	if len(n) == 0 || len(n) > 128 {
		return fmt.Errorf("settings name %q must be 1 to 128 characters", n)
	}
	if err := printable(n); err != nil {
		return fmt.Errorf("settings name %q: %w", n, err)
	}
	return nil
}

// Validate checks a settings object as an operator wrote it. Errors are
// *FieldError naming the setting. The Default Client Settings are checked
// with their own priority.
func (s *Settings) Validate() error {
	if err := ValidSettingsName(s.Name); err != nil {
		return fieldErr("name", "%v", err)
	}
	// Settings objects are named by name or ID (show, delete, deploy): a
	// name that reads as an ID would reach another object.
	switch {
	case strings.EqualFold(s.Name, DefaultSettingsID):
		return fieldErr("name", "%q is the id of the %s, which it would reach by that name; choose another name", s.Name, DefaultSettingsName)
	case uuid.Validate(s.Name) == nil:
		return fieldErr("name", "%q is shaped like a settings object's id, which it could be mistaken for; choose another name", s.Name)
	}
	if len(s.Description) > MaxDescription {
		return fieldErr("description", "%d characters: at most %d", len(s.Description), MaxDescription)
	}
	if strings.EqualFold(s.Name, DefaultSettingsName) {
		if s.Priority != 0 && s.Priority != DefaultSettingsPriority {
			return fieldErr("priority", "the %s always have priority %d (the lowest)", DefaultSettingsName, DefaultSettingsPriority)
		}
	} else if s.Priority < MinSettingsPriority || s.Priority > MaxSettingsPriority {
		return fieldErr("priority", "%d: must be %d to %d (lower wins; the %s are %d)", s.Priority, MinSettingsPriority, MaxSettingsPriority, DefaultSettingsName, DefaultSettingsPriority)
	}
	if err := s.SettingsSections.Validate(); err != nil {
		return err
	}
	return s.checkSize()
}

// checkSize refuses a settings object over MaxSettingsBytes as JSON (what
// the site stores), naming its largest setting: each list is within its
// own bounds, and still 200 permitted viewers of 50 characters are over.
func (s *Settings) checkSize() error {
	data, _ := json.Marshal(s)
	if len(data) <= MaxSettingsBytes {
		return nil
	}
	largest, size := "description", len(s.Description)
	for path, v := range s.SettingsSections.Values() {
		if len(v) > size || (len(v) == size && path < largest) {
			largest, size = path, len(v)
		}
	}
	return fieldErr(largest, "the settings object is %d bytes as JSON, over the %d one may be; this setting is %d of them: shorten it, or split it over settings objects",
		len(data), MaxSettingsBytes, size)
}

// Validate checks every configured setting.
func (s *SettingsSections) Validate() error {
	level := func(path string, v *string) error {
		if v != nil && !slices.Contains(AccessLevels(), *v) {
			return fieldErr(path, "%q: must be one of %s", *v, strings.Join(AccessLevels(), ", "))
		}
		return nil
	}
	interval := func(path string, d *Duration) error {
		if d != nil && (time.Duration(*d) < MinAgentInterval || time.Duration(*d) > MaxAgentInterval) {
			return fieldErr(path, "%s: must be %s to %s", time.Duration(*d), MinAgentInterval, MaxAgentInterval)
		}
		return nil
	}
	if rt := s.RemoteTools; rt != nil {
		if err := level("remoteTools.accessLevel", rt.AccessLevel); err != nil {
			return err
		}
		if d := rt.PromptTimeout; d != nil && (time.Duration(*d) < time.Second || time.Duration(*d) > MaxPromptTimeout) {
			return fieldErr("remoteTools.promptTimeout", "%s: must be 1s to %s", time.Duration(*d), MaxPromptTimeout)
		}
		if v := rt.PermittedViewers; v != nil {
			if len(*v) > MaxViewers {
				return fieldErr("remoteTools.permittedViewers", "%d entries: at most %d", len(*v), MaxViewers)
			}
			seen := map[string]bool{}
			for i, name := range *v {
				path := fmt.Sprintf("remoteTools.permittedViewers[%d]", i)
				if err := validViewer(name); err != nil {
					return fieldErr(path, "%v", err)
				}
				if seen[strings.ToLower(name)] {
					return fieldErr(path, "%q is listed twice", name)
				}
				seen[strings.ToLower(name)] = true
			}
		}
		if p := rt.TunnelPorts; p != nil {
			if len(*p) > MaxTunnelPorts {
				return fieldErr("remoteTools.tunnelPorts", "%d ports: at most %d", len(*p), MaxTunnelPorts)
			}
			seen := map[int]bool{}
			for i, port := range *p {
				path := fmt.Sprintf("remoteTools.tunnelPorts[%d]", i)
				if port < 1 || port > 65535 {
					return fieldErr(path, "%d: a port is 1 to 65535", port)
				}
				if seen[port] {
					return fieldErr(path, "port %d is listed twice", port)
				}
				seen[port] = true
			}
		}
	}
	if ra := s.RemoteAssistance; ra != nil {
		if err := level("remoteAssistance.level", ra.Level); err != nil {
			return err
		}
	}
	if ag := s.Agent; ag != nil {
		for _, f := range []struct {
			path string
			d    *Duration
		}{{"agent.policyRefresh", ag.PolicyRefresh}, {"agent.heartbeat", ag.Heartbeat}, {"agent.inventory", ag.Inventory}} {
			if err := interval(f.path, f.d); err != nil {
				return err
			}
		}
	}
	return nil
}

// validViewer checks a permitted viewer: a user name, or "group:" and a
// group name; printable, no spaces at either end.
func validViewer(v string) error {
	name := strings.TrimPrefix(v, "group:")
	if name == "" || len(v) > MaxViewerLen {
		return fmt.Errorf("%q: a user or group:NAME of 1 to %d characters", v, MaxViewerLen)
	}
	if err := printable(v); err != nil {
		return fmt.Errorf("%q: %w", v, err)
	}
	return nil
}

// SettingPaths lists every setting as "section.setting" (the JSON names),
// in the order of the types' fields: what a resultant policy reports on.
func SettingPaths() []string {
	var out []string
	forEachSetting(reflect.ValueOf(&SettingsSections{}).Elem(), false, func(path string, _ reflect.Value) {
		out = append(out, path)
	})
	return out
}

// Values returns every setting path with its configured value as JSON (nil
// when not configured).
func (s *SettingsSections) Values() map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	forEachSetting(reflect.ValueOf(s).Elem(), false, func(path string, v reflect.Value) {
		if v.IsNil() {
			out[path] = nil
			return
		}
		data, _ := json.Marshal(v.Interface())
		out[path] = data
	})
	return out
}

// forEachSetting calls fn with every setting field below sections (a
// SettingsSections value): its path and the field (a pointer). With alloc,
// nil sections are allocated first (the value must be addressable).
func forEachSetting(sections reflect.Value, alloc bool, fn func(path string, field reflect.Value)) {
	st := sections.Type()
	for i := range st.NumField() {
		sec := sections.Field(i)
		secName := jsonName(st.Field(i))
		if sec.IsNil() {
			if !alloc {
				for j := range sec.Type().Elem().NumField() {
					fn(secName+"."+jsonName(sec.Type().Elem().Field(j)), reflect.Zero(sec.Type().Elem().Field(j).Type))
				}
				continue
			}
			sec.Set(reflect.New(sec.Type().Elem()))
		}
		el := sec.Elem()
		for j := range el.NumField() {
			fn(secName+"."+jsonName(el.Type().Field(j)), el.Field(j))
		}
	}
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// Clone returns a deep copy of s: every section and setting is its own
// (an agent's state store copies its policy on each change, so this is
// plain field copies, not a merge's walk by path).
func (s SettingsSections) Clone() SettingsSections {
	out := s
	secs := reflect.ValueOf(&out).Elem()
	for i := range secs.NumField() {
		sec := secs.Field(i)
		if sec.IsNil() {
			continue
		}
		cp := reflect.New(sec.Type().Elem())
		cp.Elem().Set(sec.Elem())
		el := cp.Elem()
		for j := range el.NumField() {
			if f := el.Field(j); !f.IsNil() {
				v := reflect.New(f.Type().Elem())
				v.Elem().Set(deepCopy(f.Elem()))
				f.Set(v)
			}
		}
		sec.Set(cp)
	}
	return out
}

// Merge returns the resultant settings of layers, highest precedence first:
// each setting takes the first layer's value that is configured, and
// origin[i] says which layer each path came from. Sections nothing
// configures stay nil.
func Merge(layers []SettingsSections) (SettingsSections, map[string]int) {
	var out SettingsSections
	origin := map[string]int{}
	outV := reflect.ValueOf(&out).Elem()
	for i := range layers {
		forEachSetting(reflect.ValueOf(&layers[i]).Elem(), false, func(path string, v reflect.Value) {
			if v.IsNil() {
				return
			}
			if _, done := origin[path]; done {
				return
			}
			origin[path] = i
			setPath(outV, path, v)
		})
	}
	return out, origin
}

// setPath sets the setting path of sections (addressable) to a copy of v.
func setPath(sections reflect.Value, path string, v reflect.Value) {
	secName, field, _ := strings.Cut(path, ".")
	st := sections.Type()
	for i := range st.NumField() {
		if jsonName(st.Field(i)) != secName {
			continue
		}
		sec := sections.Field(i)
		if sec.IsNil() {
			sec.Set(reflect.New(sec.Type().Elem()))
		}
		el := sec.Elem()
		for j := range el.NumField() {
			if jsonName(el.Type().Field(j)) == field {
				cp := reflect.New(v.Type().Elem())
				cp.Elem().Set(deepCopy(v.Elem()))
				el.Field(j).Set(cp)
			}
		}
	}
}

// deepCopy copies a setting's value (slices are copied, not shared).
func deepCopy(v reflect.Value) reflect.Value {
	if v.Kind() == reflect.Slice && !v.IsNil() {
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		return cp
	}
	return v
}

// SettingsInfo is a settings object as the site keeps it.
type SettingsInfo struct {
	Settings
	ID          string       `json:"id"`
	BuiltIn     bool         `json:"builtIn,omitempty"`
	Deployments []Deployment `json:"deployments,omitempty"`
	Created     time.Time    `json:"created,omitzero"`
	CreatedBy   string       `json:"createdBy,omitempty"`
	Updated     time.Time    `json:"updated,omitzero"`
	UpdatedBy   string       `json:"updatedBy,omitempty"`
	// Revision is the site's settings revision of the object's last
	// change (its settings or its deployments).
	Revision uint64 `json:"revision,omitempty"`
}

// Deployment is a settings object deployed to a collection: every member
// gets the settings (by priority with the rest).
type Deployment struct {
	Collection Named     `json:"collection"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
}

// Apply results.
const (
	ApplyCreated   = "created"
	ApplyUpdated   = "updated"
	ApplyUnchanged = "unchanged"
)

// SettingsApplyRequest creates the settings object Settings.Name, or
// replaces its settings when one by that name exists (declarative: what is
// not in the request is not configured afterwards). Applying the Default
// Client Settings changes them; what it leaves out keeps the built-in value.
type SettingsApplyRequest struct {
	Header
	Settings Settings `json:"settings"`
}

// Validate checks the settings.
func (r *SettingsApplyRequest) Validate() error { return r.Settings.Validate() }

// SettingsApplyResponse says what apply did and to how many clients the
// change went (their policy changed and was pushed).
type SettingsApplyResponse struct {
	Header
	Result   string       `json:"result"` // created | updated | unchanged
	Settings SettingsInfo `json:"settings"`
	Clients  int          `json:"clients"`
}

// SettingsRequest names a settings object by name or ID (show, delete).
// Force deletes one that is deployed, undeploying it everywhere.
type SettingsRequest struct {
	Header
	Ref   string `json:"ref"`
	Force bool   `json:"force,omitempty"`
}

// Validate checks the reference.
func (r *SettingsRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a settings name or id is required")
	}
	return nil
}

// SettingsResponse carries one settings object (show, delete: as it was)
// and the clients whose policy the request changed.
type SettingsResponse struct {
	Header
	Settings SettingsInfo `json:"settings"`
	Clients  int          `json:"clients,omitempty"`
}

// SettingsListRequest asks for every settings object.
type SettingsListRequest struct {
	Header
}

// SettingsListResponse lists settings objects by priority, the Default
// Client Settings last.
type SettingsListResponse struct {
	Header
	Settings []SettingsInfo `json:"settings"`
}

// SettingsDeployRequest deploys (settings.deploy) or undeploys
// (settings.undeploy) the settings object Ref to or from Collection (a
// name or ID).
type SettingsDeployRequest struct {
	Header
	Ref        string `json:"ref"`
	Collection string `json:"collection"`
}

// Validate checks both references.
func (r *SettingsDeployRequest) Validate() error {
	if r.Ref == "" || r.Collection == "" {
		return fmt.Errorf("a settings object and a collection (names or ids) are required")
	}
	return nil
}

// SettingsDeployResponse is the settings object after the change, how many
// clients the collection holds, and how many clients' policy changed.
type SettingsDeployResponse struct {
	Header
	Result     string       `json:"result"` // deployed | undeployed | unchanged
	Settings   SettingsInfo `json:"settings"`
	Collection Named        `json:"collection"`
	Members    int          `json:"members"`
	Clients    int          `json:"clients"`
}

// Deploy results.
const (
	DeployDeployed   = "deployed"
	DeployUndeployed = "undeployed"
	DeployUnchanged  = "unchanged"
)

// Compliance states of a client's policy.
const (
	ComplianceApplied = "applied" // the client runs its current policy revision
	CompliancePending = "pending" // a newer revision is waiting for the client
	ComplianceFailed  = "failed"  // the client rejected its current revision
	ComplianceUnknown = "unknown" // the client has not reported a policy
)

// ComplianceStates lists the states in display order.
func ComplianceStates() []string {
	return []string{ComplianceApplied, CompliancePending, ComplianceFailed, ComplianceUnknown}
}

// SettingsComplianceRequest asks how the clients a settings object applies
// to stand: every member of its collections (All Systems for the Default
// Client Settings). SummaryOnly leaves the list of clients out (a large
// collection's list may not fit in one answer).
type SettingsComplianceRequest struct {
	Header
	Ref         string `json:"ref"`
	SummaryOnly bool   `json:"summaryOnly,omitempty"`
}

// Validate checks the reference.
func (r *SettingsComplianceRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a settings name or id is required")
	}
	return nil
}

// ClientCompliance is where one client stands: its current policy
// revision at the site, the revision it last reported applied, and the
// state these give.
type ClientCompliance struct {
	Client          Named     `json:"client"`
	State           string    `json:"state"`
	Revision        uint64    `json:"revision"`                   // current at the site
	AppliedRevision uint64    `json:"appliedRevision"`            // last reported applied
	Applied         time.Time `json:"applied,omitzero"`           // when the client applied it (its clock)
	Reported        time.Time `json:"reported,omitzero"`          // when the site stored its last report
	Reason          string    `json:"reason,omitempty"`           // why it rejected the current revision
	Rejected        uint64    `json:"rejectedRevision,omitempty"` // the revision it last rejected
}

// ComplianceSummary counts clients per state.
type ComplianceSummary struct {
	Applied int `json:"applied"`
	Pending int `json:"pending"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
}

// Add counts state.
func (s *ComplianceSummary) Add(state string) {
	switch state {
	case ComplianceApplied:
		s.Applied++
	case CompliancePending:
		s.Pending++
	case ComplianceFailed:
		s.Failed++
	default:
		s.Unknown++
	}
}

// SettingsComplianceResponse summarises the clients of a settings object
// and lists them by name.
type SettingsComplianceResponse struct {
	Header
	Settings Named              `json:"settings"`
	Summary  ComplianceSummary  `json:"summary"`
	Clients  []ClientCompliance `json:"clients"`
}

// ClientPolicyRequest asks for a client's resultant policy (name or ID).
type ClientPolicyRequest struct {
	Header
	Ref string `json:"ref"`
}

// Validate checks the reference.
func (r *ClientPolicyRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a client name or id is required")
	}
	return nil
}

// PolicyValue is one setting of a resultant policy: its value (JSON null
// when nothing configures it: the agent keeps its own) and the settings
// object it came from, with that object's priority.
type PolicyValue struct {
	Setting  string          `json:"setting"`
	Value    json.RawMessage `json:"value"`
	From     *Named          `json:"from,omitempty"`
	Priority int             `json:"priority,omitempty"`
}

// ClientPolicyResponse is a client's resultant policy: every setting with
// its value and origin, the policy revision the site holds for it and the
// revision the client last reported applied.
type ClientPolicyResponse struct {
	Header
	Client          Named         `json:"client"`
	Revision        uint64        `json:"revision"`
	AppliedRevision uint64        `json:"appliedRevision"`
	State           string        `json:"state"`
	Issued          time.Time     `json:"issued,omitzero"`
	Reason          string        `json:"reason,omitempty"`
	Collections     []Named       `json:"collections"` // its collections that settings are deployed to
	Settings        []PolicyValue `json:"settings"`
}

// Policy is the body the site signs for one client: who it is for, its
// revision, when it was issued and until when an agent may accept it, and
// the resultant settings with the settings object each came from.
// Revisions of one client only grow.
type Policy struct {
	Header
	Site     string           `json:"site"`
	ClientID string           `json:"clientId"`
	Revision uint64           `json:"revision"`
	Issued   time.Time        `json:"issued"`
	Expires  time.Time        `json:"expires"`
	Settings SettingsSections `json:"settings"`
	Origins  map[string]Named `json:"origins"` // setting path -> settings object
}

// PolicyValidity is how long after its issue an agent accepts a policy.
// Fetches re-sign, so an agent that was away longer gets a fresh one.
const PolicyValidity = 7 * 24 * time.Hour

// MaxPolicyBytes bounds a signed policy as the agent reads it.
const MaxPolicyBytes = 256 << 10

// SignedPolicy carries a Policy as exactly the bytes the site signed, and
// the signature: ed25519 by the site signing key (the NKey the agent pinned
// at enrollment) over PolicySigningInput(Policy). The agent verifies the
// bytes before it parses them, so the signature never depends on how JSON
// is re-encoded.
type SignedPolicy struct {
	Header
	Policy    []byte `json:"policy"`    // the JSON of a Policy (base64 on the wire)
	Signature []byte `json:"signature"` // (base64 on the wire)
	Key       string `json:"key"`       // the signer's public key; the agent verifies with its pinned key
}

// PolicySigningInput is what the site signs for a policy body: a context
// prefix, so that a policy signature can never pass for another message the
// site key signs (an enrollment answer), then the body.
func PolicySigningInput(body []byte) []byte { return signingInput("steward-policy-v1\n", body) }

// signingInput is a context prefix and then a body: what the site signs for
// a body of one kind, so that its signature never passes for another kind's.
func signingInput(prefix string, body []byte) []byte {
	out := make([]byte, 0, len(prefix)+len(body))
	return append(append(out, prefix...), body...)
}

// PolicyFetchRequest is an agent asking for its policy (at connect and
// every policy refresh), saying the revision it runs.
type PolicyFetchRequest struct {
	Header
	AppliedRevision uint64 `json:"appliedRevision"`
}

// PolicyFetchResponse answers a fetch: Current when the agent runs the
// current revision, else the current policy, freshly signed.
type PolicyFetchResponse struct {
	Header
	Revision uint64        `json:"revision"`
	Current  bool          `json:"current,omitempty"`
	Policy   *SignedPolicy `json:"policy,omitempty"`
}

// Policy rejection reasons (PolicyAck.Code).
const (
	RejectMalformed = "malformed" // not a signed policy, truncated, too large
	RejectSignature = "signature" // the signature does not verify with the pinned site key
	RejectSite      = "site"      // for another site, or signed by another site's key
	RejectClient    = "client"    // for another client
	RejectExpired   = "expired"   // past its expiry, or issued in the future
	RejectReplay    = "replay"    // a revision older than the one applied
	RejectApply     = "apply"     // verified, but the agent could not apply it
)

// PolicyAck is what an agent reports about a policy, through its outbox
// (kind KindPolicyAck): it applied Revision, or rejected it (Code, Reason;
// Revision 0 when it could not read one). AppliedRevision is what it runs
// afterwards either way.
type PolicyAck struct {
	Header
	Revision        uint64    `json:"revision"`
	Applied         bool      `json:"applied"`
	AppliedRevision uint64    `json:"appliedRevision"`
	AppliedAt       time.Time `json:"appliedAt,omitzero"`
	Code            string    `json:"code,omitempty"`
	Reason          string    `json:"reason,omitempty"`
}

// Validate checks the acknowledgement's shape.
func (a *PolicyAck) Validate() error {
	if a.Applied && a.Revision == 0 {
		return fmt.Errorf("an applied policy has a revision")
	}
	if !a.Applied && a.Code == "" {
		return fmt.Errorf("a rejection needs a code")
	}
	if len(a.Reason) > 1024 {
		return fmt.Errorf("reason of %d bytes: at most 1024", len(a.Reason))
	}
	return nil
}

// AgentPolicyStatus is the policy as the agent holds it: the revision it
// runs, the resultant settings and where they came from, its local
// configuration of Remote Assistance, the Remote Control Users record, the
// intervals it runs with, and the policies it rejected.
type AgentPolicyStatus struct {
	Revision           uint64                `json:"revision"`
	Issued             time.Time             `json:"issued,omitzero"`
	Expires            time.Time             `json:"expires,omitzero"`
	Applied            time.Time             `json:"applied,omitzero"`
	Settings           SettingsSections      `json:"settings"`
	Origins            map[string]Named      `json:"origins,omitempty"`
	RemoteAssistance   RemoteAssistanceState `json:"remoteAssistance"`
	RemoteControlUsers []string              `json:"remoteControlUsers"` // kept while remote tools are enabled; stays until reset
	Intervals          AgentIntervals        `json:"intervals"`
	Rejected           int                   `json:"rejected"` // policies rejected since the agent started
	LastRejection      *PolicyRejection      `json:"lastRejection,omitempty"`
}

// RemoteAssistanceValues are the values of Remote Assistance a
// configuration layer holds (nil: the layer does not set it).
type RemoteAssistanceValues struct {
	Unsolicited *bool   `json:"unsolicited,omitempty"`
	Solicited   *bool   `json:"solicited,omitempty"`
	Level       *string `json:"level,omitempty"`
}

// RemoteAssistanceState is the agent's local configuration of Remote
// Assistance. Site is what the site wrote into the local configuration
// layer: Managed while the site manages it, Tattooed once the site stopped
// but its last values stay in force (until `steward-agent settings reset`
// or revertOnUnmanage). User is the local user's own values. Effective is
// what is in force, and Sources says where each value comes from: "site",
// "user" or "default" (the built-in value of an unconfigured client).
type RemoteAssistanceState struct {
	Managed          bool                    `json:"managed"`
	Tattooed         bool                    `json:"tattooed"`
	Override         bool                    `json:"override"`
	RevertOnUnmanage bool                    `json:"revertOnUnmanage"`
	Effective        RemoteAssistanceValues  `json:"effective"`
	Sources          map[string]string       `json:"sources"`
	Site             *RemoteAssistanceValues `json:"site,omitempty"`
	User             *RemoteAssistanceValues `json:"user,omitempty"`
}

// AgentIntervals are the intervals the agent runs with now.
type AgentIntervals struct {
	Heartbeat     Duration `json:"heartbeat"`
	Inventory     Duration `json:"inventory"`
	PolicyRefresh Duration `json:"policyRefresh"`
}

// PolicyRejection is a policy the agent refused and why.
type PolicyRejection struct {
	Revision uint64    `json:"revision"`
	Code     string    `json:"code"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// AgentSettingsResponse answers the agent's local settings commands
// (`steward-agent settings reset`, `settings user`): what changed, and the
// policy state after.
type AgentSettingsResponse struct {
	Header
	Changed []string          `json:"changed"`
	Policy  AgentPolicyStatus `json:"policy"`
}
