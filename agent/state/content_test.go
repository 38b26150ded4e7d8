package state

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

func testContent(pkg, version, st string) ContentEntry {
	return ContentEntry{
		Package: pkg, Version: version, State: st, Digest: contracts.ChunkHash([]byte(pkg + version)),
		Size: 42, Updated: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), Assigned: true,
	}
}

func TestContentIndex(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			defer s.Close()
			if idx, err := s.ContentIndex(); err != nil || len(idx) != 0 {
				t.Fatalf("empty store: got %+v, %v; want an empty index", idx, err)
			}
			tools := testContent("tools", "1.0", contracts.ContentInstalled)
			tools.Bytes, tools.Path, tools.Installed = 42, "/var/lib/steward-agent/content/tools/1.0", time.Date(2026, 11, 21, 9, 1, 0, 0, time.UTC)
			_, err := s.UpdateContent(0, func(idx map[string]ContentEntry) ([]Entry, error) {
				idx[tools.Key()] = tools
				e := testContent("agent-x", "2026-11-21", ContentDownloading)
				idx[e.Key()] = e
				return []Entry{testEntry("installed-1")}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ContentIndex()
			if err != nil || len(got) != 2 || got[0].Package != "agent-x" || got[1] != tools {
				t.Fatalf("got %+v, %v; want agent-x then tools as written", got, err)
			}
			if pending, _ := s.Pending(0); len(pending) != 1 || pending[0].Item.ID != "installed-1" {
				t.Fatalf("got outbox %+v, want the status message enqueued with the index", pending)
			}

			// Changes and deletions; fn sees the index as stored.
			_, err = s.UpdateContent(0, func(idx map[string]ContentEntry) ([]Entry, error) {
				if len(idx) != 2 || idx["tools@1.0"] != tools {
					t.Errorf("fn got %+v", idx)
				}
				delete(idx, "agent-x@2026-11-21")
				e := idx["tools@1.0"]
				e.Assigned, e.Reported = false, true
				idx["tools@1.0"] = e
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, _ = s.ContentIndex()
			if len(got) != 1 || got[0].Assigned || !got[0].Reported {
				t.Fatalf("got %+v, want tools alone, no longer assigned, reported", got)
			}

			// An error or an invalid entry writes nothing.
			boom := errors.New("boom")
			for _, tc := range []struct {
				name string
				max  int
				fn   func(idx map[string]ContentEntry) ([]Entry, error)
				want error
			}{
				{"error", 0, func(idx map[string]ContentEntry) ([]Entry, error) {
					clear(idx)
					return []Entry{testEntry("never")}, boom
				}, boom},
				{"bad name", 0, func(idx map[string]ContentEntry) ([]Entry, error) {
					e := testContent("../x", "1", contracts.ContentFailed)
					idx[e.Key()] = e
					return nil, nil
				}, nil},
				{"bad version", 0, func(idx map[string]ContentEntry) ([]Entry, error) {
					e := testContent("x", "..", contracts.ContentFailed)
					idx[e.Key()] = e
					return nil, nil
				}, nil},
				{"bad state", 0, func(idx map[string]ContentEntry) ([]Entry, error) {
					e := testContent("x", "1", "sending")
					idx[e.Key()] = e
					return nil, nil
				}, nil},
				{"wrong key", 0, func(idx map[string]ContentEntry) ([]Entry, error) {
					idx["other@1"] = testContent("x", "1", contracts.ContentFailed)
					return nil, nil
				}, nil},
			} {
				_, err := s.UpdateContent(tc.max, tc.fn)
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Errorf("%s: got %v, want an error (%v)", tc.name, err, tc.want)
				}
			}
			if got, _ := s.ContentIndex(); len(got) != 1 || got[0].Package != "tools" {
				t.Fatalf("after refused changes got %+v, want tools alone", got)
			}
			if n, _ := s.OutboxLen(); n != 1 {
				t.Fatalf("after refused changes got %d outbox entries, want 1", n)
			}

			// A full outbox (of another kind) does not stop a change: past
			// max and its reserve the entries are dropped, counted, and the
			// index is written.
			for range 20 {
				if _, err := s.Enqueue(0, testEntry("status")); err != nil {
					t.Fatal(err)
				}
			}
			n, _ := s.OutboxLen()
			dropped, err := s.UpdateContent(2, func(idx map[string]ContentEntry) ([]Entry, error) {
				e := testContent("tools", "1.0", contracts.ContentInstalled)
				idx[e.Key()] = e
				return []Entry{testEntry("n1"), testEntry("n2")}, nil
			})
			if m, _ := s.OutboxLen(); err != nil || dropped != 2 || m != n {
				t.Fatalf("a full outbox: dropped %d, %v; %d entries, want %d", dropped, err, m, n)
			}
			if got, _ := s.ContentIndex(); len(got) != 1 || got[0].State != contracts.ContentInstalled {
				t.Fatalf("after a change with a full outbox got %+v, want tools installed", got)
			}
		})
	}
}

// TestContentUpgradeFromV4 opens a state.db of schema 4: the content index
// starts empty, and what is written survives a reopen.
func TestContentUpgradeFromV4(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "state-v4.db"), filepath.Join(dir, FileName))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := s.ContentIndex(); err != nil || len(idx) != 0 {
		t.Fatalf("content index after upgrade: got %+v, %v", idx, err)
	}
	e := testContent("tools", "1.0", contracts.ContentInstalled)
	if _, err := s.UpdateContent(0, func(idx map[string]ContentEntry) ([]Entry, error) { idx[e.Key()] = e; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if idx, err := s.ContentIndex(); err != nil || len(idx) != 1 || idx[0] != e {
		t.Fatalf("after reopen: got %+v, %v; want the entry", idx, err)
	}
}
