package audit_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/sync/wire"
)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithNumCompactors(2).WithMemTableSize(8 << 20).WithValueThreshold(1 << 10))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func fill(t *testing.T, db *badger.DB, priv ed25519.PrivateKey, n int) *audit.Log {
	t.Helper()
	l, err := audit.Open(db, "lane-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e, err := l.Append(audit.Entry{Kind: audit.KindDecision, TimeMs: time.Date(2021, 11, 20, 8, 0, i, 0, time.UTC).UnixMilli(),
			Person: []byte{byte(i), 1, 2, 3}, Source: "card", Outcome: "PASS", Rule: "green-pass", Snapshot: 2021111700, Gate: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) {
			t.Fatalf("seq %d, want %d", e.Seq, i+1)
		}
	}
	return l
}

func key(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("v1/audit/e/"), seq) }

func raw(t *testing.T, db *badger.DB, k []byte) []byte {
	t.Helper()
	var v []byte
	if err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err = it.ValueCopy(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func set(t *testing.T, db *badger.DB, k, v []byte) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error {
		if v == nil {
			return txn.Delete(k)
		}
		return txn.Set(k, v)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifiesAndContinuesAfterReopen(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	db := openDB(t, dir)
	fill(t, db, priv, 5)
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	l, err := audit.Open(db, "lane-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Append(audit.Entry{Kind: audit.KindOverride, Officer: "officer 0042", Reason: "adult's paper test seen", Ref: 3, Outcome: "PASS", Gate: true})
	if err != nil || e.Seq != 6 {
		t.Fatalf("append after reopen: %+v %v", e, err)
	}
	rep, err := audit.Verify(db, "lane-1", pub)
	if err != nil || rep.Entries != 6 || rep.Overrides != 1 || rep.GateOpens != 4 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	list, err := l.Entries(5, 10)
	if err != nil || len(list) != 2 || list[1].Reason != "adult's paper test seen" {
		t.Fatalf("entries: %+v %v", list, err)
	}
}

func TestAuditDetectsTampering(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *badger.DB)
		want   error
	}{
		{"removed entry", func(t *testing.T, db *badger.DB) { set(t, db, key(3), nil) }, audit.ErrGap},
		{"altered entry", func(t *testing.T, db *badger.DB) {
			var r audit.Record
			wire.Unmarshal(raw(t, db, key(2)), &r)
			var e audit.Entry
			wire.Unmarshal(r.Entry, &e)
			e.Outcome = "MANUAL"
			r.Entry, _ = wire.Marshal(e)
			b, _ := wire.Marshal(r)
			set(t, db, key(2), b)
		}, audit.ErrSignature},
		{"forged entry with another key", func(t *testing.T, db *badger.DB) {
			var r audit.Record
			wire.Unmarshal(raw(t, db, key(4)), &r)
			r.Sig = ed25519.Sign(other, r.Entry)
			b, _ := wire.Marshal(r)
			set(t, db, key(4), b)
		}, audit.ErrSignature},
		{"swapped entries", func(t *testing.T, db *badger.DB) {
			a, b := raw(t, db, key(2)), raw(t, db, key(3))
			set(t, db, key(2), b)
			set(t, db, key(3), a)
		}, audit.ErrGap},
		{"cut-off tail", func(t *testing.T, db *badger.DB) { set(t, db, key(5), nil) }, audit.ErrHead},
		{"garbage", func(t *testing.T, db *badger.DB) { set(t, db, key(1), []byte{0xff, 0x00}) }, audit.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := openDB(t, t.TempDir())
			defer db.Close()
			fill(t, db, priv, 5)
			if _, err := audit.Verify(db, "lane-1", pub); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			c.tamper(t, db)
			if _, err := audit.Verify(db, "lane-1", pub); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("another device's key", func(t *testing.T) {
		db := openDB(t, t.TempDir())
		defer db.Close()
		fill(t, db, priv, 2)
		if _, err := audit.Verify(db, "lane-1", other.Public().(ed25519.PublicKey)); !errors.Is(err, audit.ErrSignature) {
			t.Fatalf("err = %v", err)
		}
	})
}
