package store

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	var st SyncState
	db, done := s.use()
	defer done()
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
func (s *Store) ApplyBatch(b *wire.Batch) error {
	db, done := s.use()
	defer done()
	err := db.Update(func(txn *badger.Txn) error {
		st, err := readSyncState(txn)
		if err != nil {
			return err
		}
		if b.To <= st.Cursor && st.Synced {
			return errDuplicate
		}
		if b.From != st.Cursor {
			return fmt.Errorf("%w: batch (%d, %d], device at %d", ErrGap, b.From, b.To, st.Cursor)
		}
		for i := range b.Changes {
			c := &b.Changes[i]
			var key PersonKey
			copy(key[:], c.Key)
			pk := s.personKey(key)
			var old *engine.Facts
			item, err := txn.Get(pk)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				old = new(engine.Facts)
				if err := item.Value(func(v []byte) error { return wire.DecodeFacts(v, old) }); err != nil {
					return fmt.Errorf("change %d: stored record: %w", c.Cursor, err)
				}
			}
			next, err := wire.Apply(old, c)
			if err != nil {
				return fmt.Errorf("change %d: %w", c.Cursor, err)
			}
			v, err := st.Digest.Move(c.Key, old, next, &st.Count)
			if err != nil {
				return err
			}
			if next == nil {
				if err := txn.Delete(pk); err != nil {
					return err
				}
				continue
			}
			if err := txn.Set(pk, v); err != nil {
				return err
			}
		}
		return writeSyncState(txn, b.To, st)
	})
	if errors.Is(err, errDuplicate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("apply batch (%d, %d]: %w", b.From, b.To, err)
	}
	if err := s.setLastRefresh(db, time.UnixMilli(b.ServerTime)); err != nil {
		return err
	}
	return syncDB(db)
}

var errDuplicate = errors.New("duplicate batch")

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
	db, done := s.use()
	defer done()
	return db.Update(func(txn *badger.Txn) error { return txn.Set(keyLocalImp, []byte{1}) })
}
