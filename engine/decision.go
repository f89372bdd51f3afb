package engine

import (
	"encoding/json"
	"fmt"
	"time"
)

// Outcome is what the device tells the traveller and the gate.
type Outcome uint8

// Outcomes, as POLICY.md names them.
const (
	OutcomeInvalid Outcome = iota
	Pass
	PassCommuter
	DenyPopup1
	DenyPopup2
	DenyPopup3
	DenyPopup4
	DenyPopup5
	NeedTest
	Companion
	Manual
)

var outcomeNames = [...]string{"", "PASS", "PASS_COMMUTER", "DENY_POPUP_1", "DENY_POPUP_2", "DENY_POPUP_3",
	"DENY_POPUP_4", "DENY_POPUP_5", "NEED_TEST", "COMPANION", "MANUAL"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && o != OutcomeInvalid {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// ParseOutcome reads an outcome name such as "DENY_POPUP_3".
func ParseOutcome(s string) (Outcome, error) {
	for i, n := range outcomeNames {
		if i != 0 && n == s {
			return Outcome(i), nil
		}
	}
	return OutcomeInvalid, fmt.Errorf("unknown outcome %q", s)
}

// Opens reports whether the outcome lets the traveller through the gate.
func (o Outcome) Opens() bool { return o == Pass || o == PassCommuter }

// MarshalText writes the outcome's name.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an outcome's name.
func (o *Outcome) UnmarshalText(b []byte) error {
	v, err := ParseOutcome(string(b))
	*o = v
	return err
}

// Rule ids of the decisions the engine makes before (or after) a snapshot's own rules.
const (
	RuleNoSnapshot    = "system.no-snapshot"
	RuleNotYetInForce = "system.not-yet-in-force"
	RuleExpired       = "system.snapshot-expired"
	RuleClock         = "system.clock-untrusted"
	RuleInvalidID     = "system.invalid-id"
	RuleUnknownPerson = "system.unknown-person"
	RuleNoMatch       = "system.no-rule-matched"
	RuleMaxOffline    = "system.max-offline"
	RuleStore         = "system.store-unavailable"
)

// Flags a decision may carry.
const (
	FlagReportToCommunity = "report_to_community"
)

// Decision is the answer for one person at one moment. A denial or a MANUAL is a Decision, never
// an error.
type Decision struct {
	Outcome         Outcome   `json:"outcome"`
	Rule            string    `json:"rule"`
	SnapshotVersion uint64    `json:"snapshot_version"`
	ReasonZH        string    `json:"reason_zh"`
	ReasonEN        string    `json:"reason_en"`
	Popups          []int     `json:"popups"`
	Flags           []string  `json:"flags,omitempty"`
	At              time.Time `json:"at"`
	// Error is the internal cause of a rule that failed to evaluate, for logs and the audit
	// record; officers see ReasonZH/ReasonEN.
	Error string `json:"error,omitempty"`
}

// Commuter reports whether the decision shows the commuter mark (通勤).
func (d Decision) Commuter() bool { return d.Outcome == PassCommuter }

// MarshalJSON keeps popups an array (never null) so consumers can index it, and writes the
// time in Beijing time.
func (d Decision) MarshalJSON() ([]byte, error) {
	type plain Decision
	p := plain(d)
	if p.Popups == nil {
		p.Popups = []int{}
	}
	p.At = p.At.In(Beijing)
	return json.Marshal(p)
}

func manual(rule string, version uint64, now time.Time, zh, en string) Decision {
	return Decision{Outcome: Manual, Rule: rule, SnapshotVersion: version, ReasonZH: zh, ReasonEN: en, At: now}
}

// ManualInvalidID is the decision for a number that failed ParseID.
func ManualInvalidID(err error, version uint64, now time.Time) Decision {
	return manual(RuleInvalidID, version, now, "证件号码无效，请人工核验", err.Error()+"; check the document by hand")
}
