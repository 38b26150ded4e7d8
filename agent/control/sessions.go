package control

import (
	"time"

	"github.com/stewardhq/steward/agent/state"
)

// Verbs of remote sessions, consent prompts and Remote Assistance.
const (
	VerbSessions      = "sessions"       // answers a contracts.SessionListResponse: the sessions running
	VerbSessionEnd    = "session-end"    // ID (or a unique prefix): ends it; answers a contracts.SessionOpenResponse
	VerbSessionLog    = "session-log"    // [LIMIT]: answers a SessionLog, newest first
	VerbConsent       = "consent"        // answers a ConsentList: the prompts waiting for the user
	VerbConsentAnswer = "consent-answer" // ID|- accept|deny USER: answers a ConsentAnswer
)

// Type strings of the answers that exist only on the control socket.
const (
	TypeConsentList   = "steward.v1.agent_consent_list"
	TypeConsentAnswer = "steward.v1.agent_consent_answer"
	TypeSessionLog    = "steward.v1.agent_session_log"
)

// ConsentPrompt is a remote session waiting for the logged-on user's
// consent. ID names it in "steward-agent consent --accept ID".
type ConsentPrompt struct {
	ID       string    `json:"id"` // the grant's ID
	Session  string    `json:"session"`
	Operator string    `json:"operator"`
	Kind     string    `json:"kind"`   // shell | tunnel | assist | observe
	Access   string    `json:"access"` // what the operator would get: full | view
	Port     int       `json:"port,omitempty"`
	Command  []string  `json:"command,omitempty"`
	Join     bool      `json:"join,omitempty"`  // joins a session already running
	Offer    bool      `json:"offer,omitempty"` // an unsolicited offer of assistance
	Asked    time.Time `json:"asked"`
	Deadline time.Time `json:"deadline"` // refused when nobody answers by then
}

// ConsentList is the answer of VerbConsent.
type ConsentList struct {
	Type    string          `json:"type"`
	Prompts []ConsentPrompt `json:"prompts"`
}

// ConsentAnswer is the answer of VerbConsentAnswer: the prompt answered.
type ConsentAnswer struct {
	Type     string        `json:"type"`
	Prompt   ConsentPrompt `json:"prompt"`
	Accepted bool          `json:"accepted"`
	User     string        `json:"user"`
}

// SessionLog is the answer of VerbSessionLog.
type SessionLog struct {
	Type    string                `json:"type"`
	Records []state.SessionRecord `json:"records"`
}
