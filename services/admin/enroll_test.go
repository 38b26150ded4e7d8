package admin

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// TestEnrollRaceKeepsTheTokenUse: requests of one key at once (an agent's
// retries, served by several admin instances) with a one-use token: the
// request that took the use and lost the identity's creation to another
// (which found the token spent and made the client pending) admits the
// client with it. The client was left pending and the token spent.
func TestEnrollRaceKeepsTheTokenUse(t *testing.T) {
	s, _ := testService(t, "LAB", nil)
	ctx := context.Background()
	op := contracts.SubjectInfo{Site: "LAB", Space: "op", Principal: "admin", Direction: "up"}
	const rounds = 400
	stuck := 0
	for range rounds {
		tok, err := s.createToken(ctx, op, &contracts.TokenCreateRequest{TTL: contracts.Duration(time.Hour), Uses: 1})
		if err != nil {
			t.Fatal(err)
		}
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		from := contracts.SubjectInfo{Site: "LAB", Space: "enroll", Principal: pub}
		req := &contracts.EnrollRequest{Name: "a", Token: tok.Token, Capability: 1}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { _, _ = s.enroll(ctx, from, req) })
		}
		wg.Wait()
		resp, err := s.enroll(ctx, from, req) // the agent retries what it lost
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != contracts.EnrollApproved {
			stuck++
			t.Logf("answered %s: %s", resp.Status, resp.Message)
		}
	}
	if stuck > 0 {
		t.Fatalf("%d of %d clients pending with their one-use token spent", stuck, rounds)
	}
}
