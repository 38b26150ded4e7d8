//go:build !unix

package agent

import (
	"fmt"
	"runtime"

	"github.com/stewardhq/steward/contracts"
)

// startShell: shell sessions need a PTY, which this agent has only on
// Unix systems.
func (a *Agent) startShell(g *contracts.SessionGrant) (backend, error) {
	return nil, fmt.Errorf("shell sessions are not supported on %s", runtime.GOOS)
}
