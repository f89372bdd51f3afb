package store

import (
	"bytes"
	"runtime"
	"slices"

	"encoding/binary"
	"errors"
	"fmt"
	"golang.org/x/sync/errgroup"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
)

var (
	keyCursor   = []byte("v1/meta/sync_cursor")
	keyCount    = []byte("v1/meta/sync_count")
	keyDigest   = []byte("v1/meta/sync_digest")
	keyLocalImp = []byte("v1/meta/local_import")
)

// ErrGap reports a batch that does not start at the device's cursor.
var ErrGap = errors.New("batch does not start at the device's cursor")

// SyncState is the store's sync position.
type SyncState struct {
	Cursor      uint64
	Count       uint64
	Digest      wire.Digest
	Synced      bool // a bootstrap has completed
	LocalImport bool // records were imported locally since (they are not the server's)
}

// SyncState reads the sync position.
func (s *Store) SyncState() (SyncState, error) {
	db, done := s.use()
	defer done()
	return s.syncStateIn(db)
}

func (s *Store) syncStateIn(db *badger.DB) (SyncState, error) {
	var st SyncState
	err := db.View(func(txn *badger.Txn) error {
		for _, f := range []struct {
			k  []byte
			fn func([]byte)
		}{
			{keyCursor, func(b []byte) { st.Cursor, st.Synced = binary.BigEndian.Uint64(b), true }},
			{keyCount, func(b []byte) { st.Count = binary.BigEndian.Uint64(b) }},
			{keyDigest, func(b []byte) { copy(st.Digest[:], b) }},
			{keyLocalImp, func([]byte) { st.LocalImport = true }},
		} {
			it, err := txn.Get(f.k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := it.Value(func(v []byte) error {
				if len(v) != 8 && len(v) != 32 && len(v) != 1 {
					return fmt.Errorf("%w: %s", ErrCorrupt, f.k)
				}
				f.fn(v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return st, err
}

func be8(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// ApplyBatch applies a verified delta batch: every change, the new cursor, count and digest in
// one transaction, then fsync. A batch the device already holds is a no-op; one that does not
// start at the cursor is refused with ErrGap and changes nothing.
//
// The records the batch touches are read first, in parallel (random reads dominate the cost
// of a fact-level change); the transaction then only writes. The store has one writer (the
// sync client), so what was read is what the transaction would have read.
func (s *Store) ApplyBatch(b *wire.Batch) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	db, done := s.use()
	defer done()
	st0, err := s.syncStateIn(db)
	if err != nil {
		return fmt.Errorf("apply batch (%d, %d]: %w", b.From, b.To, err)
	}
	if b.To <= st0.Cursor && st0.Synced {
		return nil // already held
	}
	if b.From != st0.Cursor {
		return fmt.Errorf("apply batch (%d, %d]: %w: device at %d", b.From, b.To, ErrGap, st0.Cursor)
	}
	// Below the floor no record is written; a batch without changes (the one that closes a
	// catch-up) still moves the cursor, so reconciliation, the audit upload and trusted time
	// go on.
	if len(b.Changes) > 0 {
		if err := s.floor.Check(0); err != nil {
			return fmt.Errorf("apply batch (%d, %d]: %w", b.From, b.To, err)
		}
	}
	current, raw, err := s.readRecords(db, b.Changes)
	if err != nil {
		return fmt.Errorf("apply batch (%d, %d]: %w", b.From, b.To, err)
	}
	if err := s.applyRange(db, b.Changes, st0.Cursor, b.To, current, raw); err != nil {
		return fmt.Errorf("apply batch (%d, %d]: %w", b.From, b.To, err)
	}
	if err := s.setLastRefresh(db, time.UnixMilli(b.ServerTime)); err != nil {
		return err
	}
	return syncDB(db)
}

// applyRange applies changes, moving the cursor from `from` to `to`, in one transaction. One
// too big for a Badger transaction (large records) is split in halves, each half with the
// cursor of its last change: a crash between them resumes after the first, as after any batch.
func (s *Store) applyRange(db *badger.DB, changes []wire.Change, from, to uint64, current map[PersonKey]*engine.Facts, raw map[PersonKey][]byte) error {
	staged := make(map[PersonKey]*engine.Facts, len(changes))
	err := db.Update(func(txn *badger.Txn) error {
		st, err := readSyncState(txn)
		if err != nil {
			return err
		}
		if st.Cursor != from {
			return fmt.Errorf("%w: the cursor moved to %d during the batch (two writers?)", ErrGap, st.Cursor)
		}
		for i := range changes {
			c := &changes[i]
			var key PersonKey
			copy(key[:], c.Key)
			old, ok := staged[key]
			if !ok {
				old = current[key]
			}
			next, err := wire.Apply(old, c)
			if err != nil {
				return fmt.Errorf("change %d: %w", c.Cursor, err)
			}
			var v []byte
			if b, stored := raw[key]; !ok && stored {
				v, err = st.Digest.MoveFrom(c.Key, b, next, &st.Count) // the stored bytes: no re-encode
			} else {
				v, err = st.Digest.Move(c.Key, old, next, &st.Count)
			}
			if err != nil {
				return err
			}
			staged[key] = next
			pk := s.personKey(key)
			if next == nil {
				err = txn.Delete(pk)
			} else {
				err = txn.Set(pk, v)
			}
			if err != nil {
				return err
			}
		}
		return writeSyncState(txn, to, st)
	})
	if errors.Is(err, badger.ErrTxnTooBig) && len(changes) > 1 {
		mid := len(changes) / 2
		if err := s.applyRange(db, changes[:mid], from, changes[mid-1].Cursor, current, raw); err != nil {
			return err
		}
		return s.applyRange(db, changes[mid:], changes[mid-1].Cursor, to, current, raw)
	}
	if err != nil {
		return err
	}
	for k, f := range staged {
		current[k] = f
		delete(raw, k) // the stored bytes are no longer the record
	}
	return nil
}

// readRecords reads the current records of the people the changes touch, decoded and as
// stored, with one reader per core, sorted by key (neighbours share index and block lookups).
func (s *Store) readRecords(db *badger.DB, changes []wire.Change) (map[PersonKey]*engine.Facts, map[PersonKey][]byte, error) {
	keys := make([]PersonKey, 0, len(changes))
	seen := make(map[PersonKey]*engine.Facts, len(changes))
	for i := range changes {
		var k PersonKey
		copy(k[:], changes[i].Key)
		if _, ok := seen[k]; !ok {
			seen[k] = nil
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b PersonKey) int { return bytes.Compare(a[:], b[:]) })
	workers := min(runtime.GOMAXPROCS(0), max(1, len(keys)/64))
	out := make([]*engine.Facts, len(keys))
	outRaw := make([][]byte, len(keys))
	var g errgroup.Group
	per := (len(keys) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min(len(keys), (w+1)*per)
		if lo >= hi {
			break
		}
		g.Go(func() error {
			return db.View(func(txn *badger.Txn) error {
				for i := lo; i < hi; i++ {
					item, err := txn.Get(keyUnder(s.prefix(), keys[i]))
					if errors.Is(err, badger.ErrKeyNotFound) {
						continue
					}
					if err != nil {
						return err
					}
					v, err := item.ValueCopy(nil)
					if err != nil {
						return err
					}
					f := new(engine.Facts)
					if err := wire.DecodeFacts(v, f); err != nil {
						return fmt.Errorf("stored record: %w", err)
					}
					out[i], outRaw[i] = f, v
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	raw := make(map[PersonKey][]byte, len(keys))
	for i, k := range keys {
		seen[k] = out[i]
		if outRaw[i] != nil {
			raw[k] = outRaw[i]
		}
	}
	return seen, raw, nil
}

func readSyncState(txn *badger.Txn) (SyncState, error) {
	var st SyncState
	get := func(k []byte) ([]byte, error) {
		it, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return it.ValueCopy(nil)
	}
	b, err := get(keyCursor)
	if err != nil {
		return st, err
	}
	if len(b) == 8 {
		st.Cursor, st.Synced = binary.BigEndian.Uint64(b), true
	}
	if b, err = get(keyCount); err != nil {
		return st, err
	} else if len(b) == 8 {
		st.Count = binary.BigEndian.Uint64(b)
	}
	if b, err = get(keyDigest); err != nil {
		return st, err
	}
	copy(st.Digest[:], b)
	return st, nil
}

func writeSyncState(txn *badger.Txn, cursor uint64, st SyncState) error {
	for _, kv := range [][2][]byte{{keyCursor, be8(cursor)}, {keyCount, be8(st.Count)}, {keyDigest, st.Digest[:]}} {
		if err := txn.Set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// MarkLocalImport records that local imports changed records behind sync's back: the next
// sync re-bootstraps.
func (s *Store) MarkLocalImport() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	db, done := s.use()
	defer done()
	return db.Update(func(txn *badger.Txn) error { return txn.Set(keyLocalImp, []byte{1}) })
}
