package engine

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers match them with errors.Is.
var (
	// ErrInvalidID reports an identity number that is malformed, has a bad check digit or an
	// impossible birth date.
	ErrInvalidID = errors.New("invalid identity number")
	// ErrRollback reports a snapshot whose version is lower than the highest one held.
	ErrRollback = errors.New("snapshot rollback refused")
	// ErrExpired reports a snapshot past its expires-at.
	ErrExpired = errors.New("snapshot expired")
	// ErrConflict reports a snapshot with a version already held but different content.
	ErrConflict = errors.New("snapshot version already held with different content")
	// ErrInvalidSnapshot reports a snapshot that is structurally wrong (missing fields, bad times).
	ErrInvalidSnapshot = errors.New("invalid snapshot")
	// ErrRuleCompile reports a rule that does not parse or type-check.
	ErrRuleCompile = errors.New("rule does not compile")
	// ErrRuleCost reports a snapshot whose statically estimated cost exceeds the evaluation budget.
	ErrRuleCost = errors.New("rule cost over budget")
	// ErrInvalidFacts reports person facts that break a structural limit (list sizes, times).
	ErrInvalidFacts = errors.New("invalid person facts")
)

// IDError reports why an identity number was rejected. Reason is safe to show an officer: it
// never contains the number itself.
type IDError struct {
	Reason string
}

func (e *IDError) Error() string { return "invalid identity number: " + e.Reason }

// Unwrap lets errors.Is(err, ErrInvalidID) match.
func (e *IDError) Unwrap() error { return ErrInvalidID }

// RuleError names the rule (or definition) of a snapshot that failed to load.
type RuleError struct {
	Rule string
	Err  error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule %q: %v", e.Rule, e.Err) }

func (e *RuleError) Unwrap() error { return e.Err }
