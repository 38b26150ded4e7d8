package contracts

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Root is the first token of every Steward subject.
const Root = "steward"

// Subject kinds. A kind is one or more tokens, joined by '.', that follow
// ".up." or ".down." in an agent or operator subject; each token is checked.
const (
	KindHeartbeat = "heartbeat"
	KindApproval  = "approval" // inbox suffix on which a pending agent hears it was admitted

	KindTokensCreate   = "tokens.create"
	KindTokensList     = "tokens.list"
	KindTokensRevoke   = "tokens.revoke"
	KindClientsList    = "clients.list"
	KindClientsShow    = "clients.show"
	KindClientsApprove = "clients.approve"
	KindClientsBlock   = "clients.block"
	KindClientsDelete  = "clients.delete"
	KindSiteServices   = "site.services"
)

// ValidToken reports whether t may stand as one subject token: not empty, and
// without '.', '*', '>' or whitespace.
func ValidToken(t string) error {
	if t == "" {
		return fmt.Errorf("subject token is empty")
	}
	for _, r := range t {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("subject token %q contains %q (not allowed: '.', '*', '>', whitespace)", t, r)
		}
	}
	return nil
}

// kindTokens splits a kind such as "tokens.create" into its tokens.
func kindTokens(kind string) []string { return strings.Split(kind, ".") }

func join(tokens ...string) (string, error) {
	for _, t := range tokens {
		if err := ValidToken(t); err != nil {
			return "", err
		}
	}
	return strings.Join(tokens, "."), nil
}

// joinWild is join for subscription subjects. It validates nothing: its
// callers validate every token but the wildcards themselves.
func joinWild(tokens ...string) string {
	return strings.Join(tokens, ".")
}

// Enroll is the subject on which the un-enrolled key nkey asks site to enroll
// it. The key is part of the subject so that the server, not the payload,
// says who is asking: an unknown key may publish only on its own.
func Enroll(site, nkey string) (string, error) { return join(Root, site, "enroll", nkey) }

// EnrollAll subscribes to every enrollment request of site.
func EnrollAll(site string) (string, error) {
	if err := ValidToken(site); err != nil {
		return "", err
	}
	return joinWild(Root, site, "enroll", "*"), nil
}

// AgentUp is a subject on which client clientID publishes to the site.
func AgentUp(site, clientID, kind string) (string, error) {
	return join(append([]string{Root, site, "agent", clientID, "up"}, kindTokens(kind)...)...)
}

// AgentDown is a subject on which the site publishes to client clientID.
func AgentDown(site, clientID, kind string) (string, error) {
	return join(append([]string{Root, site, "agent", clientID, "down"}, kindTokens(kind)...)...)
}

// AgentUpAll subscribes to kind from every agent of site ("steward.<site>.agent.*.up.<kind>").
func AgentUpAll(site, kind string) (string, error) {
	if err := validAll(append([]string{site}, kindTokens(kind)...)); err != nil {
		return "", err
	}
	return joinWild(append([]string{Root, site, "agent", "*", "up"}, kindTokens(kind)...)...), nil
}

// OpUp is a subject on which operator publishes to the site.
func OpUp(site, operator, kind string) (string, error) {
	return join(append([]string{Root, site, "op", operator, "up"}, kindTokens(kind)...)...)
}

// OpDown is a subject on which the site publishes to operator.
func OpDown(site, operator, kind string) (string, error) {
	return join(append([]string{Root, site, "op", operator, "down"}, kindTokens(kind)...)...)
}

// OpUpAll subscribes to kind from every operator of site.
func OpUpAll(site, kind string) (string, error) {
	if err := validAll(append([]string{site}, kindTokens(kind)...)); err != nil {
		return "", err
	}
	return joinWild(append([]string{Root, site, "op", "*", "up"}, kindTokens(kind)...)...), nil
}

// Svc is a service-to-service subject.
func Svc(site, service, verb string) (string, error) { return join(Root, site, "svc", service, verb) }

// Event is the subject of a domain event of service (JetStream).
func Event(site, service, kind string) (string, error) {
	return join(Root, site, "event", service, kind)
}

// EventAll subscribes to every event of service.
func EventAll(site, service string) (string, error) {
	if err := validAll([]string{site, service}); err != nil {
		return "", err
	}
	return joinWild(Root, site, "event", service, ">"), nil
}

// Inbox is the reply-inbox prefix of a principal ("_INBOX.<principal>"),
// used with nats.CustomInboxPrefix. Only that principal may subscribe below it.
func Inbox(principal string) (string, error) { return join("_INBOX", principal) }

func validAll(tokens []string) error {
	for _, t := range tokens {
		if err := ValidToken(t); err != nil {
			return err
		}
	}
	return nil
}

// SubjectInfo is what a subject says about who sent it.
type SubjectInfo struct {
	Site      string
	Space     string // "agent", "op", "enroll", "svc", "event", "site"
	Principal string // client ID, operator name, enrolling nkey, service, or sending site
	Direction string // "up" or "down" for agent and op subjects
	Kind      string // the tokens after the direction, joined by '.'
}

// ParseSubject reads a Steward subject. Services use it to take the sender's
// identity from the subject the server let it publish on.
func ParseSubject(subject string) (SubjectInfo, error) {
	t := strings.Split(subject, ".")
	if len(t) < 3 || t[0] != Root {
		return SubjectInfo{}, fmt.Errorf("subject %q is not a steward subject", subject)
	}
	for _, tok := range t {
		if err := ValidToken(tok); err != nil {
			return SubjectInfo{}, fmt.Errorf("subject %q: %w", subject, err)
		}
	}
	si := SubjectInfo{Site: t[1], Space: t[2]}
	switch si.Space {
	case "enroll":
		if len(t) != 4 {
			return SubjectInfo{}, fmt.Errorf("enrollment subject %q must be steward.<site>.enroll.<nkey>", subject)
		}
		si.Principal = t[3]
	case "agent", "op":
		if len(t) < 6 || (t[4] != "up" && t[4] != "down") {
			return SubjectInfo{}, fmt.Errorf("subject %q must be steward.<site>.%s.<principal>.up|down.<kind>", subject, si.Space)
		}
		si.Principal, si.Direction, si.Kind = t[3], t[4], strings.Join(t[5:], ".")
	case "site":
		if len(t) < 5 {
			return SubjectInfo{}, fmt.Errorf("subject %q must be steward.<site>.site.<from>.<kind>", subject)
		}
		si.Principal, si.Kind = t[3], strings.Join(t[4:], ".")
	case "svc", "event":
		if len(t) < 5 {
			return SubjectInfo{}, fmt.Errorf("subject %q must be steward.<site>.%s.<service>.<kind>", subject, si.Space)
		}
		si.Principal, si.Kind = t[3], strings.Join(t[4:], ".")
	default:
		return SubjectInfo{}, fmt.Errorf("subject %q has unknown space %q", subject, si.Space)
	}
	return si, nil
}

// AgentSpace is everything below one direction ("up" or "down") of one
// client: "steward.<site>.agent.<clientID>.<dir>.>". Used in grants.
func AgentSpace(site, clientID, dir string) (string, error) {
	return space(site, "agent", clientID, dir)
}

// OpSpace is everything below one direction of one operator.
func OpSpace(site, operator, dir string) (string, error) { return space(site, "op", operator, dir) }

func space(site, kind, principal, dir string) (string, error) {
	if dir != "up" && dir != "down" {
		return "", fmt.Errorf("direction %q: must be up or down", dir)
	}
	s, err := join(Root, site, kind, principal, dir)
	if err != nil {
		return "", err
	}
	return s + ".>", nil
}
