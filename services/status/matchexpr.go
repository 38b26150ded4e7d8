package status

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/stewardhq/steward/contracts"
)

// Hardened expressions.
//
// A rule's match expression is written by an operator with Site:Modify (not
// necessarily a Full Administrator) and runs in the site's process on
// every stored message. expr's memory budget (vm.MemoryBudget) is charged
// only by ranges, array and map literals and a few builtins, and several
// builtins allocate before (or without) charging it: repeat, replace,
// join, split, toJSON, toBase64, map and reduce retaining what each turn
// makes, string of a large value, string concatenation with + (doubling
// with let or reduce). `len(repeat(repeat("x", 999999), 1000000)) > 0`
// asks for a terabyte, and the Go runtime ends the whole process when it
// cannot have it (not a panic: nothing recovers).
//
// So a match is compiled from a subset in which whatever is allocated is
// bounded by the message and the expression (at most
// contracts.MaxRuleMatch characters, maxMatchNodes nodes):
//
//   - only the builtins in boundedBuiltins: predicates that return a
//     boolean, a count or one element (all, any, none, one, count, find…),
//     and functions that copy nothing large (len, trim, indexOf,
//     hasPrefix, keys, values, first, get, int, duration, date, now…);
//   - string() only of a number, a boolean or a string;
//   - + only on numbers, durations and times (no concatenation: nothing
//     else makes a string grow);
//   - matches only with a constant pattern (compiled once, with the rule),
//     and not inside a predicate: a pattern's cost is the text's length
//     times the pattern's, and one 450-character pattern over a 4 KiB
//     text took 27 ms here, so 9,000 turns of a loop took 2 min 43 s
//     per message; outside loops the expression's 2,048 characters bound
//     the patterns, and so the time, to about a tenth of a second;
//   - no predicate inside another one (nested loops multiply).
//
// Ranges and literals stay charged to expr's budget, lowered here to
// matchBudget, which also bounds how many elements the predicates walk. An expression outside the subset
// is refused when the rule is added (bad_request, with its position), and
// a stored one (added before this check) is skipped when rules load.
//
// The option set, the check and the budget are not tied to status
// messages: boundedExprOptions, checkBoundedTree and runBounded take any
// environment (another service compiling operator-written expressions can
// use them the same way).

// maxMatchNodes bounds a match expression's syntax tree (expr's default is
// 10,000); contracts.MaxRuleMatch bounds its length.
const maxMatchNodes = 1024

// boundedBuiltins are the expr builtins a hardened expression may call:
// none allocates more than about its arguments' size, and none keeps what
// each turn of a loop makes.
var boundedBuiltins = []string{
	// Predicates returning a boolean, a count, an index or one element.
	"all", "none", "any", "one", "count", "find", "findIndex", "findLast", "findLastIndex",
	// Scalars, and strings that are part of their input (no copy: upper
	// and lower copy theirs on every turn of a loop; a constant pattern
	// with (?i) matches without case instead).
	"len", "type", "abs", "ceil", "floor", "round", "int", "float", "string",
	"trim", "trimPrefix", "trimSuffix",
	"indexOf", "lastIndexOf", "hasPrefix", "hasSuffix",
	// Maps and arrays: one element, or the keys or values of a map.
	"keys", "values", "first", "last", "get",
	// Time.
	"now", "duration", "date",
}

// boundedExprOptions are the options of a hardened expression over env:
// every builtin but boundedBuiltins disabled and the node limit lowered.
// Compile with them, then check the tree with checkBoundedTree.
func boundedExprOptions(env any, extra ...expr.Option) []expr.Option {
	opts := []expr.Option{expr.Env(env), expr.DisableAllBuiltins()}
	for _, name := range boundedBuiltins {
		opts = append(opts, expr.EnableBuiltin(name))
	}
	opts = append(opts, expr.MaxNodes(maxMatchNodes))
	return append(opts, extra...)
}

// checkBoundedTree refuses, in the checked tree of a program compiled with
// boundedExprOptions, the operations that can grow without a bound: string
// (or array) concatenation, string() of a composite value, matches with a
// pattern that is not a constant and predicates nested in predicates. The error is a *file.Error bound to
// src (line and column).
func checkBoundedTree(src string, node ast.Node) error {
	c := &boundedCheck{}
	ast.Walk(&node, c)
	if c.err == nil {
		return nil
	}
	return c.err.Bind(file.NewSource(src))
}

type boundedCheck struct{ err *file.Error }

func (c *boundedCheck) fail(n ast.Node, format string, args ...any) {
	if c.err == nil {
		c.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

func (c *boundedCheck) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "+":
			if !addable(n.Left.Type()) || !addable(n.Right.Type()) {
				c.fail(n, "+ is allowed on numbers, durations and times only (no concatenation in a match expression)")
			}
		case "matches":
			switch n.Right.(type) {
			case *ast.StringNode, *ast.ConstantNode:
			default:
				c.fail(n, "matches needs a constant pattern (a quoted string)")
			}
		}
	case *ast.PredicateNode:
		inner := ast.Find(n.Node, func(x ast.Node) bool { _, ok := x.(*ast.PredicateNode); return ok })
		if inner != nil {
			c.fail(inner, "a predicate (all, any, count, …) may not run inside another one")
		}
		re := ast.Find(n.Node, func(x ast.Node) bool { b, ok := x.(*ast.BinaryNode); return ok && b.Operator == "matches" })
		if re != nil {
			c.fail(re, "matches may not run inside a predicate (all, any, count, …): each turn would run the pattern over the text again")
		}
	case *ast.BuiltinNode:
		// The parser takes the predicate builtins (map, filter, reduce,
		// sum, groupBy, sortBy …) whether they are disabled or not.
		if !slices.Contains(boundedBuiltins, n.Name) {
			c.fail(n, "function %s is not allowed in a match expression (it can allocate without bound)", n.Name)
			return
		}
		if n.Name == "string" && len(n.Arguments) == 1 && !scalar(n.Arguments[0].Type()) {
			c.fail(n, "string() takes a number, a boolean or a string here")
		}
	}
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(time.Duration(0))
)

// addable: + on it is arithmetic, never a concatenation.
func addable(t reflect.Type) bool {
	if t == nil {
		return false
	}
	if t == timeType || t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// scalar: string() of it is short.
func scalar(t reflect.Type) bool {
	if t == nil {
		return false
	}
	if t.Kind() == reflect.String || t.Kind() == reflect.Bool {
		return true
	}
	return addable(t)
}

// matchBudget is the expr memory budget of one evaluation (expr's default
// is 1e6): ranges and literals count one per element. It bounds the
// elements the predicates of a match can walk.
const matchBudget = 10_000

// runBounded evaluates a program compiled with boundedExprOptions with
// budget.
func runBounded(prog *vm.Program, env any, budget uint) (any, error) {
	v := vm.VM{MemoryBudget: budget}
	return v.Run(prog, env)
}

// compileMatch compiles a rule's match expression as a hardened expression
// over matchEnv that must yield a boolean.
func compileMatch(src string) (*vm.Program, error) {
	if len(src) > contracts.MaxRuleMatch {
		return nil, fmt.Errorf("the expression is %d characters, over the %d allowed", len(src), contracts.MaxRuleMatch)
	}
	prog, err := expr.Compile(src, boundedExprOptions(matchEnv{}, expr.AsBool())...)
	if err != nil {
		// A builtin left out is unknown to the compiler: say why.
		var fe *file.Error
		if errors.As(err, &fe) {
			if name, ok := strings.CutPrefix(fe.Message, "unknown name "); ok {
				if _, builtin := builtin.Index[name]; builtin {
					fe.Message = fmt.Sprintf("function %s is not allowed in a match expression (it can allocate without bound)", name)
				}
			}
		}
		return nil, err
	}
	if err := checkBoundedTree(src, prog.Node()); err != nil {
		return nil, err
	}
	return prog, nil
}

// overBudget reports whether err is expr's memory budget being exceeded.
func overBudget(err error) bool {
	return err != nil && strings.Contains(err.Error(), "memory budget exceeded")
}

var errOverBudget = errors.New("the expression uses more memory than a match may (expr's budget): it would never match")
