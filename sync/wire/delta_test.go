package wire_test

import (
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
)

func randomFacts(r *rand.Rand) *engine.Facts {
	f := &engine.Facts{Schema: 1}
	base := engine.Unix(1637280000)
	for i := 0; i < r.IntN(4); i++ {
		s := base + engine.Unix(r.IntN(100)*3600)
		f.Tests = append(f.Tests, engine.Test{Sampled: s + engine.Unix(i), Reported: s + 3600, Result: engine.Result(1 + r.IntN(2))})
	}
	for i := 0; i < r.IntN(3); i++ {
		f.Popups = append(f.Popups, engine.Popup{N: uint8(1 + i), Since: base + engine.Unix(r.IntN(50)*3600)})
	}
	if r.IntN(2) == 0 {
		f.Commuter = &engine.Commuter{Since: base - 86400*100}
	}
	for i := 0; i < r.IntN(3); i++ {
		f.Stays = append(f.Stays, engine.Stay{County: "130104", From: base + engine.Unix(i*30*86400+r.IntN(20)*86400)})
	}
	if r.IntN(3) == 0 {
		f.Inbound = base
	}
	if r.IntN(2) == 0 {
		f.Declarations = []engine.Unix{base + engine.Unix(r.IntN(10)*3600)}
	}
	return f
}

// sameFacts compares facts as sets (Apply may order lists differently from the source).
func sameFacts(a, b *engine.Facts) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	set := func(x, y []engine.Test) bool {
		return len(x) == len(y) && !slices.ContainsFunc(x, func(t engine.Test) bool { return !slices.Contains(y, t) })
	}
	pop := func(x, y []engine.Popup) bool {
		return len(x) == len(y) && !slices.ContainsFunc(x, func(t engine.Popup) bool { return !slices.Contains(y, t) })
	}
	stay := func(x, y []engine.Stay) bool {
		return len(x) == len(y) && !slices.ContainsFunc(x, func(t engine.Stay) bool { return !slices.Contains(y, t) })
	}
	com := (a.Commuter == nil) == (b.Commuter == nil) && (a.Commuter == nil || *a.Commuter == *b.Commuter)
	return set(a.Tests, b.Tests) && pop(a.Popups, b.Popups) && stay(a.Stays, b.Stays) && com &&
		a.Inbound == b.Inbound && a.PortEntry == b.PortEntry && len(a.Declarations) == len(b.Declarations)
}

// Diff then Apply turns any old facts into the new ones, and applying the changes again
// changes nothing (deliveries may repeat).
func TestDiffApplyIdempotent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		var old *engine.Facts
		if r.IntN(5) > 0 {
			old = randomFacts(r)
		}
		var next *engine.Facts
		switch r.IntN(4) {
		case 0: // new facts added on top of the old
			next = randomFacts(r)
			if old != nil {
				next.Tests = append(slices.Clone(old.Tests), next.Tests...)
			}
		case 1:
			next = nil
		default:
			next = randomFacts(r)
		}
		changes := wire.Diff(old, next)
		state := old
		var err error
		for j := range changes {
			if state, err = wire.Apply(state, &changes[j]); err != nil {
				t.Fatalf("case %d: apply: %v", i, err)
			}
		}
		if next != nil && old != nil && len(changes) == 0 && !sameFacts(old, next) {
			t.Fatalf("case %d: no changes for different facts", i)
		}
		if !sameFacts(state, next) && !(next == nil && old == nil) {
			t.Fatalf("case %d: apply(diff) = %+v, want %+v", i, state, next)
		}
		again := state
		for j := range changes {
			if again, err = wire.Apply(again, &changes[j]); err != nil {
				t.Fatal(err)
			}
		}
		h1, _ := wire.RecordHash([]byte("k"), orEmpty(state))
		h2, _ := wire.RecordHash([]byte("k"), orEmpty(again))
		if (state == nil) != (again == nil) || h1 != h2 {
			t.Fatalf("case %d: applying the changes twice changed the facts", i)
		}
	}
}

func orEmpty(f *engine.Facts) *engine.Facts {
	if f == nil {
		return &engine.Facts{}
	}
	return f
}

// A fact-level update is small on the wire.
func TestChangeIsSmall(t *testing.T) {
	b, err := wire.Marshal(wire.Change{Cursor: 123456789, Key: make([]byte, 16), Op: wire.OpTestAdd,
		Test: &engine.Test{Sampled: 1637280000, Reported: 1637300000, Result: engine.ResultNegative}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 45 {
		t.Errorf("a test-add change is %d bytes", len(b))
	}
}

func TestDigestOrderIndependent(t *testing.T) {
	var a, b wire.Digest
	h1, _ := wire.RecordHash([]byte("k1"), &engine.Facts{Inbound: 1})
	h2, _ := wire.RecordHash([]byte("k2"), &engine.Facts{Inbound: 2})
	a.Toggle(h1)
	a.Toggle(h2)
	b.Toggle(h2)
	b.Toggle(h1)
	if !a.Equal(b) {
		t.Fatal("digest depends on order")
	}
	b.Toggle(h1)
	if a.Equal(b) {
		t.Fatal("removing a record did not change the digest")
	}
}

func TestBatchVerify(t *testing.T) {
	pub, priv, _ := wire.GenerateKey(crand.Reader)
	keys := wire.KeyRing{}
	keys.Add(pub)
	b := &wire.Batch{From: 10, To: 12, Digest: make([]byte, 32), Count: 2, ServerTime: 1,
		Changes: []wire.Change{{Cursor: 11, Key: make([]byte, 16), Op: wire.OpInboundSet, Time: 5}, {Cursor: 12, Key: make([]byte, 16), Op: wire.OpDelete}}}
	signed, err := wire.SignBatch(b, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := wire.VerifyBatch(signed, keys)
	if err != nil || got.To != 12 || len(got.Changes) != 2 {
		t.Fatalf("verify: %+v %v", got, err)
	}
	b.Changes[1].Cursor = 13 // outside (From, To]
	signed, _ = wire.SignBatch(b, priv)
	if _, _, err := wire.VerifyBatch(signed, keys); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("cursor outside the batch: %v", err)
	}
	snap, _ := wire.Sign([]byte{0xa0}, wire.ContentSnapshot, priv)
	if _, _, err := wire.VerifyBatch(snap, keys); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("a snapshot accepted as a batch: %v", err)
	}
}

func TestRequestSignature(t *testing.T) {
	pub, priv, _ := wire.GenerateKey(crand.Reader)
	sig := wire.SignRequest(priv, "GET", "/v1/deltas?after=5", "n1", nil)
	if !wire.VerifyRequest(pub, sig, "GET", "/v1/deltas?after=5", "n1", nil) {
		t.Fatal("valid signature refused")
	}
	for _, c := range [][4]string{{"GET", "/v1/deltas?after=6", "n1", ""}, {"GET", "/v1/deltas?after=5", "n2", ""}, {"POST", "/v1/deltas?after=5", "n1", ""}, {"GET", "/v1/deltas?after=5", "n1", "x"}} {
		if wire.VerifyRequest(pub, sig, c[0], c[1], c[2], []byte(c[3])) {
			t.Errorf("signature accepted for %v", c)
		}
	}
}

// FuzzVerifyBatch: arbitrary bytes as a signed batch never panic, and only a batch this test
// signed verifies.
func FuzzVerifyBatch(f *testing.F) {
	pub, priv, _ := wire.GenerateKey(crand.Reader)
	keys := wire.KeyRing{}
	keys.Add(pub)
	b := &wire.Batch{From: 1, To: 3, Digest: make([]byte, 32), Changes: []wire.Change{
		{Cursor: 2, Key: make([]byte, 16), Op: wire.OpTestAdd, Test: &engine.Test{Sampled: 1, Reported: 2, Result: engine.ResultNegative}},
		{Cursor: 3, Key: make([]byte, 16), Op: wire.OpDelete}}}
	signed, _ := wire.SignBatch(b, priv)
	f.Add(signed)
	payload, _ := wire.Marshal(b)
	f.Add(payload)
	f.Fuzz(func(t *testing.T, in []byte) {
		got, _, err := wire.VerifyBatch(in, keys)
		if err != nil {
			return
		}
		for i := range got.Changes {
			if _, err := wire.Apply(nil, &got.Changes[i]); err != nil {
				continue
			}
		}
	})
}

// FuzzApply: any decodable change applied to any decodable facts never panics and yields
// facts within the limits.
func FuzzApply(f *testing.F) {
	c, _ := wire.Marshal(wire.Change{Cursor: 1, Key: make([]byte, 16), Op: wire.OpStayAdd, Stay: &engine.Stay{County: "130104", From: 5}})
	fb, _ := wire.EncodeFacts(&engine.Facts{Schema: 1, Tests: []engine.Test{{Sampled: 1, Reported: 2, Result: engine.ResultNegative}}})
	f.Add(c, fb)
	f.Fuzz(func(t *testing.T, cb, factsb []byte) {
		var ch wire.Change
		if err := wire.Unmarshal(cb, &ch); err != nil {
			return
		}
		var facts *engine.Facts
		var fs engine.Facts
		if wire.DecodeFacts(factsb, &fs) == nil {
			facts = &fs
		}
		out, err := wire.Apply(facts, &ch)
		if err == nil && out != nil {
			if err := out.Validate(); err != nil {
				t.Fatalf("apply produced invalid facts: %v", err)
			}
		}
	})
}
