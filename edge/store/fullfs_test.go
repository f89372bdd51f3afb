package store_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/edge/diskspace"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
)

// On a real, small filesystem (a 192 MiB tmpfs with a 64 MiB floor; the test needs root to mount it and skips
// otherwise): writes stop at the free-space floor with a clear error, long before Badger could
// hit the full disk (SIGBUS); every record written before is readable, and the store closes and
// opens again.
func TestRealSmallFilesystemStopsAtTheFloor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := filepath.Join(t.TempDir(), "fs")
	os.MkdirAll(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	hk := make([]byte, 32)
	rand.Read(hk)
	cfg := store.Config{Dir: filepath.Join(mnt, "data"), HashKey: hk, MinFree: 64 << 20}
	st, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var written []store.PersonKey // in flushed (acknowledged) chunks
	// About 500-byte records (the engine's list limits), so the disk fills sooner.
	decls := make([]engine.Unix, 16)
	var tests []engine.Test
	for i := range decls {
		decls[i] = engine.UnixOf(now) - engine.Unix(i*86400)
	}
	for i := range 30 {
		at := engine.UnixOf(now) - engine.Unix(i*86400)
		tests = append(tests, engine.Test{Sampled: at - 3600, Reported: at, Result: engine.ResultNegative})
	}
	var stopErr error
	for chunk := 0; chunk < 1000 && stopErr == nil; chunk++ {
		w := st.NewWriter(now)
		var keys []store.PersonKey
		for i := 0; i < 5000; i++ {
			k, _ := store.HashID(hk, engine.IDNumber(fmt.Sprintf("%d-%d", chunk, i)))
			f := &engine.Facts{Schema: 1, Inbound: engine.UnixOf(now), Declarations: decls, Tests: tests}
			if err := w.Put(store.Person{Key: k, Facts: f}); err != nil {
				stopErr = err
				break
			}
			keys = append(keys, k)
		}
		if stopErr != nil {
			w.Cancel()
			break
		}
		if err := w.Flush(); err != nil {
			stopErr = err
			break
		}
		written = append(written, keys...)
	}
	if !errors.Is(stopErr, diskspace.ErrLow) {
		t.Fatalf("writes stopped with %v, want the floor", stopErr)
	}
	if st.SpaceProblem() == nil {
		t.Fatal("no space problem reported at the floor")
	}
	t.Logf("stopped after %d records: %v", len(written), stopErr)
	check := func(st *store.Store) {
		t.Helper()
		for i := 0; i < len(written); i += 499 {
			if f, err := st.Lookup(written[i]); err != nil || f == nil {
				t.Fatalf("record %d of %d: %+v %v", i, len(written), f, err)
			}
		}
	}
	check(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(cfg); err != nil {
		t.Fatalf("reopen on the full filesystem: %v", err)
	}
	defer st.Close()
	check(st)
}
