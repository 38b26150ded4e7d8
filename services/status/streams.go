package status

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// Where status messages are stored.
//
// Two streams with limits of their own, so that what agents send (and child
// sites forward) can never evict the site's own records, audit included:
//
//	Stream (STATUS)             steward.<site>.event.status.msg.<component>.<severity>.<source>
//	                            the site's services, through the Emitter
//	AgentStream (STATUS_AGENTS) steward.<site>.event.status.agents.<component>.<severity>.<source>
//	                            agents' outbox batches (ingest.go) and child
//	                            sites' forwards (forward.go)
//
// Each discards its oldest messages at its own MaxBytes and MaxAge: one
// agent within its rate limit fills AgentStream in minutes, and what goes
// then is other agents' older messages, never an audit record. Stream is
// the stream every earlier version stored everything in: a site that
// restarts with this version keeps it (name, subjects, limits) and what it
// holds; those older agent messages age out of it.
//
// Queries (list, show, rules test), the rules processor and follows read
// both: the processor and follows with a consumer each, queries by merging
// the two in the order they were stored (scan in query.go), with a cursor
// that holds a position in each.

// Subject tokens after steward.<site>.event.status: the site's own
// messages (contracts.StatusSubject) and agents' and child sites'.
const (
	siteToken   = "msg"
	agentsToken = "agents"
)

// storeStream is one of the two streams of status messages.
type storeStream struct {
	name   string
	token  string // siteToken or agentsToken
	stream jetstream.Stream
}

// statusStreamConfig is the configuration of a stream of status messages
// whose subjects are steward.<site>.event.status.<token>.>.
func statusStreamConfig(cfg Config, name, description, token string, maxAge time.Duration, maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: description,
		Subjects:    []string{storedSubjectAll(cfg.Site, token)},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		Duplicates:  cfg.Duplicates,
		MaxMsgSize:  contracts.MaxMessageBytes,
		AllowDirect: true,
		// Agents' messages are stored many to a disk sync (jsbatch).
		// Set here, not after: an update without it would turn it off
		// under the other instances for a moment.
		AllowAtomicPublish: true,
	}
}

// storedSubject is the subject a message of component, severity and
// source is stored on in the stream of token: the site's own
// (contracts.StatusSubject) or agents' and child sites'.
func storedSubject(token, site, component, severity, source string) (string, error) {
	subj, err := contracts.StatusSubject(site, component, severity, source)
	if err != nil || token == siteToken {
		return subj, err
	}
	return retoken(subj, token), nil
}

// storedSubjectAll matches every message of the stream of token.
func storedSubjectAll(site, token string) string {
	all, _ := contracts.StatusSubjectAll(site)
	return retoken(all, token)
}

// retoken puts token in place of the fifth token ("msg") of a status
// subject or filter.
func retoken(subject, token string) string {
	t := strings.SplitN(subject, ".", 6)
	if len(t) < 5 || t[4] != siteToken {
		panic(fmt.Sprintf("status: %q is not a status message subject", subject))
	}
	t[4] = token
	return strings.Join(t, ".")
}
