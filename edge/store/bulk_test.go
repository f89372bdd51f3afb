package store_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
)

// Enough records for memtable flushes and compactions read back intact, after a reopen too.
// On 32-bit platforms this failed until ristretto's allocator was patched
// (third_party/ristretto/PATCHED.md): scripts/test runs it with GOARCH=386 as well.
func TestBulkWriteReadsBack(t *testing.T) {
	if raceEnabled {
		t.Skip("300,000 records under -race take half a minute; scripts/test runs this without -race on GOARCH=386, where it matters")
	}
	hk := make([]byte, 32)
	rand.Read(hk)
	dir := t.TempDir()
	open := func() *store.Store {
		st, err := store.Open(store.Config{Dir: dir, HashKey: hk})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	now := time.Now()
	const n = 300_000
	keys := make([]store.PersonKey, n)
	w := st.NewWriter(now)
	for i := range n {
		keys[i], _ = store.HashID(hk, engine.IDNumber(fmt.Sprintf("%018d", i)))
		f := &engine.Facts{Schema: 1, Inbound: engine.UnixOf(now) - engine.Unix(i),
			Tests: []engine.Test{{Sampled: engine.Unix(i + 1), Reported: engine.Unix(i + 3600), Result: engine.ResultNegative}}}
		if err := w.Put(store.Person{Key: keys[i], Facts: f}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	check := func(st *store.Store) {
		t.Helper()
		bad := 0
		for i := 0; i < n; i += 97 {
			f, err := st.Lookup(keys[i])
			if err != nil || f == nil || f.Inbound != engine.UnixOf(now)-engine.Unix(i) {
				bad++
				if bad <= 3 {
					t.Errorf("record %d: %+v %v", i, f, err)
				}
			}
		}
		if bad > 0 {
			t.Fatalf("%d records of %d read back wrong", bad, n/97+1)
		}
	}
	check(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open()
	defer st.Close()
	check(st)
}
