package contracts

import (
	"fmt"
	"time"
)

// Message type strings of inventory.
const (
	TypeInventoryReport   = "steward.v1.inventory_report"
	TypeInventoryRequest  = "steward.v1.inventory_request"
	TypeInventoryResponse = "steward.v1.inventory_response"
	TypeInventoryHistory  = "steward.v1.inventory_history_response"
	TypeInventoryRefresh  = "steward.v1.inventory_refresh"
)

// Kinds of inventory subjects.
const (
	KindInventory          = "inventory"         // agent -> site, through the outbox
	KindInventoryRefresh   = "inventory.refresh" // site -> agent (down): report now
	KindInventoryShow      = "inventory.show"    // operator -> site
	KindInventoryHistory   = "inventory.history"
	KindInventoryRefreshOp = "inventory.refresh"
)

// Inventory is what an agent knows of its machine. Field names are the
// query language's names (see the README): os.family, cpu.cores, ...
type Inventory struct {
	OS       OSInfo            `json:"os"`
	Arch     string            `json:"arch"`
	CPU      CPUInfo           `json:"cpu"`
	Memory   MemoryInfo        `json:"memory"`
	Disks    []Disk            `json:"disks"`
	Networks []NetIface        `json:"networks"`
	Software []Software        `json:"software"`
	Users    []string          `json:"users"`  // logged-on users
	Admins   []string          `json:"admins"` // local administrators (sudo, wheel, admin groups)
	Labels   map[string]string `json:"labels,omitempty"`
}

// OSInfo names the operating system.
type OSInfo struct {
	Name    string `json:"name"`    // "Debian GNU/Linux"
	Version string `json:"version"` // "12"
	Family  string `json:"family"`  // "linux", "windows", "darwin"
	Kernel  string `json:"kernel"`  // "6.1.0-18-amd64"
}

// CPUInfo describes the processors.
type CPUInfo struct {
	Model string `json:"model"`
	Cores int    `json:"cores"`
}

// MemoryInfo is physical memory in bytes.
type MemoryInfo struct {
	Total uint64 `json:"total"`
}

// Disk is a mounted filesystem.
type Disk struct {
	Device string `json:"device"`
	Mount  string `json:"mount"`
	FSType string `json:"fsType"`
	Total  uint64 `json:"total"`
	Free   uint64 `json:"free"`
}

// NetIface is a network interface.
type NetIface struct {
	Name  string   `json:"name"`
	MAC   string   `json:"mac,omitempty"`
	Addrs []string `json:"addrs"` // CIDR notation
}

// Software is an installed package.
type Software struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source,omitempty"` // dpkg, rpm, apk
}

// InventoryReport is sent by an agent through its outbox on
// AgentUp(site, id, KindInventory). A full report carries Full set and the
// whole Inventory; a delta carries only the sections that changed since the
// report numbered Base (the site asks for a full report when it lacks Base).
type InventoryReport struct {
	Header
	Seq       uint64    `json:"seq"`            // increases with every report of this agent
	Base      uint64    `json:"base,omitempty"` // deltas: the report this one changes
	Full      bool      `json:"full"`
	Collected time.Time `json:"collected"`
	Inventory Inventory `json:"inventory"`
	Changed   []string  `json:"changed,omitempty"` // deltas: top-level sections present ("software", "disks", ...)
}

// Validate checks the report.
func (r *InventoryReport) Validate() error {
	if r.Seq == 0 {
		return fmt.Errorf("seq must be positive")
	}
	if !r.Full && (r.Base == 0 || r.Base >= r.Seq) {
		return fmt.Errorf("a delta needs a base report before seq %d", r.Seq)
	}
	return nil
}

// InventoryRefresh asks an agent to report now (full when Full is set).
type InventoryRefresh struct {
	Header
	Full bool `json:"full"`
}

// InventoryRequest names a client for inventory show, history and refresh.
type InventoryRequest struct {
	Header
	Ref   string    `json:"ref"`
	Since time.Time `json:"since,omitzero"` // history: only changes after this
}

// Validate checks the reference.
func (r *InventoryRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a client name or id is required")
	}
	return nil
}

// InventoryResponse is a client's current inventory.
type InventoryResponse struct {
	Header
	Client    Client    `json:"client"`
	Seq       uint64    `json:"seq"`
	Collected time.Time `json:"collected"`
	Received  time.Time `json:"received"`
	Inventory Inventory `json:"inventory"`
}

// InventoryChange is one change in a client's inventory history.
type InventoryChange struct {
	Time    time.Time `json:"time"` // when the agent collected it
	Seq     uint64    `json:"seq"`
	Section string    `json:"section"` // "software", "os", ...
	Change  string    `json:"change"`  // "added", "removed", "changed"
	Item    string    `json:"item"`    // e.g. "openssl 3.0.11" or "memory.total"
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
}

// InventoryHistoryResponse lists changes, oldest first.
type InventoryHistoryResponse struct {
	Header
	Client  Client            `json:"client"`
	Changes []InventoryChange `json:"changes"`
}
