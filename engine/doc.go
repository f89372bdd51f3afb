// Package engine is gatecheck's pure decision logic: identity numbers, a person's facts, signed-rule
// snapshots compiled to CEL programs, and the decision they give at a moment in time.
//
// It does no I/O and imports no other gatecheck package: storage, hardware and networking live in
// edge, devices and sync, and hand engine plain values. Every function that depends on the time takes
// `now` as a parameter. A denial is a Decision, not an error; errors are reserved for loading
// (parsing an identity number, compiling a snapshot), and callers turn them into MANUAL decisions.
package engine
