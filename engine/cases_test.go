package engine_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"go.yaml.in/yaml/v3"
)

// caseFile is one file of engine/testdata/cases: policy cases as data.
type caseFile struct {
	Note   string     `yaml:"note"`
	Policy string     `yaml:"policy"` // shipped policy source, the default for every case
	Cases  []testCase `yaml:"cases"`
}

type testCase struct {
	Name     string    `yaml:"name"`
	Policy   string    `yaml:"policy"`
	ID       string    `yaml:"id"`    // an identity number, or
	Birth    string    `yaml:"birth"` // a birth date (YYYY-MM-DD) to make a resident number from
	TestOnly bool      `yaml:"test_only"`
	Now      string    `yaml:"now"`
	LastSync string    `yaml:"last_sync"` // default: now
	Clock    string    `yaml:"clock_untrusted"`
	Unknown  bool      `yaml:"unknown"` // no record held
	Facts    yaml.Node `yaml:"facts"`
	Want     struct {
		Outcome string   `yaml:"outcome"`
		Rule    string   `yaml:"rule"`
		Popups  []int    `yaml:"popups"`
		Flags   []string `yaml:"flags"`
	} `yaml:"want"`
}

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

// residentID makes a valid resident number (Beijing Chaoyang, sequence 001) for a birth date.
func residentID(birth string) string {
	s := "110105" + strings.ReplaceAll(birth, "-", "") + "001"
	return s + string(engine.CheckDigit(s))
}

// yamlToJSON turns a YAML node into plain values, keeping every scalar that is not a number or a
// bool a string (so dates stay as written).
func yamlToJSON(n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		return yamlToJSON(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = yamlToJSON(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			l = append(l, yamlToJSON(c))
		}
		return l
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int":
			var v int64
			_ = n.Decode(&v)
			return v
		case "!!bool":
			var v bool
			_ = n.Decode(&v)
			return v
		}
		return n.Value
	}
	return nil
}

func loadCases(t testing.TB) map[string]caseFile {
	files, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files: %v", err)
	}
	out := map[string]caseFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cf caseFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&cf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".yaml")] = cf
	}
	return out
}

// input builds the decision input of a case.
func (c *testCase) input(t testing.TB) (engine.Input, time.Time, engine.Conditions) {
	t.Helper()
	now, err := time.Parse(time.RFC3339, c.Now)
	if err != nil {
		t.Fatalf("now: %v", err)
	}
	cond := engine.Conditions{LastSync: now, ClockUntrusted: c.Clock}
	if c.LastSync != "" {
		if cond.LastSync, err = time.Parse(time.RFC3339, c.LastSync); err != nil {
			t.Fatalf("last_sync: %v", err)
		}
	}
	number := c.ID
	if number == "" {
		number = residentID(c.Birth)
	}
	rec := map[string]any{}
	if c.Facts.Kind != 0 {
		rec = yamlToJSON(&c.Facts).(map[string]any)
	}
	rec["id"] = number
	line, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	id, facts, err := engine.ParseRecord(line)
	if err != nil {
		t.Fatalf("facts: %v", err)
	}
	if c.Unknown {
		facts = nil
	}
	return engine.Input{Identity: id, Facts: facts, TestOnly: c.TestOnly}, now, cond
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
					in, now, cond := c.input(t)
					d := set.Decide(in, cond, now)
					got := fmt.Sprintf("%s %s popups=%v flags=%v", d.Outcome, d.Rule, d.Popups, d.Flags)
					want := fmt.Sprintf("%s %s popups=%v flags=%v", c.Want.Outcome, c.Want.Rule, c.Want.Popups, c.Want.Flags)
					if d.Outcome.String() != c.Want.Outcome || d.Rule != c.Want.Rule ||
						!slices.Equal(d.Popups, c.Want.Popups) || !slices.Equal(d.Flags, c.Want.Flags) {
						t.Errorf("decision\n got: %s\nwant: %s\nreason: %s\nexplain: %v", got, want, d.ReasonEN, p.Explain(in, now))
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
