package client

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// TestConnectNamesAgree: --site and --operator fill in what the identity
// file does not say, and are refused, before any dialing, when they
// contradict it (a stale STEWARD_SITE would otherwise send every request
// to a site nobody answers for).
func TestConnectNamesAgree(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	path := filepath.Join(t.TempDir(), "op.nk")
	if err := WriteIdentity(path, Identity{Site: "REV", Operator: "alice", Seed: seed}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		site, operator, want string
	}{
		{"WRONG", "", `identity ` + path + ` is for site "REV", but --site (or env STEWARD_SITE) says "WRONG"`},
		{"", "bob", `is for operator "alice", but --operator (or env STEWARD_OPERATOR) says "bob"`},
	} {
		_, err := Connect(context.Background(), Options{Server: "nats://127.0.0.1:1", Identity: path, Site: tc.site, Operator: tc.operator})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("site %q operator %q: got %v, want %q", tc.site, tc.operator, err, tc.want)
		}
	}
	// Agreeing is no error of names: the connection itself fails (no
	// server there).
	_, err := Connect(context.Background(), Options{Server: "nats://127.0.0.1:1", Identity: path, Site: "REV", Operator: "alice"})
	if err == nil || strings.Contains(err.Error(), "says") {
		t.Errorf("agreeing names: got %v, want a connection error", err)
	}
}
