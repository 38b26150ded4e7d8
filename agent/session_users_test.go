package agent

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// listingCollector lists users on its own and fails a whole collection.
type listingCollector struct{ users []string }

func (c listingCollector) Collect(context.Context) (contracts.Inventory, error) {
	return contracts.Inventory{}, errors.New("a whole collection was made for a consent prompt")
}

func (c listingCollector) LoggedOnUsers(context.Context) ([]string, error) { return c.users, nil }

// TestLoggedOnUsersWithoutCollecting: who is logged on comes from the
// collector's own list when it has one, not from a whole inventory.
func TestLoggedOnUsersWithoutCollecting(t *testing.T) {
	a := &Agent{cfg: Config{Inventory: listingCollector{users: []string{"dave"}}}}
	got, err := a.loggedOnUsers(context.Background())
	if err != nil || !slices.Equal(got, []string{"dave"}) {
		t.Fatalf("got %v, %v; want [dave] without a collection", got, err)
	}
}
