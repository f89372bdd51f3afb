package engine_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
)

func miniSnapshot(rules ...engine.Rule) *engine.Snapshot {
	return &engine.Snapshot{Schema: engine.SnapshotSchema, Version: 9, EffectiveFrom: 1637078400, ExpiresAt: 1643558400, MaxOffline: 259200,
		Lists: map[string][]string{"case_counties": {"210283"}}, Rules: rules}
}

func rule(id, outcome, when string) engine.Rule {
	return engine.Rule{ID: id, Outcome: outcome, When: when, ReasonZH: "理由", ReasonEN: "reason"}
}

var at = time.Date(2021, 11, 20, 12, 0, 0, 0, engine.Beijing)

func person(t *testing.T) engine.Input {
	t.Helper()
	id, err := engine.ParseID("11010519491231002X")
	if err != nil {
		t.Fatal(err)
	}
	return engine.Input{Identity: id, Facts: &engine.Facts{}}
}

// A rule that fails while evaluating decides MANUAL naming the rule - it never falls through
// to a later, more permissive rule.
func TestEvaluationErrorFailsClosed(t *testing.T) {
	p, err := engine.Compile(miniSnapshot(
		rule("overflows", "NEED_TEST", "bj_day(now, 40000) > now"),
		rule("pass", "PASS", "true"),
	))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(person(t), at)
	if d.Outcome != engine.Manual || d.Rule != "overflows" || d.Error == "" || !strings.Contains(d.ReasonEN, "overflows") {
		t.Fatalf("decision = %+v", d)
	}
	if strings.Contains(d.ReasonEN, "range") {
		t.Errorf("officer text carries the internal error: %q", d.ReasonEN)
	}
}

func TestNoRuleMatchedIsManual(t *testing.T) {
	p, err := engine.Compile(miniSnapshot(rule("never", "PASS", "false")))
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(person(t), at); d.Outcome != engine.Manual || d.Rule != engine.RuleNoMatch {
		t.Fatalf("decision = %+v", d)
	}
}

func TestSnapshotLoadErrorsNameTheRule(t *testing.T) {
	heavy := "stays.last_left_in(lists.case_counties) > now"
	for i := 0; i < 19; i++ {
		heavy += " || stays.last_left_in(lists.case_counties) > now"
	}
	var heavyRules []engine.Rule
	for i := 0; i < 60; i++ {
		heavyRules = append(heavyRules, rule("heavy-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "PASS", heavy))
	}
	for _, c := range []struct {
		name string
		snap *engine.Snapshot
		rule string
		err  error
	}{
		{"undeclared name", miniSnapshot(rule("bad-name", "PASS", "nosuch > 1")), "bad-name", engine.ErrRuleCompile},
		{"syntax", miniSnapshot(rule("bad-syntax", "PASS", "now <")), "bad-syntax", engine.ErrRuleCompile},
		{"not bool", miniSnapshot(rule("not-bool", "PASS", "id.age + 1")), "not-bool", engine.ErrRuleCompile},
		{"unknown list", miniSnapshot(rule("no-list", "PASS", "stays.last_left_in(lists.nosuch) > now")), "no-list", engine.ErrRuleCompile},
		{"over budget", miniSnapshot(heavyRules...), "", engine.ErrRuleCost},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := engine.Compile(c.snap)
			var re *engine.RuleError
			if !errors.Is(err, c.err) || !errors.As(err, &re) || (c.rule != "" && re.Rule != c.rule) {
				t.Fatalf("err = %v, want %v naming %q", err, c.err, c.rule)
			}
		})
	}
	for _, c := range []struct {
		name string
		snap *engine.Snapshot
	}{
		{"duplicate rule id", miniSnapshot(rule("a", "PASS", "true"), rule("a", "PASS", "true"))},
		{"unknown outcome", miniSnapshot(rule("a", "MAYBE", "true"))},
		{"no rules", miniSnapshot()},
		{"no reasons", miniSnapshot(engine.Rule{ID: "a", Outcome: "PASS", When: "true"})},
		{"bad county", func() *engine.Snapshot {
			s := miniSnapshot(rule("a", "PASS", "true"))
			s.Lists["x"] = []string{"Beijing"}
			return s
		}()},
		{"expires before effective", func() *engine.Snapshot {
			s := miniSnapshot(rule("a", "PASS", "true"))
			s.ExpiresAt = s.EffectiveFrom
			return s
		}()},
	} {
		if _, err := engine.Compile(c.snap); !errors.Is(err, engine.ErrInvalidSnapshot) {
			t.Errorf("%s: err = %v, want ErrInvalidSnapshot", c.name, err)
		}
	}
}

func TestSnapshotSet(t *testing.T) {
	aug := shippedPolicy(t, policies.August2021)
	nov := shippedPolicy(t, policies.November2021)
	var s engine.SnapshotSet
	in := person(t)
	if d := s.Decide(in, engine.Conditions{LastSync: at}, at); d.Rule != engine.RuleNoSnapshot {
		t.Fatalf("empty set: %+v", d)
	}
	if err := s.Add(aug, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(nov, [32]byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(nov, [32]byte{2}); err != nil {
		t.Fatalf("same snapshot twice: %v", err)
	}
	if err := s.Add(nov, [32]byte{3}); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("same version, other bytes: %v", err)
	}
	if err := s.Add(aug, [32]byte{1}); !errors.Is(err, engine.ErrRollback) {
		t.Fatalf("rollback: %v", err)
	}
	before := time.Date(2021, 8, 1, 0, 0, 0, 0, engine.Beijing)
	if d := s.Decide(in, engine.Conditions{LastSync: before}, before); d.Rule != engine.RuleNotYetInForce {
		t.Fatalf("before every snapshot: %+v", d)
	}
	c := s.Clone()
	if dropped := c.Prune(at); len(dropped) != 1 || dropped[0] != aug.Version() || len(s.Policies()) != 2 {
		t.Fatalf("prune on a clone: dropped %v, original holds %d", dropped, len(s.Policies()))
	}
}
