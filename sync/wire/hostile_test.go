package wire

import (
	"bytes"
	"crypto/rand"
	"errors"
	"runtime"
	"testing"
)

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// Hostile CBOR is refused cheaply: deep nesting stops at the depth limit, a length header
// promising a gigabyte allocates nothing near it, oversized messages are refused before
// decoding, and none of it panics.
func TestHostileCBORRefusedCheaply(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x81}, 100_000), 0x00) // [[[[...0...]]]]
	huge := []byte{0x5a, 0x40, 0x00, 0x00, 0x00, 1, 2, 3}     // a byte string of 1 GiB, 3 bytes given
	manyElems := []byte{0x9a, 0x7f, 0xff, 0xff, 0xff, 0x00}   // an array of 2^31 elements
	cases := []struct {
		name string
		b    []byte
		v    any
	}{
		{"nested batch", deep, new(Batch)},
		{"nested facts", deep, new(struct{ X any })},
		{"gigabyte string", huge, new([]byte)},
		{"billions of elements", manyElems, new([]int)},
	}
	for _, c := range cases {
		var err error
		n := allocated(func() { err = Unmarshal(c.b, c.v) })
		if err == nil {
			t.Errorf("%s: decoded", c.name)
		}
		if n > 4<<20 {
			t.Errorf("%s: %d bytes allocated to refuse it", c.name, n)
		}
	}
	// Size limits come before any decoding.
	big := make([]byte, MaxBatchSize+1)
	rand.Read(big)
	if _, _, err := VerifyBatch(big, KeyRing{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized batch: %v", err)
	}
	if err := DecodeFacts(make([]byte, MaxRecordSize+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized record: %v", err)
	}
	if _, err := DecodeSnapshot(make([]byte, MaxSnapshotSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized snapshot: %v", err)
	}
}
