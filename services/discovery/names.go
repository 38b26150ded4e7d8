package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// Collection names are unique, in any case. The model's check sees only
// what this instance has applied, so two instances (or one instance's
// create and rename, served at once) could each find a name free and store
// two collections of it. A create or rename therefore first takes the
// name's key in CollectionNamesBucket, create-only, and writes the
// definition after; a delete or rename gives the old name back.

// staleReservation is how old a reservation must be before a collection
// that does not hold the name may take it over: its holder died between
// the reservation and its write, or a rename's release was lost.
const staleReservation = 2 * writeTimeout

// nameKey is the key of a collection name.
func nameKey(name string) string {
	h := sha256.Sum256([]byte(strings.ToLower(name)))
	return hex.EncodeToString(h[:16])
}

// reserveName takes name for collection id. A name another collection
// holds, or was given a moment ago, is CodeConflict.
func (s *Service) reserveName(ctx context.Context, name, id string) error {
	key := nameKey(name)
	for range maxAttempts {
		_, err := s.namesKV.Create(ctx, key, []byte(id))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return contracts.Errorf(contracts.CodeUnavailable, "reserve the collection name %q: %v", name, err)
		}
		e, err := s.namesKV.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // given back meanwhile
		case err != nil:
			return contracts.Errorf(contracts.CodeUnavailable, "reserve the collection name %q: %v", name, err)
		}
		holder := string(e.Value())
		if holder == id {
			return nil
		}
		held, err := s.holdsName(ctx, holder, name)
		if err != nil {
			return err
		}
		// The entry's time is the server's: measured against the wall
		// clock, not the service's (a test's may be anywhere).
		if held || time.Since(e.Created()) < staleReservation {
			return contracts.Errorf(contracts.CodeConflict, "a collection named %q exists", name)
		}
		if _, err := s.namesKV.Update(ctx, key, []byte(id), e.Revision()); err != nil && !conflict(err) {
			return contracts.Errorf(contracts.CodeUnavailable, "reserve the collection name %q: %v", name, err)
		} else if err == nil {
			return nil
		}
	}
	return contracts.Errorf(contracts.CodeConflict, "the collection name %q is being taken: try again", name)
}

// holdsName reports whether collection id is stored under name.
func (s *Service) holdsName(ctx context.Context, id, name string) (bool, error) {
	e, err := s.collKV.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return false, nil
	case err != nil:
		return false, contracts.Errorf(contracts.CodeUnavailable, "read collection %s: %v", id, err)
	}
	var rec collectionRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		return false, nil
	}
	return strings.EqualFold(rec.Name, name), nil
}

// releaseName gives name back if collection id holds it. A release that
// fails leaves a reservation another collection takes over once stale.
func (s *Service) releaseName(name, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := nameKey(name)
	e, err := s.namesKV.Get(ctx, key)
	if err != nil || string(e.Value()) != id {
		return
	}
	if err := s.namesKV.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !conflict(err) {
		s.log.Warn("collection name not given back; it is taken over once stale", "name", name, "collection", id, "err", err)
	}
}
