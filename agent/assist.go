package agent

import (
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// sharedTerm is a user's terminal shared for assistance (TEMPORARY STUB).
type sharedTerm struct{ user string }

func (a *Agent) assistTarget(g *contracts.SessionGrant, pol state.PolicyState) (*sharedTerm, *denial) {
	return nil, refuse(contracts.DenyPolicy, "no shared terminal")
}

func (t *sharedTerm) attach(s *session) (backend, error) { return nil, nil }
func (t *sharedTerm) showPrompt(control.ConsentPrompt)   {}
func (t *sharedTerm) clearPrompt(string)                 {}
