package contracts

import (
	"strings"
	"testing"
)

func validManifest() Manifest {
	h := ChunkHash([]byte("data"))
	return Manifest{
		Header: NewHeader(TypeManifest), Site: "PAR", Package: "tools", Version: "1.0", ChunkSize: ChunkSize, Size: 4,
		Files: []ManifestFile{
			{Path: "bin/tool", Mode: 0o755, Size: 4, SHA256: h, Chunks: []string{h}},
			{Path: "empty", Mode: 0o644, Size: 0, SHA256: ChunkHash(nil)},
		},
		Links: []ManifestLink{{Path: "bin/t", Target: "tool"}},
	}
}

func TestManifestValidate(t *testing.T) {
	h := ChunkHash([]byte("data"))
	tests := []struct {
		name   string
		change func(*Manifest)
		want   string // "" valid
	}{
		{"valid", func(*Manifest) {}, ""},
		{"dotdot", func(m *Manifest) { m.Files[0].Path = "../etc/passwd" }, "escapes"},
		{"inner dotdot", func(m *Manifest) { m.Files[0].Path = "bin/../../x" }, "escapes"},
		{"absolute", func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }, "absolute"},
		{"backslash", func(m *Manifest) { m.Files[0].Path = `..\x` }, "backslash"},
		{"unclean", func(m *Manifest) { m.Files[0].Path = "bin//tool" }, "not clean"},
		{"dot", func(m *Manifest) { m.Files[0].Path = "./tool" }, "not clean"},
		{"control", func(m *Manifest) { m.Files[0].Path = "bin/to\nol" }, "control"},
		{"duplicate", func(m *Manifest) { m.Files[1].Path = "bin/tool" }, "twice"},
		{"link duplicates file", func(m *Manifest) { m.Links[0].Path = "bin/tool" }, "twice"},
		{"file under file", func(m *Manifest) { m.Files[1].Path = "bin/tool/x" }, "inside file"},
		{"file under link", func(m *Manifest) { m.Files[1].Path = "bin/t/x" }, "inside file or link"},
		{"link escapes", func(m *Manifest) { m.Links[0].Target = "../../etc" }, "escapes"},
		{"link absolute", func(m *Manifest) { m.Links[0].Target = "/etc/shadow" }, "escapes"},
		{"link path dotdot", func(m *Manifest) { m.Links[0].Path = "../t" }, "escapes"},
		{"missing file hash", func(m *Manifest) { m.Files[1].SHA256 = "" }, "hash"},
		{"size bomb", func(m *Manifest) { m.Size = MaxPackageBytes + 1 }, "at most"},
		{"file size bomb", func(m *Manifest) { m.Files[0].Size = 1 << 62 }, "out of range"},
		{"size mismatch", func(m *Manifest) { m.Size = 5 }, "add up"},
		{"chunk count", func(m *Manifest) { m.Files[0].Chunks = []string{h, h} }, "chunks for"},
		{"bad hash", func(m *Manifest) { m.Files[0].Chunks = []string{"zz"} }, "hash"},
		{"mode bits", func(m *Manifest) { m.Files[0].Mode = 0o4755 }, "mode"},
		{"chunk size", func(m *Manifest) { m.ChunkSize = 1 }, "chunk size"},
		{"no files", func(m *Manifest) { m.Files = nil; m.Size = 0 }, "at least one"},
		{"too many", func(m *Manifest) { m.Links = make([]ManifestLink, MaxPackageFiles) }, "at most"},
		{"bad name", func(m *Manifest) { m.Package = "a b" }, "package name"},
		{"bad version", func(m *Manifest) { m.Version = "1..0" }, "version"},
		{"bad site", func(m *Manifest) { m.Site = "P.R" }, "site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			tt.change(&m)
			err := m.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidLinkTarget(t *testing.T) {
	ok := [][2]string{{"a", "b"}, {"d/a", "../b"}, {"d/e/a", "../../b"}, {"a", "./b"}, {"d/a", "x/../y"}}
	for _, c := range ok {
		if err := ValidLinkTarget(c[0], c[1]); err != nil {
			t.Errorf("ValidLinkTarget(%q, %q) = %v, want nil", c[0], c[1], err)
		}
	}
	bad := [][2]string{{"a", "../b"}, {"d/a", "../../b"}, {"a", "/b"}, {"a", "x/../../b"}, {"a", ""}, {"a", `..\b`}}
	for _, c := range bad {
		if err := ValidLinkTarget(c[0], c[1]); err == nil {
			t.Errorf("ValidLinkTarget(%q, %q) = nil, want an error", c[0], c[1])
		}
	}
}

func TestManifestChunksDistinct(t *testing.T) {
	a, b := ChunkHash([]byte("a")), ChunkHash([]byte("b"))
	m := Manifest{Files: []ManifestFile{{Chunks: []string{a, b, a}}, {Chunks: []string{b}}}}
	got := m.Chunks()
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("Chunks() = %v, want [a b]", got)
	}
}
