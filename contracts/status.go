package contracts

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Message type strings of status messages and of the status service's
// operator API.
const (
	TypeStatusMessage            = "steward.v1.status_message"
	TypeStatusListRequest        = "steward.v1.status_list_request"
	TypeStatusListResponse       = "steward.v1.status_list_response"
	TypeStatusShowRequest        = "steward.v1.status_show_request"
	TypeStatusShowResponse       = "steward.v1.status_show_response"
	TypeStatusFollowRequest      = "steward.v1.status_follow_request"
	TypeStatusFollowResponse     = "steward.v1.status_follow_response"
	TypeStatusCatalogRequest     = "steward.v1.status_catalog_request"
	TypeStatusCatalogResponse    = "steward.v1.status_catalog_response"
	TypeStatusComponentsRequest  = "steward.v1.status_components_request"
	TypeStatusComponentsResponse = "steward.v1.status_components_response"
	TypeStatusClientsRequest     = "steward.v1.status_clients_request"
	TypeStatusClientsResponse    = "steward.v1.status_clients_response"
	TypeStatusRuleAddRequest     = "steward.v1.status_rule_add_request"
	TypeStatusRuleResponse       = "steward.v1.status_rule_response"
	TypeStatusRuleListRequest    = "steward.v1.status_rule_list_request"
	TypeStatusRuleListResponse   = "steward.v1.status_rule_list_response"
	TypeStatusRuleDeleteRequest  = "steward.v1.status_rule_delete_request"
	TypeStatusRuleTestRequest    = "steward.v1.status_rule_test_request"
	TypeStatusRuleTestResponse   = "steward.v1.status_rule_test_response"
	TypeStatusForwardAck         = "steward.v1.status_forward_ack"
)

// Subject kinds of status messages. KindStatus is the agent's (an outbox
// batch on AgentUp(site, id, KindStatus)); the others are operator requests
// on OpUp, except KindStatusFollow, which is also the prefix of the
// operator's down subject on which a follow delivers:
// OpDown(site, operator, KindStatusFollow+"."+followID).
const (
	KindStatus            = "status"
	KindStatusList        = "status.list"
	KindStatusShow        = "status.show"
	KindStatusFollow      = "status.follow"
	KindStatusCatalog     = "status.catalog"
	KindStatusComponents  = "status.components"
	KindStatusClients     = "status.clients"
	KindStatusRulesAdd    = "status.rules.add"
	KindStatusRulesList   = "status.rules.list"
	KindStatusRulesDelete = "status.rules.delete"
	KindStatusRulesTest   = "status.rules.test"
)

// KindStatusForward is the site-to-site kind on which a child site's status
// service forwards a status message to its parent's (filter rule action
// forward with target ForwardParent): SiteSubject(parent, child,
// KindStatusForward), a StatusMessage answered by a StatusForwardAck. The
// parent takes the sending site from the subject, never the payload.
const KindStatusForward = "status.forward"

// Severities of status messages, least to most severe.
const (
	SeverityInfo    = "info"
	SeverityWarning = "warning"
	SeverityError   = "error"
)

// Severities lists the severities, least to most severe.
func Severities() []string { return []string{SeverityInfo, SeverityWarning, SeverityError} }

// ValidSeverity reports whether s is a severity.
func ValidSeverity(s string) bool { return slices.Contains(Severities(), s) }

// Status message limits. An agent's message over them is refused.
const (
	MaxStatusText       = 4096
	MaxStatusProperties = 32
	MaxStatusPropKey    = 64
	MaxStatusPropValue  = 1024
)

// StatusMessage is one status message. Header.ID is the message's UUID (a
// version 7 UUID from NewStatus, so it also tells when it was made) and the
// Nats-Msg-Id it is stored with, so a resend is never stored twice;
// Header.Time is when the event happened at its source, kept as sent even
// when the message arrives late (an agent reporting after an outage).
//
// Who sent a message is never taken from the payload: the status service
// sets Site, Source and Client from the subject it arrived on, and takes
// Severity, Component, Text and Audit from its own catalog when it knows
// MsgID.
type StatusMessage struct {
	Header
	MsgID      int               `json:"msgId"`              // catalog ID (StatusDef.ID)
	Severity   string            `json:"severity"`           // info | warning | error
	Component  string            `json:"component"`          // admin, discovery, ..., agent
	Site       string            `json:"site"`               // the site that received it
	Source     string            `json:"source"`             // client ID for agents, the site code for services
	Client     string            `json:"client,omitempty"`   // client ID when from an agent
	Instance   string            `json:"instance,omitempty"` // service name/instance ID when from a service
	Text       string            `json:"text"`               // rendered from the catalog and Properties
	Properties map[string]string `json:"properties,omitempty"`
	TraceID    string            `json:"traceId,omitempty"`
	Audit      bool              `json:"audit,omitempty"`   // a security action: who did what to what
	Unknown    bool              `json:"unknown,omitempty"` // MsgID is not in the receiving site's catalog
	Received   time.Time         `json:"received,omitzero"` // when the site stored it
	// ForwardedFrom is the child site that forwarded the message to this
	// one (a forward rule with target ForwardParent), taken from the
	// subject it arrived on; "" for a message of this site.
	ForwardedFrom string `json:"forwardedFrom,omitempty"`
}

// Validate checks what a sender controls. The status service fills in and
// overrides the rest.
func (m *StatusMessage) Validate() error {
	if m.MsgID <= 0 {
		return fmt.Errorf("msgId %d: must be positive", m.MsgID)
	}
	if m.Severity != "" && !ValidSeverity(m.Severity) {
		return fmt.Errorf("severity %q: must be one of %s", m.Severity, strings.Join(Severities(), ", "))
	}
	if len(m.Text) > MaxStatusText {
		return fmt.Errorf("text of %d bytes is over the %d-byte limit", len(m.Text), MaxStatusText)
	}
	if len(m.Properties) > MaxStatusProperties {
		return fmt.Errorf("%d properties: at most %d", len(m.Properties), MaxStatusProperties)
	}
	for k, v := range m.Properties {
		if k == "" || len(k) > MaxStatusPropKey || len(v) > MaxStatusPropValue {
			return fmt.Errorf("property %.64q: names are 1 to %d bytes and values at most %d", k, MaxStatusPropKey, MaxStatusPropValue)
		}
	}
	if m.Time.IsZero() {
		return fmt.Errorf("time is required")
	}
	return nil
}

// Status subjects. The status stream stores every message under
//
//	steward.<site>.event.status.msg.<component>.<severity>.<source>
//
// so that queries by component, severity or source are subject filters the
// server answers from its index.
const statusMsgToken = "msg"

// StatusSubject is the subject a status message is stored under.
func StatusSubject(site, component, severity, source string) (string, error) {
	return join(Root, site, "event", "status", statusMsgToken, component, severity, source)
}

// StatusSubjectFilter is a filter over stored status messages; an empty
// component, severity or source matches any.
func StatusSubjectFilter(site, component, severity, source string) (string, error) {
	toks := []string{site, component, severity, source}
	for i, t := range toks {
		if t == "" && i > 0 {
			toks[i] = "*"
			continue
		}
		if err := ValidToken(t); err != nil {
			return "", err
		}
	}
	return joinWild(Root, toks[0], "event", "status", statusMsgToken, toks[1], toks[2], toks[3]), nil
}

// StatusSubjectAll matches every stored status message of site.
func StatusSubjectAll(site string) (string, error) {
	if err := ValidToken(site); err != nil {
		return "", err
	}
	return joinWild(Root, site, "event", "status", statusMsgToken, ">"), nil
}

// StatusFollowSubject is the operator's down subject on which the status
// service delivers the messages of follow followID.
func StatusFollowSubject(site, operator, followID string) (string, error) {
	if err := ValidToken(followID); err != nil {
		return "", fmt.Errorf("follow id: %w", err)
	}
	return OpDown(site, operator, KindStatusFollow+"."+followID)
}

// StatusFilter selects status messages. Empty fields match everything;
// within a list any entry may match; across fields all must.
type StatusFilter struct {
	Since      time.Time `json:"since,omitzero"` // Time at or after
	Until      time.Time `json:"until,omitzero"` // Time before
	Severities []string  `json:"severities,omitempty"`
	Components []string  `json:"components,omitempty"`
	Sources    []string  `json:"sources,omitempty"`
	Clients    []string  `json:"clients,omitempty"` // client IDs (the CLI resolves names)
	MsgIDs     []int     `json:"msgIds,omitempty"`
	AuditOnly  bool      `json:"auditOnly,omitempty"`
}

// MaxFilterValues bounds each list of a StatusFilter.
const MaxFilterValues = 64

// Validate checks the filter.
func (f *StatusFilter) Validate() error {
	for _, s := range f.Severities {
		if !ValidSeverity(s) {
			return fmt.Errorf("severity %q: must be one of %s", s, strings.Join(Severities(), ", "))
		}
	}
	for name, list := range map[string][]string{"component": f.Components, "source": f.Sources, "client": f.Clients} {
		if len(list) > MaxFilterValues {
			return fmt.Errorf("at most %d %ss", MaxFilterValues, name)
		}
		for _, v := range list {
			if err := ValidToken(v); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if len(f.MsgIDs) > MaxFilterValues {
		return fmt.Errorf("at most %d message ids", MaxFilterValues)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return fmt.Errorf("until %s is not after since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	return nil
}

// Match reports whether m passes the filter.
func (f *StatusFilter) Match(m *StatusMessage) bool {
	switch {
	case !f.Since.IsZero() && m.Time.Before(f.Since),
		!f.Until.IsZero() && !m.Time.Before(f.Until),
		len(f.Severities) > 0 && !slices.Contains(f.Severities, m.Severity),
		len(f.Components) > 0 && !slices.Contains(f.Components, m.Component),
		len(f.Sources) > 0 && !slices.Contains(f.Sources, m.Source),
		len(f.Clients) > 0 && !slices.Contains(f.Clients, m.Client),
		len(f.MsgIDs) > 0 && !slices.Contains(f.MsgIDs, m.MsgID),
		f.AuditOnly && !m.Audit:
		return false
	}
	return true
}

// List paging bounds.
const (
	DefaultStatusLimit = 100
	MaxStatusLimit     = 1000
)

// StatusListRequest asks for stored messages matching Filter, oldest first,
// at most Limit of them, starting after the cursor Next of a previous page.
type StatusListRequest struct {
	Header
	Filter StatusFilter `json:"filter"`
	Limit  int          `json:"limit,omitempty"` // default DefaultStatusLimit
	After  string       `json:"after,omitempty"` // a previous response's Next
}

// Validate checks the request.
func (r *StatusListRequest) Validate() error {
	if r.Limit < 0 || r.Limit > MaxStatusLimit {
		return fmt.Errorf("limit %d: must be 0 to %d", r.Limit, MaxStatusLimit)
	}
	return r.Filter.Validate()
}

// StatusListResponse is one page. Next, when set, is the cursor of the next
// page: there may be more. Scanned is how many stored messages the page
// looked at.
type StatusListResponse struct {
	Header
	Messages []StatusMessage `json:"messages"`
	Next     string          `json:"next,omitempty"`
	Scanned  int             `json:"scanned"`
}

// StatusShowRequest asks for one message by its UUID.
type StatusShowRequest struct {
	Header
	MessageID string `json:"messageId"`
}

// Validate checks the UUID is present.
func (r *StatusShowRequest) Validate() error {
	if err := ValidToken(r.MessageID); err != nil || len(r.MessageID) > 64 {
		return fmt.Errorf("message id %q: want a UUID", r.MessageID)
	}
	return nil
}

// StatusShowResponse carries one message.
type StatusShowResponse struct {
	Header
	Message StatusMessage `json:"message"`
}

// Follow limits.
const (
	DefaultFollowTTL = 30 * time.Second
	MaxFollowTTL     = 5 * time.Minute
)

// StatusFollowRequest registers, renews or (Cancel) ends a follow: the
// status service publishes each new message that matches Filter to
// StatusFollowSubject(site, operator, FollowID) until TTL passes without a
// renewal. The operator subscribes there before asking.
type StatusFollowRequest struct {
	Header
	FollowID string       `json:"followId"` // chosen by the operator (a UUID)
	Filter   StatusFilter `json:"filter"`
	TTL      Duration     `json:"ttl,omitempty"` // default DefaultFollowTTL
	Cancel   bool         `json:"cancel,omitempty"`
}

// Validate checks the request.
func (r *StatusFollowRequest) Validate() error {
	if err := ValidToken(r.FollowID); err != nil || len(r.FollowID) > 64 {
		return fmt.Errorf("follow id %q: want a UUID", r.FollowID)
	}
	if r.TTL < 0 || time.Duration(r.TTL) > MaxFollowTTL {
		return fmt.Errorf("ttl %s: must be at most %s", time.Duration(r.TTL), MaxFollowTTL)
	}
	return r.Filter.Validate()
}

// StatusFollowResponse says where the follow delivers and until when.
type StatusFollowResponse struct {
	Header
	FollowID string    `json:"followId"`
	Subject  string    `json:"subject"`
	Expires  time.Time `json:"expires"`
}

// StatusCatalogRequest asks for the site's catalog.
type StatusCatalogRequest struct {
	Header
}

// StatusCatalogResponse lists every message ID the site knows, by ID.
type StatusCatalogResponse struct {
	Header
	Messages []StatusDef `json:"messages"`
}

// Component states, as Configuration Manager's component status.
const (
	ComponentOK       = "ok"
	ComponentWarning  = "warning"
	ComponentCritical = "critical"
)

// StatusThreshold turns counts of messages of one severity within the
// window into a component state: at Warning or more the component is in
// warning, at Critical or more it is critical. Zero disables a level.
type StatusThreshold struct {
	Warning  int `json:"warning"`
	Critical int `json:"critical"`
}

// StatusThresholds holds one threshold per severity.
type StatusThresholds struct {
	Info    StatusThreshold `json:"info"`
	Warning StatusThreshold `json:"warning"`
	Error   StatusThreshold `json:"error"`
}

// StatusComponentsRequest asks for the state of every component.
type StatusComponentsRequest struct {
	Header
}

// ComponentState is one component's state: the counts of its messages
// within the window and the state the thresholds give them.
type ComponentState struct {
	Component  string           `json:"component"`
	State      string           `json:"state"` // ok | warning | critical
	Info       int              `json:"info"`
	Warning    int              `json:"warning"`
	Error      int              `json:"error"`
	Last       time.Time        `json:"last,omitzero"` // newest message within the window
	Reason     string           `json:"reason,omitempty"`
	Thresholds StatusThresholds `json:"thresholds"`
}

// StatusComponentsResponse lists components by name.
type StatusComponentsResponse struct {
	Header
	Window     Duration         `json:"window"`
	Components []ComponentState `json:"components"`
}

// StatusClientsRequest asks for the last status of clients: one (Client,
// an ID) or all.
type StatusClientsRequest struct {
	Header
	Client string `json:"client,omitempty"`
	After  string `json:"after,omitempty"` // a previous response's Next
}

// ClientStatusSummary is the last status message a client sent and the
// counts of what it sent, by severity, since the summary began.
type ClientStatusSummary struct {
	Client  string        `json:"client"`
	Last    StatusMessage `json:"last"`
	Info    int           `json:"info"`
	Warning int           `json:"warning"`
	Error   int           `json:"error"`
	Since   time.Time     `json:"since"`
}

// StatusClientsResponse lists clients' summaries, newest last message first.
type StatusClientsResponse struct {
	Header
	Clients []ClientStatusSummary `json:"clients"`
	// Next, when set, is the cursor of the next page (StatusClientsRequest
	// After): the summaries, newest first, did not fit in one answer.
	Next string `json:"next,omitempty"`
}

// Status filter rule actions.
const (
	RuleStore   = "store"   // keep the message; stop: later rules do not run
	RuleDiscard = "discard" // drop the message from the store; stop
	RuleExec    = "exec"    // run a command; continue
	RuleWebhook = "webhook" // POST the message as JSON; continue
	RuleForward = "forward" // send the message to the parent site or a JetStream subject; continue
)

// ForwardParent is the forward target that sends the message to this
// site's parent site (KindStatusForward over the leaf link) rather than to
// a JetStream subject.
const ForwardParent = "parent"

// RuleActions lists the actions.
func RuleActions() []string {
	return []string{RuleStore, RuleDiscard, RuleExec, RuleWebhook, RuleForward}
}

// Rule limits.
const (
	MaxRuleMatch       = 2048
	MaxRuleTimeout     = time.Minute
	DefaultRuleTimeout = 5 * time.Second
)

// StatusRule is a status filter rule: when Match (an expression over the
// message) is true, Action runs. Rules run in Order, lowest first.
type StatusRule struct {
	Name   string `json:"name"`
	Match  string `json:"match"`
	Action string `json:"action"`
	// Target is what the action acts on: for exec the command line (split
	// into words like a shell would, without running one; each word is a
	// text/template over the message), for webhook the URL, for forward
	// ForwardParent (the parent site) or a subject. Store and discard take
	// none.
	Target      string    `json:"target,omitempty"`
	Timeout     Duration  `json:"timeout,omitempty"` // exec, webhook, forward; default DefaultRuleTimeout
	Order       int       `json:"order"`             // 0 on add: after the last rule
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	By          string    `json:"by,omitempty"`
}

// Validate checks the rule's shape; the status service also compiles Match
// and the command's templates, and refuses the rule if they do not compile.
func (r *StatusRule) Validate() error {
	if err := ValidName(r.Name); err != nil {
		return fmt.Errorf("rule name: %w", err)
	}
	if strings.TrimSpace(r.Match) == "" || len(r.Match) > MaxRuleMatch {
		return fmt.Errorf("match: an expression of 1 to %d characters is required", MaxRuleMatch)
	}
	if r.Timeout < 0 || time.Duration(r.Timeout) > MaxRuleTimeout {
		return fmt.Errorf("timeout %s: must be at most %s", time.Duration(r.Timeout), MaxRuleTimeout)
	}
	if r.Order < 0 {
		return fmt.Errorf("order %d: must not be negative", r.Order)
	}
	switch r.Action {
	case RuleStore, RuleDiscard:
		if r.Target != "" {
			return fmt.Errorf("action %s takes no target", r.Action)
		}
	case RuleExec, RuleWebhook, RuleForward:
		if strings.TrimSpace(r.Target) == "" {
			return fmt.Errorf("action %s needs a target (%s)", r.Action, map[string]string{RuleExec: "a command", RuleWebhook: "a URL", RuleForward: `"parent" or a subject`}[r.Action])
		}
	default:
		return fmt.Errorf("action %q: must be one of %s", r.Action, strings.Join(RuleActions(), ", "))
	}
	return nil
}

// StatusRuleAddRequest adds a rule.
type StatusRuleAddRequest struct {
	Header
	Rule StatusRule `json:"rule"`
}

// Validate checks the rule.
func (r *StatusRuleAddRequest) Validate() error { return r.Rule.Validate() }

// StatusRuleResponse carries one rule (add, delete).
type StatusRuleResponse struct {
	Header
	Rule StatusRule `json:"rule"`
}

// StatusRuleListRequest asks for every rule.
type StatusRuleListRequest struct {
	Header
}

// StatusRuleListResponse lists rules in the order they run.
type StatusRuleListResponse struct {
	Header
	Rules []StatusRule `json:"rules"`
}

// StatusRuleDeleteRequest deletes a rule by name.
type StatusRuleDeleteRequest struct {
	Header
	Name string `json:"name"`
}

// Validate checks the name.
func (r *StatusRuleDeleteRequest) Validate() error { return ValidName(r.Name) }

// StatusForwardAck is the parent's answer to a forwarded status message:
// it is stored (Duplicate: it already was, by its uuid MessageID).
type StatusForwardAck struct {
	Header
	MessageID string `json:"messageId"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// StatusRuleTestRequest replays the stored messages matching Filter through
// the rule Name and says what it would have done, without doing it.
type StatusRuleTestRequest struct {
	Header
	Name   string       `json:"name"`
	Filter StatusFilter `json:"filter"`
	Limit  int          `json:"limit,omitempty"` // results to return; default DefaultStatusLimit
}

// Validate checks the request.
func (r *StatusRuleTestRequest) Validate() error {
	if err := ValidName(r.Name); err != nil {
		return err
	}
	if r.Limit < 0 || r.Limit > MaxStatusLimit {
		return fmt.Errorf("limit %d: must be 0 to %d", r.Limit, MaxStatusLimit)
	}
	return r.Filter.Validate()
}

// StatusRuleTestResult is what the rule would have done to one message.
// ShadowedBy names an earlier store or discard rule that matches the
// message too, so that the rule would in fact not have run.
type StatusRuleTestResult struct {
	Message    StatusMessage `json:"message"`
	Would      string        `json:"would"` // e.g. "exec /usr/local/bin/page 0195..."
	ShadowedBy string        `json:"shadowedBy,omitempty"`
}

// StatusRuleTestResponse is the outcome of a replay: how many stored
// messages were scanned, how many the rule matched, and the first Limit.
type StatusRuleTestResponse struct {
	Header
	Rule      StatusRule             `json:"rule"`
	Scanned   int                    `json:"scanned"`
	Matched   int                    `json:"matched"`
	Results   []StatusRuleTestResult `json:"results"`
	Truncated bool                   `json:"truncated,omitempty"` // the scan stopped at its bound
}
