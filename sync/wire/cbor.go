package wire

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/gatecheck/gatecheck/engine"
)

// Size limits of decoded messages.
const (
	MaxSnapshotSize = 4 << 20
	MaxRecordSize   = 16 << 10
)

var (
	// encMode is Core Deterministic encoding (sorted keys, shortest forms, definite lengths):
	// the same value always gives the same bytes, so a signature is reproducible.
	encMode cbor.EncMode
	// decMode is for untrusted input.
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   12,
		MaxArrayElements:  engine.MaxListLen,
		MaxMapPairs:       engine.MaxListLen,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v deterministically.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// EncodeSnapshot encodes a snapshot deterministically (the payload that gets signed).
func EncodeSnapshot(s *engine.Snapshot) ([]byte, error) {
	b, err := encMode.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return b, nil
}

// DecodeSnapshot decodes a snapshot payload strictly.
func DecodeSnapshot(b []byte) (*engine.Snapshot, error) {
	if len(b) > MaxSnapshotSize {
		return nil, fmt.Errorf("%w: snapshot of %d bytes, at most %d", ErrTooLarge, len(b), MaxSnapshotSize)
	}
	var s engine.Snapshot
	if err := decMode.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: decode snapshot: %w", ErrMalformed, err)
	}
	return &s, nil
}

// EncodeFacts encodes a person's facts compactly (integer keys, empty fields omitted).
func EncodeFacts(f *engine.Facts) ([]byte, error) {
	b, err := encMode.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode facts: %w", err)
	}
	return b, nil
}

// DecodeFacts decodes a stored or received person record and checks its limits.
func DecodeFacts(b []byte, f *engine.Facts) error {
	if len(b) > MaxRecordSize {
		return fmt.Errorf("%w: record of %d bytes, at most %d", ErrTooLarge, len(b), MaxRecordSize)
	}
	*f = engine.Facts{}
	if err := decMode.Unmarshal(b, f); err != nil {
		*f = engine.Facts{}
		return fmt.Errorf("%w: decode facts: %w", ErrMalformed, err)
	}
	if err := f.Validate(); err != nil {
		*f = engine.Facts{}
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// Unmarshal decodes untrusted CBOR strictly into v.
func Unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }
