// Package cases reads policy cases - a person, a moment and the decision a policy must give -
// from YAML files, and runs them against a compiled policy. The engine's own tests and
// `gatecheck-policy test` use the same format (engine/testdata/cases holds examples).
//
// cases imports only engine (and a YAML decoder): no I/O beyond the reader it is given.
package cases
