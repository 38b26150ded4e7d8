package contracts

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Components that send status messages.
const (
	ComponentAdmin     = "admin"
	ComponentDiscovery = "discovery"
	ComponentPolicy    = "policy"
	ComponentStatus    = "status"
	ComponentSessions  = "sessions"
	ComponentDespooler = "despooler"
	ComponentSender    = "sender"
	ComponentLibrary   = "library"
	ComponentAgent     = "agent"
	// ComponentAny marks catalog entries any component may send (service
	// started, stopping, failed); the sender sets its own component.
	ComponentAny = "*"
)

// StatusRange is the block of message IDs of one component.
type StatusRange struct {
	Component string
	First     int
	Last      int
}

// StatusRanges lists the ID block of each component. IDs 1 to 999 are the
// generic messages any component may send (ComponentAny), as in
// Configuration Manager, where 500 "This component started" is everyone's.
func StatusRanges() []StatusRange {
	return []StatusRange{
		{ComponentAny, 1, 999},
		{ComponentAdmin, 1000, 1999},
		{ComponentDiscovery, 2000, 2999},
		{ComponentPolicy, 3000, 3999},
		{ComponentStatus, 4000, 4999},
		{ComponentSessions, 5000, 5999},
		{ComponentDespooler, 6000, 6999},
		{ComponentSender, 7000, 7999},
		{ComponentLibrary, 8000, 8999},
		{ComponentAgent, 10000, 10999},
	}
}

// Components lists every component that sends status messages, sorted.
func Components() []string {
	var out []string
	for _, r := range StatusRanges() {
		if r.Component != ComponentAny {
			out = append(out, r.Component)
		}
	}
	slices.Sort(out)
	return out
}

// StatusDef is one entry of the status message catalog. Text names its
// insertion strings in braces ("Client {client} ({name}) was blocked by
// {by}."); a message's Properties fill them in. Audit marks a security
// action: who did what to what.
type StatusDef struct {
	ID        int    `json:"id"`
	Severity  string `json:"severity"`
	Component string `json:"component"`
	Text      string `json:"text"`
	Audit     bool   `json:"audit,omitempty"`
}

// Params lists the insertion strings of the text, in order of appearance.
func (d StatusDef) Params() []string {
	var out []string
	for _, seg := range parseText(d.Text) {
		if seg.param && !slices.Contains(out, seg.s) {
			out = append(out, seg.s)
		}
	}
	return out
}

// Message IDs. Never renumber or reuse one: stored messages, rules and
// operators' scripts refer to them by number. Add new ones at the end of
// their component's block.
const (
	// Any component.
	StatusServiceStarted  = 500
	StatusServiceStopping = 501
	StatusServiceFailed   = 502
	StatusServiceRetrying = 503

	// admin.
	StatusTokenCreated    = 1001
	StatusTokenRevoked    = 1002
	StatusClientEnrolled  = 1010
	StatusClientQueued    = 1011
	StatusClientApproved  = 1012
	StatusClientBlocked   = 1013
	StatusClientDeleted   = 1014
	StatusOperatorAdded   = 1020
	StatusOperatorRevoked = 1021
	StatusRoleChanged     = 1022
	StatusOperatorDeleted = 1023
	StatusRoleCreated     = 1024
	StatusRoleModified    = 1025
	StatusRoleDeleted     = 1026
	StatusAccountAdded    = 1040
	StatusAccountReplaced = 1041
	StatusAccountRemoved  = 1042
	StatusAuthDenied      = 1030

	// admin: the site hierarchy.
	StatusSiteTokenCreated = 1050
	StatusSiteLinked       = 1051
	StatusSiteJoined       = 1052
	StatusSiteLinkRefused  = 1053
	StatusSiteTokenRevoked = 1054

	// discovery.
	StatusClientOffline     = 2001
	StatusCollectionCreated = 2010
	StatusCollectionChanged = 2011
	StatusCollectionDeleted = 2012

	// policy.
	StatusSettingsChanged = 3001
	StatusPolicyRejected  = 3002

	// status.
	StatusRateLimited      = 4001
	StatusRuleActionFailed = 4002
	StatusRuleActionGaveUp = 4003
	StatusRuleAdded        = 4010
	StatusRuleDeleted      = 4011

	// sessions.
	StatusSessionRequested = 5001
	StatusSessionDenied    = 5002
	StatusSessionStarted   = 5003
	StatusSessionEnded     = 5004
	StatusSessionConsent   = 5005
	StatusSessionJoined    = 5006
	StatusSessionAbnormal  = 5007
	StatusAssistRequested  = 5010

	// despooler.
	StatusPackageQuarantined = 6001
	StatusPackageStored      = 6002
	StatusPackageStoreFailed = 6003

	// sender.
	StatusSendStarted   = 7001
	StatusSendFailed    = 7002
	StatusSendInstalled = 7003
	StatusSendRetrying  = 7004

	// library (replication's operator side: packages, routes, quarantine).
	StatusPackageCreated     = 8001
	StatusPackageDeleted     = 8002
	StatusPackageDeployed    = 8003
	StatusPackageUndeployed  = 8004
	StatusPackageDistributed = 8005
	StatusRouteSet           = 8006
	StatusQuarantineDeleted  = 8007
	StatusRouteDeleted       = 8008
	// StatusPackageDistributionCancelled is the audit message of a
	// cancelled distribution.
	StatusPackageDistributionCancelled = 8009

	// agent.
	StatusAgentConnectionLost     = 10001
	StatusAgentConnectionRegained = 10002
	StatusAgentOutboxOverflow     = 10003
	StatusAgentPackageInstalled   = 10010
	StatusAgentPackageFailed      = 10011
	StatusAgentContentRejected    = 10012
)

var catalog = []StatusDef{
	{StatusServiceStarted, SeverityInfo, ComponentAny, "Service {service} started (instance {instance}, version {version}).", false},
	{StatusServiceStopping, SeverityInfo, ComponentAny, "Service {service} is stopping (instance {instance}).", false},
	{StatusServiceFailed, SeverityError, ComponentAny, "Service {service} failed to {operation}: {error}", false},
	{StatusServiceRetrying, SeverityWarning, ComponentAny, "Service {service} will retry {operation} after an error: {error}", false},

	{StatusTokenCreated, SeverityInfo, ComponentAdmin, "Enrollment token {token} ({uses} uses, expires {expires}) was created by {by}.", true},
	{StatusTokenRevoked, SeverityInfo, ComponentAdmin, "Enrollment token {token} was revoked by {by}.", true},
	{StatusClientEnrolled, SeverityInfo, ComponentAdmin, "Client {client} ({name}) enrolled with token {token}.", true},
	{StatusClientQueued, SeverityWarning, ComponentAdmin, "Client {client} ({name}) enrolled without a usable token and waits for approval: {reason}", true},
	{StatusClientApproved, SeverityInfo, ComponentAdmin, "Client {client} ({name}) was approved by {by}.", true},
	{StatusClientBlocked, SeverityWarning, ComponentAdmin, "Client {client} ({name}) was blocked by {by}.", true},
	{StatusClientDeleted, SeverityWarning, ComponentAdmin, "Client {client} ({name}) was deleted by {by}.", true},
	{StatusOperatorAdded, SeverityInfo, ComponentAdmin, "Administrative user {operator} was added with roles {roles} by {by}.", true},
	{StatusOperatorRevoked, SeverityWarning, ComponentAdmin, "Administrative user {operator} was revoked by {by}.", true},
	{StatusRoleChanged, SeverityInfo, ComponentAdmin, "Roles of administrative user {operator} changed from {old} to {new} by {by}.", true},
	{StatusOperatorDeleted, SeverityWarning, ComponentAdmin, "Administrative user {operator} ({kind}, roles {roles}) was deleted by {by}; {connections} connections closed.", true},
	{StatusRoleCreated, SeverityInfo, ComponentAdmin, "Security role {role} was created by {by} from {from} with {permissions}.", true},
	{StatusRoleModified, SeverityInfo, ComponentAdmin, "Security role {role} was changed by {by} from {old} to {new} (held by {holders}).", true},
	{StatusRoleDeleted, SeverityWarning, ComponentAdmin, "Security role {role} ({permissions}) was deleted by {by}.", true},
	{StatusAccountAdded, SeverityInfo, ComponentAdmin, "Account {account} for {purpose} was added by {by}.", true},
	{StatusAccountReplaced, SeverityInfo, ComponentAdmin, "The secret of account {account} for {purpose} was replaced by {by}.", true},
	{StatusAccountRemoved, SeverityWarning, ComponentAdmin, "Account {account} for {purpose} was removed by {by}.", true},
	{StatusAuthDenied, SeverityWarning, ComponentAdmin, "Connection of key {key} from {host} was refused: {reason}", true},
	{StatusSiteTokenCreated, SeverityInfo, ComponentAdmin, "Site token {token} (for {child}, expires {expires}) was created by {by}.", true},
	{StatusSiteLinked, SeverityInfo, ComponentAdmin, "Site {site} linked as a child from {host} with leaf key {leafKey}, using site token {token}.", true},
	{StatusSiteJoined, SeverityInfo, ComponentAdmin, "Site {site} joined: its signing key {signingKey} is pinned.", true},
	{StatusSiteLinkRefused, SeverityWarning, ComponentAdmin, "The link of site {site} from {host} (leaf key {leafKey}) was refused: {reason}", true},
	{StatusSiteTokenRevoked, SeverityInfo, ComponentAdmin, "Site token {token} was revoked by {by}.", true},

	{StatusClientOffline, SeverityWarning, ComponentDiscovery, "Client {client} ({name}) is offline: no heartbeat since {lastSeen}.", false},
	{StatusCollectionCreated, SeverityInfo, ComponentDiscovery, "Collection {collection} ({id}) was created by {by}, limited by {limit}.", true},
	{StatusCollectionChanged, SeverityInfo, ComponentDiscovery, "Collection {collection} ({id}) was changed by {by}: {change}", true},
	{StatusCollectionDeleted, SeverityWarning, ComponentDiscovery, "Collection {collection} ({id}) was deleted by {by}.", true},

	{StatusSettingsChanged, SeverityInfo, ComponentPolicy, "Settings {settings} were changed by {by}: {change}", true},
	{StatusPolicyRejected, SeverityError, ComponentPolicy, "Client {client} rejected policy revision {revision}: {reason}", false},

	{StatusRateLimited, SeverityWarning, ComponentStatus, "Source {source} sends status messages faster than {rate} per second (burst {burst}); the excess is refused and resent later.", false},
	{StatusRuleActionFailed, SeverityWarning, ComponentStatus, "Status filter rule {rule} failed to {action} message {message} (attempt {attempt} of {attempts}); it will retry: {error}", false},
	{StatusRuleActionGaveUp, SeverityError, ComponentStatus, "Status filter rule {rule} gave up trying to {action} message {message} after {attempts} attempts: {error}", false},
	{StatusRuleAdded, SeverityInfo, ComponentStatus, "Status filter rule {rule} ({action} when {match}) was added by {by}.", true},
	{StatusRuleDeleted, SeverityInfo, ComponentStatus, "Status filter rule {rule} was deleted by {by}.", true},

	{StatusSessionRequested, SeverityInfo, ComponentSessions, "Administrative user {operator} requested a {kind} session {session} with {access} access to client {client} ({name}).", true},
	{StatusSessionDenied, SeverityWarning, ComponentSessions, "The {kind} session {session} of {operator} to client {client} ({name}) was denied ({reason}): {detail}", true},
	{StatusSessionStarted, SeverityInfo, ComponentSessions, "The {kind} session {session} of {operator} to client {client} ({name}) started with {access} access (consent: {consent}).", true},
	{StatusSessionEnded, SeverityInfo, ComponentSessions, "The {kind} session {session} of {operator} to client {client} ({name}) ended after {duration}: {reason}", true},
	{StatusSessionConsent, SeverityInfo, ComponentSessions, "The user of client {client} ({name}) answered the {kind} session {session} of {operator}: consent {consent}.", true},
	{StatusSessionJoined, SeverityInfo, ComponentSessions, "Administrative user {operator} joined the {kind} session {session} to client {client} ({name}) with {access} access.", true},
	{StatusSessionAbnormal, SeverityWarning, ComponentSessions, "The {kind} session {session} of {operator} to client {client} ({name}) ended abnormally after {duration}: {reason}", true},
	{StatusAssistRequested, SeverityInfo, ComponentSessions, "User {user} of client {client} ({name}) asked for assistance (request {request}).", true},

	{StatusPackageQuarantined, SeverityError, ComponentDespooler, "Package {package} from site {from} failed verification and was quarantined: {reason}", false},
	{StatusPackageStored, SeverityInfo, ComponentDespooler, "Package {package} version {version} from site {from} was verified and stored.", false},
	{StatusPackageStoreFailed, SeverityError, ComponentDespooler, "Package {package} from site {from} could not be stored, and nothing of it was installed: {error}", false},

	{StatusSendStarted, SeverityInfo, ComponentSender, "Sending package {package} to site {to} ({chunks} chunks).", false},
	{StatusSendFailed, SeverityError, ComponentSender, "Sending package {package} to site {to} failed: {error}", false},
	{StatusSendInstalled, SeverityInfo, ComponentSender, "Package {package} was installed at site {to}: {chunks} chunks ({bytes} bytes) sent.", false},
	{StatusSendRetrying, SeverityWarning, ComponentSender, "Sending package {package} to site {to} will be retried at {next}: {error}", false},

	{StatusPackageCreated, SeverityInfo, ComponentLibrary, "Package {package} version {version} ({digest}, {bytes} bytes) was created by {by}.", true},
	{StatusPackageDeleted, SeverityWarning, ComponentLibrary, "Package {package} version {version} was deleted by {by}.", true},
	{StatusPackageDeployed, SeverityInfo, ComponentLibrary, "Package {package} version {version} was deployed to collection {collection} by {by}.", true},
	{StatusPackageUndeployed, SeverityInfo, ComponentLibrary, "Package {package} version {version} was undeployed from collection {collection} by {by}.", true},
	{StatusPackageDistributed, SeverityInfo, ComponentLibrary, "Package {package} version {version} was sent for distribution to sites {sites} by {by}.", true},
	{StatusRouteSet, SeverityInfo, ComponentLibrary, "The route to site {site} was set by {by}: rate {rate}, schedule {schedule}.", true},
	{StatusQuarantineDeleted, SeverityInfo, ComponentLibrary, "Quarantine entry {entry} ({what} from site {from}) was deleted by {by}.", true},
	{StatusRouteDeleted, SeverityInfo, ComponentLibrary, "The route to site {site} was deleted by {by}: unlimited, always open.", true},
	{StatusPackageDistributionCancelled, SeverityWarning, ComponentLibrary, "The distribution of package {package} version {version} to sites {sites} was cancelled by {by}; nothing more is sent to them.", true},

	{StatusAgentConnectionLost, SeverityWarning, ComponentAgent, "The agent lost its connection to site {site} ({server}): {error}", false},
	{StatusAgentConnectionRegained, SeverityInfo, ComponentAgent, "The agent regained its connection to site {site} ({server}) after {duration}.", false},
	{StatusAgentOutboxOverflow, SeverityError, ComponentAgent, "The agent's outbox is full ({limit} messages); {dropped} of the oldest were dropped unsent.", false},
	{StatusAgentPackageInstalled, SeverityInfo, ComponentAgent, "Package {package} version {version} ({digest}) was installed in {path}: {bytes} bytes.", false},
	{StatusAgentPackageFailed, SeverityError, ComponentAgent, "Package {package} version {version} ({digest}) could not be installed: {error}", false},
	{StatusAgentContentRejected, SeverityWarning, ComponentAgent, "The agent rejected the content list of site {site}: {reason}", false},
}

var catalogByID = func() map[int]StatusDef {
	m := make(map[int]StatusDef, len(catalog))
	for _, d := range catalog {
		m[d.ID] = d
	}
	return m
}()

// LookupStatus returns the catalog entry of id.
func LookupStatus(id int) (StatusDef, bool) {
	d, ok := catalogByID[id]
	return d, ok
}

// Catalog returns every entry, by ID.
func Catalog() []StatusDef {
	out := slices.Clone(catalog)
	slices.SortFunc(out, func(a, b StatusDef) int { return a.ID - b.ID })
	return out
}

// StatusComponentOf is the component whose ID block holds id, or "" when
// no block does.
func StatusComponentOf(id int) string {
	for _, r := range StatusRanges() {
		if id >= r.First && id <= r.Last {
			return r.Component
		}
	}
	return ""
}

// NewStatus makes a status message of catalog entry id: a fresh version 7
// UUID, the time now, the entry's severity, component and audit mark, and
// its text rendered with props. The sender sets Component when the entry is
// ComponentAny, and the status service sets Site and Source. An id the
// catalog does not know gives a message marked Unknown, of severity info,
// whose text lists the properties.
func NewStatus(id int, props map[string]string) StatusMessage {
	m := StatusMessage{
		Header:     Header{Type: TypeStatusMessage, ID: newStatusID(), Time: time.Now().UTC()},
		MsgID:      id,
		Properties: maps.Clone(props),
	}
	ApplyCatalog(&m)
	return m
}

// ApplyCatalog sets m's severity, audit mark and text from the catalog
// entry of m.MsgID, and its component unless the entry is ComponentAny.
// For an ID the catalog does not know it sets Unknown, keeps a valid
// severity (info otherwise) and renders a generic text that keeps the
// sender's text and lists the properties.
func ApplyCatalog(m *StatusMessage) {
	d, ok := LookupStatus(m.MsgID)
	if !ok {
		m.Unknown, m.Audit = true, false
		if !ValidSeverity(m.Severity) {
			m.Severity = SeverityInfo
		}
		m.Text = unknownText(m.MsgID, m.Text, m.Properties)
		return
	}
	m.Unknown = false
	m.Severity, m.Audit = d.Severity, d.Audit
	if d.Component != ComponentAny {
		m.Component = d.Component
	}
	m.Text = Render(d.Text, m.Properties)
}

func unknownText(id int, sent string, props map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Message ID %d is not in this site's catalog.", id)
	if sent != "" {
		b.WriteString(" Sender's text: ")
		b.WriteString(sent)
	}
	if len(props) > 0 {
		b.WriteString(" Properties:")
		for _, k := range slices.Sorted(maps.Keys(props)) {
			fmt.Fprintf(&b, " %s=%s", k, strconv.Quote(props[k]))
		}
	}
	s := b.String()
	if len(s) > MaxStatusText {
		s = s[:MaxStatusText]
	}
	return s
}

// Render fills the insertion strings of a catalog text from props. An
// insertion string without a property stays as written ("{name}"), so a
// missing value shows rather than vanishing.
func Render(text string, props map[string]string) string {
	var b strings.Builder
	for _, seg := range parseText(text) {
		if !seg.param {
			b.WriteString(seg.s)
			continue
		}
		if v, ok := props[seg.s]; ok {
			b.WriteString(v)
		} else {
			b.WriteString("{" + seg.s + "}")
		}
	}
	return b.String()
}

type textSeg struct {
	s     string
	param bool
}

// parseText splits a catalog text into literal and insertion-string
// segments. A brace that does not open a well-formed "{name}" is literal
// (TestCatalog keeps such braces out of the catalog).
func parseText(text string) []textSeg {
	var out []textSeg
	for text != "" {
		i := strings.IndexByte(text, '{')
		if i < 0 {
			out = append(out, textSeg{s: text})
			break
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 || !validParam(text[i+1:i+j]) {
			out = append(out, textSeg{s: text[:i+1]})
			text = text[i+1:]
			continue
		}
		if i > 0 {
			out = append(out, textSeg{s: text[:i]})
		}
		out = append(out, textSeg{s: text[i+1 : i+j], param: true})
		text = text[i+j+1:]
	}
	return out
}

// validParam reports whether p may name an insertion string: a letter
// followed by letters and digits.
func validParam(p string) bool {
	if p == "" {
		return false
	}
	for i, r := range p {
		isLetter := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !isLetter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// newStatusID is a version 7 UUID (time-ordered), falling back to a random
// one if the clock-based generator fails.
func newStatusID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// StatusIDTime is the time a version 7 UUID was made, if id is one.
func StatusIDTime(id string) (time.Time, bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	sec, nsec := u.Time().UnixTime()
	return time.Unix(sec, nsec).UTC(), true
}
