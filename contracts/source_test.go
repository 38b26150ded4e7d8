package contracts

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
)

// constDecl is one exported constant as written in the package's source.
type constDecl struct {
	Name string
	Type string      // the declared type's name, "" when untyped
	Lit  string      // the literal value, unquoted for strings; "" when not a literal
	Kind token.Token // token.STRING, token.INT, ...; token.ILLEGAL when not a literal
	Pos  string      // file:line, for failure messages
}

// sourceConsts parses the package's non-test Go files (those the build
// would use) and returns every exported constant. Tests use it so that a
// new Type* or Code* constant cannot slip past them: the source, not a list
// in a test, is what is checked.
func sourceConsts(t *testing.T) []constDecl {
	t.Helper()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatalf("build.ImportDir: %v", err)
	}
	fset := token.NewFileSet()
	var out []constDecl
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			typ := "" // carried to specs that repeat the previous one implicitly
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				if vs.Type != nil {
					typ = typeName(vs.Type)
				} else if len(vs.Values) > 0 {
					typ = ""
				}
				for i, n := range vs.Names {
					if !n.IsExported() {
						continue
					}
					c := constDecl{Name: n.Name, Type: typ, Kind: token.ILLEGAL, Pos: fset.Position(n.Pos()).String()}
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
							c.Kind, c.Lit = lit.Kind, lit.Value
							if lit.Kind == token.STRING {
								if c.Lit, err = strconv.Unquote(lit.Value); err != nil {
									t.Fatalf("%s: unquote %s: %v", c.Pos, lit.Value, err)
								}
							}
						}
					}
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// typeName names a type expression, "" when it is not a plain identifier.
func typeName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
