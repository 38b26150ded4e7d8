package contracts

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Message type strings of role-based administration (administrative users
// and groups, security roles), site accounts and the admin audit trail.
const (
	TypeAdminAddRequest      = "steward.v1.admin_add_request"
	TypeAdminUpdateRequest   = "steward.v1.admin_update_request"
	TypeAdminRequest         = "steward.v1.admin_request"
	TypeAdminResponse        = "steward.v1.admin_response"
	TypeAdminListRequest     = "steward.v1.admin_list_request"
	TypeAdminListResponse    = "steward.v1.admin_list_response"
	TypeRoleRequest          = "steward.v1.role_request"
	TypeRoleResponse         = "steward.v1.role_response"
	TypeRoleListRequest      = "steward.v1.role_list_request"
	TypeRoleListResponse     = "steward.v1.role_list_response"
	TypeRoleCopyRequest      = "steward.v1.role_copy_request"
	TypeRoleUpdateRequest    = "steward.v1.role_update_request"
	TypeAccountKeyRequest    = "steward.v1.account_key_request"
	TypeAccountKeyResponse   = "steward.v1.account_key_response"
	TypeAccountAddRequest    = "steward.v1.account_add_request"
	TypeAccountRemoveRequest = "steward.v1.account_remove_request"
	TypeAccountResponse      = "steward.v1.account_response"
	TypeAccountListRequest   = "steward.v1.account_list_request"
	TypeAccountListResponse  = "steward.v1.account_list_response"
	TypeAuditEvent           = "steward.v1.audit_event"
)

// Subject kinds of role-based administration and accounts (operator -> site,
// served by the admin service).
const (
	KindAdminsAdd      = "admins.add"
	KindAdminsUpdate   = "admins.update"
	KindAdminsList     = "admins.list"
	KindAdminsShow     = "admins.show"
	KindAdminsRevoke   = "admins.revoke"
	KindAdminsDelete   = "admins.delete"
	KindRolesList      = "roles.list"
	KindRolesShow      = "roles.show"
	KindRolesCopy      = "roles.copy"
	KindRolesUpdate    = "roles.update"
	KindRolesDelete    = "roles.delete"
	KindAccountsKey    = "accounts.key"
	KindAccountsAdd    = "accounts.add"
	KindAccountsList   = "accounts.list"
	KindAccountsRemove = "accounts.remove"
)

// AuditSubject is where the admin service records audit events (stream
// ADMIN_EVENTS): every change to administrative users, roles, accounts,
// enrollment tokens and client identities.
func AuditSubject(site string) (string, error) { return Event(site, "admin", "audit") }

// Kinds of administrative user.
const (
	AdminUser  = "user"  // an operator: has an NKey and may connect
	AdminGroup = "group" // a group of users: roles and collections, no key
)

// The built-in security roles. Their permissions are fixed by the site's
// version; they cannot be changed or deleted, only copied.
const (
	RoleFullAdministrator        = "Full Administrator"
	RoleReadOnlyAnalyst          = "Read-only Analyst"
	RoleRemoteToolsOperator      = "Remote Tools Operator"
	RoleOperationsAdministrator  = "Operations Administrator"
	RoleApplicationAdministrator = "Application Administrator"
	RoleSecurityAdministrator    = "Security Administrator"
)

// Limits of role-based administration.
const (
	MaxAdminRoles       = 32 // roles of one administrative user or group
	MaxAdminCollections = 64 // collections of one administrative user or group
	MaxAdminGroups      = 32 // groups one user is a member of
	MaxDescription      = 256
)

// ReservedAccountNames are the clients' built-in superuser accounts: in
// every client's local administrators, standing for no person. No
// administrator may take one of these names, and a client's local
// administrators never match them (rbac.PermittedViewer).
var ReservedAccountNames = []string{"root", "administrator"}

// ValidAdminName checks the name of an administrative user or group. It is
// the operator's subject token and inbox (steward.<site>.op.<name>,
// _INBOX.<name>), so it is 1 to 64 letters, digits, '-' and '_', starting
// with a letter or digit; and it may not be a UUID or look like an NKey,
// which would make its inbox a client's or an enrolling key's.
func ValidAdminName(n string) error {
	if len(n) == 0 || len(n) > 64 {
		return fmt.Errorf("administrator name %q must be 1 to 64 characters", n)
	}
	for i, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return fmt.Errorf("administrator name %q: only letters, digits, '-' and '_' (not first) are allowed", n)
		}
	}
	if _, err := uuid.Parse(n); err == nil {
		return fmt.Errorf("administrator name %q is a UUID, which names clients", n)
	}
	if len(n) == 56 && strings.ToUpper(n) == n && !strings.ContainsAny(n, "-_0189") {
		return fmt.Errorf("administrator name %q looks like an NKey", n)
	}
	return nil
}

// ValidNewAdminName checks the name of an administrative user or group
// being added: ValidAdminName, and none of the names reserved since (a
// site already holding one keeps loading it).
func ValidNewAdminName(n string) error {
	if err := ValidAdminName(n); err != nil {
		return err
	}
	// An operator's reply inbox is _INBOX.<name>: no name may be another
	// principal's inbox (clients' UUIDs and keys above; a service
	// connection's _INBOX.<NUID>, 22 letters and digits; site-<code>, a
	// site's cross-site inbox before it moved to steward.<site>.inbox).
	if slices.Contains(ReservedAccountNames, strings.ToLower(n)) {
		return fmt.Errorf("administrator name %q is a built-in account of clients (%s), which Permitted Viewers never match", n, strings.Join(ReservedAccountNames, ", "))
	}
	if strings.HasPrefix(strings.ToLower(n), "site-") {
		return fmt.Errorf("administrator name %q: names beginning with \"site-\" are reserved for sites", n)
	}
	if len(n) == 22 && !strings.ContainsAny(n, "-_") {
		return fmt.Errorf("administrator name %q: 22 letters and digits alone is the shape of a connection's reply inbox; add a '-' or '_', or change its length", n)
	}
	return nil
}

// ValidRoleName checks a security role's name: 1 to 64 characters, no
// control characters, no leading or trailing space.
func ValidRoleName(n string) error {
	if len(n) == 0 || len(n) > 64 {
		return fmt.Errorf("role name %q must be 1 to 64 characters", n)
	}
	if err := printable(n); err != nil {
		return fmt.Errorf("role name %q: %w", n, err)
	}
	return nil
}

func printable(s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			return fmt.Errorf("contains control character %q", r)
		}
	}
	if s != strings.TrimSpace(s) {
		return fmt.Errorf("starts or ends with a space")
	}
	return nil
}

func validDescription(d string) error {
	if len(d) > MaxDescription {
		return fmt.Errorf("description longer than %d characters", MaxDescription)
	}
	return nil
}

// AdminInfo is an administrative user or group as the site records it, with
// what it may do: its own roles and collections, and the effective ones
// (its own and its groups').
type AdminInfo struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`          // user | group
	Key         string    `json:"key,omitempty"` // users: NKey public key
	Description string    `json:"description,omitempty"`
	Roles       []string  `json:"roles"`
	Collections []Named   `json:"collections"`
	MemberOf    []string  `json:"memberOf,omitempty"` // users: groups
	Members     []string  `json:"members,omitempty"`  // groups: users
	Revoked     bool      `json:"revoked,omitempty"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"createdBy"`
	Updated     time.Time `json:"updated,omitzero"`
	UpdatedBy   string    `json:"updatedBy,omitempty"`
	// Effective roles, collections and permissions (users; groups: their own).
	EffectiveRoles       []string `json:"effectiveRoles,omitempty"`
	EffectiveCollections []Named  `json:"effectiveCollections,omitempty"`
	Permissions          []string `json:"permissions,omitempty"`
}

// AdminAddRequest adds an administrative user (Kind user, with the public
// NKey it will connect with) or group (Kind group, no key). Roles and
// MemberOf name roles and groups; Collections name collections (name or ID,
// "All Systems" for every client).
type AdminAddRequest struct {
	Header
	Name        string   `json:"name"`
	Kind        string   `json:"kind"`
	Key         string   `json:"key,omitempty"`
	Description string   `json:"description,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	Collections []string `json:"collections,omitempty"`
	MemberOf    []string `json:"memberOf,omitempty"`
}

// Validate checks the request's shape; the site checks the names.
func (r *AdminAddRequest) Validate() error {
	if err := ValidNewAdminName(r.Name); err != nil {
		return err
	}
	switch r.Kind {
	case AdminUser:
		if !strings.HasPrefix(r.Key, "U") {
			return fmt.Errorf("a user needs its public user NKey (U...)")
		}
	case AdminGroup:
		if r.Key != "" || len(r.MemberOf) > 0 {
			return fmt.Errorf("a group has no key and is a member of no group")
		}
	default:
		return fmt.Errorf("kind %q: must be %s or %s", r.Kind, AdminUser, AdminGroup)
	}
	if err := validDescription(r.Description); err != nil {
		return err
	}
	return validGrants(r.Roles, r.Collections, r.MemberOf)
}

func validGrants(roles, collections, groups []string) error {
	if len(roles) > MaxAdminRoles || len(collections) > MaxAdminCollections || len(groups) > MaxAdminGroups {
		return fmt.Errorf("at most %d roles, %d collections and %d groups", MaxAdminRoles, MaxAdminCollections, MaxAdminGroups)
	}
	for _, l := range [][]string{roles, collections, groups} {
		if slices.Contains(l, "") {
			return fmt.Errorf("an empty role, collection or group name")
		}
	}
	return nil
}

// AdminUpdateRequest changes an administrative user's or group's roles,
// collections, groups or description. Lists add or remove; a change that
// would leave no Full Administrator over All Systems is refused.
type AdminUpdateRequest struct {
	Header
	Name              string   `json:"name"`
	SetDescription    bool     `json:"setDescription,omitempty"`
	Description       string   `json:"description,omitempty"`
	AddRoles          []string `json:"addRoles,omitempty"`
	RemoveRoles       []string `json:"removeRoles,omitempty"`
	AddCollections    []string `json:"addCollections,omitempty"`
	RemoveCollections []string `json:"removeCollections,omitempty"`
	AddMemberOf       []string `json:"addMemberOf,omitempty"`
	RemoveMemberOf    []string `json:"removeMemberOf,omitempty"`
}

// Validate checks the request's shape.
func (r *AdminUpdateRequest) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("an administrator name is required")
	}
	if err := validDescription(r.Description); err != nil {
		return err
	}
	if err := validGrants(r.AddRoles, r.AddCollections, r.AddMemberOf); err != nil {
		return err
	}
	return validGrants(r.RemoveRoles, r.RemoveCollections, r.RemoveMemberOf)
}

// AdminRequest names one administrative user or group (show, revoke, delete).
type AdminRequest struct {
	Header
	Name string `json:"name"`
}

// Validate checks the name is there.
func (r *AdminRequest) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("an administrator name is required")
	}
	return nil
}

// AdminResponse carries one administrative user or group.
type AdminResponse struct {
	Header
	Admin AdminInfo `json:"admin"`
}

// AdminListRequest asks for every administrative user and group.
type AdminListRequest struct {
	Header
}

// AdminListResponse lists administrative users and groups by name.
type AdminListResponse struct {
	Header
	Admins []AdminInfo `json:"admins"`
}

// RoleInfo is a security role: a named set of permissions ("Object:Action").
type RoleInfo struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	BuiltIn     bool      `json:"builtIn,omitempty"`
	Permissions []string  `json:"permissions"`
	CopiedFrom  string    `json:"copiedFrom,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	CreatedBy   string    `json:"createdBy,omitempty"`
	Updated     time.Time `json:"updated,omitzero"`
	UpdatedBy   string    `json:"updatedBy,omitempty"`
	Admins      []string  `json:"admins,omitempty"` // users and groups given the role
}

// RoleRequest names one role (show, delete).
type RoleRequest struct {
	Header
	Name string `json:"name"`
}

// Validate checks the name is there.
func (r *RoleRequest) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("a role name is required")
	}
	return nil
}

// RoleResponse carries one role.
type RoleResponse struct {
	Header
	Role RoleInfo `json:"role"`
}

// RoleListRequest asks for every role.
type RoleListRequest struct {
	Header
}

// RoleListResponse lists roles: built-in ones first, then by name.
type RoleListResponse struct {
	Header
	Roles []RoleInfo `json:"roles"`
}

// RoleCopyRequest makes a custom role from a copy of From, with permissions
// added and removed ("Object:Action", or "Object:*" for all of an object's).
type RoleCopyRequest struct {
	Header
	From        string   `json:"from"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Add         []string `json:"add,omitempty"`
	Remove      []string `json:"remove,omitempty"`
}

// Validate checks the request's shape.
func (r *RoleCopyRequest) Validate() error {
	if r.From == "" {
		return fmt.Errorf("the role to copy is required")
	}
	if err := ValidRoleName(r.Name); err != nil {
		return err
	}
	return validDescription(r.Description)
}

// RoleUpdateRequest changes a custom role's permissions or description.
type RoleUpdateRequest struct {
	Header
	Name           string   `json:"name"`
	SetDescription bool     `json:"setDescription,omitempty"`
	Description    string   `json:"description,omitempty"`
	Add            []string `json:"add,omitempty"`
	Remove         []string `json:"remove,omitempty"`
}

// Validate checks the request's shape.
func (r *RoleUpdateRequest) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("a role name is required")
	}
	return validDescription(r.Description)
}

// Account purposes: what a site account is used for (Configuration
// Manager's "accounts used").
const (
	PurposeNetworkAccess = "network-access" // clients reach content when their own identity cannot
	PurposePackageAccess = "package-access" // who may read a package's content
	PurposeClientPush    = "client-push"    // install the agent on machines
	PurposeDiscovery     = "discovery"      // query directories and networks for machines
	PurposeReplication   = "replication"    // site-to-site content transfer
	PurposeSMTP          = "smtp"           // send alert mail
	PurposeProxy         = "proxy"          // reach the internet through an authenticating proxy
	PurposeRunAs         = "run-as"         // run a deployment's command as this account
	PurposeDomainJoin    = "domain-join"    // join machines to a domain
	PurposeNetworkFolder = "network-folder" // connect to a shared folder during a deployment
	PurposeSiteSystem    = "site-system"    // install and manage site systems
)

// AccountPurposes lists every purpose, sorted.
func AccountPurposes() []string {
	p := []string{PurposeNetworkAccess, PurposePackageAccess, PurposeClientPush, PurposeDiscovery,
		PurposeReplication, PurposeSMTP, PurposeProxy, PurposeRunAs, PurposeDomainJoin,
		PurposeNetworkFolder, PurposeSiteSystem}
	slices.Sort(p)
	return p
}

// Account limits. Up to MaxAccountsPerPurpose accounts per purpose, so a
// password is rotated by adding a new account before removing the old one.
const (
	MaxAccountsPerPurpose = 10
	MaxAccountName        = 256
	MaxSealedSecret       = 4096 // bytes of a sealed secret
)

// ValidAccountPurpose checks p is a known purpose.
func ValidAccountPurpose(p string) error {
	if !slices.Contains(AccountPurposes(), p) {
		return fmt.Errorf("unknown account purpose %q: must be one of %s", p, strings.Join(AccountPurposes(), ", "))
	}
	return nil
}

// ValidAccountName checks an account name ("LAB\svc-content",
// "svc@lab.example"): 1 to 256 characters, no control characters, no
// leading or trailing space.
func ValidAccountName(n string) error {
	if len(n) == 0 || len(n) > MaxAccountName {
		return fmt.Errorf("account name must be 1 to %d characters", MaxAccountName)
	}
	if err := printable(n); err != nil {
		return fmt.Errorf("account name %q: %w", n, err)
	}
	return nil
}

// AccountInfo describes a site account. Its secret is never part of it:
// no API returns a secret.
type AccountInfo struct {
	Purpose   string    `json:"purpose"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"createdBy"`
	Rotated   time.Time `json:"rotated,omitzero"` // when the secret was last replaced
	RotatedBy string    `json:"rotatedBy,omitempty"`
}

// AccountKeyRequest asks for the site's public curve key, to which a
// secret is sealed before it is sent.
type AccountKeyRequest struct {
	Header
}

// AccountKeyResponse carries the site's public curve key (X...).
type AccountKeyResponse struct {
	Header
	Key string `json:"key"`
}

// AccountAddRequest adds an account, or with Replace replaces the secret of
// an existing one. Sealed is the secret sealed (NaCl box, nkeys xkv1) by
// the key Sender to the site's curve key: the secret never crosses the bus
// in plain text.
type AccountAddRequest struct {
	Header
	Purpose string `json:"purpose"`
	Name    string `json:"name"`
	Sealed  []byte `json:"sealed"`
	Sender  string `json:"sender"`
	Replace bool   `json:"replace,omitempty"`
}

// Validate checks the request's shape.
func (r *AccountAddRequest) Validate() error {
	if err := ValidAccountPurpose(r.Purpose); err != nil {
		return err
	}
	if err := ValidAccountName(r.Name); err != nil {
		return err
	}
	if len(r.Sealed) == 0 || len(r.Sealed) > MaxSealedSecret {
		return fmt.Errorf("sealed secret must be 1 to %d bytes", MaxSealedSecret)
	}
	if !strings.HasPrefix(r.Sender, "X") {
		return fmt.Errorf("sender must be a public curve key (X...)")
	}
	return nil
}

// AccountRemoveRequest removes one account of a purpose.
type AccountRemoveRequest struct {
	Header
	Purpose string `json:"purpose"`
	Name    string `json:"name"`
}

// Validate checks the request's shape.
func (r *AccountRemoveRequest) Validate() error {
	if err := ValidAccountPurpose(r.Purpose); err != nil {
		return err
	}
	return ValidAccountName(r.Name)
}

// AccountResponse carries one account (never its secret).
type AccountResponse struct {
	Header
	Account AccountInfo `json:"account"`
}

// AccountListRequest asks for the accounts of Purpose, or of every purpose.
type AccountListRequest struct {
	Header
	Purpose string `json:"purpose,omitempty"`
}

// Validate checks the purpose, when given.
func (r *AccountListRequest) Validate() error {
	if r.Purpose == "" {
		return nil
	}
	return ValidAccountPurpose(r.Purpose)
}

// AccountListResponse lists accounts by purpose, newest first within a
// purpose: the order in which they are tried.
type AccountListResponse struct {
	Header
	Accounts []AccountInfo `json:"accounts"`
}

// Audit actions. Each names what changed; StatusID in the event is the
// status catalog entry that says the same, when there is one.
const (
	AuditTokenCreated    = "token.created"
	AuditTokenRevoked    = "token.revoked"
	AuditClientApproved  = "client.approved"
	AuditClientBlocked   = "client.blocked"
	AuditClientDeleted   = "client.deleted"
	AuditAdminAdded      = "admin.added"
	AuditAdminChanged    = "admin.changed"
	AuditAdminRevoked    = "admin.revoked"
	AuditAdminDeleted    = "admin.deleted"
	AuditRoleCreated     = "role.created"
	AuditRoleChanged     = "role.changed"
	AuditRoleDeleted     = "role.deleted"
	AuditAccountAdded    = "account.added"
	AuditAccountReplaced = "account.replaced"
	AuditAccountRemoved  = "account.removed"
)

// AuditEvent records one security-relevant change, on AuditSubject. Its
// Properties are the insertion strings of the status catalog entry StatusID
// (0 while the catalog has none for Action), so the status service can turn
// each event into an audit status message.
type AuditEvent struct {
	Header
	Action     string            `json:"action"`
	StatusID   int               `json:"statusId,omitempty"`
	By         string            `json:"by"`     // the operator who acted
	Object     string            `json:"object"` // object type: Administrator, SecurityRole, Account, EnrollmentToken, Client
	Target     string            `json:"target"` // the object's name or ID
	Properties map[string]string `json:"properties,omitempty"`
}
