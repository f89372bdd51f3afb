package kv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
)

// A crash that leaves empty memtable and value-log files (found by the crash loops: SIGKILL
// right after Badger created 00001.mem, or 000151.vlog): Badger's own Open fails, kv.Open
// opens and nothing is lost.
func TestOpenAfterEmptyMemtableFile(t *testing.T) {
	dir := t.TempDir()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueThreshold(1 << 10)
	db, err := Open(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	empty := func() {
		for _, f := range []string{"00009.mem", "000009.vlog"} {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	empty()
	if db, err := badger.Open(opts); err == nil || !strings.Contains(err.Error(), z.NewFile.Error()) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("badger.Open with an empty memtable file: %v (the upstream bug is fixed? then kv.Open can go)", err)
	}
	empty()
	db, err = Open(opts, nil)
	if err != nil {
		t.Fatalf("kv.Open: %v", err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("k"))
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if string(v) != "v" {
			t.Errorf("value %q", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
