package state

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

func TestUseGrant(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			now := time.Now()
			fresh, err := s.UseGrant("g1", now.Add(time.Minute), now)
			if err != nil || !fresh {
				t.Fatalf("first use: got %v, %v; want fresh", fresh, err)
			}
			if fresh, err := s.UseGrant("g1", now.Add(time.Minute), now.Add(30*time.Second)); err != nil || fresh {
				t.Fatalf("second use: got %v, %v; want a replay", fresh, err)
			}
			if fresh, _ := s.UseGrant("g2", now.Add(time.Minute), now); !fresh {
				t.Fatal("another grant is not fresh")
			}
			// Past its time the ID is forgotten (the grant is refused as
			// expired before it gets here).
			if fresh, _ := s.UseGrant("g1", now.Add(3*time.Minute), now.Add(2*time.Minute)); !fresh {
				t.Fatal("an ID past its time was still remembered")
			}
			if _, err := s.UseGrant("", now, now); err == nil {
				t.Fatal("an empty grant ID was taken")
			}
		})
	}
}

func TestSessionLog(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			at := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
			rec := SessionRecord{SessionInfo: contracts.SessionInfo{ID: "s1", Operator: "alice", Kind: contracts.SessionShell, State: contracts.SessionActive}, Accepted: true, At: at}
			seq, err := s.LogSession(rec)
			if err != nil || seq == 0 {
				t.Fatalf("got %d, %v", seq, err)
			}
			if _, err := s.LogSession(SessionRecord{SessionInfo: contracts.SessionInfo{ID: "s2"}, Deny: contracts.DenyPolicy, Reason: "no", At: at}); err != nil {
				t.Fatal(err)
			}
			rec.Seq, rec.State, rec.EndReason = seq, contracts.SessionEnded, "the shell exited with status 0"
			if _, err := s.LogSession(rec); err != nil {
				t.Fatal(err)
			}
			got, err := s.SessionLog(0)
			if err != nil || len(got) != 2 {
				t.Fatalf("got %+v, %v; want 2 records", got, err)
			}
			if got[0].ID != "s2" || got[0].Deny != contracts.DenyPolicy || got[1].ID != "s1" || got[1].State != contracts.SessionEnded ||
				got[1].EndReason == "" || !got[1].At.Equal(at) {
				t.Fatalf("got %+v, want s2 refused then s1 ended", got)
			}
			if one, _ := s.SessionLog(1); len(one) != 1 || one[0].ID != "s2" {
				t.Fatalf("limit 1: got %+v", one)
			}
		})
	}
}

func TestSessionLogKeepsTheLastRecords(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			for i := range SessionLogMax + 5 {
				if _, err := s.LogSession(SessionRecord{SessionInfo: contracts.SessionInfo{ID: string(rune('a' + i%26))}}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.SessionLog(0)
			if err != nil || len(got) != SessionLogMax {
				t.Fatalf("got %d records, %v; want %d", len(got), err, SessionLogMax)
			}
			if got[0].Seq != SessionLogMax+5 || got[len(got)-1].Seq != 6 {
				t.Fatalf("got seqs %d..%d, want %d..6", got[0].Seq, got[len(got)-1].Seq, SessionLogMax+5)
			}
			// The end of a session that outlived a thousand records
			// rewrites a record that rolled out: dropped in both stores
			// (bbolt put it back for good, the memory store as newest).
			if seq, err := s.LogSession(SessionRecord{Seq: 3, SessionInfo: contracts.SessionInfo{ID: "long"}}); err != nil || seq != 3 {
				t.Fatalf("rewrite of a rolled-out record: %d, %v", seq, err)
			}
			got, _ = s.SessionLog(0)
			if len(got) != SessionLogMax || got[0].Seq != SessionLogMax+5 || got[len(got)-1].Seq != 6 {
				t.Fatalf("after the rewrite: %d records, seqs %d..%d; want %d, %d..6", len(got), got[0].Seq, got[len(got)-1].Seq, SessionLogMax, SessionLogMax+5)
			}
		})
	}
}

// TestSessionsUpgradeFromV3 opens a state.db of schema 3: grants and the
// session log start empty, and a grant taken survives a reopen.
func TestSessionsUpgradeFromV3(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "state-v3.db"), filepath.Join(dir, FileName))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if log, err := s.SessionLog(0); err != nil || len(log) != 0 {
		t.Fatalf("session log after upgrade: got %+v, %v", log, err)
	}
	now := time.Now()
	if fresh, err := s.UseGrant("g1", now.Add(time.Minute), now); err != nil || !fresh {
		t.Fatalf("got %v, %v", fresh, err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fresh, err := s.UseGrant("g1", now.Add(time.Minute), now); err != nil || fresh {
		t.Fatalf("after reopen: got %v, %v; want the grant remembered", fresh, err)
	}
}
