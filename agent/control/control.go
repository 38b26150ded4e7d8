// Package control is the agent's local control socket: a unix socket in the
// state dir (agent.sock, mode 0600, in a 0700 dir) through which the
// `steward-agent` command talks to the running agent. Server is the agent's
// side, Call and Status the command's side.
//
// The protocol is a line per request and a JSON line per answer:
//
//	-> status\n
//	<- {"type":"steward.v1.agent_status","name":"pc-042",...}\n
//
// A request is a verb followed by space-separated arguments. Every answer is
// a JSON object with a "type" string; a failure is
// {"type":"steward.v1.agent_control_error","error":"..."}. A connection may
// carry several requests, one after another. Verbs live in a table
// (Handlers), so a new one (consent, settings reset) is one entry there and
// one function here.
package control

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
)

// SocketName is the control socket's name inside the state dir.
const SocketName = "agent.sock"

// SocketPath is the control socket of the agent using stateDir.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// Verbs.
const (
	VerbStatus        = "status"         // answers a contracts.AgentStatus
	VerbSettingsReset = "settings-reset" // answers a contracts.AgentSettingsResponse
	VerbSettingsUser  = "settings-user"  // KEY=VALUE... or clear; answers a contracts.AgentSettingsResponse
)

// TypeError is the type string of a failure answer.
const TypeError = "steward.v1.agent_control_error"

// ErrorAnswer is what the server writes when a request fails.
type ErrorAnswer struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

// Limits of the protocol.
const (
	maxRequestBytes = 4 << 10 // one request line
	// one answer line: status embeds the content index, which keeps every
	// version the agent held, and session-log answers are up to its
	// SessionLogMax records; 1 MiB was reached at ~4,000 versions.
	maxAnswerBytes = 64 << 20
)

// ErrNotRunning means nothing answers on the control socket: no agent runs
// with that state dir.
var ErrNotRunning = errors.New("no agent is listening on the control socket")

// ErrPathTooLong means the socket path does not fit in a unix socket
// address on this system.
var ErrPathTooLong = errors.New("control socket path is too long")

// checkPath refuses a socket path the kernel cannot bind or connect to.
func checkPath(path string) error {
	if len(path) >= sunPathSize {
		return fmt.Errorf("%w: %s is %d bytes, and unix sockets on %s allow at most %d; choose a shorter --state-dir",
			ErrPathTooLong, path, len(path), runtime.GOOS, sunPathSize-1)
	}
	return nil
}
