package wire_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
)

func shipped(t testing.TB) *engine.Snapshot {
	t.Helper()
	s, err := source.Load(policies.FS, policies.November2021, source.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSnapshotSignVerify(t *testing.T) {
	pub, priv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := wire.KeyRing{}
	keys.Add(pub)
	snap := shipped(t)
	signed, err := wire.SignSnapshot(snap, priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := wire.VerifySnapshot(signed, keys)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if v.Snapshot.Version != snap.Version || len(v.Snapshot.Rules) != len(snap.Rules) || v.KeyID != wire.KeyID(pub) {
		t.Fatalf("round trip changed the snapshot: %d rules, version %d", len(v.Snapshot.Rules), v.Snapshot.Version)
	}
	// Deterministic: the payload re-encodes to the same bytes.
	again, err := wire.EncodeSnapshot(v.Snapshot)
	if err != nil || !bytes.Equal(again, v.Payload) {
		t.Fatalf("encoding is not deterministic")
	}

	t.Run("every flipped byte is refused", func(t *testing.T) {
		for i := 0; i < len(signed); i += 1 + len(signed)/300 {
			bad := bytes.Clone(signed)
			bad[i] ^= 0x01
			if _, err := wire.VerifySnapshot(bad, keys); err == nil {
				t.Fatalf("flipping byte %d was accepted", i)
			}
		}
	})
	t.Run("altered payload is a bad signature", func(t *testing.T) {
		// Find the version inside the payload and change it: still well-formed CBOR.
		idx := bytes.Index(signed, v.Payload)
		bad := bytes.Clone(signed)
		bad[idx+len(v.Payload)-1] ^= 0x01 // last byte of the last reason string
		_, err := wire.VerifySnapshot(bad, keys)
		if !errors.Is(err, wire.ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		other, _, _ := wire.GenerateKey(rand.Reader)
		_, err := wire.VerifySnapshot(signed, wire.KeyRing{wire.KeyID(other): other})
		if !errors.Is(err, wire.ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("a key id pointing at another key", func(t *testing.T) {
		other, _, _ := wire.GenerateKey(rand.Reader)
		_, err := wire.VerifySnapshot(signed, wire.KeyRing{wire.KeyID(pub): other})
		if !errors.Is(err, wire.ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		payload, _ := wire.EncodeSnapshot(snap)
		other, err := wire.Sign(payload, "application/vnd.gatecheck.batch+cbor", priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.VerifySnapshot(other, keys); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("err = %v, want ErrMalformed", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		for _, b := range [][]byte{nil, {0xd2}, []byte("hello"), bytes.Repeat([]byte{0x81}, 1000)} {
			if _, err := wire.VerifySnapshot(b, keys); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("%x: err = %v, want ErrMalformed", b, err)
			}
		}
	})
	t.Run("a signed snapshot whose rule does not compile names the rule", func(t *testing.T) {
		bad := *shipped(t)
		bad.Rules = append([]engine.Rule(nil), bad.Rules...)
		bad.Rules[2].When = "def.popup3 && nosuchvar"
		signedBad, err := wire.SignSnapshot(&bad, priv)
		if err != nil {
			t.Fatal(err)
		}
		_, err = wire.VerifySnapshot(signedBad, keys)
		var re *engine.RuleError
		if !errors.As(err, &re) || re.Rule != bad.Rules[2].ID || !errors.Is(err, engine.ErrRuleCompile) {
			t.Fatalf("err = %v, want a RuleError naming %s", err, bad.Rules[2].ID)
		}
	})
}

func TestKeysPEMRoundTrip(t *testing.T) {
	pub, priv, _ := wire.GenerateKey(rand.Reader)
	pb, _ := wire.MarshalPublicKey(pub)
	kb, _ := wire.MarshalPrivateKey(priv)
	pub2, err := wire.ParsePublicKey(pb)
	if err != nil || !pub2.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	priv2, err := wire.ParsePrivateKey(kb)
	if err != nil || !priv2.Equal(priv) {
		t.Fatalf("private key round trip: %v", err)
	}
	if _, err := wire.ParsePublicKey(kb); err == nil {
		t.Fatal("a private key parsed as public")
	}
}

func TestFactsRoundTrip(t *testing.T) {
	f := &engine.Facts{Schema: 1, Tests: []engine.Test{{Sampled: 1637280000, Reported: 1637320000, Result: engine.ResultNegative, Lab: "Dian"}},
		Stays: []engine.Stay{{County: "130104", From: 1636646400, To: 1636941600}}, Commuter: &engine.Commuter{Since: 1622476800}}
	b, err := wire.EncodeFacts(f)
	if err != nil {
		t.Fatal(err)
	}
	var got engine.Facts
	if err := wire.DecodeFacts(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Tests[0] != f.Tests[0] || got.Stays[0] != f.Stays[0] || got.Commuter.Since != f.Commuter.Since {
		t.Fatalf("round trip: %+v", got)
	}
	if len(b) > 64 {
		t.Errorf("record is %d bytes; the compact encoding should stay under 64 for this record", len(b))
	}
}

// tiny is a small but complete snapshot: the fuzzers mutate it far faster than a full policy.
func tiny() *engine.Snapshot {
	return &engine.Snapshot{Schema: engine.SnapshotSchema, Version: 7, Name: "tiny", EffectiveFrom: 1637078400, ExpiresAt: 1643558400, MaxOffline: 259200,
		Params:    engine.Params{Durations: map[string]int64{"test_window": 172800}, Ints: map[string]int64{"days": 14}},
		Lists:     map[string][]string{"case_counties": {"210283", "130102"}},
		CityUnits: map[string]string{"130104": "1301", "130102": "1301"},
		Definitions: []engine.Definition{{Name: "valid_test", Expr: "test.has_negative && now - test.negative_sampled <= params.test_window"},
			{Name: "popup1", Expr: "now < bj_day(stays.last_left_in(lists.case_counties), params.days + 1)"}},
		Popups: []engine.PopupDef{{N: 1, Definition: "popup1", GuidanceZH: "请暂缓来京", GuidanceEN: "postpone"}},
		Rules: []engine.Rule{{ID: "popup-1", Outcome: "DENY_POPUP_1", When: "def.popup1", ReasonZH: "弹窗①", ReasonEN: "popup 1"},
			{ID: "pass", Outcome: "PASS", When: "def.valid_test", ReasonZH: "通行", ReasonEN: "pass"},
			{ID: "need-test", Outcome: "NEED_TEST", When: "true", ReasonZH: "需核酸", ReasonEN: "need a test"}}}
}

// FuzzVerifySnapshot feeds arbitrary bytes to the snapshot verifier: it must never panic, and
// nothing but a correctly signed snapshot may verify.
func FuzzVerifySnapshot(f *testing.F) {
	pub, priv, _ := wire.GenerateKey(rand.Reader)
	keys := wire.KeyRing{}
	keys.Add(pub)
	snap := tiny()
	signed, err := wire.SignSnapshot(snap, priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add(signed[:len(signed)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := wire.VerifySnapshot(b, keys)
		if err == nil && !bytes.Equal(b, signed) {
			// Only a message this test signed can verify; a different encoding of it would be a bug.
			if v.Snapshot.Version != snap.Version {
				t.Fatalf("accepted a snapshot this test did not sign")
			}
		}
	})
}

// FuzzDecodeSnapshot feeds arbitrary bytes to the payload decoder and compiler.
func FuzzDecodeSnapshot(f *testing.F) {
	payload, err := wire.EncodeSnapshot(tiny())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := engine.Compile(tiny()); err != nil {
		f.Fatalf("the tiny seed does not compile: %v", err)
	}
	f.Add(payload)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := wire.DecodeSnapshot(b)
		if err != nil {
			return
		}
		_, _ = engine.Compile(s)
	})
}

// FuzzDecodeFacts feeds arbitrary bytes to the stored-record decoder.
func FuzzDecodeFacts(f *testing.F) {
	b, _ := wire.EncodeFacts(&engine.Facts{Schema: 1, Tests: []engine.Test{{Sampled: 1, Reported: 2, Result: engine.ResultNegative}}})
	f.Add(b)
	f.Add([]byte{0xa1, 0x01, 0x9f}) // indefinite length: refused
	f.Fuzz(func(t *testing.T, b []byte) {
		var got engine.Facts
		if err := wire.DecodeFacts(b, &got); err != nil {
			return
		}
		again, err := wire.EncodeFacts(&got)
		if err != nil {
			t.Fatal(err)
		}
		var twice engine.Facts
		if err := wire.DecodeFacts(again, &twice); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}
