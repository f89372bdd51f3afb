package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// DeviceCostBudget is the largest statically estimated cost (CEL cost units, about 50 ns each) of
// one decision the device accepts: the sum over every definition and rule of their worst case.
const DeviceCostBudget = 100_000

// Policy is a compiled snapshot, ready to decide. It is immutable and safe for concurrent use.
type Policy struct {
	snap     *Snapshot
	defs     []compiled
	defIndex map[string]int
	popups   []popupProg // in the snapshot's order
	rules    []compiledRule
	cost     uint64
}

type compiled struct {
	name string
	prg  cel.Program
}

type compiledRule struct {
	Rule
	outcome Outcome
	prg     cel.Program
}

type popupProg struct {
	PopupDef
	def int
}

// Snapshot returns the snapshot the policy was compiled from. Callers must not modify it.
func (p *Policy) Snapshot() *Snapshot { return p.snap }

// Version is the snapshot's version.
func (p *Policy) Version() uint64 { return p.snap.Version }

// EstimatedCost is the static worst-case cost of one decision.
func (p *Policy) EstimatedCost() uint64 { return p.cost }

type factVariable struct {
	name string
	typ  *cel.Type
	doc  string
}

// The variables every rule can read. Times the person never had are `never`
// (1970-01-01T00:00:00Z), so `now < bj_day(t, n)` is simply false for them.
var factVariables = func() []factVariable {
	vars := []factVariable{
		{"now", cel.TimestampType, "the decision's moment (trusted time)"},
		{"id.type", cel.StringType, "resident, hmt-permit, foreign-permanent or foreign-permanent-2017"},
		{"id.age", cel.IntType, "completed years at now, Beijing calendar"},
		{"id.region", cel.StringType, "first six digits of a resident number"},
		{"input.test_only", cel.BoolType, "officer says: visual/hearing disability or no smartphone"},
		{"test.has_negative", cel.BoolType, "a negative result reported by now"},
		{"test.negative_sampled", cel.TimestampType, "latest sample time of a negative reported by now"},
		{"test.negative_reported", cel.TimestampType, "latest report time of a negative reported by now"},
		{"test.has_positive", cel.BoolType, "a positive result reported by now"},
		{"test.positive_sampled", cel.TimestampType, "latest sample time of a positive reported by now"},
		{"test.positive_reported", cel.TimestampType, "latest report time of a positive reported by now"},
		{"commuter.member", cel.BoolType, "in the commuter database since before now and not revoked by now"},
		{"commuter.since", cel.TimestampType, "membership start"},
		{"clearance.last", cel.TimestampType, "latest manual clearance by community officers"},
		{"declaration.last", cel.TimestampType, "latest itinerary declaration made by now"},
		{"entry.inbound", cel.TimestampType, "overseas arrival"},
		{"entry.port", cel.TimestampType, "entry into China through another port"},
		{"stays", staysType, "travel history; use stays.last_left_in(list) and stays.last_left_in_city(list)"},
	}
	for n := 1; n <= 5; n++ {
		vars = append(vars,
			factVariable{fmt.Sprintf("flag%d.raised", n), cel.BoolType, "a central flag of the popup is raised and not cleared by now"},
			factVariable{fmt.Sprintf("flag%d.since", n), cel.TimestampType, "the latest raise among the raised flags"},
			factVariable{fmt.Sprintf("flag%d.ref", n), cel.TimestampType, "the latest event the raised flags' ends count from"})
	}
	return vars
}()

// Compile checks a snapshot and compiles its definitions and rules to CEL programs. Any rule that
// does not parse, does not type-check to bool, or makes the estimated cost exceed
// DeviceCostBudget is refused with a *RuleError naming it.
func Compile(snap *Snapshot) (*Policy, error) {
	if err := snap.Validate(); err != nil {
		return nil, err
	}
	env, err := baseEnv(snap)
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	p := &Policy{snap: snap, defIndex: make(map[string]int, len(snap.Definitions))}
	est := costEstimator{}
	compileOne := func(env *cel.Env, name, expr string) (cel.Program, error) {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return nil, &RuleError{Rule: name, Err: fmt.Errorf("%w: %w", ErrRuleCompile, iss.Err())}
		}
		if ast.OutputType() != cel.BoolType {
			return nil, &RuleError{Rule: name, Err: fmt.Errorf("%w: condition is %s, not bool", ErrRuleCompile, ast.OutputType())}
		}
		c, err := env.EstimateCost(ast, est)
		if err != nil {
			return nil, &RuleError{Rule: name, Err: fmt.Errorf("%w: estimate cost: %w", ErrRuleCost, err)}
		}
		p.cost += c.Max
		if p.cost > DeviceCostBudget {
			return nil, &RuleError{Rule: name, Err: fmt.Errorf("%w: estimated cost reaches %d, budget %d", ErrRuleCost, p.cost, DeviceCostBudget)}
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return nil, &RuleError{Rule: name, Err: fmt.Errorf("%w: %w", ErrRuleCompile, err)}
		}
		return prg, nil
	}
	for i, d := range snap.Definitions {
		prg, err := compileOne(env, "def."+d.Name, d.Expr)
		if err != nil {
			return nil, err
		}
		p.defs = append(p.defs, compiled{name: d.Name, prg: prg})
		p.defIndex[d.Name] = i
		// Later definitions and the rules may read this one; earlier ones cannot, so there are
		// no cycles.
		if env, err = env.Extend(cel.Variable("def."+d.Name, cel.BoolType)); err != nil {
			return nil, fmt.Errorf("declare definition %q: %w", d.Name, err)
		}
	}
	for _, pd := range snap.Popups {
		p.popups = append(p.popups, popupProg{PopupDef: pd, def: p.defIndex[pd.Definition]})
	}
	for _, r := range snap.Rules {
		prg, err := compileOne(env, r.ID, r.When)
		if err != nil {
			return nil, err
		}
		o, _ := ParseOutcome(r.Outcome) // checked by Validate
		p.rules = append(p.rules, compiledRule{Rule: r, outcome: o, prg: prg})
	}
	return p, nil
}

func baseEnv(snap *Snapshot) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.DefaultUTCTimeZone(true),
		cel.ExtendedValidations(),
		cel.ParserExpressionSizeLimit(MaxExprLen),
		cel.ASTValidators(cel.ValidateComprehensionNestingLimit(1)),
		cel.Constant("never", cel.TimestampType, never),
	}
	for _, v := range factVariables {
		opts = append(opts, cel.VariableWithDoc(v.name, v.typ, v.doc))
	}
	for _, name := range sortedKeys(snap.Params.Durations) {
		opts = append(opts, cel.Constant("params."+name, cel.DurationType,
			types.Duration{Duration: time.Duration(snap.Params.Durations[name]) * time.Second}))
	}
	for _, name := range sortedKeys(snap.Params.Ints) {
		opts = append(opts, cel.Constant("params."+name, cel.IntType, types.Int(snap.Params.Ints[name])))
	}
	for _, name := range sortedKeys(snap.Params.Strings) {
		opts = append(opts, cel.Constant("params."+name, cel.StringType, types.String(snap.Params.Strings[name])))
	}
	for _, name := range sortedKeys(snap.Lists) {
		set := &countySet{name: name, members: map[string]struct{}{}, units: map[string]struct{}{}}
		for _, c := range snap.Lists[name] {
			set.members[c] = struct{}{}
			set.units[cityUnit(snap.CityUnits, c)] = struct{}{}
		}
		opts = append(opts, cel.Constant("lists."+name, countySetType, set))
	}
	cityUnits := snap.CityUnits
	opts = append(opts,
		cel.Function("bj_day",
			cel.Overload("bj_day_timestamp_int", []*cel.Type{cel.TimestampType, cel.IntType}, cel.TimestampType,
				cel.BinaryBinding(func(t, n ref.Val) ref.Val {
					ts, ok1 := t.(types.Timestamp)
					days, ok2 := n.(types.Int)
					if !ok1 || !ok2 {
						return types.NewErr("bj_day: want (timestamp, int)")
					}
					if days < -36600 || days > 36600 {
						return types.NewErr("bj_day: %d days out of range", int64(days))
					}
					return types.Timestamp{Time: DayStart(ts.Time, int(days)).UTC()}
				}))),
		cel.Function("last_left_in",
			cel.MemberOverload("stays_last_left_in", []*cel.Type{staysType, countySetType}, cel.TimestampType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val {
					st, ok1 := s.(*stays)
					set, ok2 := l.(*countySet)
					if !ok1 || !ok2 {
						return types.NewErr("last_left_in: want (stays, county set)")
					}
					return st.lastLeft(func(c string) bool { _, ok := set.members[c]; return ok })
				}))),
		cel.Function("last_left_in_city",
			cel.MemberOverload("stays_last_left_in_city", []*cel.Type{staysType, countySetType}, cel.TimestampType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val {
					st, ok1 := s.(*stays)
					set, ok2 := l.(*countySet)
					if !ok1 || !ok2 {
						return types.NewErr("last_left_in_city: want (stays, county set)")
					}
					return st.lastLeft(func(c string) bool { _, ok := set.units[cityUnit(cityUnits, c)]; return ok })
				}))),
	)
	return cel.NewEnv(opts...)
}

// cityUnit returns a county's city unit; a county missing from the table is its own unit.
func cityUnit(units map[string]string, county string) string {
	if u, ok := units[county]; ok {
		return u
	}
	return county
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// costEstimator gives CEL's static estimator the worst case of the engine's own functions, which
// scan a person's stays (at most MaxStays).
type costEstimator struct{}

func (costEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

func (costEstimator) EstimateCallCost(_, overloadID string, _ *checker.AstNode, _ []checker.AstNode) *checker.CallEstimate {
	switch overloadID {
	case "stays_last_left_in", "stays_last_left_in_city":
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: 2 * MaxStays}}
	case "bj_day_timestamp_int":
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: 4}}
	}
	return nil
}

// Input is what a decision needs besides the policy.
type Input struct {
	Identity Identity
	// Facts is the person's record; nil means the device holds none (unknown person).
	Facts *Facts
	// TestOnly is the officer's input that the traveller has a visual or hearing disability or no
	// smartphone (POLICY.md rule 3).
	TestOnly bool
}

// Decide evaluates the policy's rules in order for one person at now. The caller has already
// checked that the policy is in force (see SnapshotSet.Decide). A rule that fails to evaluate
// fails closed: MANUAL naming the rule.
func (p *Policy) Decide(in Input, now time.Time) Decision {
	if in.Facts == nil {
		return manual(RuleUnknownPerson, p.snap.Version, now, "无此人记录，请人工核验", "no record for this person: check by hand")
	}
	v := newView(p, in, now)
	d := Decision{SnapshotVersion: p.snap.Version, At: now}
	for _, pp := range p.popups {
		on, err := v.def(pp.def)
		if err != nil {
			d := manual(pp.Definition, p.snap.Version, now, "规则计算出错，请人工核验",
				fmt.Sprintf("the policy's popup %d check failed to evaluate: check by hand", pp.N))
			d.Error = err.Error()
			return d
		}
		if on {
			d.Popups = append(d.Popups, pp.N)
		}
	}
	for i := range p.rules {
		r := &p.rules[i]
		out, _, err := r.prg.Eval(v)
		if err == nil {
			if b, ok := out.(types.Bool); ok {
				if !b {
					continue
				}
				d.Outcome, d.Rule, d.ReasonZH, d.ReasonEN = r.outcome, r.ID, r.ReasonZH, r.ReasonEN
				if len(r.Flags) > 0 {
					d.Flags = append([]string(nil), r.Flags...)
				}
				return d
			}
			err = fmt.Errorf("result is %s, not bool", out.Type().TypeName())
		}
		return Decision{Outcome: Manual, Rule: r.ID, SnapshotVersion: p.snap.Version, At: now, Popups: d.Popups,
			ReasonZH: "规则 " + r.ID + " 计算出错，请人工核验",
			ReasonEN: fmt.Sprintf("rule %s failed to evaluate: check by hand", r.ID), Error: err.Error()}
	}
	return Decision{Outcome: Manual, Rule: RuleNoMatch, SnapshotVersion: p.snap.Version, At: now, Popups: d.Popups,
		ReasonZH: "策略未覆盖此情况，请人工核验", ReasonEN: "no rule of the policy applies: check by hand"}
}

// Explain returns the value of every definition for a person at now, for `check --explain` and
// policy authors. Errors are reported as strings.
func (p *Policy) Explain(in Input, now time.Time) map[string]string {
	out := map[string]string{}
	if in.Facts == nil {
		return out
	}
	v := newView(p, in, now)
	for i, d := range p.defs {
		b, err := v.def(i)
		if err != nil {
			out[d.name] = "error: " + err.Error()
			continue
		}
		out[d.name] = fmt.Sprint(b)
	}
	return out
}

// String describes the policy for logs.
func (p *Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "snapshot %d (%s) effective %s expires %s, %d rules",
		p.snap.Version, p.snap.Name, p.snap.Effective().In(Beijing).Format(time.RFC3339),
		p.snap.Expires().In(Beijing).Format(time.RFC3339), len(p.rules))
	return b.String()
}

// Definition evaluates one named definition for a person at now (the companion rule asks the
// adult's def.valid_test). It reports an error for an unknown name or a failed evaluation.
func (p *Policy) Definition(name string, in Input, now time.Time) (bool, error) {
	i, ok := p.defIndex[name]
	if !ok {
		return false, fmt.Errorf("snapshot %d has no definition %q", p.snap.Version, name)
	}
	if in.Facts == nil {
		return false, nil
	}
	return newView(p, in, now).def(i)
}
