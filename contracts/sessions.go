package contracts

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Remote sessions (the sessions service, the broker).
//
// Control is request/reply on the principals' own subjects:
//
//	op.<operator>.up.session.open    SessionOpenRequest  -> SessionOpenResponse
//	op.<operator>.up.session.join    SessionJoinRequest  -> SessionOpenResponse
//	op.<operator>.up.session.end     SessionEndRequest   -> SessionOpenResponse
//	op.<operator>.up.session.list    SessionListRequest  -> SessionListResponse
//	op.<operator>.up.session.recordings  SessionListRequest -> SessionListResponse (ended sessions)
//	op.<operator>.up.session.recording   RecordingReadRequest -> RecordingReadResponse
//	op.<operator>.up.session.check  SessionCheckRequest -> SessionCheckResponse (no grant, no session)
//	agent.<client>.down.session.grant    SignedGrant -> SessionGrantAnswer (the agent answers)
//
// Data are frames on a per-session kind, SessionDataKind(id):
//
//	op.<operator>.up.session.data.<id>    operator -> broker (input, acks, resize, end)
//	op.<operator>.down.session.data.<id>  broker -> operator (output, acks, end)
//	agent.<client>.up.session.data.<id>   agent -> broker   (output, acks, end)
//	agent.<client>.down.session.data.<id> broker -> agent   (input, acks, resize, end)
//
// The client's user ends a session with an end frame on the client's up
// data subject (SessionEnd{By: "user"}).
//
// A frame is a NATS message whose header HdrFrame says what it is and whose
// body is raw bytes (data) or JSON (resize, end). The broker relays frames
// between the operator's subjects and the client's and takes the sender
// from the subject; on input frames it sets HdrFrom to the operator, so the
// agent knows whose input it is (an observer's is dropped).
//
// Flow control is end to end: each data frame carries HdrSeq (1, 2, ...
// per direction); the receiver answers FrameAck frames whose HdrSeq is the
// last data frame it has consumed; a sender keeps at most SessionWindow
// data frames unacknowledged. A slow side therefore stops the other's
// reads (the PTY, the TCP connection) instead of growing any buffer.
const (
	KindSessionOpen       = "session.open"
	KindSessionJoin       = "session.join"
	KindSessionEnd        = "session.end"
	KindSessionList       = "session.list"
	KindSessionRecordings = "session.recordings"
	KindSessionRecording  = "session.recording"
	KindSessionGrant      = "session.grant"
	KindSessionData       = "session.data"

	KindAssistRequest = "assist.request" // agent up: the user asks for help (SessionAssistRequest -> SessionAssistResponse)
	KindAssistList    = "assist.list"    // op up: SessionAssistListRequest -> SessionAssistListResponse
	KindAssistAccept  = "assist.accept"  // op up: SessionAssistAcceptRequest -> SessionOpenResponse
	KindAssistOffer   = "assist.offer"   // op up: SessionOpenRequest{Kind: assist} -> SessionOpenResponse

	// KindSessionCheck asks the broker whether it would authorise a session
	// (op up: SessionCheckRequest -> SessionCheckResponse), without a grant
	// or a session: the CLI refuses a tunnel before it listens, and tells a
	// helper how long the user has to answer an offer.
	KindSessionCheck = "session.check"
)

// SessionDataKind is the kind of session id's data frames.
func SessionDataKind(id string) string { return KindSessionData + "." + id }

// Session kinds.
const (
	SessionShell   = "shell"   // a PTY running a login shell (or one command)
	SessionTunnel  = "tunnel"  // TCP to a port on the client's loopback
	SessionAssist  = "assist"  // the logged-on user's own shared terminal
	SessionObserve = "observe" // a read-only participant of a running session (joins only)
)

// SessionKinds lists the kinds an operator may open.
func SessionKinds() []string { return []string{SessionShell, SessionTunnel, SessionAssist} }

// NeedsAccess is the access level a kind needs at least: shell, tunnel and
// input to an assisted terminal need full; observing needs view.
func NeedsAccess(kind string) string {
	if kind == SessionObserve {
		return AccessView
	}
	return AccessFull
}

// AccessAllows reports whether level (full, view, none) grants need.
func AccessAllows(level, need string) bool {
	rank := map[string]int{AccessNone: 0, AccessView: 1, AccessFull: 2}
	l, ok1 := rank[level]
	n, ok2 := rank[need]
	return ok1 && ok2 && l >= n && l > 0
}

// MinAccess is the lesser of two access levels.
func MinAccess(a, b string) string {
	if AccessAllows(a, b) {
		return b
	}
	if AccessAllows(b, a) {
		return a
	}
	return AccessNone
}

// Frame headers and frame kinds.
const (
	HdrFrame = "Steward-Frame"
	HdrSeq   = "Steward-Seq"
	HdrFrom  = "Steward-From" // set by the broker on input: the operator

	FrameData   = "data"   // body: raw bytes
	FrameAck    = "ack"    // HdrSeq: the last data frame consumed
	FrameResize = "resize" // body: SessionResize
	FrameEOF    = "eof"    // the sender writes no more (a tunnel's half close)
	FrameEnd    = "end"    // body: SessionEnd; the session is over
	FramePing   = "ping"   // operator -> broker every SessionPing: the operator is still there
)

// An operator's CLI sends FramePing every SessionPing while it is in a
// session; the broker ends a session whose operator sent nothing for
// SessionOperatorTimeout (a CLI killed, a laptop closed), and removes a
// joined operator who did, instead of leaving it to the idle timeout.
const (
	SessionPing            = 2 * time.Second
	SessionOperatorTimeout = 5 * SessionPing
)

// Flow control and size limits of frames.
const (
	SessionWindow = 64       // data frames in flight per direction
	MaxFrameBytes = 32 << 10 // body of one data frame
)

// SessionResize is a terminal's new window size.
type SessionResize struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// SessionEnd says why a session ended.
type SessionEnd struct {
	Reason   string `json:"reason"`
	By       string `json:"by,omitempty"`       // the operator, "user" or "site"
	ExitCode *int   `json:"exitCode,omitempty"` // a shell's exit status
	Abnormal bool   `json:"abnormal,omitempty"` // the broker or the agent went away
}

// GrantValidity is how long after its issue an agent accepts a grant.
const GrantValidity = 30 * time.Second

// GrantSkew is the clock difference an agent tolerates on a grant's times.
const GrantSkew = 5 * time.Second

// Session states.
const (
	SessionRequested = "requested" // authorised, waiting for the agent (and the user's consent)
	SessionActive    = "active"
	SessionEnded     = "ended"
)

// Consent outcomes, as SessionGrantAnswer.Consent and the audit say them.
const (
	ConsentNotRequired = "not-required" // policy does not prompt
	ConsentNoUser      = "no-user"      // nobody logged on, and policy allows that
	ConsentGiven       = "given"
	ConsentRefused     = "refused"
	ConsentTimeout     = "timeout" // nobody answered within promptTimeout
)

// Why the broker or the agent denies a session: one reason per condition,
// in the audit message's "reason" property and the error's text.
const (
	DenyRole    = "role"    // the operator's role lacks RemoteControl on a collection holding the client
	DenyPolicy  = "policy"  // the client's remote tools policy does not allow it
	DenyViewer  = "viewer"  // not a permitted viewer nor a local administrator
	DenyConsent = "consent" // the user refused, or did not answer
	DenyOffline = "offline" // the client is not connected
	DenyClient  = "client"  // the agent's own check refused the grant
	// The assistance request the grant is for is no longer open on the
	// client (the user's steward-agent assist ended): the request is over.
	DenyAssistClosed = "assist-closed"
)

// SessionGrant is what the broker allows, signed by the site key: the
// agent verifies it, then re-checks it against its own policy.
type SessionGrant struct {
	Header
	Session  string    `json:"session"`
	Site     string    `json:"site"`
	ClientID string    `json:"clientId"`
	Operator string    `json:"operator"`
	Kind     string    `json:"kind"`   // shell | tunnel | assist | observe
	Access   string    `json:"access"` // full | view
	Consent  bool      `json:"consent"`
	Join     bool      `json:"join,omitempty"` // adds Operator to the running session Session
	Port     int       `json:"port,omitempty"` // tunnel
	Command  []string  `json:"command,omitempty"`
	Cols     uint16    `json:"cols,omitempty"`
	Rows     uint16    `json:"rows,omitempty"`
	Term     string    `json:"term,omitempty"`
	Assist   string    `json:"assist,omitempty"` // the assistance request it answers (solicited)
	Issued   time.Time `json:"issued"`
	Expires  time.Time `json:"expires"`
	// AnswerWithin is how long the broker waits for the agent's answer
	// (the user's consent included) from sending the grant; after that it
	// has refused the session. The agent ends its consent prompt in time
	// for its answer to arrive, and never starts a session the user
	// accepted later. Zero: not said (a broker from before it).
	AnswerWithin Duration `json:"answerWithin,omitempty"`
	// Via is what admitted Operator as a permitted viewer, for the agent
	// to check again against its own policy and accounts:
	// "viewer:<entry>" (an entry of the client's Permitted Viewers, as
	// written) or "admin:<account>" (one of its local administrators).
	// Empty: the site does not check (role-based administration off).
	Via string `json:"via,omitempty"`
}

// Prefixes of SessionGrant.Via.
const (
	ViaViewer = "viewer:" // + the Permitted Viewers entry, as written
	ViaAdmin  = "admin:"  // + the local administrator account, as inventoried
)

// Validate checks a grant's own fields (not its signature or times).
func (g *SessionGrant) Validate() error {
	if _, err := uuid.Parse(g.Session); err != nil {
		return fmt.Errorf("session %q is not a UUID", g.Session)
	}
	if g.ClientID == "" || g.Operator == "" {
		return errors.New("a grant names its client and operator")
	}
	if !slices.Contains([]string{SessionShell, SessionTunnel, SessionAssist, SessionObserve}, g.Kind) {
		return fmt.Errorf("unknown session kind %q", g.Kind)
	}
	if g.Access != AccessFull && g.Access != AccessView {
		return fmt.Errorf("access %q: want full or view", g.Access)
	}
	if g.Kind == SessionTunnel && (g.Port < 1 || g.Port > 65535) {
		return fmt.Errorf("tunnel port %d: a port is 1 to 65535", g.Port)
	}
	return nil
}

// SignedGrant carries a SessionGrant as the bytes the site signed.
type SignedGrant struct {
	Header
	Grant     []byte `json:"grant"`
	Signature []byte `json:"signature"`
	Key       string `json:"key"`
}

// GrantSigningInput is what the site signs for a grant body: a context
// prefix, so that a grant signature never passes for a policy's.
func GrantSigningInput(body []byte) []byte { return signingInput("steward-session-grant-v1\n", body) }

// SessionGrantAnswer is the agent's answer to a grant.
type SessionGrantAnswer struct {
	Header
	Session  string `json:"session"`
	Accepted bool   `json:"accepted"`
	Access   string `json:"access,omitempty"`  // the level the agent enforces (at most the granted)
	Consent  string `json:"consent,omitempty"` // a Consent* outcome
	User     string `json:"user,omitempty"`    // who answered the prompt
	Deny     string `json:"deny,omitempty"`    // a Deny* reason when refused
	Reason   string `json:"reason,omitempty"`
}

// SessionOpenRequest asks the broker for a session. The operator picks the
// session ID (a UUID), so it can subscribe to the session's frames before
// the first one is sent.
type SessionOpenRequest struct {
	Header
	Session string   `json:"session"`
	Ref     string   `json:"ref"`  // client name or ID
	Kind    string   `json:"kind"` // shell | tunnel | assist (an offer)
	Command []string `json:"command,omitempty"`
	Port    int      `json:"port,omitempty"` // tunnel
	Cols    uint16   `json:"cols,omitempty"`
	Rows    uint16   `json:"rows,omitempty"`
	Term    string   `json:"term,omitempty"`
}

// Validate checks the request's fields.
func (r *SessionOpenRequest) Validate() error {
	if _, err := uuid.Parse(r.Session); err != nil {
		return fmt.Errorf("session %q is not a UUID", r.Session)
	}
	if r.Ref == "" {
		return errors.New("name the client")
	}
	if !slices.Contains(SessionKinds(), r.Kind) {
		return fmt.Errorf("unknown session kind %q (shell, tunnel or assist)", r.Kind)
	}
	if r.Kind == SessionTunnel && (r.Port < 1 || r.Port > 65535) {
		return fmt.Errorf("tunnel port %d: a port is 1 to 65535", r.Port)
	}
	if len(r.Command) > 256 {
		return errors.New("a command has at most 256 words")
	}
	return nil
}

// SessionJoinRequest asks to join a running session, or to watch it.
type SessionJoinRequest struct {
	Header
	Session string `json:"session"`
	Observe bool   `json:"observe,omitempty"`
}

// SessionEndRequest ends a session (an operator, or the client's user).
type SessionEndRequest struct {
	Header
	Session string `json:"session"`
	Reason  string `json:"reason,omitempty"`
}

// SessionParticipant is an operator in a session.
type SessionParticipant struct {
	Operator string    `json:"operator"`
	Access   string    `json:"access"`
	Joined   time.Time `json:"joined"`
	Left     time.Time `json:"left,omitzero"`
}

// SessionInfo is a session as the broker keeps it.
type SessionInfo struct {
	ID           string               `json:"id"`
	Client       Named                `json:"client"`
	Operator     string               `json:"operator"`
	Kind         string               `json:"kind"`
	Access       string               `json:"access"`
	Port         int                  `json:"port,omitempty"`
	Command      []string             `json:"command,omitempty"`
	State        string               `json:"state"`
	Consent      string               `json:"consent,omitempty"`
	Requested    time.Time            `json:"requested"`
	Started      time.Time            `json:"started,omitzero"`
	Ended        time.Time            `json:"ended,omitzero"`
	EndReason    string               `json:"endReason,omitempty"`
	Abnormal     bool                 `json:"abnormal,omitempty"`
	ExitCode     *int                 `json:"exitCode,omitempty"`
	Participants []SessionParticipant `json:"participants"`
	BytesIn      int64                `json:"bytesIn"`             // to the client
	BytesOut     int64                `json:"bytesOut"`            // from the client
	Recording    string               `json:"recording,omitempty"` // object name; terminals only
	Instance     string               `json:"instance,omitempty"`  // the broker instance relaying it
}

// SessionOpenResponse answers open, join, end and assist accept/offer.
type SessionOpenResponse struct {
	Header
	Session SessionInfo `json:"session"`
}

// SessionListRequest lists sessions: active ones (session list), or ended
// ones with their recordings (session recordings list).
type SessionListRequest struct {
	Header
	Client string `json:"client,omitempty"` // only this client (name or ID)
}

// SessionListResponse lists sessions, newest first.
type SessionListResponse struct {
	Header
	Sessions []SessionInfo `json:"sessions"`
}

// RecordingReadRequest reads a session's recording from Offset.
type RecordingReadRequest struct {
	Header
	Session string `json:"session"`
	Offset  int64  `json:"offset,omitempty"`
}

// MaxRecordingPage is the most bytes one RecordingReadResponse carries.
const MaxRecordingPage = 256 << 10

// RecordingReadResponse is a page of an asciicast v2 recording.
type RecordingReadResponse struct {
	Header
	Session SessionInfo `json:"session"`
	Data    []byte      `json:"data"` // base64 on the wire
	Size    int64       `json:"size"` // of the whole recording
	Next    int64       `json:"next"` // offset of the next page; Size at the end
}

// SessionAssistRequest is the client's user asking for help (solicited
// Remote Assistance). The agent sends it for `steward-agent assist`.
type SessionAssistRequest struct {
	Header
	Request string `json:"request"` // a UUID the agent picks
	User    string `json:"user"`
	Message string `json:"message,omitempty"`
}

// SessionAssistResponse acknowledges an assistance request.
type SessionAssistResponse struct {
	Header
	Request AssistInfo `json:"request"`
}

// AssistInfo is an open request for assistance.
type AssistInfo struct {
	ID      string    `json:"id"`
	Client  Named     `json:"client"`
	User    string    `json:"user"`
	Message string    `json:"message,omitempty"`
	Created time.Time `json:"created"`
	Session string    `json:"session,omitempty"` // once a helper accepted
}

// SessionAssistListRequest lists open assistance requests.
type SessionAssistListRequest struct {
	Header
}

// SessionAssistListResponse lists open assistance requests, oldest first.
type SessionAssistListResponse struct {
	Header
	Requests []AssistInfo `json:"requests"`
}

// SessionAssistAcceptRequest is a helper taking an assistance request; the
// helper picks the session ID as for SessionOpenRequest.
type SessionAssistAcceptRequest struct {
	Header
	Request string `json:"request"`
	Session string `json:"session"`
}

// Validate checks that the request and the new session are named by UUIDs.
func (r *SessionAssistAcceptRequest) Validate() error {
	if _, err := uuid.Parse(r.Request); err != nil {
		return fmt.Errorf("request %q is not a UUID (steward assist list shows them)", r.Request)
	}
	if _, err := uuid.Parse(r.Session); err != nil {
		return fmt.Errorf("session %q is not a UUID", r.Session)
	}
	return nil
}

// SessionCheckRequest asks whether the operator may open a session of Kind
// (shell, tunnel, or assist: an offer) to the client Ref, on Port for a
// tunnel. The broker decides as for SessionOpenRequest (the same checks,
// the same refusals, a client the operator may not see is not found) but
// sends no grant, opens no session and audits nothing: a check is not an
// action.
type SessionCheckRequest struct {
	Header
	Ref  string `json:"ref"`
	Kind string `json:"kind"`
	Port int    `json:"port,omitempty"`
}

// Validate checks the request's fields.
func (r *SessionCheckRequest) Validate() error {
	if r.Ref == "" {
		return errors.New("name the client")
	}
	if !slices.Contains(SessionKinds(), r.Kind) {
		return fmt.Errorf("unknown session kind %q (shell, tunnel or assist)", r.Kind)
	}
	if r.Kind == SessionTunnel && (r.Port < 1 || r.Port > 65535) {
		return fmt.Errorf("tunnel port %d: a port is 1 to 65535", r.Port)
	}
	return nil
}

// SessionCheckResponse says that the broker would send the client a grant:
// at Access, asking the user's consent (Consent) for at most
// PromptTimeout. The agent still has the last word.
type SessionCheckResponse struct {
	Header
	Client        Named    `json:"client"`
	Kind          string   `json:"kind"`
	Port          int      `json:"port,omitempty"`
	Access        string   `json:"access"`
	Consent       bool     `json:"consent"`
	PromptTimeout Duration `json:"promptTimeout,omitempty"` // when Consent
}

// Message types of sessions.
const (
	TypeSessionGrant              = "steward.v1.session_grant"
	TypeSignedGrant               = "steward.v1.signed_grant"
	TypeSessionGrantAnswer        = "steward.v1.session_grant_answer"
	TypeSessionOpenRequest        = "steward.v1.session_open_request"
	TypeSessionJoinRequest        = "steward.v1.session_join_request"
	TypeSessionEndRequest         = "steward.v1.session_end_request"
	TypeSessionForward            = "steward.v1.session_forward"
	TypeSessionOpenResponse       = "steward.v1.session_open_response"
	TypeSessionListRequest        = "steward.v1.session_list_request"
	TypeSessionListResponse       = "steward.v1.session_list_response"
	TypeRecordingReadRequest      = "steward.v1.recording_read_request"
	TypeRecordingReadResponse     = "steward.v1.recording_read_response"
	TypeSessionAssistRequest      = "steward.v1.session_assist_request"
	TypeSessionAssistResponse     = "steward.v1.session_assist_response"
	TypeSessionAssistListRequest  = "steward.v1.session_assist_list_request"
	TypeSessionAssistListResponse = "steward.v1.session_assist_list_response"
	TypeSessionAssistAccept       = "steward.v1.session_assist_accept_request"
	TypeSessionCheckRequest       = "steward.v1.session_check_request"
	TypeSessionCheckResponse      = "steward.v1.session_check_response"
)

// Service-to-service questions the broker asks (only services may publish
// on svc subjects).
const (
	SvcClientFacts     = "client-facts"     // discovery: ClientFactsRequest -> ClientFactsResponse
	SvcEffectivePolicy = "effective-policy" // policy: EffectivePolicyRequest -> EffectivePolicyResponse
)

// ClientFactsRequest asks discovery what a session decision needs to know
// of a client.
type ClientFactsRequest struct {
	Header
	Ref string `json:"ref"` // name or ID
}

// ClientFactsResponse is a client, the collections holding it, and the
// principals its inventory reports.
type ClientFactsResponse struct {
	Header
	Client      Client   `json:"client"`
	Collections []string `json:"collections"` // IDs, All Systems included
	Admins      []string `json:"admins"`      // local administrators
	Users       []string `json:"users"`       // logged-on users
}

// EffectivePolicyRequest asks the policy service for a client's resultant
// settings.
type EffectivePolicyRequest struct {
	Header
	ClientID string `json:"clientId"`
}

// EffectivePolicyResponse is a client's resultant settings as the policy
// service resolves them now.
type EffectivePolicyResponse struct {
	Header
	ClientID string           `json:"clientId"`
	Revision uint64           `json:"revision"`
	Settings SettingsSections `json:"settings"`
}

const (
	TypeClientFactsRequest      = "steward.v1.client_facts_request"
	TypeClientFactsResponse     = "steward.v1.client_facts_response"
	TypeEffectivePolicyRequest  = "steward.v1.effective_policy_request"
	TypeEffectivePolicyResponse = "steward.v1.effective_policy_response"
)

// SessionForward is a broker instance handing an operator's join or end of
// a session to the instance that relays it, on that instance's svc subject
// (SessionForwardVerb): only services may publish there, so Operator, who
// asked, is trusted. One of Join and End is set (the receiver refuses both).
type SessionForward struct {
	Header
	Operator string              `json:"operator"`
	Join     *SessionJoinRequest `json:"join,omitempty"`
	End      *SessionEndRequest  `json:"end,omitempty"`
}

// Validate checks the forward names an operator and one request.
func (f *SessionForward) Validate() error {
	if err := ValidToken(f.Operator); err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	if f.Join == nil && f.End == nil {
		return fmt.Errorf("a forward carries a join or an end")
	}
	return nil
}

// SessionForwardVerb is the svc verb on which broker instance (its micro
// service ID) takes forwarded joins and ends.
func SessionForwardVerb(instance string) string { return "forward-" + instance }
