package bench_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/bench"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
)

// BenchmarkCheck times one decision through the device: ID parse, keyed hash, Badger lookup,
// CBOR decode and the rules, over 100,000 stored people (`gatecheck bench --records 1000000`
// gives the figures at a million).
func BenchmarkCheck(b *testing.B) {
	const n = 100_000
	d, err := bench.NewDevice(b.TempDir(), "small")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := bench.Load(context.Background(), d, n, nil); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 4096)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range ids {
		ids[i] = bench.ID(rng.IntN(n))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = d.Check(edge.CheckRequest{Number: ids[i%len(ids)]}, bench.Now)
		i++
	}
}

// BenchmarkIngest times the bulk writer per record (hash + CBOR + Badger WriteBatch).
func BenchmarkIngest(b *testing.B) {
	d, err := bench.NewDevice(b.TempDir(), "small")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	st := d.Store()
	w := st.NewWriter(bench.Now)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := w.Put(store.Person{Key: st.Key(engine.IDNumber(bench.ID(i))), Facts: bench.Facts(i, bench.Now)}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// The synthetic population is deterministic and every ID is valid and distinct.
func TestPopulation(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 20000; i++ {
		id := bench.ID(i)
		if _, err := engine.ParseID(id); err != nil {
			t.Fatalf("ID(%d) = %s: %v", i, id, err)
		}
		if seen[id] {
			t.Fatalf("ID(%d) = %s repeats", i, id)
		}
		seen[id] = true
		f := bench.Facts(i, bench.Now)
		if err := f.Validate(); err != nil {
			t.Fatalf("Facts(%d): %v", i, err)
		}
	}
	if a, b := bench.Facts(7, bench.Now), bench.Facts(7, bench.Now); len(a.Tests) != len(b.Tests) || len(a.Stays) != len(b.Stays) {
		t.Fatal("Facts is not deterministic")
	}
}

// The sync bench end to end, small: bootstrap, deltas and decisions all happen, and the device
// decides from the central's population.
func TestSyncBenchSmall(t *testing.T) {
	res, err := bench.Sync(context.Background(), bench.SyncConfig{Dir: t.TempDir(), Records: 3000, Updates: 500, Decisions: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if res.BootstrapSeconds <= 0 || res.DeltaApplyRecordsPerSec <= 0 || res.Decisions == nil || res.Decisions.Outcomes["PASS"] == 0 {
		t.Fatalf("result %+v %+v", res, res.Decisions)
	}
	if res.WireBytesPerUpdate <= 0 || res.WireBytesPerUpdate > 200 {
		t.Fatalf("%.1f bytes per update", res.WireBytesPerUpdate)
	}
}
