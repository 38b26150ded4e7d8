package contracts

import (
	"fmt"
	"time"
)

// Message type strings of enrollment.
const (
	TypeEnrollRequest  = "steward.v1.enroll_request"
	TypeEnrollResponse = "steward.v1.enroll_response"
)

// Enrollment outcomes.
const (
	EnrollApproved = "approved"
	EnrollPending  = "pending"
)

// EnrollRequest is sent by an un-enrolled agent on Enroll(site, itsNKey).
type EnrollRequest struct {
	Header
	Token        string `json:"token,omitempty"` // empty: ask to be approved by an operator
	Name         string `json:"name"`
	Hostname     string `json:"hostname"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	AgentVersion string `json:"agentVersion"`
	Capability   int    `json:"capability"`
}

// Validate checks the fields an enrollment must carry.
func (r *EnrollRequest) Validate() error {
	if err := ValidName(r.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if len(r.Hostname) > 255 || len(r.OS) > 64 || len(r.Arch) > 64 || len(r.AgentVersion) > 64 {
		return fmt.Errorf("hostname, os, arch or agentVersion too long")
	}
	if len(r.Token) > 4096 {
		return fmt.Errorf("token too long")
	}
	if r.Capability < 1 {
		return fmt.Errorf("capability %d: must be at least 1", r.Capability)
	}
	return nil
}

// EnrollResponse answers an EnrollRequest. When Status is approved the agent
// checks Signature (the site key's signature over EnrollAttestation) against
// the site key it pinned from the token, then stores ClientID.
type EnrollResponse struct {
	Header
	Status    string `json:"status"` // approved | pending
	ClientID  string `json:"clientId"`
	Site      string `json:"site"`
	SiteKey   string `json:"siteKey"`             // the site signing key (NKey public key)
	Signature string `json:"signature,omitempty"` // base64url of the site's signature
	Reason    Code   `json:"reason,omitempty"`    // why pending: a token code, or 0 when no token was given
	Message   string `json:"message,omitempty"`   // why pending, for the agent's log
}

// EnrollAttestation is the text the site signs to admit an agent key.
func EnrollAttestation(site, clientID, agentKey string, issued time.Time) []byte {
	return fmt.Appendf(nil, "steward-enroll-v1\n%s\n%s\n%s\n%s", site, clientID, agentKey, issued.UTC().Format(time.RFC3339Nano))
}

// ValidName checks a human name of a client or operator: 1-64 printable
// characters, none of them a subject metacharacter or whitespace.
func ValidName(n string) error {
	if len(n) == 0 || len(n) > 64 {
		return fmt.Errorf("%q must be 1 to 64 characters", n)
	}
	return ValidToken(n)
}
