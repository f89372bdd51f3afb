package source

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatecheck/gatecheck/engine"
	"go.yaml.in/yaml/v3"
)

// File is the YAML source of one policy.
type File struct {
	Version       uint64               `yaml:"version"`
	Name          string               `yaml:"name"`
	EffectiveFrom string               `yaml:"effective_from"`
	ExpiresAt     string               `yaml:"expires_at"`
	MaxOffline    string               `yaml:"max_offline"`
	Params        map[string]yaml.Node `yaml:"params"`
	Lists         map[string]yaml.Node `yaml:"lists"`
	CityUnits     *CSVRef              `yaml:"city_units"`
	Definitions   []struct {
		Name string `yaml:"name"`
		Expr string `yaml:"expr"`
	} `yaml:"definitions"`
	Popups []struct {
		N          int    `yaml:"n"`
		Definition string `yaml:"definition"`
		GuidanceZH string `yaml:"guidance_zh"`
		GuidanceEN string `yaml:"guidance_en"`
	} `yaml:"popups"`
	Rules []struct {
		ID       string   `yaml:"id"`
		Outcome  string   `yaml:"outcome"`
		When     string   `yaml:"when"`
		ReasonZH string   `yaml:"reason_zh"`
		ReasonEN string   `yaml:"reason_en"`
		Flags    []string `yaml:"flags"`
	} `yaml:"rules"`
}

// CSVRef names a CSV file (relative to the source file) and the columns to read from it.
type CSVRef struct {
	CSV    string `yaml:"csv"`
	Column string `yaml:"column"` // for lists
	Key    string `yaml:"key"`    // for city_units
	Value  string `yaml:"value"`  // for city_units
}

// Overrides replace fields of the source when compiling, for re-signing a policy (the demo signs
// the shipped policy with effective-from = now).
type Overrides struct {
	Version       uint64
	EffectiveFrom time.Time
	ExpiresAt     time.Time
}

// MaxSourceSize bounds a source file.
const MaxSourceSize = 4 << 20

// Load reads and compiles the source file at name in fsys.
func Load(fsys fs.FS, name string, o Overrides) (*engine.Snapshot, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("read policy source: %w", err)
	}
	if len(b) > MaxSourceSize {
		return nil, fmt.Errorf("policy source %s: %d bytes, at most %d", name, len(b), MaxSourceSize)
	}
	snap, err := Parse(b, fsys, path.Dir(name), o)
	if err != nil {
		return nil, fmt.Errorf("policy source %s: %w", name, err)
	}
	return snap, nil
}

// Parse compiles source bytes; CSV references are read from dir in fsys.
func Parse(src []byte, fsys fs.FS, dir string, o Overrides) (*engine.Snapshot, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty source")
		}
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	s := &engine.Snapshot{Schema: engine.SnapshotSchema, Version: f.Version, Name: f.Name}
	var err error
	if s.EffectiveFrom, err = parseTime("effective_from", f.EffectiveFrom); err != nil {
		return nil, err
	}
	if s.ExpiresAt, err = parseTime("expires_at", f.ExpiresAt); err != nil {
		return nil, err
	}
	if o.Version != 0 {
		s.Version = o.Version
	}
	if !o.EffectiveFrom.IsZero() {
		s.EffectiveFrom = engine.UnixOf(o.EffectiveFrom)
	}
	if !o.ExpiresAt.IsZero() {
		s.ExpiresAt = engine.UnixOf(o.ExpiresAt)
	}
	mo, err := ParseDuration(f.MaxOffline)
	if err != nil {
		return nil, fmt.Errorf("max_offline: %w", err)
	}
	s.MaxOffline = int64(mo / time.Second)
	for name, n := range f.Params {
		if err := addParam(&s.Params, name, &n); err != nil {
			return nil, err
		}
	}
	for name, n := range f.Lists {
		l, err := readList(fsys, dir, name, &n)
		if err != nil {
			return nil, err
		}
		if s.Lists == nil {
			s.Lists = map[string][]string{}
		}
		s.Lists[name] = l
	}
	if f.CityUnits != nil {
		if s.CityUnits, err = readCityUnits(fsys, dir, f.CityUnits); err != nil {
			return nil, err
		}
	}
	for _, d := range f.Definitions {
		s.Definitions = append(s.Definitions, engine.Definition{Name: d.Name, Expr: strings.TrimSpace(d.Expr)})
	}
	for _, p := range f.Popups {
		s.Popups = append(s.Popups, engine.PopupDef{N: p.N, Definition: p.Definition, GuidanceZH: strings.TrimSpace(p.GuidanceZH), GuidanceEN: strings.TrimSpace(p.GuidanceEN)})
	}
	for _, r := range f.Rules {
		s.Rules = append(s.Rules, engine.Rule{ID: r.ID, Outcome: r.Outcome, When: strings.TrimSpace(r.When),
			ReasonZH: strings.TrimSpace(r.ReasonZH), ReasonEN: strings.TrimSpace(r.ReasonEN), Flags: r.Flags})
	}
	// Compile now, so an author sees a bad rule before signing.
	if _, err := engine.Compile(s); err != nil {
		return nil, err
	}
	return s, nil
}

func parseTime(field, v string) (engine.Unix, error) {
	if v == "" {
		return 0, fmt.Errorf("%s is required (RFC 3339, e.g. 2021-11-17T00:00:00+08:00)", field)
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return engine.UnixOf(t), nil
}

var daysRE = regexp.MustCompile(`^(\d+)d$`)

// ParseDuration accepts Go durations ("48h", "90m") and whole days ("14d").
func ParseDuration(s string) (time.Duration, error) {
	if m := daysRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 36500 {
			return 0, fmt.Errorf("duration %q out of range", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: use e.g. 48h or 14d", s)
	}
	return d, nil
}

// addParam types a parameter by its YAML value: an integer is an int, a string that reads as a
// duration ("48h", "14d") a duration, any other string a string.
func addParam(p *engine.Params, name string, n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("param %s: want a number, duration or string", name)
	}
	if n.Tag == "!!int" {
		v, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			return fmt.Errorf("param %s: %w", name, err)
		}
		if p.Ints == nil {
			p.Ints = map[string]int64{}
		}
		p.Ints[name] = v
		return nil
	}
	if d, err := ParseDuration(n.Value); err == nil {
		if p.Durations == nil {
			p.Durations = map[string]int64{}
		}
		p.Durations[name] = int64(d / time.Second)
		return nil
	}
	if p.Strings == nil {
		p.Strings = map[string]string{}
	}
	p.Strings[name] = n.Value
	return nil
}

func readList(fsys fs.FS, dir, name string, n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return nil, fmt.Errorf("list %s: %w", name, err)
		}
		return l, nil
	case yaml.MappingNode:
		var ref CSVRef
		if err := n.Decode(&ref); err != nil {
			return nil, fmt.Errorf("list %s: %w", name, err)
		}
		rows, header, err := readCSV(fsys, path.Join(dir, ref.CSV))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", name, err)
		}
		col, ok := header[ref.Column]
		if !ok {
			return nil, fmt.Errorf("list %s: %s has no column %q", name, ref.CSV, ref.Column)
		}
		l := make([]string, 0, len(rows))
		for _, r := range rows {
			l = append(l, r[col])
		}
		return l, nil
	}
	return nil, fmt.Errorf("list %s: want a sequence of county codes or {csv, column}", name)
}

func readCityUnits(fsys fs.FS, dir string, ref *CSVRef) (map[string]string, error) {
	rows, header, err := readCSV(fsys, path.Join(dir, ref.CSV))
	if err != nil {
		return nil, fmt.Errorf("city_units: %w", err)
	}
	k, ok1 := header[ref.Key]
	v, ok2 := header[ref.Value]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("city_units: %s lacks column %q or %q", ref.CSV, ref.Key, ref.Value)
	}
	m := make(map[string]string, len(rows))
	for _, r := range rows {
		m[r[k]] = r[v]
	}
	return m, nil
}

func readCSV(fsys fs.FS, name string) ([][]string, map[string]int, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", name, err)
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("%s is empty", name)
	}
	header := map[string]int{}
	for i, h := range rows[0] {
		header[strings.TrimSpace(h)] = i
	}
	return rows[1:], header, nil
}
