package contracts

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Header is embedded first in every message: a versioned type string, a
// unique message ID (UUID) and the time the sender made it.
type Header struct {
	Type string    `json:"type"`
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// NewHeader stamps a header of the given type with a fresh ID and the time now.
func NewHeader(typ string) Header {
	return Header{Type: typ, ID: uuid.NewString(), Time: time.Now().UTC()}
}

// Typed is implemented by every message through its embedded Header.
type Typed interface{ MessageType() string }

// MessageType returns the type string.
func (h Header) MessageType() string { return h.Type }

// MaxMessageBytes bounds what a service will decode from a client; larger
// payloads are refused with CodeTooLarge before they are parsed.
const MaxMessageBytes = 64 << 10

// Decode reads a message of type want from data, refusing oversized payloads,
// malformed JSON and a type string other than want.
func Decode(data []byte, want string, v any) error {
	return DecodeLimit(data, want, v, MaxMessageBytes)
}

// DecodeLimit is Decode with another size limit, for types that are
// allowed to be larger (an outbox batch: MaxBatchBytes).
func DecodeLimit(data []byte, want string, v any, limit int) error {
	if len(data) > limit {
		return Errorf(CodeTooLarge, "message of %d bytes exceeds the %d-byte limit", len(data), limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return Errorf(CodeBadRequest, "malformed %s: %v", want, err)
	}
	if t, ok := v.(Typed); ok && t.MessageType() != want {
		return Errorf(CodeBadRequest, "message type %q, want %q", t.MessageType(), want)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return Errorf(CodeBadRequest, "invalid %s: %v", want, err)
		}
	}
	return nil
}

// Duration is a time.Duration that travels as Go's duration text ("24h0m0s").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads duration text such as "90s" or "24h".
// JSON null leaves d unchanged, as encoding/json does for its own types.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"24h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DedupWindow is how long JetStream remembers a Nats-Msg-Id, so a publisher
// retrying with the same ID within it never stores a message twice.
const DedupWindow = 2 * time.Minute

// HumanBytes says n bytes in binary units for people: "512 B", "1.5 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// HumanDuration says d to the second for people, without zero tails:
// 2m, 1m30s, 45s ("less than a second" under one).
func HumanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Second {
		return "less than a second"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
