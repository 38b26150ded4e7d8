package collections

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp/syntax"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"
)

// Query is a compiled query rule: an Expr expression over an Env that
// yields a bool.
//
// Every query has a cost budget for one client: Budget units, a unit being
// roughly one step of Expr's machine (some 10 to 50 ns) or a few bytes of
// string work. When a query is compiled, its cost is bounded from its
// syntax tree: what runs once (outside loops), and what one iteration of
// each loop (any, all, map, filter, ...) costs. The bounds are by tier:
// for clients whose fields read by the query hold strings of up to 64
// bytes or longer (up to MaxEnvString), lists other than software of up
// to 256 items or more (up to MaxEnvList; software is always taken as
// MaxEnvList packages). A query whose part outside loops, or one loop
// iteration, is over the budget in the first tier does not compile. Loop
// iterations are counted as they run: a query that goes over the budget
// for a client fails for that client (it does not match it), as a query
// failing at run time does. A client with a string or list over the
// limits in a field a query reads fails the query without running it.
//
// Check also refuses a query whose cost for a typical client (1,000
// packages, other lists of 16 items, strings of 64 bytes), loops
// included, is over the budget.
//
// A Query is not safe for concurrent use (it counts the cost of its run).
type Query struct {
	src    string
	prog   *vm.Program
	fields fieldSet // the Env fields it reads

	// By tier (see tiers): the cost outside loops, charged before a run,
	// and of one iteration of each loop, by the loop's index in the tick
	// calls.
	base    [len(tiers)]int64
	weights [len(tiers)][]int64
	typical int64       // the estimated cost for a typical client, loops included
	costly  *QueryError // where typical goes over the budget, for Check

	// During a run: the weights of its tier and the cost so far.
	w     []int64
	spent int64
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

const (
	// Budget is the most one query may cost for one client, in units:
	// some tens of milliseconds at most. A query over software such as
	// any(software, .name == "openssl" && versionCompare(.version,
	// "3.0.13") < 0) is charged 48 units a package (of short strings),
	// so it runs over up to 20,000 packages (the inventory's limit).
	Budget = 1_000_000
	// MaxEnvString and MaxEnvList are the largest string (bytes) and list
	// or map (items) of an Env a query reads, as the inventory's own
	// limits: a query reading a field that holds a larger one does not
	// match the client.
	MaxEnvString = 1024
	MaxEnvList   = 20_000
	// shortString and fewItems are the longest string and list (other
	// than software) of the first tier.
	shortString = 64
	fewItems    = 256
	// memoryBudget is Expr's memory budget of one run (items of ranges,
	// array and map literals and sorts, bytes of repeat).
	memoryBudget = 100_000
	// tickName is the function counting loop iterations, added to every
	// predicate after the query is checked (so a query cannot call it).
	tickName = "$tick"
)

// tiers are the sizes of an Env the costs of a run are bounded for: by
// whether the fields a query reads hold a string over shortString bytes
// (Env.long, +1) or a list over fewItems (Env.many, +2). typicalEnv is the
// client Check estimates a query's cost for.
var (
	tiers = [...]limits{
		{str: shortString, software: MaxEnvList, list: fewItems},
		{str: MaxEnvString, software: MaxEnvList, list: fewItems},
		{str: shortString, software: MaxEnvList, list: MaxEnvList},
		{str: MaxEnvString, software: MaxEnvList, list: MaxEnvList},
	}
	typicalEnv = limits{str: shortString, software: 1000, list: 16}
)

// ErrBudget is a query's run going over Budget.
var ErrBudget = errors.New("the query went over its cost budget")

// ErrTooLarge is a query not run because the client has a string or list
// larger than queries may read (MaxEnvString, MaxEnvList) in a field it
// reads.
var ErrTooLarge = errors.New("the client has a string or list larger than a query may read")

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

// Compile compiles a query rule. A query that does not compile, names a
// field Env does not have, uses what queries may not (methods, reduce,
// toJSON, a pattern that is not a literal, ...) or may cost more than
// Budget outside its loops or in one iteration of a loop returns a
// *QueryError.
func Compile(src string) (*Query, error) {
	q := &Query{src: src}
	config := conf.CreateNew()
	for _, op := range options {
		op(config)
	}
	for name := range config.Disabled {
		delete(config.Builtins, name)
	}
	config.Check()
	tree, err := checker.ParseCheck(src, config)
	if err != nil {
		return nil, queryError(err)
	}
	q.fields = readFields(tree.Node)

	// Bound the cost by tier, outside loops and of one iteration of each
	// loop (for the run); for a typical client, loops included (for
	// Check). Over the budget for short strings does not compile.
	var loops []*ast.PredicateNode
	for tier, lim := range tiers {
		a := analyzer{lim: lim, strict: tier == 0, loops: map[*ast.PredicateNode]int{}}
		base := a.node(tree.Node).cost
		if tier == 0 && a.err == nil && base > Budget {
			a.fail(tree.Node, "the query may cost %s a client, more than its budget of %s", units(base), units(Budget))
		}
		if tier == 0 && a.err != nil {
			return nil, queryError(a.err.Bind(tree.Source))
		}
		q.base[tier] = int64(min(base, Budget+1))
		q.weights[tier] = a.weights
		loops = a.order
	}
	typ := analyzer{lim: typicalEnv, full: true}
	q.typical = int64(min(typ.node(tree.Node).cost, 1e18))
	if typ.over != nil {
		q.costly = queryError(typ.over.Bind(tree.Source)).(*QueryError)
	}

	// Count every loop iteration as it runs: each predicate's body first
	// calls the tick with the loop's index.
	for i, p := range loops {
		tick := &ast.CallNode{Callee: &ast.IdentifierNode{Value: tickName}, Arguments: []ast.Node{&ast.IntegerNode{Value: i}}}
		seq := &ast.SequenceNode{Nodes: []ast.Node{tick, p.Node}}
		for _, n := range []ast.Node{tick, tick.Callee, tick.Arguments[0], seq} {
			n.SetLocation(p.Node.Location())
		}
		p.Node = seq
	}
	expr.Function(tickName, q.tick, new(func(int) bool))(config)
	if _, err := checker.Check(tree, config); err != nil {
		return nil, fmt.Errorf("counting the query's cost: %w", err) // a bug
	}
	if err := optimizer.Optimize(&tree.Node, config); err != nil {
		return nil, queryError(err)
	}
	if q.prog, err = compiler.Compile(tree, config); err != nil {
		return nil, queryError(err)
	}
	return q, nil
}

// queryError makes a compile error a *QueryError.
func queryError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &QueryError{Line: max(fe.Line, 1), Column: fe.Column + 1, Message: fe.Message, Snippet: fe.Snippet}
	}
	// Errors of the whole expression (its type) carry no position.
	return &QueryError{Line: 1, Column: 1, Message: err.Error()}
}

// tick counts the cost of one iteration of loop params[0], failing the
// run when it goes over the budget.
func (q *Query) tick(params ...any) (any, error) {
	q.spent += q.w[params[0].(int)]
	if q.spent > Budget {
		return nil, ErrBudget
	}
	return true, nil
}

// units formats a cost.
func units(c float64) string {
	switch {
	case c >= 1e9:
		return "over a billion units"
	case c >= 1e6:
		return fmt.Sprintf("%.1f million units", c/1e6)
	}
	return fmt.Sprintf("%.0f units", c)
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
// (ips[0] of a client without addresses), goes over its budget, or reads a
// field of env larger than queries may read does not match.
func (q *Query) match(m *vm.VM, env *Env) bool {
	ok, _ := q.eval(m, env)
	return ok
}

// eval runs q on env with the machine m.
func (q *Query) eval(m *vm.VM, env *Env) (bool, error) {
	if q.fields&env.large != 0 {
		return false, ErrTooLarge
	}
	tier := 0
	if q.fields&env.long != 0 {
		tier++
	}
	if q.fields&env.many != 0 {
		tier += 2
	}
	if q.base[tier] > Budget {
		return false, ErrBudget
	}
	q.w, q.spent = q.weights[tier], q.base[tier]
	m.MemoryBudget = memoryBudget
	out, err := m.Run(q.prog, env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// Eval reports whether env matches q, or why q failed for env (a run-time
// error, ErrBudget, ErrTooLarge).
func (q *Query) Eval(env *Env) (bool, error) {
	e := *env
	e.long, e.many, e.large = sizeFields(&e, allFields)
	var m vm.VM
	return q.eval(&m, &e)
}

// Match reports whether env matches q.
func (q *Query) Match(env *Env) bool {
	ok, _ := q.Eval(env)
	return ok
}

// Typical is q's estimated cost for a typical client (1,000 packages,
// other lists of 16 items, strings of 64 bytes), loops included, and where
// it goes over Budget (nil if it does not): Check refuses such a query.
func (q *Query) Typical() (int64, *QueryError) { return q.typical, q.costly }

// limits are the sizes of an Env's strings (bytes), software and other
// lists and maps (items) a cost is bounded for.
type limits struct{ str, software, list float64 }

// size bounds a value: n its length (items of a list or map, bytes of a
// string, 1 for anything else), e the footprint of one item, f the
// footprint of the whole (n*e at most). t is its Go type when it is (part
// of) the Env, whose sizes follow from the limits.
type size struct {
	n, e, f float64
	t       reflect.Type
}

var scalar = size{n: 1, e: 1, f: 1}

// sub bounds a part of a value whose footprint is at most f.
func sub(f float64) size { return size{n: f, e: f, f: f} }

func (s size) join(o size) size {
	out := size{n: max(s.n, o.n), e: max(s.e, o.e), f: max(s.f, o.f)}
	if s.t == o.t {
		out.t = s.t
	}
	return out
}

// elem bounds an item of s; t is its type as checked, when known.
func (a *analyzer) elem(s size, t reflect.Type) size {
	if s.t != nil {
		switch s.t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			return a.ofType(s.t.Elem())
		}
	}
	if envStruct(t) {
		return a.ofType(t)
	}
	return sub(s.e)
}

// envTypes are the structs of an Env: struct values a query sees come
// from the Env only.
var envTypes = map[reflect.Type]bool{
	reflect.TypeFor[Env](): true, reflect.TypeFor[OS](): true, reflect.TypeFor[CPU](): true,
	reflect.TypeFor[Memory](): true, reflect.TypeFor[Disk](): true, reflect.TypeFor[Software](): true,
}

// structCost is the cost of handing a struct of the Env to a function
// or an operator: it is copied, and its fields are looked up by name,
// through reflection.
func structCost(s size) float64 {
	if !envStruct(s.t) {
		return 0
	}
	t := s.t
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	n := float64(t.NumField())
	return 20 + 2*n*n
}

func envStruct(t reflect.Type) bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t != nil && envTypes[t]
}

// ofType bounds a value of the Env of type t.
func (a *analyzer) ofType(t reflect.Type) size {
	switch t.Kind() {
	case reflect.Pointer:
		s := a.ofType(t.Elem())
		s.t = t
		return s
	case reflect.String:
		return size{n: a.lim.str, e: 1, f: a.lim.str, t: t}
	case reflect.Slice, reflect.Array:
		e, n := a.ofType(t.Elem()).f, a.lim.list
		if t.Elem() == reflect.TypeFor[*Software]() {
			n = a.lim.software
		}
		return size{n: n, e: e, f: n * e, t: t}
	case reflect.Map:
		e := max(a.ofType(t.Key()).f, a.ofType(t.Elem()).f)
		return size{n: a.lim.list, e: e, f: a.lim.list * e, t: t}
	case reflect.Struct:
		f := 1.0
		for i := range t.NumField() {
			if sf := t.Field(i); sf.IsExported() && sf.Tag.Get("expr") != "-" {
				f += a.ofType(sf.Type).f
			}
		}
		return size{n: 1, e: f, f: f, t: t}
	}
	return size{n: 1, e: 1, f: 1, t: t}
}

// field returns the field of struct type t a query names name.
func structField(t reflect.Type, name string) (reflect.StructField, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if tag := sf.Tag.Get("expr"); sf.IsExported() && tag != "-" && (tag == name || tag == "" && sf.Name == name) {
			return sf, true
		}
	}
	return reflect.StructField{}, false
}

// result is a node's bound: the size of its value and its cost.
type result struct {
	size
	cost float64
}

// analyzer bounds the cost of a checked syntax tree. Without full, a
// loop's iterations are not counted in the cost: the cost of one is kept
// in weights, by the loop's index (order), for counting at run time. With
// full, a loop costs its iterations at its collection's length bound.
type analyzer struct {
	lim     limits
	full    bool
	strict  bool                       // a cost over the budget is an error
	loops   map[*ast.PredicateNode]int // index in order
	order   []*ast.PredicateNode
	weights []int64
	over    *file.Error // full: the first (innermost) part over the budget
	vars    []variable
	elems   []size // the items of the loops around, innermost last
	err     *file.Error
}

type variable struct {
	name string
	size size
}

func (a *analyzer) fail(n ast.Node, format string, args ...any) {
	if a.err == nil {
		a.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

// Costs of work in proportion to bytes: scanning (comparing, searching)
// and transforming (parsing, copying, converting).
func scan(bytes float64) float64 { return bytes / 32 }
func work(bytes float64) float64 { return bytes / 4 }

func log2(n float64) float64 { return math.Log2(n + 1) }

// node bounds n.
func (a *analyzer) node(n ast.Node) result {
	if a.err != nil {
		return result{size: scalar, cost: 1}
	}
	r := a.bound(n)
	r.n, r.e, r.f = capped(r.n), capped(r.e), capped(r.f)
	r.cost = capped(r.cost)
	if a.strict && r.cost > Budget {
		a.fail(n, "this part of the query may cost %s a client, more than a query's budget of %s", units(r.cost), units(Budget))
	}
	if a.full && a.over == nil && r.cost > Budget {
		a.over = &file.Error{Location: n.Location(), Message: fmt.Sprintf(
			"this part of the query would cost about %s for a typical client (%d packages, other lists of %d items, strings of %d bytes), more than a query's budget of %s",
			units(r.cost), int(a.lim.software), int(a.lim.list), int(a.lim.str), units(Budget))}
	}
	return r
}

// capped keeps bounds finite.
func capped(x float64) float64 { return min(x, 1e18) }

func (a *analyzer) bound(n ast.Node) result {
	switch n := n.(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return result{size: scalar, cost: 1}
	case *ast.StringNode:
		l := float64(len(n.Value))
		return result{size: size{n: l, e: 1, f: l}, cost: 1}
	case *ast.BytesNode:
		l := float64(len(n.Value))
		return result{size: size{n: l, e: 1, f: l}, cost: 1}
	case *ast.ConstantNode:
		s := valueSize(reflect.ValueOf(n.Value))
		return result{size: size{n: s, e: s, f: s}, cost: 1}
	case *ast.IdentifierNode:
		for i := len(a.vars) - 1; i >= 0; i-- {
			if a.vars[i].name == n.Value {
				return result{size: a.vars[i].size, cost: 1}
			}
		}
		if n.Value == "$env" {
			return result{size: a.ofType(reflect.TypeFor[*Env]()), cost: 1}
		}
		if sf, ok := structField(reflect.TypeFor[Env](), n.Value); ok {
			return result{size: a.ofType(sf.Type), cost: 1}
		}
		return result{size: scalar, cost: 1}
	case *ast.PointerNode:
		if len(a.elems) == 0 || n.Name != "" && n.Name != "index" {
			a.fail(n, "#%s is not available in queries", n.Name)
			return result{size: scalar, cost: 1}
		}
		if n.Name == "index" {
			return result{size: scalar, cost: 1}
		}
		return result{size: a.elems[len(a.elems)-1], cost: 1}
	case *ast.UnaryNode:
		return result{size: scalar, cost: 1 + a.node(n.Node).cost}
	case *ast.BinaryNode:
		return a.binary(n)
	case *ast.ChainNode:
		return a.node(n.Node)
	case *ast.MemberNode:
		return a.member(n)
	case *ast.SliceNode:
		r := a.node(n.Node)
		for _, x := range []ast.Node{n.From, n.To} {
			if x != nil {
				r.cost += a.node(x).cost
			}
		}
		r.cost++
		return r
	case *ast.CallNode:
		return a.call(n)
	case *ast.BuiltinNode:
		return a.builtin(n)
	case *ast.ConditionalNode:
		c, x, y := a.node(n.Cond), a.node(n.Exp1), a.node(n.Exp2)
		return result{size: x.join(y.size), cost: 1 + c.cost + max(x.cost, y.cost)}
	case *ast.VariableDeclaratorNode:
		v := a.node(n.Value)
		a.vars = append(a.vars, variable{n.Name, v.size})
		x := a.node(n.Expr)
		a.vars = a.vars[:len(a.vars)-1]
		x.cost += 1 + v.cost
		return x
	case *ast.SequenceNode:
		var r result
		cost := 0.0
		for _, x := range n.Nodes {
			r = a.node(x)
			cost += r.cost
		}
		r.cost = 1 + cost
		return r
	case *ast.ArrayNode:
		out := result{size: size{n: float64(len(n.Nodes)), e: 1}, cost: 1 + float64(len(n.Nodes))}
		for _, x := range n.Nodes {
			r := a.node(x)
			out.e, out.f, out.cost = max(out.e, r.f), out.f+r.f, out.cost+r.cost
		}
		out.f = max(out.f, out.n)
		return out
	case *ast.MapNode:
		out := result{size: size{n: float64(len(n.Pairs)), e: 1}, cost: 1 + float64(len(n.Pairs))}
		for _, p := range n.Pairs {
			p, ok := p.(*ast.PairNode)
			if !ok {
				a.fail(n, "unexpected map")
				break
			}
			k, v := a.node(p.Key), a.node(p.Value)
			out.e, out.f, out.cost = max(out.e, k.f, v.f), out.f+k.f+v.f, out.cost+k.cost+v.cost+scan(k.f)
		}
		out.f = max(out.f, out.n)
		return out
	}
	a.fail(n, "this expression is not available in queries")
	return result{size: scalar, cost: 1}
}

// valueSize is the footprint of a constant.
func valueSize(v reflect.Value) float64 {
	switch v.Kind() {
	case reflect.String:
		return float64(v.Len())
	case reflect.Slice, reflect.Array:
		s := 1.0
		for i := range v.Len() {
			s += valueSize(v.Index(i))
		}
		return s
	case reflect.Map:
		s := 1.0
		for it := v.MapRange(); it.Next(); {
			s += valueSize(it.Key()) + valueSize(it.Value())
		}
		return s
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return valueSize(v.Elem())
		}
	}
	return 1
}

func kind(n ast.Node) reflect.Kind {
	t := n.Type()
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return reflect.Interface
	}
	return t.Kind()
}

func isNumber(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Float64 || k == reflect.Bool
}

func (a *analyzer) binary(n *ast.BinaryNode) result {
	l, r := a.node(n.Left), a.node(n.Right)
	cost := 1 + l.cost + r.cost + structCost(l.size) + structCost(r.size)
	lk, rk := kind(n.Left), kind(n.Right)
	switch n.Operator {
	case "and", "&&", "or", "||", "-", "*", "/", "%", "**", "^":
		return result{size: scalar, cost: cost}
	case "??":
		return result{size: l.join(r.size), cost: cost}
	case "==", "!=", "<", ">", "<=", ">=":
		if lk == reflect.String || rk == reflect.String {
			return result{size: scalar, cost: cost + scan(min(l.f, r.f))}
		}
		return result{size: scalar, cost: cost + min(l.f, r.f)}
	case "contains", "startsWith", "endsWith":
		return result{size: scalar, cost: cost + scan(4*(l.n+r.n))}
	case "in":
		switch rk {
		case reflect.Map:
			return result{size: scalar, cost: cost + scan(l.f)}
		case reflect.Struct:
			return result{size: scalar, cost: cost}
		}
		return result{size: scalar, cost: cost + r.n*(1+scan(min(l.f, r.e)))}
	case "matches":
		s, ok := n.Right.(*ast.StringNode)
		if !ok {
			a.fail(n.Right, "a query's pattern must be a string literal")
			return result{size: scalar, cost: cost}
		}
		re, err := syntax.Parse(s.Value, syntax.Perl)
		if err != nil {
			return result{size: scalar, cost: cost} // the checker says
		}
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			return result{size: scalar, cost: cost}
		}
		return result{size: scalar, cost: cost + 5 + scan(l.n*float64(len(prog.Inst))/2)}
	case "..":
		length := float64(memoryBudget)
		if lo, ok := intConst(n.Left); ok {
			if hi, ok := intConst(n.Right); ok {
				length = max(0, float64(hi)-float64(lo)+1)
			}
		}
		if length > memoryBudget {
			a.fail(n, "a range in a query holds at most %d numbers", memoryBudget)
		}
		return result{size: size{n: length, e: 1, f: length}, cost: cost + length}
	case "+":
		if isNumber(lk) && isNumber(rk) {
			return result{size: scalar, cost: cost}
		}
		out := size{n: l.n + r.n, e: max(l.e, r.e), f: l.f + r.f}
		return result{size: out, cost: cost + out.n + work(out.f)}
	}
	a.fail(n, "the operator %s is not available in queries", n.Operator)
	return result{size: scalar, cost: cost}
}

// intConst returns the value of an integer literal (or its negation).
func intConst(n ast.Node) (int, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.UnaryNode:
		if v, ok := intConst(n.Node); ok && n.Operator == "-" {
			return -v, true
		}
	}
	return 0, false
}

func (a *analyzer) member(n *ast.MemberNode) result {
	if n.Method {
		a.fail(n, "methods are not available in queries")
		return result{size: scalar, cost: 1}
	}
	p := a.node(n.Node)
	cost := 1 + p.cost
	name, isName := n.Property.(*ast.StringNode)
	if !isName {
		cost += a.node(n.Property).cost
	}
	pt := p.t
	if pt == nil && envStruct(n.Node.Type()) {
		pt = n.Node.Type()
	}
	switch {
	case pt != nil && envStruct(pt) && isName:
		if sf, ok := structField(pt, name.Value); ok {
			return result{size: a.ofType(sf.Type), cost: cost}
		}
	case pt != nil:
		switch pt.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			return result{size: a.ofType(pt.Elem()), cost: cost}
		case reflect.String:
			return result{size: scalar, cost: cost}
		}
	}
	if envStruct(n.Type()) {
		return result{size: a.ofType(n.Type()), cost: cost}
	}
	if kind(n.Node) == reflect.Struct {
		return result{size: sub(p.f), cost: cost}
	}
	return result{size: sub(max(p.e, 1)).join(sub(p.f)), cost: cost}
}

func (a *analyzer) call(n *ast.CallNode) result {
	if _, ok := n.Callee.(*ast.MemberNode); ok {
		a.fail(n, "methods are not available in queries")
		return result{size: scalar, cost: 1}
	}
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || id.Value != "inSubnet" && id.Value != "versionCompare" || len(n.Arguments) != 2 {
		a.fail(n, "only the functions inSubnet and versionCompare can be called in queries")
		return result{size: scalar, cost: 1}
	}
	x, y := a.node(n.Arguments[0]), a.node(n.Arguments[1])
	cost := 1 + x.cost + y.cost
	if id.Value == "inSubnet" {
		return result{size: scalar, cost: cost + 10 + scan(2*(x.n+y.n))}
	}
	return result{size: scalar, cost: cost + 20 + (x.n+y.n)/5}
}

// loop bounds a predicate over the items of c: the cost of one iteration
// (extra added) is kept for the run, or counted c.n times when full.
func (a *analyzer) loop(c size, p ast.Node, extra func(body result) float64) (body result, cost float64) {
	pred, ok := p.(*ast.PredicateNode)
	if !ok {
		a.fail(p, "expected a predicate")
		return result{size: scalar, cost: 1}, 0
	}
	a.elems = append(a.elems, a.elem(c, nil))
	if pt, ok := pred.Node.(*ast.PointerNode); ok && pt.Name == "" {
		// The items' type as checked, when c's is not known.
		a.elems[len(a.elems)-1] = a.elem(c, pt.Type())
	}
	body = a.node(pred.Node)
	a.elems = a.elems[:len(a.elems)-1]
	w := 2 + body.cost
	if extra != nil {
		w += extra(body)
	}
	if !a.full {
		if a.strict && w > Budget {
			a.fail(pred, "one iteration of this loop may cost %s a client, more than a query's budget of %s", units(w), units(Budget))
		}
		i, ok := a.loops[pred]
		if !ok {
			i = len(a.order)
			a.loops[pred] = i
			a.order = append(a.order, pred)
			a.weights = append(a.weights, 0)
		}
		a.weights[i] = int64(min(w, Budget+1))
		return body, 0
	}
	return body, c.n * w
}

func (a *analyzer) builtin(n *ast.BuiltinNode) result {
	args := n.Arguments
	arg := func(i int) result {
		if i < len(args) {
			if _, ok := args[i].(*ast.PredicateNode); !ok {
				return a.node(args[i])
			}
		}
		return result{size: scalar}
	}
	cost := 1.0
	var sizes []result
	for i := range args {
		r := arg(i)
		cost += r.cost + structCost(r.size)
		sizes = append(sizes, r)
	}
	if len(sizes) == 0 {
		sizes = append(sizes, result{size: scalar})
	}
	x := sizes[0]
	y := result{size: scalar}
	if len(sizes) > 1 {
		y = sizes[1]
	}
	hasPred := len(args) > 1
	if hasPred {
		_, hasPred = args[1].(*ast.PredicateNode)
	}
	loop := func(extra func(result) float64) result {
		body, c := a.loop(x.size, args[1], extra)
		return result{size: body.size, cost: c}
	}
	out := func(s size, c float64) result { return result{size: s, cost: cost + c} }
	switch n.Name {
	case "all", "none", "any", "one", "findIndex", "findLastIndex":
		return out(scalar, loop(nil).cost)
	case "count", "sum":
		if !hasPred {
			return out(scalar, x.n)
		}
		return out(scalar, loop(nil).cost)
	case "filter":
		// Each item kept is appended.
		b := loop(func(result) float64 { return 1 })
		return out(size{n: x.n, e: x.e, f: x.f, t: x.t}, b.cost)
	case "find", "findLast":
		return out(a.elem(x.size, n.Type()), loop(nil).cost)
	case "map":
		// Each result is appended.
		b := loop(func(result) float64 { return 2 })
		return out(size{n: x.n, e: b.f, f: x.n * b.f}, b.cost)
	case "groupBy":
		// Each key is hashed.
		b := loop(func(body result) float64 { return 1 + scan(body.f) })
		return out(size{n: x.n, e: x.f, f: x.f}, b.cost)
	case "sortBy":
		// Sorting: log n comparisons of keys an item.
		b := loop(func(body result) float64 { return log2(x.n) * (1 + scan(body.f)) })
		return out(x.size, b.cost)
	case "len", "type", "abs", "ceil", "floor", "round",
		"bitand", "bitor", "bitxor", "bitnand", "bitnot", "bitshl", "bitshr", "bitushr":
		return out(scalar, 0)
	case "int", "float":
		return out(scalar, work(x.n))
	case "string":
		l := 32 * (x.f + 1)
		return out(size{n: l, e: 1, f: l}, work(l))
	case "trim", "trimPrefix", "trimSuffix":
		return out(size{n: x.n, e: 1, f: x.n}, scan(x.n*(1+y.n)))
	case "upper", "lower":
		return out(size{n: 3 * x.n, e: 1, f: 3 * x.n}, 3+work(x.n))
	case "split", "splitAfter":
		return out(size{n: x.n + 1, e: x.n, f: 2*x.n + 1}, x.n+work(x.n+y.n))
	case "replace":
		if len(sizes) < 3 {
			break
		}
		l := x.n + (x.n+1)*sizes[2].n
		return out(size{n: l, e: 1, f: l}, scan(x.n*(1+y.n))+work(l))
	case "repeat":
		times := 1e6 // repeat's own limit
		if k, ok := intConst(args[1]); ok {
			times = max(0, float64(k))
		}
		l := x.n * times
		return out(size{n: l, e: 1, f: l}, work(l))
	case "join":
		l := x.f + x.n*y.n
		return out(size{n: l, e: 1, f: l}, x.n+work(l))
	case "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix":
		return out(scalar, scan(4*(x.n+y.n)))
	case "max", "min", "mean", "median":
		var items, s = 0.0, size{}
		for _, r := range sizes {
			items += r.n
			s = s.join(sub(max(r.e, 1)))
		}
		if n.Name == "mean" || n.Name == "median" {
			s = scalar
		}
		return out(s, items*(1+log2(items)))
	case "first", "last":
		return out(a.elem(x.size, n.Type()), 0)
	case "get":
		if x.t != nil {
			switch x.t.Kind() {
			case reflect.Slice, reflect.Array, reflect.Map:
				return out(a.ofType(x.t.Elem()), scan(y.f))
			}
		}
		return out(sub(x.f), scan(y.f))
	case "take":
		return out(x.size, x.n)
	case "keys", "values", "reverse", "fromPairs":
		return out(size{n: x.n, e: x.e, f: x.f}, x.n)
	case "toPairs":
		return out(size{n: x.n, e: 2*x.e + 1, f: 2*x.f + x.n}, 3*x.n)
	case "uniq":
		return out(size{n: x.n, e: x.e, f: x.f}, x.n*(1+scan(x.e)))
	case "concat":
		var s size
		for _, r := range sizes {
			s.n, s.e, s.f = s.n+r.n, max(s.e, r.e), s.f+r.f
		}
		return out(s, s.n)
	case "flatten":
		return out(size{n: x.f, e: x.e, f: x.f}, x.f)
	case "sort":
		return out(size{n: x.n, e: x.e, f: x.f}, x.n*log2(x.n)*(1+scan(x.e)))
	case "date":
		if len(args) > 2 {
			break // loads a time zone
		}
		return out(scalar, 20+x.n+y.n) // tries many layouts
	case "duration":
		return out(scalar, work(x.n))
	}
	a.fail(n, "the function %s is not available in queries", n.Name)
	return out(scalar, 0)
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
