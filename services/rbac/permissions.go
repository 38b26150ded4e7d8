// Package rbac is Steward's role-based administration model, after
// Configuration Manager's: security roles are sets of permissions on object
// types ("Collection:RemoteControl", "EnrollmentToken:Create"); an
// administrative user (or a group of them) has roles and the collections it
// may act on; an operator may do what the union of its own and its groups'
// roles allows, and on clients only in the union of their collections ("All
// Systems" is every client).
//
// The package is pure: the permission catalog, the built-in roles as data,
// the immutable Model with Allowed, the grant rules (no escalation, keep a
// Full Administrator) and the Permitted Viewers resolver. One file, watch.go,
// is the published read model: the admin service writes the model document
// to the KV bucket admin-rbac, and every service holds a Watcher on it and
// authorises its operators' requests in-process.
package rbac

import (
	"fmt"
	"slices"
	"strings"
)

// Permission is an action on an object type, written "Object:Action".
type Permission string

// Object is the object type: "Collection" of "Collection:Read".
func (p Permission) Object() string { o, _, _ := strings.Cut(string(p), ":"); return o }

// Action is the action: "Read" of "Collection:Read".
func (p Permission) Action() string { _, a, _ := strings.Cut(string(p), ":"); return a }

// Scoped reports whether the permission is checked against collections
// (Collection's actions are; every other object is site-wide).
func (p Permission) Scoped() bool { return p.Object() == ObjCollection }

// Object types.
const (
	ObjCollection      = "Collection"      // collections and the clients in them
	ObjClientSettings  = "ClientSettings"  // client settings objects (policy)
	ObjPackage         = "Package"         // packages and their content
	ObjStatusMessage   = "StatusMessage"   // status messages
	ObjSite            = "Site"            // the site: its services and settings, status filter rules
	ObjAdministrator   = "Administrator"   // administrative users and groups
	ObjSecurityRole    = "SecurityRole"    // security roles
	ObjEnrollmentToken = "EnrollmentToken" // enrollment tokens
	ObjAccount         = "Account"         // site accounts (sealed secrets)
	ObjSession         = "Session"         // remote sessions
)

// The permissions. Collection permissions are scoped: on a client, they
// hold when the client is in one of the operator's collections.
const (
	CollectionRead           Permission = "Collection:Read"           // see the collection and its clients
	CollectionCreate         Permission = "Collection:Create"         // create collections (limited to one in scope)
	CollectionModify         Permission = "Collection:Modify"         // change a collection's rules
	CollectionDelete         Permission = "Collection:Delete"         // delete a collection
	CollectionModifyResource Permission = "Collection:ModifyResource" // approve and block clients
	CollectionDeleteResource Permission = "Collection:DeleteResource" // delete clients
	CollectionRemoteControl  Permission = "Collection:RemoteControl"  // start remote sessions to clients
	CollectionViewInventory  Permission = "Collection:ViewInventory"  // hardware and software inventory
	CollectionDeploySettings Permission = "Collection:DeploySettings" // deploy client settings to it
	CollectionDeployPackages Permission = "Collection:DeployPackages" // deploy packages to it

	ClientSettingsRead   Permission = "ClientSettings:Read"
	ClientSettingsCreate Permission = "ClientSettings:Create"
	ClientSettingsModify Permission = "ClientSettings:Modify"
	ClientSettingsDelete Permission = "ClientSettings:Delete"

	PackageRead       Permission = "Package:Read"
	PackageCreate     Permission = "Package:Create"
	PackageModify     Permission = "Package:Modify"
	PackageDelete     Permission = "Package:Delete"
	PackageDistribute Permission = "Package:Distribute" // send content to other sites

	StatusMessageRead   Permission = "StatusMessage:Read"
	StatusMessageDelete Permission = "StatusMessage:Delete"

	SiteRead   Permission = "Site:Read"   // site services, settings
	SiteModify Permission = "Site:Modify" // site settings, status filter rules

	AdministratorRead   Permission = "Administrator:Read"
	AdministratorCreate Permission = "Administrator:Create"
	AdministratorModify Permission = "Administrator:Modify" // roles, collections, groups
	AdministratorDelete Permission = "Administrator:Delete" // revoke and delete

	SecurityRoleRead   Permission = "SecurityRole:Read"
	SecurityRoleCreate Permission = "SecurityRole:Create"
	SecurityRoleModify Permission = "SecurityRole:Modify"
	SecurityRoleDelete Permission = "SecurityRole:Delete"

	EnrollmentTokenRead   Permission = "EnrollmentToken:Read"
	EnrollmentTokenCreate Permission = "EnrollmentToken:Create"
	EnrollmentTokenDelete Permission = "EnrollmentToken:Delete" // revoke

	AccountRead   Permission = "Account:Read" // names and dates; never secrets
	AccountCreate Permission = "Account:Create"
	AccountModify Permission = "Account:Modify" // replace a secret
	AccountDelete Permission = "Account:Delete"

	SessionRead          Permission = "Session:Read" // list sessions and their audit
	SessionJoin          Permission = "Session:Join" // join a running session
	SessionViewRecording Permission = "Session:ViewRecording"
	SessionEnd           Permission = "Session:End" // end another operator's session
)

// catalog is every object type with its actions, in display order.
var catalog = []struct {
	object  string
	actions []string
}{
	{ObjCollection, []string{"Read", "Create", "Modify", "Delete", "ModifyResource", "DeleteResource", "RemoteControl", "ViewInventory", "DeploySettings", "DeployPackages"}},
	{ObjClientSettings, []string{"Read", "Create", "Modify", "Delete"}},
	{ObjPackage, []string{"Read", "Create", "Modify", "Delete", "Distribute"}},
	{ObjStatusMessage, []string{"Read", "Delete"}},
	{ObjSite, []string{"Read", "Modify"}},
	{ObjAdministrator, []string{"Read", "Create", "Modify", "Delete"}},
	{ObjSecurityRole, []string{"Read", "Create", "Modify", "Delete"}},
	{ObjEnrollmentToken, []string{"Read", "Create", "Delete"}},
	{ObjAccount, []string{"Read", "Create", "Modify", "Delete"}},
	{ObjSession, []string{"Read", "Join", "ViewRecording", "End"}},
}

// Objects lists the object types in display order.
func Objects() []string {
	out := make([]string, len(catalog))
	for i, c := range catalog {
		out[i] = c.object
	}
	return out
}

// Actions lists the actions of object, nil for an unknown object.
func Actions(object string) []string {
	for _, c := range catalog {
		if c.object == object {
			return slices.Clone(c.actions)
		}
	}
	return nil
}

// All lists every permission, in catalog order.
func All() []Permission {
	var out []Permission
	for _, c := range catalog {
		for _, a := range c.actions {
			out = append(out, Permission(c.object+":"+a))
		}
	}
	return out
}

// Valid reports whether p is in the catalog.
func (p Permission) Valid() bool { return slices.Contains(Actions(p.Object()), p.Action()) }

// ParsePermission reads "Object:Action" (case-insensitively) and returns the
// catalog's spelling. "Object:*" is every action of the object, so it
// returns a list. Errors list what is valid.
func ParsePermission(s string) ([]Permission, error) {
	obj, act, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || obj == "" || act == "" {
		return nil, fmt.Errorf("permission %q: write Object:Action, e.g. Collection:RemoteControl (objects: %s)", s, strings.Join(Objects(), ", "))
	}
	var object string
	for _, o := range Objects() {
		if strings.EqualFold(o, obj) {
			object = o
		}
	}
	if object == "" {
		return nil, fmt.Errorf("permission %q: unknown object type %q; valid are %s", s, obj, strings.Join(Objects(), ", "))
	}
	actions := Actions(object)
	if act == "*" {
		out := make([]Permission, len(actions))
		for i, a := range actions {
			out[i] = Permission(object + ":" + a)
		}
		return out, nil
	}
	for _, a := range actions {
		if strings.EqualFold(a, act) {
			return []Permission{Permission(object + ":" + a)}, nil
		}
	}
	return nil, fmt.Errorf("permission %q: %s has no action %q; valid are %s (or %s:*)", s, object, act, strings.Join(actions, ", "), object)
}

// ParsePermissions parses each of list (see ParsePermission).
func ParsePermissions(list []string) ([]Permission, error) {
	var out []Permission
	for _, s := range list {
		ps, err := ParsePermission(s)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return sortPerms(out), nil
}

// sortPerms sorts in catalog order and removes duplicates.
func sortPerms(ps []Permission) []Permission {
	order := map[Permission]int{}
	for i, p := range All() {
		order[p] = i
	}
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b Permission) int {
		oa, okA := order[a]
		ob, okB := order[b]
		switch {
		case okA && okB:
			return oa - ob
		case okA:
			return -1
		case okB:
			return 1
		}
		return strings.Compare(string(a), string(b))
	})
	return slices.Compact(out)
}

// Strings renders permissions as strings.
func Strings(ps []Permission) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}
