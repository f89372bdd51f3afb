package engine

import (
	"fmt"
	"regexp"
	"time"
)

// SnapshotSchema is the version of the Snapshot encoding this engine understands.
const SnapshotSchema = 1

// Snapshot is a rule snapshot: the entry policy as data. It is encoded as deterministic CBOR and
// signed (sync/wire); the engine compiles it into a Policy. Times are Unix seconds and durations
// whole seconds, so the encoding is exact and stable.
type Snapshot struct {
	Schema        int    `cbor:"1,keyasint" yaml:"-"`
	Version       uint64 `cbor:"2,keyasint"`
	Name          string `cbor:"3,keyasint,omitempty"`
	EffectiveFrom Unix   `cbor:"4,keyasint"`
	ExpiresAt     Unix   `cbor:"5,keyasint"`
	// MaxOffline is how long after the last successful sync automatic PASS decisions are allowed,
	// in seconds.
	MaxOffline int64  `cbor:"6,keyasint"`
	Params     Params `cbor:"7,keyasint,omitempty"`
	// Lists are reference lists of county codes (case counties, risk areas, border-port counties).
	Lists map[string][]string `cbor:"8,keyasint,omitempty"`
	// CityUnits maps a county code to its city unit (POLICY.md rule 6).
	CityUnits   map[string]string `cbor:"9,keyasint,omitempty"`
	Definitions []Definition      `cbor:"10,keyasint,omitempty"`
	Popups      []PopupDef        `cbor:"11,keyasint,omitempty"`
	Rules       []Rule            `cbor:"12,keyasint"`
	// CostBudget is the largest statically estimated cost of one decision (all definitions and
	// rules) the snapshot claims; the device refuses a snapshot whose estimate exceeds its own
	// budget regardless.
	CostBudget uint64 `cbor:"13,keyasint,omitempty"`
}

// Params are a snapshot's named parameters, visible to rules as params.<name>.
type Params struct {
	Durations map[string]int64  `cbor:"1,keyasint,omitempty" json:"durations"` // seconds; CEL duration
	Ints      map[string]int64  `cbor:"2,keyasint,omitempty" json:"ints"`
	Strings   map[string]string `cbor:"3,keyasint,omitempty" json:"strings"`
}

// Definition is a named boolean CEL expression, visible to later definitions and to rules as
// def.<name>. Definitions are evaluated lazily, at most once per decision.
type Definition struct {
	Name string `cbor:"1,keyasint" json:"name"`
	Expr string `cbor:"2,keyasint" json:"expr"`
}

// PopupDef says which definition makes popup N active, and the guidance an officer shows.
type PopupDef struct {
	N          int    `cbor:"1,keyasint" json:"n"`
	Definition string `cbor:"2,keyasint" json:"definition"`
	GuidanceZH string `cbor:"3,keyasint,omitempty" json:"guidance_zh"`
	GuidanceEN string `cbor:"4,keyasint,omitempty" json:"guidance_en"`
}

// Rule is one entry of the ordered rule list: the first rule whose condition is true decides.
type Rule struct {
	ID       string   `cbor:"1,keyasint" json:"id"`
	Outcome  string   `cbor:"2,keyasint" json:"outcome"`
	When     string   `cbor:"3,keyasint" json:"when"`
	ReasonZH string   `cbor:"4,keyasint" json:"reason_zh"`
	ReasonEN string   `cbor:"5,keyasint" json:"reason_en"`
	Flags    []string `cbor:"6,keyasint,omitempty" json:"flags"`
}

// Limits on a snapshot's shape; they keep compile time and the cost estimate bounded.
const (
	MaxRules       = 64
	MaxDefinitions = 64
	MaxExprLen     = 4096
	MaxListLen     = 20000
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)
var ruleIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Effective returns EffectiveFrom as a time.
func (s *Snapshot) Effective() time.Time { return s.EffectiveFrom.Time() }

// Expires returns ExpiresAt as a time.
func (s *Snapshot) Expires() time.Time { return s.ExpiresAt.Time() }

// MaxOfflineDuration returns MaxOffline as a duration.
func (s *Snapshot) MaxOfflineDuration() time.Duration {
	return time.Duration(s.MaxOffline) * time.Second
}

// Validate checks the snapshot's structure (not its rules' CEL, which Compile checks).
func (s *Snapshot) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSnapshot, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Schema != SnapshotSchema:
		return bad("schema %d, this device understands %d", s.Schema, SnapshotSchema)
	case s.Version == 0:
		return bad("version must be > 0")
	case !s.EffectiveFrom.IsSet() || !s.ExpiresAt.IsSet():
		return bad("effective_from and expires_at are required")
	case s.ExpiresAt <= s.EffectiveFrom:
		return bad("expires_at must be after effective_from")
	case s.MaxOffline <= 0:
		return bad("max_offline must be > 0")
	case len(s.Rules) == 0:
		return bad("no rules")
	case len(s.Rules) > MaxRules:
		return bad("%d rules, at most %d", len(s.Rules), MaxRules)
	case len(s.Definitions) > MaxDefinitions:
		return bad("%d definitions, at most %d", len(s.Definitions), MaxDefinitions)
	}
	for name, l := range s.Lists {
		if !nameRE.MatchString(name) {
			return bad("list name %q: use lower_snake_case", name)
		}
		if len(l) > MaxListLen {
			return bad("list %q has %d entries, at most %d", name, len(l), MaxListLen)
		}
		for _, c := range l {
			if !validCounty(c) {
				return bad("list %q: %q is not a 6-digit county code", name, c)
			}
		}
	}
	if len(s.CityUnits) > MaxListLen {
		return bad("city_units has %d entries, at most %d", len(s.CityUnits), MaxListLen)
	}
	for _, m := range []map[string]int64{s.Params.Durations, s.Params.Ints} {
		for name := range m {
			if !nameRE.MatchString(name) {
				return bad("param name %q: use lower_snake_case", name)
			}
		}
	}
	for name := range s.Params.Strings {
		if !nameRE.MatchString(name) {
			return bad("param name %q: use lower_snake_case", name)
		}
	}
	seen := map[string]bool{}
	for _, d := range s.Definitions {
		if !nameRE.MatchString(d.Name) {
			return bad("definition name %q: use lower_snake_case", d.Name)
		}
		if seen[d.Name] {
			return bad("definition %q defined twice", d.Name)
		}
		seen[d.Name] = true
		if len(d.Expr) > MaxExprLen {
			return bad("definition %q longer than %d bytes", d.Name, MaxExprLen)
		}
	}
	popups := map[int]bool{}
	for _, p := range s.Popups {
		if p.N < 1 || p.N > 5 || popups[p.N] {
			return bad("popup %d: numbers are 1..5, each once", p.N)
		}
		popups[p.N] = true
		if !seen[p.Definition] {
			return bad("popup %d: definition %q not found", p.N, p.Definition)
		}
	}
	ids := map[string]bool{}
	for i, r := range s.Rules {
		if !ruleIDRE.MatchString(r.ID) {
			return bad("rule %d: id %q: use lower-case letters, digits, '.', '_' and '-'", i+1, r.ID)
		}
		if ids[r.ID] {
			return bad("rule id %q used twice", r.ID)
		}
		ids[r.ID] = true
		if _, err := ParseOutcome(r.Outcome); err != nil {
			return bad("rule %q: %v", r.ID, err)
		}
		if r.ReasonZH == "" || r.ReasonEN == "" {
			return bad("rule %q: reason_zh and reason_en are required", r.ID)
		}
		if len(r.When) > MaxExprLen {
			return bad("rule %q: condition longer than %d bytes", r.ID, MaxExprLen)
		}
	}
	return nil
}
