package contracts

import "time"

// Message type strings of the site and of the agent's local control socket.
const (
	TypeServiceListRequest  = "steward.v1.service_list_request"
	TypeServiceListResponse = "steward.v1.service_list_response"
	TypeAgentStatus         = "steward.v1.agent_status"
)

// ServiceListRequest asks which service instances are running.
type ServiceListRequest struct {
	Header
}

// ServiceInstance is one running service instance, as $SRV INFO tells it.
type ServiceInstance struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	Endpoints []string  `json:"endpoints"`
	Requests  int       `json:"requests"`
	Errors    int       `json:"errors"`
	Started   time.Time `json:"started"`
}

// ServiceListResponse lists instances sorted by name then ID.
type ServiceListResponse struct {
	Header
	Services []ServiceInstance `json:"services"`
}

// AgentStatus is what `steward-agent status` shows, served by the agent's
// local control socket.
type AgentStatus struct {
	Header
	ClientID      string    `json:"clientId,omitempty"`
	Name          string    `json:"name"`
	Site          string    `json:"site,omitempty"`
	SiteKey       string    `json:"siteKey,omitempty"`
	Server        string    `json:"server"`
	State         string    `json:"state"` // enrolling | pending | connected | disconnected | refused | deleted
	Connected     bool      `json:"connected"`
	LastHeartbeat time.Time `json:"lastHeartbeat,omitzero"`
	Started       time.Time `json:"started"`
	AgentVersion  string    `json:"agentVersion"`
	Capability    int       `json:"capability"`
	Message       string    `json:"message,omitempty"`
	// Policy is the policy the agent holds: nil before it applied one.
	Policy *AgentPolicyStatus `json:"policy,omitempty"`
	// Sessions are the remote sessions running on the client (state
	// active), as the agent sees them: BytesIn went to the client, BytesOut
	// came from it.
	Sessions []SessionInfo `json:"sessions,omitempty"`
	// Content is the package versions the agent holds under its state
	// dir's content directory, is fetching, or failed to fetch.
	Content []ContentHeld `json:"content,omitempty"`
}

// ContentHeld is one package version on a client, as its agent tells it.
type ContentHeld struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Digest  string `json:"digest"` // SignedManifest.Digest
	State   string `json:"state"`  // downloading | installed | failed
	Size    int64  `json:"size"`   // the version's size
	// Bytes is what is installed, or while downloading what is fetched.
	Bytes     int64     `json:"bytes"`
	Path      string    `json:"path,omitempty"` // where it is installed
	Installed time.Time `json:"installed,omitzero"`
	Updated   time.Time `json:"updated"`
	Error     string    `json:"error,omitempty"` // why it failed
	// Assigned is whether the site's last content list names the version;
	// one no longer assigned stays installed.
	Assigned bool `json:"assigned"`
	// Reported is whether the site acknowledged the report of this state.
	Reported bool `json:"reported"`
	// Retry is when a failed version is tried again.
	Retry time.Time `json:"retry,omitzero"`
}
