package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// stageTest is a stager over a fresh content directory whose chunks come
// from chunks, counting the fetches.
func stageTest(t *testing.T, contentDir string, m *contracts.Manifest, chunks map[string][]byte) (*stager, map[string]int) {
	t.Helper()
	st, err := newStager(contentDir, m)
	if err != nil {
		t.Fatal(err)
	}
	fetched := map[string]int{}
	st.fetch = func(_ context.Context, hash string, size int64) ([]byte, error) {
		fetched[hash]++
		data, ok := chunks[hash]
		if !ok || int64(len(data)) != size {
			return nil, errors.New("no such chunk")
		}
		return data, nil
	}
	return st, fetched
}

// TestStagerIgnoresPlantedLinks: links and strays found in the staging
// directory (a file's name a link to a file outside, a directory's name a
// link to a directory outside) are removed, never written through.
func TestStagerIgnoresPlantedLinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []testFile{{"f", 0o644, []byte("package file")}, {"d/x", 0o600, []byte("inside d")}}
	m, chunks := buildManifest("tools", "1", files, []contracts.ManifestLink{{Path: "l", Target: "d/x"}})
	content := filepath.Join(base, "content")
	staging := filepath.Join(content, stagingDirName, "tools@1")
	if err := os.MkdirAll(staging, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"f": victim, "d": filepath.Join(outside, "dir"), "l": victim, "stray": victim} {
		if err := os.Symlink(target, filepath.Join(staging, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(staging, "leftover"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := stageTest(t, content, &m, chunks)
	if err := st.stage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.install(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep me" {
		t.Fatalf("the file outside now holds %q", got)
	}
	if des, _ := os.ReadDir(filepath.Join(outside, "dir")); len(des) != 0 {
		t.Fatalf("the directory outside now holds %v", des)
	}
	dest := filepath.Join(content, "tools", "1")
	p := &testPackage{m: m, files: files}
	checkInstalled(t, dest, p)
	des, _ := os.ReadDir(dest)
	if len(des) != 3 {
		t.Fatalf("installed %v, want f, d and l only", des)
	}
	if fi, _ := os.Lstat(filepath.Join(dest, "d")); !fi.IsDir() {
		t.Fatalf("d is %v, want a directory", fi.Mode())
	}
}

// TestStagerResumesChunkByChunk: of a staged file whose second chunk is
// damaged and whose end is missing, only those chunks are fetched; a file
// longer than the manifest's is cut.
func TestStagerResumesChunkByChunk(t *testing.T) {
	content := t.TempDir()
	data := randomBytes(11, 4*contracts.ChunkSize+5)
	files := []testFile{{"a", 0o644, data}, {"b", 0o644, []byte("short")}}
	m, chunks := buildManifest("tools", "1", files, nil)
	staging := filepath.Join(content, stagingDirName, "tools@1")
	if err := os.MkdirAll(staging, 0o700); err != nil {
		t.Fatal(err)
	}
	partial := bytes.Clone(data[:3*contracts.ChunkSize])
	partial[contracts.ChunkSize+1] ^= 0xff
	if err := os.WriteFile(filepath.Join(staging, "a"), partial, 0o400); err != nil { // left read-only
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "b"), []byte("short and then some"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, fetched := stageTest(t, content, &m, chunks)
	if got := st.staged(); got != 3*contracts.ChunkSize+5 {
		t.Fatalf("staged: got %d, want %d", got, 3*contracts.ChunkSize+5)
	}
	if err := st.stage(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := m.Files[0].Chunks
	if len(fetched) != 3 || fetched[h[1]] != 1 || fetched[h[3]] != 1 || fetched[h[4]] != 1 {
		t.Fatalf("fetched %v, want chunks 2, 4 and 5 of a only", fetched)
	}
	if err := st.install(); err != nil {
		t.Fatal(err)
	}
	checkInstalled(t, filepath.Join(content, "tools", "1"), &testPackage{m: m, files: files})
}

// TestStagerReplacesAndFails: installing over a directory already there
// replaces it whole; a version whose chunks do not make the file's SHA-256
// fails and leaves the installed directory as it was.
func TestStagerReplacesAndFails(t *testing.T) {
	content := t.TempDir()
	dest := filepath.Join(content, "tools", "1")
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "old"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []testFile{{"new", 0o644, []byte("new")}}
	m, chunks := buildManifest("tools", "1", files, nil)
	bad := m
	bad.Files = []contracts.ManifestFile{m.Files[0]}
	bad.Files[0].SHA256 = contracts.ChunkHash([]byte("something else"))
	st, _ := stageTest(t, content, &bad, chunks)
	err := st.stage(context.Background())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("the manifest says")) {
		t.Fatalf("got %v, want a SHA-256 mismatch", err)
	}
	st.discard()
	if !exists(filepath.Join(dest, "old")) || exists(filepath.Join(dest, "new")) {
		t.Fatal("a failed version changed the installed directory")
	}

	st, _ = stageTest(t, content, &m, chunks)
	if err := st.stage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.install(); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dest, "old")) || !exists(filepath.Join(dest, "new")) {
		t.Fatal("the installed directory was not replaced whole")
	}
	if des, _ := os.ReadDir(filepath.Join(content, stagingDirName)); len(des) != 0 {
		t.Fatalf("staging holds %v after the install", des)
	}
}
