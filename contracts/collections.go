package contracts

import (
	"fmt"
	"time"
)

// Message type strings of collections and of the discovery service's
// domain events.
const (
	TypeCollectionCreateRequest   = "steward.v1.collection_create_request"
	TypeCollectionUpdateRequest   = "steward.v1.collection_update_request"
	TypeCollectionRequest         = "steward.v1.collection_request"
	TypeCollectionResponse        = "steward.v1.collection_response"
	TypeCollectionListRequest     = "steward.v1.collection_list_request"
	TypeCollectionListResponse    = "steward.v1.collection_list_response"
	TypeCollectionMembersRequest  = "steward.v1.collection_members_request"
	TypeCollectionMembersResponse = "steward.v1.collection_members_response"
	TypeCollectionPreviewRequest  = "steward.v1.collection_preview_request"
	TypeCollectionPreviewResponse = "steward.v1.collection_preview_response"
	TypeMembershipChanged         = "steward.v1.membership_changed"
	TypeInventoryChanged          = "steward.v1.inventory_changed"
	TypeCollectionUsesRequest     = "steward.v1.collection_uses_request"
	TypeCollectionUsesResponse    = "steward.v1.collection_uses_response"
)

// SvcCollectionUses is asked of each service that keeps collections by ID
// (policy's and replication's deployments, admin's scopes) before
// discovery deletes one: CollectionUsesRequest -> CollectionUsesResponse.
const SvcCollectionUses = "collection-uses"

// CollectionUsesRequest asks what of a service names a collection.
type CollectionUsesRequest struct {
	Header
	Collection string `json:"collection"` // its ID
}

// CollectionUsesResponse says, for an operator to read, what names the
// collection ("settings \"Lab remote tools\" are deployed to it").
type CollectionUsesResponse struct {
	Header
	Uses []string `json:"uses"`
}

// Kinds of collection subjects (operator -> site).
const (
	KindCollectionsCreate  = "collections.create"
	KindCollectionsUpdate  = "collections.update"
	KindCollectionsDelete  = "collections.delete"
	KindCollectionsList    = "collections.list"
	KindCollectionsShow    = "collections.show"
	KindCollectionsMembers = "collections.members"
	KindCollectionsPreview = "collections.preview"
)

// The built-in collection of every approved client. It cannot be changed or
// deleted, and it is the limiting collection of a collection created
// without one.
const (
	AllSystemsID   = "all-systems"
	AllSystemsName = "All Systems"
)

// Limits of a collection definition.
const (
	MaxCollectionQueries = 16     // query rules
	MaxQueryBytes        = 4096   // one query rule
	MaxCollectionRefs    = 64     // include rules, and exclude rules
	MaxDirectMembers     = 10_000 // direct members
	MaxMembersPage       = 5000   // members in one CollectionMembersResponse
)

// Named is an object by its ID and name (a client, a collection).
type Named struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Collection is a set of clients, defined by rules:
//
//	members = limit ∩ (query matches ∪ include ∪ direct) − exclude
//
// The limiting collection bounds it (default All Systems); each query rule
// (the Expr language, over the fields of the discovery README) adds the
// clients it matches; each include rule adds another collection's members;
// direct members are named clients; each exclude rule removes another
// collection's members. Discovery keeps membership current as clients and
// their inventory change.
type Collection struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	BuiltIn     bool      `json:"builtIn,omitempty"`
	Limit       Named     `json:"limit,omitzero"` // zero only for All Systems
	Queries     []string  `json:"queries,omitempty"`
	Include     []Named   `json:"include,omitempty"`
	Exclude     []Named   `json:"exclude,omitempty"`
	Direct      []Named   `json:"direct,omitempty"` // clients; the name is "" for a client since deleted
	Created     time.Time `json:"created,omitzero"`
	CreatedBy   string    `json:"createdBy,omitempty"`
	Updated     time.Time `json:"updated,omitzero"`
	UpdatedBy   string    `json:"updatedBy,omitempty"`
	Revision    uint64    `json:"revision,omitempty"` // changes with every update
}

// CollectionInfo is a collection with its evaluation.
type CollectionInfo struct {
	Collection
	MemberCount int `json:"memberCount"`
	// Error says why the collection has no members although its rules may
	// say otherwise: its rules refer to a collection deleted meanwhile, or
	// concurrent updates made a cycle. Updating it fixes it.
	Error string `json:"error,omitempty"`
}

// CollectionCreateRequest creates a collection. Limit, Include and Exclude
// name collections and Direct names clients, each by name or ID.
type CollectionCreateRequest struct {
	Header
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Limit       string   `json:"limit,omitempty"` // default All Systems
	Queries     []string `json:"queries,omitempty"`
	Include     []string `json:"include,omitempty"`
	Exclude     []string `json:"exclude,omitempty"`
	Direct      []string `json:"direct,omitempty"`
}

// Validate checks the request's shape; the site checks the rest.
func (r *CollectionCreateRequest) Validate() error {
	if err := ValidCollectionName(r.Name); err != nil {
		return err
	}
	return validRules(r.Queries, r.Include, r.Exclude, r.Direct)
}

// CollectionUpdateRequest changes the collection Ref names. Empty fields
// leave the definition as it is; the lists add or remove rules.
type CollectionUpdateRequest struct {
	Header
	Ref         string   `json:"ref"`
	Revision    uint64   `json:"revision,omitempty"`    // when set, refused (conflict) unless still current
	Name        string   `json:"name,omitempty"`        // rename
	Description string   `json:"description,omitempty"` // replace
	Limit       string   `json:"limit,omitempty"`       // replace the limiting collection
	SetQueries  bool     `json:"setQueries,omitempty"`  // replace the query rules with Queries (none: remove them all)
	Queries     []string `json:"queries,omitempty"`
	AddInclude  []string `json:"addInclude,omitempty"`
	DelInclude  []string `json:"delInclude,omitempty"`
	AddExclude  []string `json:"addExclude,omitempty"`
	DelExclude  []string `json:"delExclude,omitempty"`
	AddDirect   []string `json:"addDirect,omitempty"`
	DelDirect   []string `json:"delDirect,omitempty"`
}

// Validate checks the request's shape; the site checks the rest.
func (r *CollectionUpdateRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a collection name or id is required")
	}
	if r.Name != "" {
		if err := ValidCollectionName(r.Name); err != nil {
			return err
		}
	}
	if err := validRules(r.Queries, r.AddInclude, r.AddExclude, r.AddDirect); err != nil {
		return err
	}
	return validRules(nil, r.DelInclude, r.DelExclude, r.DelDirect)
}

// CollectionRequest names one collection by name or ID (show, delete).
type CollectionRequest struct {
	Header
	Ref string `json:"ref"`
}

// Validate checks the reference.
func (r *CollectionRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a collection name or id is required")
	}
	return nil
}

// CollectionResponse carries one collection.
type CollectionResponse struct {
	Header
	Collection CollectionInfo `json:"collection"`
}

// CollectionListRequest asks for every collection.
type CollectionListRequest struct {
	Header
}

// CollectionListResponse lists collections, All Systems first, then by name.
type CollectionListResponse struct {
	Header
	Collections []CollectionInfo `json:"collections"`
}

// CollectionMembersRequest asks for the members of a collection, sorted by
// name then ID, a page at a time. With Clients set it asks which of those
// clients are members: a membership check that does not page through
// every member.
type CollectionMembersRequest struct {
	Header
	Ref     string   `json:"ref"`
	Offset  int      `json:"offset,omitempty"`
	Max     int      `json:"max,omitempty"`     // default and at most MaxMembersPage
	Clients []string `json:"clients,omitempty"` // client IDs: only these, when members
}

// Validate checks the request.
func (r *CollectionMembersRequest) Validate() error {
	if r.Ref == "" {
		return fmt.Errorf("a collection name or id is required")
	}
	if r.Offset < 0 || r.Max < 0 || r.Max > MaxMembersPage {
		return fmt.Errorf("offset must be positive and max 0 to %d", MaxMembersPage)
	}
	if len(r.Clients) > MaxMembersPage {
		return fmt.Errorf("at most %d clients to check", MaxMembersPage)
	}
	return nil
}

// CollectionMembersResponse is one page of members. Next is the Offset of
// the next page, 0 after the last.
type CollectionMembersResponse struct {
	Header
	Collection Named   `json:"collection"`
	Total      int     `json:"total"`
	Members    []Named `json:"members"`
	Next       int     `json:"next,omitempty"`
}

// CollectionPreviewRequest asks who a collection with these rules would
// hold, without creating it. Refs are names or IDs as in a create.
type CollectionPreviewRequest struct {
	Header
	Limit   string   `json:"limit,omitempty"`
	Queries []string `json:"queries,omitempty"`
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	Direct  []string `json:"direct,omitempty"`
	Max     int      `json:"max,omitempty"` // members to list; default and at most MaxMembersPage
}

// Validate checks the request's shape.
func (r *CollectionPreviewRequest) Validate() error {
	if len(r.Queries)+len(r.Include)+len(r.Direct) == 0 {
		return fmt.Errorf("a preview needs a query, include or direct rule")
	}
	if r.Max < 0 || r.Max > MaxMembersPage {
		return fmt.Errorf("max must be 0 to %d", MaxMembersPage)
	}
	return validRules(r.Queries, r.Include, r.Exclude, r.Direct)
}

// CollectionPreviewResponse lists the clients the rules match (the first
// Max, sorted by name then ID) and how many there are.
type CollectionPreviewResponse struct {
	Header
	Total   int     `json:"total"`
	Members []Named `json:"members"`
}

// Membership change causes.
const (
	CauseClient     = "client"     // a client record changed (name, approval, deletion)
	CauseInventory  = "inventory"  // a client's inventory changed
	CauseCollection = "collection" // a collection definition changed
)

// MembershipChanged is published by discovery on MembershipSubject when
// clients join or leave a collection. Every instance of discovery evaluates
// every change and publishes with a Nats-Msg-Id derived from the change, so
// the stream holds each once; still, read events as statements of the state
// after Cause ("X is now a member"), not as increments.
type MembershipChanged struct {
	Header
	Collection Named    `json:"collection"`
	Added      []string `json:"added,omitempty"`   // client IDs
	Removed    []string `json:"removed,omitempty"` // client IDs
	Cause      string   `json:"cause"`
}

// InventoryChanged is published by discovery on InventorySubject when it
// stores an inventory report that changed something: the history of a
// client's inventory (`steward inventory history`).
type InventoryChanged struct {
	Header
	ClientID string            `json:"clientId"`
	Seq      uint64            `json:"seq"`
	Changes  []InventoryChange `json:"changes"`
}

// MembershipSubject is where discovery publishes MembershipChanged events
// (stream DISCOVERY_EVENTS).
func MembershipSubject(site string) (string, error) { return Event(site, "discovery", "membership") }

// InventorySubject is where discovery publishes the InventoryChanged events
// of client clientID (stream DISCOVERY_INVENTORY_HISTORY):
// "steward.<site>.event.discovery.inventory.<clientID>".
func InventorySubject(site, clientID string) (string, error) {
	return join(Root, site, "event", "discovery", "inventory", clientID)
}

// InventorySubjectAll subscribes to the InventoryChanged events of every client.
func InventorySubjectAll(site string) (string, error) {
	if err := ValidToken(site); err != nil {
		return "", err
	}
	return joinWild(Root, site, "event", "discovery", "inventory", "*"), nil
}

// ValidCollectionName checks a collection name: 1 to 128 characters, no
// control characters, no leading or trailing space.
func ValidCollectionName(n string) error {
	if len(n) == 0 || len(n) > 128 {
		return fmt.Errorf("collection name %q must be 1 to 128 characters", n)
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			return fmt.Errorf("collection name %q contains control character %q", n, r)
		}
	}
	if n[0] == ' ' || n[len(n)-1] == ' ' {
		return fmt.Errorf("collection name %q starts or ends with a space", n)
	}
	return nil
}

func validRules(queries, include, exclude, direct []string) error {
	if len(queries) > MaxCollectionQueries {
		return fmt.Errorf("%d query rules: at most %d", len(queries), MaxCollectionQueries)
	}
	for i, q := range queries {
		if len(q) > MaxQueryBytes {
			return fmt.Errorf("query %d is %d bytes: at most %d", i+1, len(q), MaxQueryBytes)
		}
	}
	if len(include) > MaxCollectionRefs || len(exclude) > MaxCollectionRefs {
		return fmt.Errorf("at most %d include and %d exclude rules", MaxCollectionRefs, MaxCollectionRefs)
	}
	if len(direct) > MaxDirectMembers {
		return fmt.Errorf("%d direct members: at most %d", len(direct), MaxDirectMembers)
	}
	for _, l := range [][]string{include, exclude, direct} {
		for _, ref := range l {
			if ref == "" {
				return fmt.Errorf("an empty name in a rule")
			}
		}
	}
	return nil
}
