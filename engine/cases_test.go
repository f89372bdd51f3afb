package engine_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/cases"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
)

var (
	policyCache   = map[string]*engine.Policy{}
	policyCacheMu sync.Mutex
)

func shippedPolicy(t testing.TB, name string) *engine.Policy {
	t.Helper()
	policyCacheMu.Lock()
	defer policyCacheMu.Unlock()
	if p, ok := policyCache[name]; ok {
		return p
	}
	snap, err := source.Load(policies.FS, name, source.Overrides{})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	p, err := engine.Compile(snap)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	policyCache[name] = p
	return p
}

func loadCases(t testing.TB) map[string]*cases.File {
	files, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files: %v", err)
	}
	out := map[string]*cases.File{}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := cases.Read(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = cf
	}
	return out
}

func TestPolicyCases(t *testing.T) {
	files := loadCases(t)
	rulesHit := map[string]map[string]bool{}
	outcomes := map[string]bool{}
	for _, file := range slices.Sorted(maps.Keys(files)) {
		cf := files[file]
		t.Run(file, func(t *testing.T) {
			for _, c := range cf.Cases {
				t.Run(c.Name, func(t *testing.T) {
					pol := c.Policy
					if pol == "" {
						pol = cf.Policy
					}
					p := shippedPolicy(t, pol)
					var set engine.SnapshotSet
					if err := set.Add(p, [32]byte{1}); err != nil {
						t.Fatal(err)
					}
					res, err := cases.Run(&set, &c)
					if err != nil {
						t.Fatal(err)
					}
					d := res.Decision
					if res.Mismatch != "" {
						in, now, _, _ := c.Input()
						t.Errorf("decision %s\nexplain: %v", res.Mismatch, p.Explain(in, now))
					}
					if d.SnapshotVersion == 0 && !strings.HasPrefix(d.Rule, "system.") {
						t.Errorf("decision without snapshot version")
					}
					if d.ReasonZH == "" || d.ReasonEN == "" {
						t.Errorf("decision without reasons: %+v", d)
					}
					if rulesHit[pol] == nil {
						rulesHit[pol] = map[string]bool{}
					}
					rulesHit[pol][d.Rule] = true
					outcomes[d.Outcome.String()] = true
				})
			}
		})
	}
	// Every rule of every shipped policy, and every outcome, is covered by some case.
	for pol, hit := range rulesHit {
		for _, r := range shippedPolicy(t, pol).Snapshot().Rules {
			if !hit[r.ID] {
				t.Errorf("%s: rule %s has no case", pol, r.ID)
			}
		}
	}
	for o := engine.Pass; o <= engine.Manual; o++ {
		if !outcomes[o.String()] {
			t.Errorf("outcome %s has no case", o)
		}
	}
}
