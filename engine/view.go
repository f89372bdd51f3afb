package engine

import (
	"fmt"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// view is one decision's activation: the person's facts projected onto `now` as CEL values,
// resolved by name without reflection, and the snapshot's definitions evaluated lazily, once.
type view struct {
	p   *Policy
	now time.Time

	nowVal   types.Timestamp
	idType   types.String
	age      types.Int
	region   types.String
	testOnly types.Bool

	hasNeg, hasPos          types.Bool
	negSampled, negReported types.Timestamp
	posSampled, posReported types.Timestamp
	commuter                types.Bool
	commuterSince           types.Timestamp
	clearance, declaration  types.Timestamp
	inbound, portEntry      types.Timestamp
	flagRaised              [6]types.Bool
	flagSince, flagRef      [6]types.Timestamp
	stays                   stays
	defState                []uint8 // 0 not evaluated, 1 in progress, 2 done
	defVal                  []bool
}

var _ interpreter.Activation = (*view)(nil)

func ts(u Unix) types.Timestamp {
	if u == 0 {
		return never
	}
	return types.Timestamp{Time: time.Unix(int64(u), 0).UTC()}
}

func newView(p *Policy, in Input, now time.Time) *view {
	f := in.Facts
	n := UnixOf(now)
	v := &view{
		p:        p,
		now:      now,
		nowVal:   types.Timestamp{Time: now.UTC()},
		idType:   types.String(in.Identity.Type.String()),
		age:      types.Int(AgeAt(in.Identity.Birth, now)),
		region:   types.String(in.Identity.Region),
		testOnly: types.Bool(in.TestOnly),
		stays:    stays{list: f.Stays, now: n},
		defState: make([]uint8, len(p.defs)),
		defVal:   make([]bool, len(p.defs)),
	}
	// Tests: only results reported by now count; for each result the latest sample time and the
	// latest report time.
	var negS, negR, posS, posR Unix
	for _, t := range f.Tests {
		if t.Reported > n {
			continue
		}
		switch t.Result {
		case ResultNegative:
			v.hasNeg = true
			if t.Sampled > negS {
				negS = t.Sampled
			}
			if t.Reported > negR {
				negR = t.Reported
			}
		case ResultPositive:
			v.hasPos = true
			if t.Sampled > posS {
				posS = t.Sampled
			}
			if t.Reported > posR {
				posR = t.Reported
			}
		}
	}
	v.negSampled, v.negReported, v.posSampled, v.posReported = ts(negS), ts(negR), ts(posS), ts(posR)
	v.commuterSince = never
	if c := f.Commuter; c != nil && c.Since <= n {
		v.commuter = types.Bool(!c.Revoked.IsSet() || c.Revoked > n)
		v.commuterSince = ts(c.Since)
	}
	var clr, decl Unix
	for _, c := range f.Clearances {
		if c <= n && c > clr {
			clr = c
		}
	}
	for _, d := range f.Declarations {
		if d <= n && d > decl {
			decl = d
		}
	}
	v.clearance, v.declaration = ts(clr), ts(decl)
	v.inbound, v.portEntry = never, never
	if f.Inbound.IsSet() && f.Inbound <= n {
		v.inbound = ts(f.Inbound)
	}
	if f.PortEntry.IsSet() && f.PortEntry <= n {
		v.portEntry = ts(f.PortEntry)
	}
	for i := 1; i <= 5; i++ {
		v.flagSince[i], v.flagRef[i] = never, never
	}
	// Every flag of a number counts: the popup is raised if any flag is raised and not cleared
	// by now, and its since and ref are the latest among those (the most cautious end).
	for _, pf := range f.Popups {
		if pf.N < 1 || pf.N > 5 || pf.Since > n || (pf.Cleared.IsSet() && pf.Cleared <= n) {
			continue
		}
		ref := pf.Ref
		if !ref.IsSet() {
			ref = pf.Since
		}
		v.flagRaised[pf.N] = true
		if since := ts(pf.Since); since.Time.After(v.flagSince[pf.N].Time) {
			v.flagSince[pf.N] = since
		}
		if r := ts(ref); r.Time.After(v.flagRef[pf.N].Time) {
			v.flagRef[pf.N] = r
		}
	}
	return v
}

// ResolveName implements interpreter.Activation.
func (v *view) ResolveName(name string) (any, bool) {
	switch name {
	case "now":
		return v.nowVal, true
	case "id.type":
		return v.idType, true
	case "id.age":
		return v.age, true
	case "id.region":
		return v.region, true
	case "input.test_only":
		return v.testOnly, true
	case "test.has_negative":
		return v.hasNeg, true
	case "test.negative_sampled":
		return v.negSampled, true
	case "test.negative_reported":
		return v.negReported, true
	case "test.has_positive":
		return v.hasPos, true
	case "test.positive_reported":
		return v.posReported, true
	case "test.positive_sampled":
		return v.posSampled, true
	case "commuter.member":
		return v.commuter, true
	case "commuter.since":
		return v.commuterSince, true
	case "clearance.last":
		return v.clearance, true
	case "declaration.last":
		return v.declaration, true
	case "entry.inbound":
		return v.inbound, true
	case "entry.port":
		return v.portEntry, true
	case "stays":
		return &v.stays, true
	}
	if len(name) > 6 && name[:4] == "flag" && name[5] == '.' {
		if n := flagN(name); n != 0 {
			switch name[6:] {
			case "raised":
				return v.flagRaised[n], true
			case "since":
				return v.flagSince[n], true
			case "ref":
				return v.flagRef[n], true
			}
		}
	}
	if len(name) > 4 && name[:4] == "def." {
		i, ok := v.p.defIndex[name[4:]]
		if !ok {
			return nil, false
		}
		b, err := v.def(i)
		if err != nil {
			return types.WrapErr(err), true
		}
		return types.Bool(b), true
	}
	return nil, false
}

func flagN(name string) int {
	n := int(name[4] - '0')
	if n < 1 || n > 5 {
		return 0
	}
	return n
}

// Parent implements interpreter.Activation.
func (v *view) Parent() interpreter.Activation { return nil }

// def evaluates definition i once per decision.
func (v *view) def(i int) (bool, error) {
	switch v.defState[i] {
	case 2:
		return v.defVal[i], nil
	case 1:
		return false, fmt.Errorf("definition %q depends on itself", v.p.defs[i].name)
	}
	v.defState[i] = 1
	out, _, err := v.p.defs[i].prg.Eval(v)
	if err != nil {
		v.defState[i] = 0
		return false, fmt.Errorf("definition %q: %w", v.p.defs[i].name, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		v.defState[i] = 0
		return false, fmt.Errorf("definition %q: result is %s, not bool", v.p.defs[i].name, typeName(out))
	}
	v.defState[i], v.defVal[i] = 2, bool(b)
	return bool(b), nil
}

func typeName(v ref.Val) string {
	if v == nil {
		return "nil"
	}
	return v.Type().TypeName()
}
