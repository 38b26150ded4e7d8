package client

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

func TestScanPackage(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("abcdefgh"), contracts.ChunkSize/8*2+100) // 2 full chunks and a tail
	must(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "bin", "tool"), big, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "copy"), big, 0o600)) // same chunks: stored once
	must(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	must(t, os.Symlink("bin/tool", filepath.Join(dir, "t")))

	src, err := ScanPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Files) != 3 || len(src.Links) != 1 || src.Size != int64(2*len(big)) {
		t.Fatalf("scan: %d files, %d links, %d bytes; want 3, 1, %d", len(src.Files), len(src.Links), src.Size, 2*len(big))
	}
	if src.Chunks() != 2 { // chunks 1 and 2 are equal (repeating bytes), the tail differs
		t.Fatalf("distinct chunks = %d, want 2", src.Chunks())
	}
	m := contracts.Manifest{Site: "S", Package: "p", Version: "1", ChunkSize: contracts.ChunkSize, Size: src.Size, Files: src.Files, Links: src.Links}
	if err := m.Validate(); err != nil {
		t.Fatalf("scanned manifest does not validate: %v", err)
	}
	for _, h := range src.order {
		b, err := src.readChunk(h)
		if err != nil || contracts.ChunkHash(b) != h {
			t.Fatalf("readChunk(%s): %v", h, err)
		}
	}
	// A file changed after the scan is noticed, not uploaded.
	must(t, os.WriteFile(filepath.Join(dir, "bin", "tool"), bytes.ToUpper(big), 0o755))
	must(t, os.Remove(filepath.Join(dir, "copy")))
	if _, err := src.readChunk(src.order[0]); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("readChunk after a change = %v, want 'changed'", err)
	}
}

func TestScanPackageRefusesEscapingLink(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644))
	must(t, os.Symlink("../../etc/passwd", filepath.Join(dir, "evil")))
	if _, err := ScanPackage(dir); err == nil || !strings.Contains(err.Error(), "escapes") {
		t.Fatalf("ScanPackage = %v, want an escaping link refused", err)
	}
	if _, err := ScanPackage(t.TempDir()); err == nil {
		t.Fatal("an empty directory made a package")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
