package engine

import (
	"fmt"
	"time"
)

// Unix is a time as whole seconds since 1970 UTC. Facts store times this way: compact in CBOR,
// cheap to compare, and free of time zones. Zero means "not set".
type Unix int64

// UnixOf converts a time; the zero time becomes 0 (not set).
func UnixOf(t time.Time) Unix {
	if t.IsZero() {
		return 0
	}
	return Unix(t.Unix())
}

// Time converts back; 0 becomes the zero time.Time.
func (u Unix) Time() time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(int64(u), 0)
}

// IsSet reports whether the time is set.
func (u Unix) IsSet() bool { return u != 0 }

// Result is a nucleic-acid test result.
type Result uint8

// Test results.
const (
	ResultUnknown Result = iota
	ResultNegative
	ResultPositive
)

func (r Result) String() string {
	switch r {
	case ResultNegative:
		return "negative"
	case ResultPositive:
		return "positive"
	}
	return "unknown"
}

// Limits on the lists a person's facts may hold. They bound the cost of every rule evaluation
// (checked statically when a snapshot loads) and the size of a record; the importer refuses
// records over them with ErrInvalidFacts rather than truncating.
const (
	MaxTests        = 32
	MaxPopups       = 16
	MaxStays        = 64
	MaxDeclarations = 16
	MaxClearances   = 16
)

// Facts is what the device holds about one person, as POLICY.md lists it. It is stored as compact
// CBOR (integer keys, empty fields omitted), so fields may be added but never renumbered.
type Facts struct {
	Schema       uint8     `cbor:"0,keyasint,omitempty"`
	Tests        []Test    `cbor:"1,keyasint,omitempty"`
	Commuter     *Commuter `cbor:"2,keyasint,omitempty"`
	Popups       []Popup   `cbor:"3,keyasint,omitempty"`
	Stays        []Stay    `cbor:"4,keyasint,omitempty"`
	Declarations []Unix    `cbor:"5,keyasint,omitempty"`
	Inbound      Unix      `cbor:"6,keyasint,omitempty"` // overseas arrival; quarantine counts from it
	PortEntry    Unix      `cbor:"7,keyasint,omitempty"` // entered China through another port of entry
	Clearances   []Unix    `cbor:"8,keyasint,omitempty"` // manual clearances by community officers
	Updated      Unix      `cbor:"9,keyasint,omitempty"` // when the central system last changed the record
}

// Test is one nucleic-acid test.
type Test struct {
	Sampled  Unix   `cbor:"1,keyasint,omitempty"`
	Reported Unix   `cbor:"2,keyasint,omitempty"`
	Result   Result `cbor:"3,keyasint,omitempty"`
	Lab      string `cbor:"4,keyasint,omitempty"`
}

// Commuter is membership of the commuter database (环京通勤人员数据库).
type Commuter struct {
	Since   Unix   `cbor:"1,keyasint,omitempty"`
	Source  string `cbor:"2,keyasint,omitempty"` // big-data, checkpoint, 12345
	Revoked Unix   `cbor:"3,keyasint,omitempty"` // when the tag was revoked (travel pattern no longer commuter-like)
}

// Popup is a health-code popup flag raised by the central system.
type Popup struct {
	N uint8 `cbor:"1,keyasint"` // 1..5
	// Since is when the popup was raised.
	Since Unix `cbor:"2,keyasint,omitempty"`
	// Ref is the event the popup's end counts from: leaving the county (1, 5), the inbound
	// arrival (2), the trigger (4). Zero means Since.
	Ref Unix `cbor:"3,keyasint,omitempty"`
	// Cleared is when the central system cleared the flag; zero while raised.
	Cleared Unix `cbor:"4,keyasint,omitempty"`
}

// Stay is a stay in a county (travel history).
type Stay struct {
	County string `cbor:"1,keyasint"` // GB/T 2260 county code
	From   Unix   `cbor:"2,keyasint,omitempty"`
	To     Unix   `cbor:"3,keyasint,omitempty"` // left; zero while still there
}

// Validate checks the structural limits and values of a record. It does not judge the facts.
func (f *Facts) Validate() error {
	switch {
	case len(f.Tests) > MaxTests:
		return fmt.Errorf("%w: %d tests, at most %d", ErrInvalidFacts, len(f.Tests), MaxTests)
	case len(f.Popups) > MaxPopups:
		return fmt.Errorf("%w: %d popups, at most %d", ErrInvalidFacts, len(f.Popups), MaxPopups)
	case len(f.Stays) > MaxStays:
		return fmt.Errorf("%w: %d stays, at most %d", ErrInvalidFacts, len(f.Stays), MaxStays)
	case len(f.Declarations) > MaxDeclarations:
		return fmt.Errorf("%w: %d declarations, at most %d", ErrInvalidFacts, len(f.Declarations), MaxDeclarations)
	case len(f.Clearances) > MaxClearances:
		return fmt.Errorf("%w: %d clearances, at most %d", ErrInvalidFacts, len(f.Clearances), MaxClearances)
	}
	for i, t := range f.Tests {
		if t.Result != ResultNegative && t.Result != ResultPositive {
			return fmt.Errorf("%w: tests entry %d: result must be negative or positive", ErrInvalidFacts, i+1)
		}
		if !t.Sampled.IsSet() || !t.Reported.IsSet() {
			return fmt.Errorf("%w: tests entry %d: sampled and reported times are required", ErrInvalidFacts, i+1)
		}
		if t.Reported < t.Sampled {
			return fmt.Errorf("%w: tests entry %d: reported before it was sampled", ErrInvalidFacts, i+1)
		}
	}
	for i, p := range f.Popups {
		if p.N < 1 || p.N > 5 {
			return fmt.Errorf("%w: popups entry %d: number must be 1..5, got %d", ErrInvalidFacts, i+1, p.N)
		}
		if !p.Since.IsSet() {
			return fmt.Errorf("%w: popups entry %d: since is required", ErrInvalidFacts, i+1)
		}
	}
	for i, s := range f.Stays {
		if !validCounty(s.County) {
			return fmt.Errorf("%w: stays entry %d: county must be a 6-digit code", ErrInvalidFacts, i+1)
		}
		if !s.From.IsSet() {
			return fmt.Errorf("%w: stays entry %d: from is required", ErrInvalidFacts, i+1)
		}
		if s.To.IsSet() && s.To < s.From {
			return fmt.Errorf("%w: stays entry %d: left before it began", ErrInvalidFacts, i+1)
		}
	}
	return nil
}

func validCounty(c string) bool {
	if len(c) != 6 {
		return false
	}
	for i := 0; i < 6; i++ {
		if c[i] < '0' || c[i] > '9' {
			return false
		}
	}
	return true
}
