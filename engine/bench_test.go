package engine_test

import (
	"testing"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/cases"
	"github.com/gatecheck/gatecheck/engine/policies"
)

// BenchmarkDecide times the rule evaluation alone (no store) for the policy cases of a few
// kinds of traveller: one that settles early on a popup, a green adult who runs the whole list.
func BenchmarkDecide(b *testing.B) {
	files := loadCases(b)
	for _, pick := range []struct{ file, name string }{
		{"entry", "green code and a 30 h old test pass"},
		{"popups", "3 before 1 before 5 before 2 before 4, all listed"},
		{"commuter", "commuter with a test reported 20 Nov passes on 3 Dec at 23:59"},
		{"case-city", "Shijiazhuang Qiaoxi (case county Chang'an in the same city) with a test"},
	} {
		var c *cases.Case
		for i := range files[pick.file].Cases {
			if files[pick.file].Cases[i].Name == pick.name {
				c = &files[pick.file].Cases[i]
			}
		}
		if c == nil {
			b.Fatalf("no case %q", pick.name)
		}
		p := shippedPolicy(b, policies.November2021)
		in, now, _, err := c.Input()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(pick.file, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Decide(in, now)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	snap := shippedPolicy(b, policies.November2021).Snapshot()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := engine.Compile(snap); err != nil {
			b.Fatal(err)
		}
	}
}
