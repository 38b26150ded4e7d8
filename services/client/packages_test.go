package client

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestScanPackageRootLink: a directory given by a link to it is read as
// the directory; links inside are entries, as ever.
func TestScanPackageRootLink(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "src1")
	must(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "bin", "tool"), []byte("tool"), 0o755))
	must(t, os.Symlink("bin/tool", filepath.Join(dir, "t")))
	must(t, os.Symlink("src1", filepath.Join(parent, "srclink")))
	src, err := ScanPackage(filepath.Join(parent, "srclink"))
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Files) != 1 || src.Files[0].Path != "bin/tool" || len(src.Links) != 1 || src.Links[0] != (contracts.ManifestLink{Path: "t", Target: "bin/tool"}) {
		t.Fatalf("scan through a link: files %+v, links %+v; want bin/tool and the link t", src.Files, src.Links)
	}
}

// TestPackageSourceCheck: a source over MaxPackageFiles, or whose
// manifest would pass MaxManifestBytes, is refused with the cause and the
// fix; one that fits is not.
func TestPackageSourceCheck(t *testing.T) {
	file := func(i int) contracts.ManifestFile {
		h := contracts.ChunkHash(fmt.Appendf(nil, "%d", i))
		return contracts.ManifestFile{Path: fmt.Sprintf("dir/file-%05d.txt", i), Mode: 0o644, Size: 10, SHA256: h, Chunks: []string{h}}
	}
	src := func(n int) *PackageSource {
		s := &PackageSource{Dir: "/src"}
		for i := range n {
			s.Files = append(s.Files, file(i))
		}
		return s
	}
	if err := src(3000).Check("tools", "1.0"); err != nil {
		t.Fatalf("3,000 small files: %v, want them taken", err)
	}
	err := src(5000).Check("tools", "1.0")
	if err == nil || !strings.Contains(err.Error(), "too many files and paths for one manifest") || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("5,000 small files: %v; want the manifest's size refused", err)
	}
	err = src(contracts.MaxPackageFiles+1).Check("tools", "1.0")
	if err == nil || !strings.Contains(err.Error(), "10001 files and links, and a package holds at most 10000") || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("10,001 files: %v; want the count refused", err)
	}
}

// TestPackageCreateTime: the site's time to read a version back grows
// with its size, a second per 32 MiB.
func TestPackageCreateTime(t *testing.T) {
	if got := PackageCreateTime(&PackageSource{Size: 2500 << 20}); got != 78*time.Second {
		t.Fatalf("2.5 GB: %s, want 78s", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
