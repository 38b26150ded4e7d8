// Package cas tells a lost compare-and-set from other JetStream failures:
// a write made on condition of the last sequence (a KV Update or Create, a
// publish with an expected last subject sequence) that another writer
// beat. A single-replica stream reports it as error 10071, a replicated one
// as 10164, so a check of one code alone retries nothing in a cluster.
package cas

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Lost reports whether err is a lost compare-and-set.
func Lost(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && LostCode(apiErr.ErrorCode)
}

// LostCode reports whether a JetStream error code is a lost
// compare-and-set (as in a batch's acknowledgement).
func LostCode(code jetstream.ErrorCode) bool {
	return code == jetstream.JSErrCodeStreamWrongLastSequence || code == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
