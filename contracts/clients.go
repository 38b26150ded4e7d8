package contracts

import (
	"fmt"
	"time"
)

// Message type strings of clients and heartbeats.
const (
	TypeHeartbeat          = "steward.v1.heartbeat"
	TypeClientListRequest  = "steward.v1.client_list_request"
	TypeClientListResponse = "steward.v1.client_list_response"
	TypeClientRequest      = "steward.v1.client_request"
	TypeClientResponse     = "steward.v1.client_response"
	TypeClientEvent        = "steward.v1.client_event"
)

// Client statuses, owned by the admin service (identity) and mirrored in the
// discovery record.
const (
	ClientPending  = "pending"
	ClientApproved = "approved"
	ClientBlocked  = "blocked"
)

// Heartbeat is published by an agent on AgentUp(site, id, KindHeartbeat), at
// connect and then every interval.
type Heartbeat struct {
	Header
	Name         string    `json:"name"`
	Hostname     string    `json:"hostname"`
	OS           string    `json:"os"`
	Arch         string    `json:"arch"`
	AgentVersion string    `json:"agentVersion"`
	Capability   int       `json:"capability"`
	Interval     Duration  `json:"interval"` // when to expect the next one
	Started      time.Time `json:"started"`  // when this agent process started
}

// Validate checks the heartbeat.
func (h *Heartbeat) Validate() error {
	if err := ValidName(h.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if h.Interval <= 0 {
		return fmt.Errorf("interval must be positive")
	}
	return nil
}

// Client is the site's record of a client machine.
type Client struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Hostname     string    `json:"hostname,omitempty"`
	OS           string    `json:"os,omitempty"`
	Arch         string    `json:"arch,omitempty"`
	AgentVersion string    `json:"agentVersion,omitempty"`
	Capability   int       `json:"capability,omitempty"`
	Status       string    `json:"status"` // pending | approved | blocked
	Online       bool      `json:"online"`
	FirstSeen    time.Time `json:"firstSeen"`
	LastSeen     time.Time `json:"lastSeen,omitzero"`
	Key          string    `json:"key,omitempty"` // the agent's NKey public key
	// PendingReason says why a pending client was not admitted at its
	// enrollment (no token, an expired or used-up one, another site's).
	PendingReason string `json:"pendingReason,omitempty"`
}

// MaxClientsPage is the most clients one list answer holds (a page stays
// well under the server's 1 MiB payload limit).
const MaxClientsPage = 1000

// ClientListRequest asks discovery for the clients, a page at a time.
type ClientListRequest struct {
	Header
	Status string `json:"status,omitempty"` // only clients in this status
	Offset int    `json:"offset,omitempty"`
	Max    int    `json:"max,omitempty"` // default and at most MaxClientsPage
}

// Validate checks the paging.
func (r *ClientListRequest) Validate() error {
	if r.Offset < 0 || r.Max < 0 || r.Max > MaxClientsPage {
		return fmt.Errorf("offset must be positive and max 0 to %d", MaxClientsPage)
	}
	return nil
}

// ClientListResponse is one page of clients, sorted by name then ID. Next
// is the Offset of the next page, 0 after the last.
type ClientListResponse struct {
	Header
	Clients []Client `json:"clients"`
	Total   int      `json:"total"`
	Next    int      `json:"next,omitempty"`
}

// ClientRequest names one client by ID or name (show, approve, block, delete).
type ClientRequest struct {
	Header
	Ref string `json:"ref"`
}

// Validate checks the reference.
func (r *ClientRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a client name or id is required")
	}
	return nil
}

// ClientResponse carries one client.
type ClientResponse struct {
	Header
	Client Client `json:"client"`
}

// Client event actions.
const (
	ClientEnrolled = "enrolled" // admitted with a token
	ClientQueued   = "queued"   // waiting for approval
	ClientAdmitted = "approved" // approved by an operator
	ClientBlockedE = "blocked"
	ClientDeleted  = "deleted"
)

// ClientEvent is published by the admin service on Event(site, "admin",
// "client") whenever a client identity changes; discovery keeps its records
// from these.
type ClientEvent struct {
	Header
	Action string `json:"action"`
	Client Client `json:"client"`
	By     string `json:"by"` // operator name, or "token:<id>"
}
