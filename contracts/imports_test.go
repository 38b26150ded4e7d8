package contracts

import (
	"bufio"
	"bytes"
	"errors"
	"go/build"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// allowedImports are the only packages outside the standard library that
// contracts may depend on, directly or not. Everything in Steward imports
// contracts, so whatever it pulls in, everything pulls in.
var allowedImports = map[string]bool{
	"github.com/google/uuid": true,
}

// TestImports fails if the package (not its tests) depends on anything but the
// standard library and allowedImports.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.Bytes())
	}

	const module = "github.com/stewardhq/steward/contracts"
	self := ""
	var deps []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			t.Fatalf("go list line %q: got %d fields, want at least 2", sc.Text(), len(f))
		}
		path, standard := f[0], f[1] == "true"
		deps = append(deps, path)
		self = path // go list -deps prints the package itself last
		if standard || allowedImports[path] || path == module || strings.HasPrefix(path, module+"/") {
			continue
		}
		t.Errorf("contracts depends on %s: got a non-standard dependency, want only the standard library and %v", path, slices.Sorted(maps.Keys(allowedImports)))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if self != module {
		t.Errorf("go list -deps last package: got %q, want %q", self, module)
	}
	// Guard the guard: the list must really be the dependency list.
	for _, want := range []string{"encoding/json", "github.com/google/uuid"} {
		if !slices.Contains(deps, want) {
			t.Errorf("go list -deps: got no %s, want it among %v", want, deps)
		}
	}
}

// TestPackageDocs fails if any package of the module lacks a package doc
// comment that starts "Package <name> ".
func TestPackageDocs(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != "." {
			if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		pkg, err := build.ImportDir(path, 0)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil
		}
		if err != nil {
			return err
		}
		n++
		if want := "Package " + pkg.Name + " "; !strings.HasPrefix(pkg.Doc, want) {
			t.Errorf("package %s (%s) doc comment: got %q, want one starting %q", pkg.Name, path, pkg.Doc, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("packages found: got 0, want at least 1")
	}
}
