package state

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// stores runs the suite against every Store implementation.
var stores = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"bolt", func(t *testing.T) Store {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"memory", func(t *testing.T) Store { return NewMemStore() }},
}

func testIdentity() Identity {
	return Identity{
		ClientID:   "0b7c6c1e-8c1f-4c31-9d55-0f1f9a3b2d11",
		AgentKey:   "UAGENTKEY",
		Site:       "LAB",
		SiteKey:    "OSITEKEY",
		Name:       "pc-042",
		Server:     "nats://127.0.0.1:4222",
		EnrolledAt: time.Date(2026, 11, 21, 9, 30, 0, 123456789, time.FixedZone("CET", 3600)),
	}
}

func TestStore(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("EmptyHasNoIdentity", func(t *testing.T) {
				s := st.open(t)
				defer s.Close()
				id, ok, err := s.GetIdentity()
				if err != nil || ok {
					t.Fatalf("got %+v, %v, %v; want no identity and no error", id, ok, err)
				}
			})
			t.Run("IdentityRoundTrip", func(t *testing.T) {
				s := st.open(t)
				defer s.Close()
				want := testIdentity()
				if err := s.PutIdentity(want); err != nil {
					t.Fatal(err)
				}
				got, ok, err := s.GetIdentity()
				if err != nil || !ok {
					t.Fatalf("got ok=%v err=%v, want the identity", ok, err)
				}
				if !got.EnrolledAt.Equal(want.EnrolledAt) {
					t.Fatalf("got enrolled at %v, want %v", got.EnrolledAt, want.EnrolledAt)
				}
				got.EnrolledAt, want.EnrolledAt = time.Time{}, time.Time{}
				if got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			})
			t.Run("PutReplaces", func(t *testing.T) {
				s := st.open(t)
				defer s.Close()
				first := testIdentity()
				second := testIdentity()
				second.ClientID, second.Name = "c2", "pc-043"
				for _, id := range []Identity{first, second} {
					if err := s.PutIdentity(id); err != nil {
						t.Fatal(err)
					}
				}
				got, _, err := s.GetIdentity()
				if err != nil || got.ClientID != "c2" || got.Name != "pc-043" {
					t.Fatalf("got %+v, %v; want the second identity", got, err)
				}
			})
			t.Run("InvalidIdentityRefused", func(t *testing.T) {
				s := st.open(t)
				defer s.Close()
				for name, mutate := range map[string]func(*Identity){
					"no client id":    func(id *Identity) { id.ClientID = "" },
					"dotted site":     func(id *Identity) { id.Site = "A.B" },
					"no site key":     func(id *Identity) { id.SiteKey = "" },
					"no agent key":    func(id *Identity) { id.AgentKey = "" },
					"blank name":      func(id *Identity) { id.Name = "" },
					"no enrolled at":  func(id *Identity) { id.EnrolledAt = time.Time{} },
					"wildcard client": func(id *Identity) { id.ClientID = "*" },
				} {
					id := testIdentity()
					mutate(&id)
					if err := s.PutIdentity(id); err == nil {
						t.Errorf("%s: got no error, want one", name)
					}
				}
				if _, ok, _ := s.GetIdentity(); ok {
					t.Fatal("an invalid identity was stored")
				}
			})
			t.Run("Concurrent", func(t *testing.T) {
				s := st.open(t)
				defer s.Close()
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						for range 20 {
							if err := s.PutIdentity(testIdentity()); err != nil {
								t.Error(err)
								return
							}
							if _, _, err := s.GetIdentity(); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
			t.Run("ClosedStoreErrors", func(t *testing.T) {
				s := st.open(t)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("second close: got %v, want nil", err)
				}
				if _, _, err := s.GetIdentity(); !errors.Is(err, ErrClosed) {
					t.Fatalf("get after close: got %v, want ErrClosed", err)
				}
				if err := s.PutIdentity(testIdentity()); !errors.Is(err, ErrClosed) {
					t.Fatalf("put after close: got %v, want ErrClosed", err)
				}
			})
		})
	}
}

func testEntry(id string) Entry {
	return Entry{Kind: "status", Item: contracts.OutboxItem{ID: id, Type: "steward.v1.status_message", Time: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), Data: json.RawMessage(`{"n":1}`)}}
}

func TestOutbox(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			seqs, err := s.Enqueue(0, testEntry("a"), testEntry("b"), testEntry("c"))
			if err != nil {
				t.Fatal(err)
			}
			if len(seqs) != 3 || !(seqs[0] < seqs[1] && seqs[1] < seqs[2]) {
				t.Fatalf("got seqs %v, want three increasing", seqs)
			}
			got, err := s.Pending(2)
			if err != nil || len(got) != 2 || got[0].Item.ID != "a" || got[1].Item.ID != "b" {
				t.Fatalf("got %+v, %v; want a, b oldest first", got, err)
			}
			if string(got[0].Item.Data) != `{"n":1}` || got[0].Kind != "status" || got[0].Seq != seqs[0] {
				t.Fatalf("got %+v, want the entry as written", got[0])
			}
			if err := s.Remove(seqs[0], seqs[2]); err != nil {
				t.Fatal(err)
			}
			got, _ = s.Pending(0)
			if len(got) != 1 || got[0].Item.ID != "b" {
				t.Fatalf("after remove got %+v, want only b", got)
			}
			if n, _ := s.OutboxLen(); n != 1 {
				t.Fatalf("got len %d, want 1", n)
			}
			// The cap refuses rather than grow.
			if _, err := s.Enqueue(2, testEntry("d"), testEntry("e")); !errors.Is(err, ErrOutboxFull) {
				t.Fatalf("got %v, want ErrOutboxFull", err)
			}
			if n, _ := s.OutboxLen(); n != 1 {
				t.Fatalf("a refused enqueue wrote %d entries", n-1)
			}
			// New entries sort after old ones even after removals.
			more, _ := s.Enqueue(0, testEntry("f"))
			if more[0] <= seqs[2] {
				t.Fatalf("got seq %d after %d, want it larger", more[0], seqs[2])
			}
		})
	}
}

func TestOutboxSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(0, testEntry("kept")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Pending(0)
	if err != nil || len(got) != 1 || got[0].Item.ID != "kept" {
		t.Fatalf("got %+v, %v; want the entry kept across reopen", got, err)
	}
}

func TestLastReport(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			if _, ok, err := s.LastReport(); ok || err != nil {
				t.Fatalf("got ok=%v err=%v before any report, want none", ok, err)
			}
			r := Report{Seq: 3, Collected: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), Inventory: contracts.Inventory{Arch: "amd64"}}
			if err := s.EnqueueReport(0, testEntry("rep"), r); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.LastReport()
			if err != nil || !ok || got.Seq != 3 || got.Inventory.Arch != "amd64" {
				t.Fatalf("got %+v ok=%v err=%v, want seq 3", got, ok, err)
			}
			pending, _ := s.Pending(0)
			if len(pending) != 1 || pending[0].Item.ID != "rep" {
				t.Fatalf("got outbox %+v, want the report entry", pending)
			}
			// A full outbox refuses the report and keeps the old base.
			if err := s.EnqueueReport(1, testEntry("rep2"), Report{Seq: 4}); !errors.Is(err, ErrOutboxFull) {
				t.Fatalf("got %v, want ErrOutboxFull", err)
			}
			if got, _, _ := s.LastReport(); got.Seq != 3 {
				t.Fatalf("got base seq %d after a refused report, want 3", got.Seq)
			}
		})
	}
}
