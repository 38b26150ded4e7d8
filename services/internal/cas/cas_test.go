package cas

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// TestLost: the conflicts a real server reports are lost compare-and-sets;
// a replicated stream's code, wrapped as nats.go wraps it for a KV, is one
// too; other failures are not.
func TestLost(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(ctx, "k", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	_, errCreate := kv.Create(ctx, "k", []byte("2"))
	_, errUpdate := kv.Update(ctx, "k", []byte("2"), rev+1)
	m := nats.NewMsg("$KV.b.k")
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	_, errPublish := js.PublishMsg(ctx, m)
	_, errMissing := kv.Get(ctx, "nothing")
	replicated := fmt.Errorf("%w: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}, jetstream.ErrKeyExists)
	for _, c := range []struct {
		what string
		err  error
		want bool
	}{
		{"create of an existing key", errCreate, true},
		{"update at an old revision", errUpdate, true},
		{"publish expecting no message", errPublish, true},
		{"a replicated stream's conflict", replicated, true},
		{"a missing key", errMissing, false},
		{"another error", errors.New("timeout"), false},
		{"no error", nil, false},
	} {
		if got := Lost(c.err); got != c.want {
			t.Errorf("%s: Lost(%v) = %v, want %v", c.what, c.err, got, c.want)
		}
	}
}
