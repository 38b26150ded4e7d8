package rbac

import (
	"fmt"
	"slices"
	"strings"

	"github.com/stewardhq/steward/contracts"
)

// ClientPrincipals is what a client's inventory says of its own
// principals: its local administrators (contracts.Inventory.Admins) and,
// where the agent reports them, its local groups with their members.
type ClientPrincipals struct {
	Admins []string
	Groups map[string][]string
}

// Principal is a permitted-viewer entry taken apart: its kind when it says
// one ("group:helpdesk", "user:alice"), and its name without any domain.
type Principal struct {
	Kind string // "user", "group" or "" (either)
	Name string // lower case, without DOMAIN\ or @domain
}

// ParsePrincipal normalises a principal as written in a Permitted Viewers
// list or an inventory: "group:" or "user:" says what it is; a "DOMAIN\"
// prefix or an "@domain" suffix is dropped; case does not matter. So
// "LAB\Helpdesk", "helpdesk", "group:HELPDESK" and "helpdesk@lab.example"
// name the same group: the domain-qualified group name that made Systems
// Management Server prompt for credentials (Q287710) matches here.
func ParsePrincipal(s string) Principal {
	s = strings.TrimSpace(s)
	var p Principal
	if k, rest, ok := strings.Cut(s, ":"); ok && (strings.EqualFold(k, "group") || strings.EqualFold(k, "user")) {
		p.Kind, s = strings.ToLower(k), rest
	}
	if i := strings.LastIndexAny(s, `\/`); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		s = s[:i]
	}
	p.Name = strings.ToLower(strings.TrimSpace(s))
	return p
}

// builtinAccount reports a client's own superuser account, which is in
// every client's administrators and stands for no person: root (uid 0 on
// Linux), Windows's Administrator, and anything of BUILTIN\ or NT
// AUTHORITY\. Matching those would make an operator of that name (none
// may be added: contracts.ValidNewAdminName) every client's administrator.
func builtinAccount(s string) bool {
	s = strings.TrimSpace(s)
	if dom, _, ok := strings.Cut(s, `\`); ok && (strings.EqualFold(dom, "BUILTIN") || strings.EqualFold(dom, "NT AUTHORITY")) {
		return true
	}
	return slices.Contains(contracts.ReservedAccountNames, ParsePrincipal(s).Name)
}

// SamePrincipal reports whether a and b name the same principal, ignoring
// case, domain and kind prefixes.
func SamePrincipal(a, b string) bool {
	pa, pb := ParsePrincipal(a), ParsePrincipal(b)
	return pa.Name != "" && pa.Name == pb.Name
}

// PermittedViewer decides whether operator may be offered a remote session
// to a client whose Permitted Viewers list is viewers, as Configuration
// Manager does: the operator must be in the list (by name, or through a
// Steward administrator group it belongs to, or through one of the client's
// local groups that has it as a member), or be one of the client's local
// administrators. It says why, for the session's audit record. This is
// only the client-side half: the broker must also check the operator's
// Collection:RemoteControl permission on the client (Model.Allowed).
func PermittedViewer(m *Model, operator string, viewers []string, local ClientPrincipals) (bool, string) {
	ok, how, _ := PermittedVia(m, operator, viewers, local)
	return ok, how
}

// PermittedVia is PermittedViewer, also saying what admitted the
// operator (contracts.SessionGrant.Via): contracts.ViaViewer and the
// Permitted Viewers entry, or contracts.ViaAdmin and the local
// administrator account.
func PermittedVia(m *Model, operator string, viewers []string, local ClientPrincipals) (ok bool, how, via string) {
	e, err := m.user(operator)
	if err != nil {
		return false, err.Error(), ""
	}
	// Who the operator is: itself, and each Steward group it belongs to.
	self := ParsePrincipal(e.name).Name
	var groups []string
	if a, ok := m.admins[key(e.name)]; ok {
		for _, g := range a.MemberOf {
			groups = append(groups, ParsePrincipal(g).Name)
		}
	}
	isMe := func(p Principal) (bool, string) {
		if p.Name == "" {
			return false, ""
		}
		if p.Kind != "group" && p.Name == self {
			return true, "user " + e.name
		}
		if p.Kind != "user" {
			for _, g := range groups {
				if p.Name == g {
					return true, "administrator group " + g
				}
			}
		}
		return false, ""
	}
	for _, v := range viewers {
		p := ParsePrincipal(v)
		if ok, how := isMe(p); ok {
			return true, fmt.Sprintf("permitted viewer %q (%s)", v, how), contracts.ViaViewer + v
		}
		if p.Kind == "user" {
			continue
		}
		for g, members := range local.Groups {
			if ParsePrincipal(g).Name != p.Name {
				continue
			}
			for _, mem := range members {
				if builtinAccount(mem) {
					continue
				}
				if ok, how := isMe(ParsePrincipal(mem)); ok {
					return true, fmt.Sprintf("permitted viewer %q: local group %q has %s", v, g, how), contracts.ViaViewer + v
				}
			}
		}
	}
	for _, a := range local.Admins {
		if builtinAccount(a) {
			continue
		}
		if ok, how := isMe(ParsePrincipal(a)); ok {
			return true, fmt.Sprintf("local administrator %q (%s)", a, how), contracts.ViaAdmin + a
		}
	}
	return false, fmt.Sprintf("%s is not a permitted viewer of this client nor one of its local administrators", e.name), ""
}
