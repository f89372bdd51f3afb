package cases

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/gatecheck/gatecheck/engine"
	"go.yaml.in/yaml/v3"
)

// File is one case file.
type File struct {
	Note   string `yaml:"note"`
	Policy string `yaml:"policy"` // the shipped policy source the cases were written for
	Cases  []Case `yaml:"cases"`
}

// Case is one person at one moment and the decision wanted.
type Case struct {
	Name     string    `yaml:"name"`
	Policy   string    `yaml:"policy"`          // overrides the file's policy for this case
	ID       string    `yaml:"id"`              // an identity number, or
	Birth    string    `yaml:"birth"`           // a birth date (YYYY-MM-DD) to make a resident number from
	TestOnly bool      `yaml:"test_only"`       // the officer's "disability or no smartphone" input
	Now      string    `yaml:"now"`             // RFC 3339
	LastSync string    `yaml:"last_sync"`       // default: now
	Clock    string    `yaml:"clock_untrusted"` // a reason the clock is not trusted
	Unknown  bool      `yaml:"unknown"`         // no record held
	Facts    yaml.Node `yaml:"facts"`           // the record, in the import schema (without id)
	Want     Want      `yaml:"want"`
}

// Want is the decision a case wants.
type Want struct {
	Outcome string   `yaml:"outcome"`
	Rule    string   `yaml:"rule"`
	Popups  []int    `yaml:"popups"`
	Flags   []string `yaml:"flags"`
}

// MaxFileSize bounds a case file.
const MaxFileSize = 8 << 20

// Read reads a case file; unknown fields are errors.
func Read(r io.Reader) (*File, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("case file larger than %d bytes", MaxFileSize)
	}
	var f File
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	for i, c := range f.Cases {
		if c.Name == "" || c.Now == "" || c.Want.Outcome == "" {
			return nil, fmt.Errorf("cases: case %d (%q): name, now and want.outcome are required", i+1, c.Name)
		}
		if c.ID == "" && c.Birth == "" {
			return nil, fmt.Errorf("cases: case %q: id or birth is required", c.Name)
		}
	}
	return &f, nil
}

// ResidentID makes a valid resident number (Beijing Chaoyang, sequence 001) for a birth date
// written YYYY-MM-DD.
func ResidentID(birth string) string {
	s := "110105" + strings.ReplaceAll(birth, "-", "") + "001"
	return s + string(engine.CheckDigit(s))
}

// Input builds the decision input of a case: the person, the moment and the conditions.
func (c *Case) Input() (engine.Input, time.Time, engine.Conditions, error) {
	now, err := time.Parse(time.RFC3339, c.Now)
	if err != nil {
		return engine.Input{}, now, engine.Conditions{}, fmt.Errorf("case %q: now: %w", c.Name, err)
	}
	cond := engine.Conditions{LastSync: now, ClockUntrusted: c.Clock}
	if c.LastSync != "" {
		if cond.LastSync, err = time.Parse(time.RFC3339, c.LastSync); err != nil {
			return engine.Input{}, now, cond, fmt.Errorf("case %q: last_sync: %w", c.Name, err)
		}
	}
	number := c.ID
	if number == "" {
		if _, err := time.Parse(time.DateOnly, c.Birth); err != nil {
			return engine.Input{}, now, cond, fmt.Errorf("case %q: birth %q: want YYYY-MM-DD", c.Name, c.Birth)
		}
		number = ResidentID(c.Birth)
	}
	rec := map[string]any{}
	if c.Facts.Kind != 0 {
		m, ok := plain(&c.Facts).(map[string]any)
		if !ok {
			return engine.Input{}, now, cond, fmt.Errorf("case %q: facts must be a mapping", c.Name)
		}
		rec = m
	}
	rec["id"] = number
	line, err := json.Marshal(rec)
	if err != nil {
		return engine.Input{}, now, cond, fmt.Errorf("case %q: %w", c.Name, err)
	}
	id, facts, err := engine.ParseRecord(line)
	if err != nil {
		return engine.Input{}, now, cond, fmt.Errorf("case %q: facts: %w", c.Name, err)
	}
	if c.Unknown {
		facts = nil
	}
	return engine.Input{Identity: id, Facts: facts, TestOnly: c.TestOnly}, now, cond, nil
}

// plain turns a YAML node into plain values, keeping every scalar that is not a number or a
// bool a string (so dates stay as written).
func plain(n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		return plain(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plain(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			l = append(l, plain(c))
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

// Result is one case run.
type Result struct {
	Case     *Case
	Decision engine.Decision
	// Mismatch says how the decision differs from the wanted one; empty when it passed.
	Mismatch string
}

// Run decides a case with set, as a device holding those snapshots would, and compares.
func Run(set *engine.SnapshotSet, c *Case) (Result, error) {
	in, now, cond, err := c.Input()
	if err != nil {
		return Result{Case: c}, err
	}
	d := set.Decide(in, cond, now)
	r := Result{Case: c, Decision: d}
	got := fmt.Sprintf("%s %s popups=%v flags=%v", d.Outcome, d.Rule, d.Popups, d.Flags)
	want := fmt.Sprintf("%s %s popups=%v flags=%v", c.Want.Outcome, c.Want.Rule, c.Want.Popups, c.Want.Flags)
	if d.Outcome.String() != c.Want.Outcome || (c.Want.Rule != "" && d.Rule != c.Want.Rule) ||
		!slices.Equal(d.Popups, c.Want.Popups) || !slices.Equal(d.Flags, c.Want.Flags) {
		r.Mismatch = fmt.Sprintf("got %s, want %s (%s)", got, want, d.ReasonEN)
	}
	return r, nil
}
