package store

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/gatecheck/gatecheck/sync/kv"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// A bootstrap writes a new store directory beside the current one and swaps them:
//
//	DIR.next/            being written (removed at the next open if it lacks the marker)
//	DIR.next/BOOTSTRAPPED  written, synced and closed: complete
//	DIR.old/             the replaced directory, removed once the new one is open
const (
	nextSuffix   = ".next"
	oldSuffix    = ".old"
	markerFile   = "BOOTSTRAPPED"
	streamFlush  = 4 << 20 // bytes of records handed to the StreamWriter at a time
	streamWriter = "gatecheck.bootstrap"
)

// ErrOrder reports a bootstrap stream whose keys are not in ascending order (the StreamWriter
// needs them sorted; the central sends them so).
var ErrOrder = errors.New("bootstrap stream out of key order")

// Bootstrap replaces every person record with the stream's (next returns the chunks in order).
// It writes them with Badger's StreamWriter - sorted tables written straight to the last
// level: no memtables, no compactions, bounded memory - into a new directory beside the
// store, checks the last chunk's count and digest, copies the stored snapshots, records the
// cursor and then swaps the directories. Decisions go on from the old records until the swap,
// which takes as long as closing one store and opening the other. A stream cut part-way, or a
// crash, leaves the old store in use and the device still marked as needing a bootstrap.
// Bootstraps and batches must not run concurrently (the sync client runs one at a time).
func (s *Store) Bootstrap(next func() (*wire.Batch, error)) error {
	s.writeMu.Lock() // no import or batch meanwhile; lookups go on
	defer s.writeMu.Unlock()
	nextDir := s.dir + nextSuffix
	// The new directory is written beside the old: it needs about as much room again.
	if err := s.floor.Check(uint64(DiskUsage(s.dir))); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := os.RemoveAll(nextDir); err != nil {
		return fmt.Errorf("bootstrap: clear %s: %w", nextDir, err)
	}
	opts, err := badgerOptions(nextDir, s.profile, s.log)
	if err != nil {
		return err
	}
	// The StreamWriter writes to the last level with that level's table size (the base size
	// times the multiplier per level: 128 MiB here), and a table builder holds up to twice a
	// table in memory. 8 MiB tables keep a bootstrap's memory flat; the store reopens with its
	// usual options.
	opts = opts.WithBaseTableSize(8 << 20)
	opts.TableSizeMultiplier = 1
	ndb, err := kv.Open(opts, s.log)
	if err != nil {
		return fmt.Errorf("bootstrap: open %s: %w", nextDir, err)
	}
	closed := false
	defer func() {
		if !closed {
			ndb.Close()
			os.RemoveAll(nextDir)
		}
	}()
	last, st, err := s.stream(ndb, next)
	if err != nil {
		return err
	}
	// Meta: the snapshots held, the schema and hash-key check, the cursor, the refresh time.
	db, done := s.use()
	snaps, err := snapshotsIn(db)
	done()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.checkSchema(ndb); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := ndb.Update(func(txn *badger.Txn) error {
		for _, sn := range snaps {
			if err := txn.Set(snapshotKey(sn.Version), sn.Signed); err != nil {
				return err
			}
		}
		if err := txn.Set(keyPersonPre, prefixPersonA); err != nil {
			return err
		}
		if err := txn.Set(keyLastRefresh, be8(uint64(time.UnixMilli(last.ServerTime).Unix()))); err != nil {
			return err
		}
		return writeSyncState(txn, last.To, st)
	}); err != nil {
		return fmt.Errorf("bootstrap: meta: %w", err)
	}
	if err := ndb.Sync(); err != nil {
		return fmt.Errorf("bootstrap: sync: %w", err)
	}
	closed = true
	if err := ndb.Close(); err != nil {
		os.RemoveAll(nextDir)
		return fmt.Errorf("bootstrap: close: %w", err)
	}
	if err := writeMarker(nextDir); err != nil {
		os.RemoveAll(nextDir)
		return err
	}
	return s.swap(nextDir)
}

// stream writes the chunks into ndb and returns the last chunk and the count and digest of
// what was written, checked against the last chunk's.
func (s *Store) stream(ndb *badger.DB, next func() (*wire.Batch, error)) (*wire.Batch, SyncState, error) {
	var st SyncState
	sw := ndb.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		return nil, st, fmt.Errorf("bootstrap: %w", err)
	}
	buf := z.NewBuffer(streamFlush+(1<<20), streamWriter)
	defer buf.Release()
	flush := func() error {
		if buf.LenNoPadding() == 0 {
			return nil
		}
		err := sw.Write(buf)
		buf.Reset()
		return err
	}
	var prev []byte
	kv := &pb.KV{Version: 1}
	for {
		b, err := next()
		if err != nil {
			sw.Cancel()
			return nil, st, err
		}
		for i := range b.Changes {
			c := &b.Changes[i]
			var key PersonKey
			copy(key[:], c.Key)
			k := keyUnder(prefixPersonA, key)
			if prev != nil && bytes.Compare(k, prev) <= 0 {
				sw.Cancel()
				return nil, st, fmt.Errorf("bootstrap: %w", ErrOrder)
			}
			prev = k
			v := c.Record
			if v != nil {
				st.Digest.AddEncoded(c.Key, v, &st.Count)
			} else if v, err = st.Digest.Move(c.Key, nil, c.Facts, &st.Count); err != nil {
				sw.Cancel()
				return nil, st, err
			}
			kv.Key, kv.Value = k, v
			badger.KVToBuffer(kv, buf)
		}
		if buf.LenNoPadding() >= streamFlush || b.Last {
			if err := s.floor.Check(uint64(buf.LenNoPadding())); err != nil {
				sw.Cancel()
				return nil, st, fmt.Errorf("bootstrap: %w", err)
			}
			if err := flush(); err != nil {
				sw.Cancel()
				return nil, st, fmt.Errorf("bootstrap: write: %w", err)
			}
		}
		if !b.Last {
			continue
		}
		var want wire.Digest
		copy(want[:], b.Digest)
		if st.Count != b.Count || !st.Digest.Equal(want) {
			sw.Cancel()
			return nil, st, fmt.Errorf("bootstrap: %d records written, the server has %d (digests differ: %v)", st.Count, b.Count, !st.Digest.Equal(want))
		}
		if err := sw.Flush(); err != nil {
			return nil, st, fmt.Errorf("bootstrap: %w", err)
		}
		return b, st, nil
	}
}

// swap replaces the store's directory with the complete one at nextDir. Snapshots installed
// while the new directory was written are carried over; if the new directory does not open,
// the old one is put back.
func (s *Store) swap(nextDir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	late, err := snapshotsIn(s.db)
	if err != nil {
		s.log.Warn("bootstrap: reading snapshots installed meanwhile", "err", err)
	}
	if err := s.db.Close(); err != nil {
		s.log.Warn("bootstrap: closing the old store", "err", err)
	}
	oldDir := s.dir + oldSuffix
	os.RemoveAll(oldDir)
	parent := filepath.Dir(s.dir)
	if err := os.Rename(s.dir, oldDir); err != nil {
		return s.reopen(s.dir, fmt.Errorf("bootstrap: %w", err))
	}
	if err := os.Rename(nextDir, s.dir); err != nil {
		os.Rename(oldDir, s.dir)
		syncDir(parent)
		return s.reopen(s.dir, fmt.Errorf("bootstrap: %w", err))
	}
	if err := syncDir(parent); err != nil {
		s.log.Warn("bootstrap: syncing the parent directory", "err", err)
	}
	os.Remove(filepath.Join(s.dir, markerFile))
	db, err := s.openDB(s.dir)
	if err != nil {
		// The new store does not open: put the old one back, decide from it, and say so.
		s.log.Error("bootstrap: the new store does not open; keeping the old one", "err", err)
		os.RemoveAll(s.dir + ".failed")
		os.Rename(s.dir, s.dir+".failed")
		os.Rename(oldDir, s.dir)
		syncDir(parent)
		return s.reopen(s.dir, fmt.Errorf("bootstrap: open the new store: %w", err))
	}
	s.db = db
	if len(late) > 0 {
		if err := db.Update(func(txn *badger.Txn) error {
			for _, sn := range late {
				if err := txn.Set(snapshotKey(sn.Version), sn.Signed); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			s.log.Error("bootstrap: carrying over snapshots", "err", err)
		}
		db.Sync()
	}
	if err := os.RemoveAll(oldDir); err != nil {
		s.log.Warn("bootstrap: the replaced store was not removed; it takes space until the next start", "dir", oldDir, "err", err)
	}
	return nil
}

// reopen opens dir again (under the write lock) and returns cause, joined with the open's
// error if that fails too: then every lookup fails (MANUAL) until the device restarts.
func (s *Store) reopen(dir string, cause error) error {
	if _, err := os.Stat(dir); err != nil {
		s.log.Error("store directory missing after a failed bootstrap", "dir", dir, "err", err)
		return errors.Join(cause, err)
	}
	db, err := s.openDB(dir)
	if err != nil {
		s.log.Error("store cannot be reopened after a bootstrap", "err", err)
		return errors.Join(cause, err)
	}
	s.db = db
	return cause
}

func writeMarker(dir string) error {
	f, err := os.Create(filepath.Join(dir, markerFile))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// recoverSwap finishes or undoes a bootstrap a crash interrupted, before the store opens: a
// complete new directory (with its marker) replaces the store; an incomplete one is removed;
// if the store directory is missing (a crash between the renames, without a complete new
// one), the replaced one comes back. A replaced directory next to an existing store is left
// for Open, which removes it once the store has opened.
func recoverSwap(dir string, log *slog.Logger) error {
	nextDir, oldDir := dir+nextSuffix, dir+oldSuffix
	parent := filepath.Dir(dir)
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if exists(nextDir) {
		if exists(filepath.Join(nextDir, markerFile)) {
			if exists(dir) {
				os.RemoveAll(oldDir)
				if err := os.Rename(dir, oldDir); err != nil {
					return fmt.Errorf("finish bootstrap: %w", err)
				}
			}
			if err := os.Rename(nextDir, dir); err != nil {
				return fmt.Errorf("finish bootstrap: %w", err)
			}
			os.Remove(filepath.Join(dir, markerFile))
			syncDir(parent)
			log.Warn("finished a bootstrap interrupted after it was complete", "dir", dir)
		} else {
			log.Warn("removing an incomplete bootstrap", "dir", nextDir)
			if err := os.RemoveAll(nextDir); err != nil {
				return fmt.Errorf("remove incomplete bootstrap: %w", err)
			}
		}
	}
	if !exists(dir) && exists(oldDir) {
		if err := os.Rename(oldDir, dir); err != nil {
			return fmt.Errorf("restore store: %w", err)
		}
		syncDir(parent)
	}
	return nil
}

// DiskUsage is the space the files under dir take on disk (allocated blocks, as du counts),
// not their apparent size: Badger preallocates its files sparsely.
func DiskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				} else {
					n += info.Size()
				}
			}
		}
		return nil
	})
	return n
}
