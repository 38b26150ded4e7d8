package contracts

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestManifestBytes: the size a create request's manifest is told to
// have is never below the JSON of the manifest a site makes of it, with
// its own header, site code, creator and times.
func TestManifestBytes(t *testing.T) {
	req := PackageCreateRequest{Package: "tools", Version: "1.0"}
	for i := range 100 {
		h := ChunkHash(fmt.Appendf(nil, "%d", i))
		req.Files = append(req.Files, ManifestFile{Path: fmt.Sprintf("bin/tool-%d", i), Mode: 0o755, Size: 10, SHA256: h, Chunks: []string{h}})
	}
	req.Links = []ManifestLink{{Path: "t", Target: "bin/tool-0"}}
	now := time.Now().UTC()
	req.Header = NewHeader(TypePackageCreateRequest)
	for _, site := range []string{"PAR", strings.Repeat("S", 64)} {
		m := Manifest{Header: NewHeader(TypeManifest), Site: site, Package: req.Package, Version: req.Version, Created: now,
			CreatedBy: strings.Repeat("o", 64), ChunkSize: ChunkSize, Size: 1000, Files: req.Files, Links: req.Links}
		b, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.ManifestBytes(); got < len(b) {
			t.Fatalf("ManifestBytes = %d, but the manifest of site %s is %d bytes", got, site, len(b))
		}
		if got := req.ManifestBytes(); got > len(b)+200 {
			t.Fatalf("ManifestBytes = %d, far over the manifest's %d bytes", got, len(b))
		}
	}
	b, err := json.Marshal(&req)
	if err != nil || req.ManifestBytes() < len(b) {
		t.Fatalf("the request of %d bytes (%v) is larger than its manifest is said to be", len(b), err)
	}
}
