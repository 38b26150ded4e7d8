package state

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

func TestPolicyStore(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			p, err := s.Policy()
			if err != nil || p.Revision != 0 || p.RemoteControlUsers != nil {
				t.Fatalf("empty store: got %+v %v, want the zero policy", p, err)
			}
			level := "view"
			yes := true
			write := func(p *PolicyState) ([]Entry, error) {
				p.Revision, p.Applied = 7, time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
				p.Settings.RemoteTools = &contracts.RemoteToolsSettings{Enabled: &yes}
				p.Origins = map[string]contracts.Named{"remoteTools.enabled": {ID: "s1", Name: "Lab"}}
				p.Signed = []byte(`{"type":"steward.v1.signed_policy"}`)
				p.Local = LocalConfig{Values: &contracts.RemoteAssistanceValues{Level: &level}, Managed: true, Revision: 7}
				p.User = contracts.RemoteAssistanceValues{Solicited: &yes}
				p.RemoteControlUsers = &RemoteControlUsers{Members: []string{"alice"}, Revision: 7}
				return []Entry{testEntry("ack-7")}, nil
			}
			if _, err := s.UpdatePolicy(0, write); err != nil {
				t.Fatal(err)
			}
			got, err := s.Policy()
			if err != nil || got.Revision != 7 || !*got.Settings.RemoteTools.Enabled || got.Origins["remoteTools.enabled"].Name != "Lab" ||
				string(got.Signed) != `{"type":"steward.v1.signed_policy"}` || *got.Local.Values.Level != "view" || !got.Local.Managed ||
				!*got.User.Solicited || got.RemoteControlUsers.Members[0] != "alice" || got.LastRejection != nil {
				t.Fatalf("got %+v %v", got, err)
			}
			if pending, _ := s.Pending(0); len(pending) != 1 || pending[0].Item.ID != "ack-7" {
				t.Fatalf("got outbox %+v, want the acknowledgement enqueued with the policy", pending)
			}
			// What Policy returns is a copy.
			*got.Local.Values.Level = "none"
			if again, _ := s.Policy(); *again.Local.Values.Level != "view" {
				t.Fatalf("changing a returned state changed the store")
			}
			// ErrNoChange and any other error write nothing, not even the entries.
			for _, e := range []error{ErrNoChange, errors.New("boom")} {
				_, err := s.UpdatePolicy(0, func(p *PolicyState) ([]Entry, error) {
					p.Revision = 99
					return []Entry{testEntry("never")}, e
				})
				if !errors.Is(err, e) {
					t.Fatalf("got %v, want %v", err, e)
				}
			}
			if p, _ := s.Policy(); p.Revision != 7 {
				t.Fatalf("got revision %d after refused changes, want 7", p.Revision)
			}
			// A full outbox (of another kind) does not stop a change: its
			// acknowledgement takes the reserve past max, and past the
			// reserve it is dropped and counted, the change stored.
			n, _ := s.OutboxLen()
			dropped, err := s.UpdatePolicy(n, func(p *PolicyState) ([]Entry, error) {
				p.Revision = 8
				return []Entry{testEntry("ack-8")}, nil
			})
			if m, _ := s.OutboxLen(); err != nil || dropped != 0 || m != n+1 {
				t.Fatalf("a full outbox's reserve: dropped %d, %v; %d entries, want %d", dropped, err, m, n+1)
			}
			for range 20 {
				if _, err := s.Enqueue(0, testEntry("status")); err != nil {
					t.Fatal(err)
				}
			}
			n, _ = s.OutboxLen()
			dropped, err = s.UpdatePolicy(1, func(p *PolicyState) ([]Entry, error) {
				p.Revision = 9
				return []Entry{testEntry("ack-9")}, nil
			})
			if m, _ := s.OutboxLen(); err != nil || dropped != 1 || m != n {
				t.Fatalf("past the reserve: dropped %d, %v; %d entries, want %d", dropped, err, m, n)
			}
			if p, _ := s.Policy(); p.Revision != 9 {
				t.Fatalf("got revision %d past the outbox's reserve, want 9: the change is stored", p.Revision)
			}
			// Removing the records.
			if _, err := s.UpdatePolicy(0, func(p *PolicyState) ([]Entry, error) {
				p.RemoteControlUsers, p.Local = nil, LocalConfig{}
				p.LastRejection = &contracts.PolicyRejection{Revision: 9, Code: contracts.RejectReplay}
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			if p, _ := s.Policy(); p.RemoteControlUsers != nil || p.Local.Values != nil || p.LastRejection.Revision != 9 {
				t.Fatalf("got %+v", p)
			}
		})
	}
}

// TestPolicyUpgradeFromV2 opens a state.db of schema 2: identity and
// outbox survive, and the agent holds no policy yet.
func TestPolicyUpgradeFromV2(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "state-v2.db"), filepath.Join(dir, FileName))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, ok, err := s.GetIdentity()
	if err != nil || !ok || id.ClientID != testIdentity().ClientID {
		t.Fatalf("identity after upgrade: got %+v %v %v", id, ok, err)
	}
	p, err := s.Policy()
	if err != nil || p.Revision != 0 {
		t.Fatalf("policy after upgrade: got %+v %v, want none", p, err)
	}
	if _, err := s.UpdatePolicy(0, func(p *PolicyState) ([]Entry, error) { p.Revision = 3; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	commits := s.Commits()
	s.Close()
	if commits != 1 {
		t.Fatalf("got %d commits for one policy update, want 1", commits)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p, _ := s.Policy(); p.Revision != 3 {
		t.Fatalf("after reopen: got revision %d, want 3", p.Revision)
	}
	if pending, _ := s.Pending(0); len(pending) != 1 || pending[0].Item.ID != "old-1" {
		t.Fatalf("outbox after upgrade: got %+v", pending)
	}
}
