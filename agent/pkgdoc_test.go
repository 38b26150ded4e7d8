package agent

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package of the module has a doc comment
// and that none is named like a junk drawer.
func TestPackageDocs(t *testing.T) {
	banned := map[string]bool{"util": true, "utils": true, "common": true, "helpers": true, "types": true, "misc": true}
	err := filepath.WalkDir(".", func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); dir != "." && (name == "testdata" || strings.HasPrefix(name, ".")) {
			return filepath.SkipDir
		}
		if banned[d.Name()] {
			t.Errorf("package dir %s: name it for what it does", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		sources, documented := 0, false
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			sources++
			documented = documented || f.Doc != nil
		}
		if sources > 0 && !documented {
			t.Errorf("package in %s has no doc comment", dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
