package integration

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// TestUnknownOperatorFailsFast: an identity the site does not know (the
// keygen flow before `admins add`) is told so at once, with the command
// that adds it, instead of waiting out --timeout and blaming the server.
func TestUnknownOperatorFailsFast(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	path := filepath.Join(t.TempDir(), "kk.nk")
	if err := client.WriteIdentity(path, client.Identity{Site: "LAB", Operator: "kk", Seed: seed}); err != nil {
		t.Fatal(err)
	}
	c, err := client.Connect(context.Background(), client.Options{Server: rs.URL(), Identity: path, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Waiting out the timeout would end in unavailable (no answer).
	_, err = c.ClientsList(ctx, "")
	if contracts.CodeOf(err) != contracts.CodePermissionDenied || !errors.Is(err, client.ErrIdentityRefused) || !strings.Contains(err.Error(), "steward admins add kk --public-key "+pub) {
		t.Fatalf("got %v, want permission denied with the command that adds the key", err)
	}
	// A command that would go on past a permission it lacks (session
	// tunnel's policy check) stops on this one.
	if _, _, err := steward(t, rs, path, "", "session", "tunnel", "web-01", "--port", "22", "--local", "127.0.0.1:0"); !errors.Is(err, client.ErrIdentityRefused) {
		t.Fatalf("session tunnel with an unknown identity: %v, want refused before listening", err)
	}
}
