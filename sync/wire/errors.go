package wire

import "errors"

// Sentinel errors; match with errors.Is.
var (
	// ErrBadSignature reports a signature that does not verify with the key it names.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKey reports a message signed by a key that is not trusted.
	ErrUnknownKey = errors.New("signed by an unknown key")
	// ErrMalformed reports bytes that are not a well-formed message of the expected kind.
	ErrMalformed = errors.New("malformed message")
	// ErrTooLarge reports input over its size limit.
	ErrTooLarge = errors.New("message too large")
)
