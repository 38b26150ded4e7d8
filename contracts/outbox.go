package contracts

import (
	"encoding/json"
	"fmt"
	"time"
)

// Message type strings of the agent outbox.
const (
	TypeOutboxBatch = "steward.v1.outbox_batch"
	TypeOutboxAck   = "steward.v1.outbox_ack"
)

// Outbox limits: a batch holds at most MaxBatchItems items and
// MaxBatchBytes of JSON (under the server's 1 MiB payload limit).
const (
	MaxBatchItems = 500
	MaxBatchBytes = 900 << 10
)

// OutboxItem is one message an agent keeps in its outbox until the site
// acknowledges it. ID is a UUID the agent chose when it wrote the item; the
// site stores it with Nats-Msg-Id = ID, so a resend never stores it twice.
type OutboxItem struct {
	ID   string          `json:"id"`
	Type string          `json:"type"` // the message type of Data
	Time time.Time       `json:"time"` // when the agent wrote it
	Data json.RawMessage `json:"data"`
}

// OutboxBatch is sent by an agent as a request on AgentUp(site, id, kind):
// items of one kind, oldest first.
type OutboxBatch struct {
	Header
	Items []OutboxItem `json:"items"`
}

// Validate checks the batch's shape (the items' contents are checked one by
// one by the receiving service).
func (b *OutboxBatch) Validate() error {
	if len(b.Items) == 0 || len(b.Items) > MaxBatchItems {
		return fmt.Errorf("a batch holds 1 to %d items, not %d", MaxBatchItems, len(b.Items))
	}
	seen := make(map[string]bool, len(b.Items))
	for i, it := range b.Items {
		if err := ValidToken(it.ID); err != nil || len(it.ID) > 64 {
			return fmt.Errorf("item %d: bad id %q", i, it.ID)
		}
		if seen[it.ID] {
			return fmt.Errorf("item %d: id %s repeated", i, it.ID)
		}
		seen[it.ID] = true
	}
	return nil
}

// OutboxAck answers a batch after the site's own writes have committed.
// Stored items are durable at the site; Rejected items can never be stored
// (malformed) and the agent drops them after logging. Items in neither list
// stay in the outbox and are sent again.
type OutboxAck struct {
	Header
	Stored   []string          `json:"stored"`
	Rejected []OutboxRejection `json:"rejected,omitempty"`
}

// OutboxRejection says why an item was refused for good.
type OutboxRejection struct {
	ID      string `json:"id"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
}
