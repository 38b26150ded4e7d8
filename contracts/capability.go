package contracts

// CapabilityVersion is the agent protocol capability this build speaks.
// Agents send it at enrollment and in every heartbeat; the site uses it to
// know what a client can do. Bump it, with a dated line in
// CapabilityHistory, whenever the agent learns a new message or behaviour.
//
//   - 1: 2026-11-21: enrollment with pinned site key, heartbeats, local
//     control socket (status).
//   - 2: 2026-11-21: signed client policy (push, fetch, acknowledgements
//     through the outbox), intervals set by policy, local settings (reset,
//     the user's own Remote Assistance values).
//   - 3: 2026-11-21: remote sessions (signed grants, consent prompts, shell,
//     tunnel, assistance, flow-controlled frames).
//   - 4: 2026-11-22: deployed content (packages fetched, verified and
//     installed, failed versions retried with backoff); grants say which
//     Permitted Viewers entry or administrator admitted the operator (via)
//     and how long an assistance offer may wait (answerWithin), both
//     checked by the agent; a deleted client enrolls again.
const CapabilityVersion = 4

// Capability is one step of the capability history.
type Capability struct {
	Version int    `json:"version"`
	Date    string `json:"date"` // YYYY-MM-DD
	What    string `json:"what"`
}

// CapabilityHistory is every capability version, oldest first.
var CapabilityHistory = []Capability{
	{1, "2026-11-21", "enrollment with pinned site key, heartbeats, local control socket (status)"},
	{2, "2026-11-21", "signed client policy (push, fetch, acknowledgements), intervals set by policy, local settings (reset, user values)"},
	{3, "2026-11-21", "remote sessions: signed grants, consent prompts, shell, tunnel, assistance, flow-controlled frames"},
	{4, "2026-11-22", "deployed content fetched, verified and installed, failed versions retried with backoff; grants' via and answerWithin checked by the agent; a deleted client enrolls again"},
}
