package store

import "errors"

// Sentinel errors; match with errors.Is.
var (
	// ErrSchema reports a data directory written with another key layout.
	ErrSchema = errors.New("store schema version mismatch")
	// ErrCorrupt reports a stored value that does not decode; it is not used.
	ErrCorrupt = errors.New("stored value is corrupt")
	// ErrHashKey reports a hash key other than the one the directory's records were written
	// with: every lookup would miss, so the store refuses to open.
	ErrHashKey = errors.New("hash key does not match this data directory")
)
