package rbac

import (
	"slices"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// Role is a security role: a named set of permissions. Built-in roles come
// from this package (BuiltinRoles) and are never stored; custom roles are
// copies of another role, changed, and are stored in the model document.
type Role struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	BuiltIn     bool         `json:"-"`
	Permissions []Permission `json:"permissions"`
	CopiedFrom  string       `json:"copiedFrom,omitempty"`
	Created     time.Time    `json:"created,omitzero"`
	CreatedBy   string       `json:"createdBy,omitempty"`
	Updated     time.Time    `json:"updated,omitzero"`
	UpdatedBy   string       `json:"updatedBy,omitempty"`
}

// Has reports whether the role grants p.
func (r *Role) Has(p Permission) bool { return slices.Contains(r.Permissions, p) }

// reads is every Read action, and what a read-only analyst may see besides.
func reads() []Permission {
	var out []Permission
	for _, p := range All() {
		if p.Action() == "Read" {
			out = append(out, p)
		}
	}
	return append(out, CollectionViewInventory)
}

func without(ps []Permission, drop ...Permission) []Permission {
	return slices.DeleteFunc(slices.Clone(ps), func(p Permission) bool { return slices.Contains(drop, p) })
}

func objectPerms(object string) []Permission {
	ps, _ := ParsePermission(object + ":*")
	return ps
}

// BuiltinRoles returns the built-in roles, after Configuration Manager's.
// Full Administrator always has every permission of this version's catalog.
func BuiltinRoles() []*Role {
	all := All()
	ro := reads()
	roles := []*Role{
		{
			Name:        contracts.RoleFullAdministrator,
			Description: "Every permission on every object, including security. Keep at least one, over All Systems.",
			Permissions: all,
		},
		{
			Name:        contracts.RoleReadOnlyAnalyst,
			Description: "Sees every object and the inventory of clients in its collections; changes nothing.",
			Permissions: ro,
		},
		{
			Name:        contracts.RoleRemoteToolsOperator,
			Description: "Runs and audits remote sessions to clients in its collections.",
			Permissions: []Permission{CollectionRead, CollectionRemoteControl, StatusMessageRead, SiteRead,
				SessionRead, SessionJoin, SessionViewRecording},
		},
		{
			Name:        contracts.RoleOperationsAdministrator,
			Description: "Everything except managing security: administrative users and security roles.",
			Permissions: without(all, AdministratorCreate, AdministratorModify, AdministratorDelete,
				SecurityRoleCreate, SecurityRoleModify, SecurityRoleDelete),
		},
		{
			Name:        contracts.RoleApplicationAdministrator,
			Description: "Creates packages and deploys them to its collections.",
			Permissions: append([]Permission{CollectionRead, CollectionViewInventory, CollectionDeployPackages,
				ClientSettingsRead, StatusMessageRead, SiteRead, AccountRead}, objectPerms(ObjPackage)...),
		},
		{
			Name:        contracts.RoleSecurityAdministrator,
			Description: "Manages administrative users and security roles; reads everything else.",
			Permissions: append(slices.Clone(ro), append(objectPerms(ObjAdministrator), objectPerms(ObjSecurityRole)...)...),
		},
	}
	for _, r := range roles {
		r.BuiltIn = true
		r.Permissions = sortPerms(r.Permissions)
	}
	return roles
}
