package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, HashKeySize) }

func TestPlainIDsNeverReachTheDisk(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, HashKey: testKey(7)})
	if err != nil {
		t.Fatal(err)
	}
	ids := []engine.IDNumber{"11010519491231002X", "810000199005010016", "911156199005010018"}
	w := s.NewWriter(time.Now())
	for _, id := range ids {
		if err := w.Put(Person{Key: s.Key(id), Facts: &engine.Facts{Schema: 1, Declarations: []engine.Unix{1637200000}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, id := range ids {
			if bytes.Contains(b, []byte(id.Plain())) || bytes.Contains(b, []byte(id.Plain()[6:14]+id.Plain()[14:17])) {
				t.Errorf("%s holds an ID number in plain text", p)
			}
		}
		return nil
	})
	// Reopen: records are found by the same key, and a different region key finds nothing.
	s, err = Open(Config{Dir: dir, HashKey: testKey(7)})
	if err != nil {
		t.Fatal(err)
	}
	if f, err := s.Lookup(s.Key(ids[0])); err != nil || f == nil {
		t.Fatalf("lookup after reopen: %v %v", f, err)
	}
	if s.LastRefresh().IsZero() {
		t.Error("last refresh lost across reopen")
	}
	s.Close()
	// Another region key would miss every record: the store refuses to open with it.
	if _, err := Open(Config{Dir: dir, HashKey: testKey(8)}); !errors.Is(err, ErrHashKey) {
		t.Fatalf("open with another hash key: %v, want ErrHashKey", err)
	}
}

func TestSchemaVersionChecked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, HashKey: testKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(txn *badger.Txn) error { return txn.Set(keySchema, []byte("99")) })
	s.Close()
	if _, err := Open(Config{Dir: dir, HashKey: testKey(1)}); !errors.Is(err, ErrSchema) {
		t.Fatalf("err = %v, want ErrSchema", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := Open(Config{Dir: t.TempDir(), HashKey: []byte("short")}); err == nil {
		t.Fatal("short hash key accepted")
	}
	if _, err := Open(Config{HashKey: testKey(1)}); err == nil {
		t.Fatal("empty dir accepted")
	}
	if _, err := Open(Config{Dir: t.TempDir(), HashKey: testKey(1), Profile: "huge"}); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

func TestReclaimAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	ret := 60 * 24 * time.Hour
	old := engine.UnixOf(time.Date(2021, 11, 20, 0, 0, 0, 0, time.UTC))
	future := engine.UnixOf(now.Add(10 * 24 * time.Hour))
	for _, c := range []struct {
		name string
		f    engine.Facts
		want time.Time
	}{
		{"old facts live retention past the write", engine.Facts{Tests: []engine.Test{{Sampled: old, Reported: old}}}, now.Add(ret)},
		{"a future fact extends it", engine.Facts{Inbound: future}, future.Time().Add(ret)},
		{"an active commuter is never reclaimed", engine.Facts{Commuter: &engine.Commuter{Since: old}}, time.Time{}},
		{"an uncleared popup 3 is never reclaimed", engine.Facts{Popups: []engine.Popup{{N: 3, Since: old}}}, time.Time{}},
		{"a revoked commuter is", engine.Facts{Commuter: &engine.Commuter{Since: old, Revoked: old}}, now.Add(ret)},
	} {
		if got := reclaimAfter(&c.f, now, ret); !got.Equal(c.want) {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestSnapshotsStoredAsGiven(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), HashKey: testKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, v := range []uint64{2021111700, 2021080700, 300} {
		if err := s.PutSnapshot(v, []byte{byte(v), 1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Snapshots()
	if err != nil || len(got) != 3 || got[0].Version != 300 || got[2].Version != 2021111700 || got[2].Signed[0] != byte(2021111700&0xff) {
		t.Fatalf("snapshots: %+v %v", got, err)
	}
}

// During a bootstrap the device keeps deciding from its old records; the new ones take over in
// one step when the stream is complete and checked, and a cut stream changes nothing.
func TestBootstrapSwapsAtTheEnd(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, HashKey: testKey(3)})
	if err != nil {
		t.Fatal(err)
	}
	oldKey, newKey := s.Key("11010519491231002X"), s.Key("110105199005010018")
	w := s.NewWriter(time.Now())
	w.Put(Person{Key: oldKey, Facts: &engine.Facts{Schema: 1, Inbound: 7}})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	facts := &engine.Facts{Schema: 1, Inbound: 9}
	h, _ := wire.RecordHash(newKey[:], facts)
	var d wire.Digest
	d.Toggle(h)
	chunks := []*wire.Batch{
		{Bootstrap: true, To: 5, Changes: []wire.Change{{Key: newKey[:], Op: wire.OpReplace, Facts: facts}}},
		{Bootstrap: true, Last: true, To: 5, Count: 1, Digest: d[:], ServerTime: time.Now().UnixMilli()},
	}
	// A stream cut before its last chunk: the old records stay in use.
	i := 0
	err = s.Bootstrap(func() (*wire.Batch, error) {
		if i == 1 {
			return nil, errors.New("link cut")
		}
		i++
		return chunks[0], nil
	})
	if err == nil {
		t.Fatal("a cut stream completed")
	}
	if f, _ := s.Lookup(oldKey); f == nil || f.Inbound != 7 {
		t.Fatalf("after a cut bootstrap the old record is gone: %+v", f)
	}
	i = 0
	err = s.Bootstrap(func() (*wire.Batch, error) {
		if i == 1 {
			// Still deciding from the old records while the stream runs.
			if f, _ := s.Lookup(oldKey); f == nil {
				t.Error("old record unavailable during the bootstrap")
			}
		}
		if i == len(chunks) {
			return nil, io.EOF
		}
		i++
		return chunks[i-1], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Lookup(oldKey); f != nil {
		t.Fatal("old record survived the bootstrap")
	}
	if f, _ := s.Lookup(newKey); f == nil || f.Inbound != 9 {
		t.Fatalf("new record: %+v", f)
	}
	st, _ := s.SyncState()
	if st.Cursor != 5 || st.Count != 1 || !st.Synced {
		t.Fatalf("sync state: %+v", st)
	}
	// The active prefix survives a reopen.
	s.Close()
	s2, err := Open(Config{Dir: dir, HashKey: testKey(3)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if f, _ := s2.Lookup(newKey); f == nil {
		t.Fatal("new record lost across a reopen")
	}
}

// A bootstrap keeps the stored snapshots, refuses a stream out of key order without touching
// the store, and leaves no directory behind.
func TestBootstrapKeepsSnapshotsAndRefusesDisorder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(Config{Dir: dir, HashKey: testKey(4)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := s.PutSnapshot(2021111700, []byte("signed snapshot bytes")); err != nil {
		t.Fatal(err)
	}
	a, b := s.Key("11010519491231002X"), s.Key("110105199005010018")
	if bytes.Compare(a[:], b[:]) > 0 {
		a, b = b, a
	}
	rec := func(k PersonKey) wire.Change {
		v, _ := wire.EncodeFacts(&engine.Facts{Schema: 1, Inbound: 5})
		return wire.Change{Key: k[:], Op: wire.OpReplace, Record: v}
	}
	var d wire.Digest
	var n uint64
	for _, k := range []PersonKey{a, b} {
		c := rec(k)
		d.AddEncoded(c.Key, c.Record, &n)
	}
	stream := func(changes ...wire.Change) func() (*wire.Batch, error) {
		sent := false
		return func() (*wire.Batch, error) {
			if sent {
				return nil, io.EOF
			}
			sent = true
			return &wire.Batch{Bootstrap: true, Last: true, To: 9, Count: n, Digest: d[:], ServerTime: time.Now().UnixMilli(), Changes: changes}, nil
		}
	}
	if err := s.Bootstrap(stream(rec(b), rec(a))); !errors.Is(err, ErrOrder) {
		t.Fatalf("out of order: %v", err)
	}
	if st, _ := s.SyncState(); st.Synced {
		t.Fatal("a refused bootstrap moved the cursor")
	}
	during := stream(rec(a), rec(b))
	if err := s.Bootstrap(func() (*wire.Batch, error) {
		// A snapshot installed while the bootstrap runs is not lost in the swap.
		if err := s.PutSnapshot(2021111800, []byte("installed during the bootstrap")); err != nil {
			return nil, err
		}
		return during()
	}); err != nil {
		t.Fatal(err)
	}
	snaps, err := s.Snapshots()
	if err != nil || len(snaps) != 2 || string(snaps[0].Signed) != "signed snapshot bytes" || string(snaps[1].Signed) != "installed during the bootstrap" {
		t.Fatalf("snapshots after the bootstrap: %+v %v", snaps, err)
	}
	if f, _ := s.Lookup(b); f == nil || f.Inbound != 5 {
		t.Fatalf("record after the bootstrap: %+v", f)
	}
	for _, p := range []string{dir + nextSuffix, dir + oldSuffix, filepath.Join(dir, markerFile)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

// A crash during a bootstrap: an incomplete new directory is dropped (the old store stays);
// a complete one (marker written) replaces the old store at the next open, even when the
// crash came between the two renames.
func TestBootstrapCrashRecovery(t *testing.T) {
	hk := testKey(5)
	mk := func(dir string, inbound engine.Unix) PersonKey {
		s, err := Open(Config{Dir: dir, HashKey: hk})
		if err != nil {
			t.Fatal(err)
		}
		k := s.Key("11010519491231002X")
		w := s.NewWriter(time.Now())
		w.Put(Person{Key: k, Facts: &engine.Facts{Schema: 1, Inbound: inbound}})
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		return k
	}
	inbound := func(dir string, k PersonKey) engine.Unix {
		t.Helper()
		s, err := Open(Config{Dir: dir, HashKey: hk})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		f, err := s.Lookup(k)
		if err != nil || f == nil {
			t.Fatalf("lookup: %+v %v", f, err)
		}
		return f.Inbound
	}
	for _, tc := range []struct {
		name      string
		marker    bool
		renamed   bool // the crash came after DIR -> DIR.old
		want      engine.Unix
		leftovers []string
	}{
		{"incomplete", false, false, 1, nil},
		{"complete, before the renames", true, false, 2, nil},
		{"complete, between the renames", true, true, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			k := mk(dir, 1)
			mk(dir+nextSuffix, 2)
			if tc.marker {
				if err := writeMarker(dir + nextSuffix); err != nil {
					t.Fatal(err)
				}
			}
			if tc.renamed {
				if err := os.Rename(dir, dir+oldSuffix); err != nil {
					t.Fatal(err)
				}
			}
			if got := inbound(dir, k); got != tc.want {
				t.Fatalf("after recovery the store holds inbound %d, want %d", got, tc.want)
			}
			for _, p := range []string{dir + nextSuffix, dir + oldSuffix, filepath.Join(dir, markerFile)} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s left behind", p)
				}
			}
		})
	}
}
