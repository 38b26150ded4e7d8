package collections

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Query is a compiled query rule: an Expr expression over an Env that
// yields a bool.
type Query struct {
	src    string
	prog   *vm.Program
	fields fieldSet // the Env fields it reads
}

// Source is the query's text.
func (q *Query) Source() string { return q.src }

// QueryError is a query that does not compile, with the position of the
// error (line and column from 1). Its text is one line, "line L, column C:
// message", fit for a wire error; Snippet shows the place.
type QueryError struct {
	Line, Column int
	Message      string
	Snippet      string // the line and a caret under the column, each after "\n | "
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// options are the compile options of every query: the Env as the only
// variables (an unknown name does not compile), a bool result, no clock
// (membership is evaluated when a client changes, not as time passes, so a
// query must not depend on the time), and the helper functions.
var options = []expr.Option{
	expr.Env(&Env{}),
	expr.AsBool(),
	expr.DisableBuiltin("now"),
	expr.Function("inSubnet", inSubnet, new(func(string, string) bool)),
	expr.Function("versionCompare", versionCompare, new(func(string, string) int)),
}

// Compile compiles a query rule. A query that does not compile or names a
// field Env does not have returns a *QueryError.
func Compile(src string) (*Query, error) {
	prog, err := expr.Compile(src, options...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &QueryError{Line: max(fe.Line, 1), Column: fe.Column + 1, Message: fe.Message, Snippet: fe.Snippet}
		}
		// Errors of the whole expression (its type) carry no position.
		return nil, &QueryError{Line: 1, Column: 1, Message: err.Error()}
	}
	return &Query{src: src, prog: prog, fields: readFields(prog.Node())}, nil
}

// readFields returns the Env fields a query reads: the identifiers that name
// one. $env (the whole environment) reads every field. A name bound by let
// and spelt like a field counts too, which only costs an evaluation.
func readFields(n ast.Node) fieldSet {
	var v fieldVisitor
	ast.Walk(&n, &v)
	return v.set
}

type fieldVisitor struct{ set fieldSet }

func (v *fieldVisitor) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	if id.Value == "$env" {
		v.set = allFields
		return
	}
	for f, name := range fieldNames {
		if id.Value == name {
			v.set |= 1 << field(f)
		}
	}
}

// match runs q on env with the machine m. A query that fails at run time
// (ips[0] of a client without addresses) does not match.
func (q *Query) match(m *vm.VM, env *Env) bool {
	out, err := m.Run(q.prog, env)
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

// Match reports whether env matches q.
func (q *Query) Match(env *Env) bool {
	var m vm.VM
	return q.match(&m, env)
}

// inSubnet(ip, cidr) reports whether the address ip is in the network cidr:
// any(ips, inSubnet(#, "10.1.0.0/16")).
func inSubnet(params ...any) (any, error) {
	ip, err := netip.ParseAddr(params[0].(string))
	if err != nil {
		return false, nil
	}
	p, err := netip.ParsePrefix(params[1].(string))
	if err != nil {
		return nil, fmt.Errorf("inSubnet: %w", err)
	}
	return p.Contains(ip.Unmap()), nil
}

// versionCompare(a, b) compares two version strings as package managers
// do, roughly: split at every character that is not a letter or a digit,
// numbers compared as numbers, words as text, a missing part less than any.
// It returns -1, 0 or 1: versionCompare(.version, "3.0.13") < 0.
func versionCompare(params ...any) (any, error) {
	return compareVersions(params[0].(string), params[1].(string)), nil
}

func compareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool {
			return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
		})
	}
	pa, pb := split(a), split(b)
	for i := range max(len(pa), len(pb)) {
		if i >= len(pa) {
			return -1
		}
		if i >= len(pb) {
			return 1
		}
		x, y := pa[i], pb[i]
		nx, ex := strconv.ParseUint(x, 10, 64)
		ny, ey := strconv.ParseUint(y, 10, 64)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
		case ex == nil: // a number sorts after a word: 1.0 > 1.rc1
			return 1
		case ey == nil:
			return -1
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	return 0
}
