package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gatecheck/gatecheck/edge/diskspace"
	"github.com/gatecheck/gatecheck/sync/kv"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
	"golang.org/x/crypto/blake2b"
)

// SchemaVersion is the key-layout version this package writes and reads.
const SchemaVersion = "1"

var (
	keySchema      = []byte("v1/meta/schema")
	keyLastRefresh = []byte("v1/meta/last_refresh")
	keyHashCheck   = []byte("v1/meta/hash_key_check")
	// Person records live under one of two prefixes; v1/meta/person_prefix names the active
	// one. A bootstrap fills the other and flips it in one transaction, so the device keeps
	// deciding from its old records until the new ones are complete.
	prefixPersonA  = []byte("v1/p/")
	prefixPersonB  = []byte("v1/q/")
	keyPersonPre   = []byte("v1/meta/person_prefix")
	prefixSnapshot = []byte("v1/snap/")
)

// HashKeySize is the size of the region's secret ID hash key.
const HashKeySize = 32

// DefaultRetention is how long past a record's last relevant time Badger keeps it before
// reclaiming the space.
const DefaultRetention = 60 * 24 * time.Hour

// Config configures a Store.
type Config struct {
	// Dir is the Badger data directory. Required.
	Dir string
	// HashKey is the region's 32-byte secret for hashing ID numbers. Required.
	HashKey []byte
	// Profile picks Badger options; empty means ProfileSmall.
	Profile Profile
	// Retention is how long past a record's last relevant time its space is kept; zero means
	// DefaultRetention.
	Retention time.Duration
	// Logger receives Badger's and the store's logs; nil discards them.
	Logger *slog.Logger
	// MinFree is the free-space floor (bytes) under Dir: imports, syncs and bootstraps stop
	// (with diskspace.ErrLow) rather than let Badger hit a full disk. Zero means
	// DefaultMinFree; a negative value disables the floor (tests).
	MinFree int64
	// FreeSpace probes the free space; nil means statfs (tests inject a full disk).
	FreeSpace diskspace.Probe
}

// DefaultMinFree is the store's default free-space floor.
const DefaultMinFree = 256 << 20

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("store: data directory is required")
	}
	if len(c.HashKey) != HashKeySize {
		return fmt.Errorf("store: hash key must be %d bytes, got %d", HashKeySize, len(c.HashKey))
	}
	if c.Retention < 0 {
		return fmt.Errorf("store: retention %s is negative: Badger would hide records as soon as they are written", c.Retention)
	}
	return nil
}

// Store is the device's Badger store. Safe for concurrent use.
type Store struct {
	// mu is read-held by every use of db and write-held while a bootstrap swaps in the
	// directory it wrote. Read-holders never take it again (no nested read locks: a waiting
	// swap would deadlock them), so internal helpers take the *badger.DB.
	mu sync.RWMutex
	db *badger.DB
	// writeMu admits one writer at a time - an import (Writer), a delta batch, a bootstrap -
	// so reads taken outside a write transaction stay true and a bootstrap waits for an
	// import without making lookups queue behind it.
	writeMu   sync.Mutex
	dir       string
	floor     diskspace.Floor
	profile   Profile
	hashKey   []byte
	retention time.Duration
	log       *slog.Logger
	hashers   sync.Pool
	// lastRefresh caches v1/meta/last_refresh (Unix seconds, 0 = never): it is read on every
	// decision.
	lastRefresh atomic.Int64
	refreshMu   sync.Mutex  // serialises SetLastRefresh
	altPrefix   atomic.Bool // person records under prefixPersonB
}

// PersonKey is the stored key of a person: a keyed BLAKE2b-128 hash of the ID number.
type PersonKey [16]byte

// Open opens (or creates) the store in cfg.Dir and checks its schema version.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Clean(cfg.Dir)
	if err := recoverSwap(dir, log); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, profile: cfg.Profile, hashKey: append([]byte(nil), cfg.HashKey...), retention: cfg.Retention, log: log}
	switch {
	case cfg.MinFree == 0:
		s.floor = diskspace.Floor{Dir: filepath.Dir(dir), Min: DefaultMinFree, Probe: cfg.FreeSpace}
	case cfg.MinFree > 0:
		s.floor = diskspace.Floor{Dir: filepath.Dir(dir), Min: uint64(cfg.MinFree), Probe: cfg.FreeSpace}
	}
	if s.retention == 0 {
		s.retention = DefaultRetention
	}
	s.hashers.New = func() any {
		h, err := blake2b.New(16, s.hashKey)
		if err != nil {
			panic(err) // key size checked by Validate
		}
		return h
	}
	db, err := s.openDB(dir)
	if err != nil {
		return nil, err
	}
	s.db = db
	// A directory a bootstrap replaced goes only once its successor has opened.
	if err := os.RemoveAll(dir + oldSuffix); err != nil {
		log.Warn("the replaced store was not removed", "dir", dir+oldSuffix, "err", err)
	}
	return s, nil
}

// openDB opens the Badger directory, checks its schema and hash key, and loads the cached
// meta (last refresh, active person prefix).
func (s *Store) openDB(dir string) (*badger.DB, error) {
	opts, err := badgerOptions(dir, s.profile, s.log)
	if err != nil {
		return nil, err
	}
	db, err := kv.Open(opts, s.log)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.checkSchema(db); err != nil {
		db.Close()
		return nil, err
	}
	last, err := readLastRefresh(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	alt := false
	if err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keyPersonPre)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { alt = bytes.Equal(v, prefixPersonB); return nil })
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("read person prefix: %w", err)
	}
	// Published only once the open succeeded (the caller holds the write lock, or no one else
	// has the store yet); the refresh time never moves backwards.
	if u := last.Unix(); !last.IsZero() && u > s.lastRefresh.Load() {
		s.lastRefresh.Store(u)
	}
	s.altPrefix.Store(alt)
	return db, nil
}

// SpaceProblem reports why the store takes no more writes (free space below its floor), or
// nil.
func (s *Store) SpaceProblem() error { return s.floor.Check(0) }

// use read-locks the store against a swap and returns the current Badger handle and the
// unlock.
func (s *Store) use() (*badger.DB, func()) {
	s.mu.RLock()
	return s.db, s.mu.RUnlock
}

func (s *Store) checkSchema(db *badger.DB) error {
	// A keyed hash of a fixed string identifies the hash key without revealing it.
	check := s.Key("gatecheck hash key check")
	return db.Update(func(txn *badger.Txn) error {
		hc, err := txn.Get(keyHashCheck)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if err := txn.Set(keyHashCheck, check[:]); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("read hash key check: %w", err)
		default:
			v, err := hc.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read hash key check: %w", err)
			}
			if !bytes.Equal(v, check[:]) {
				return fmt.Errorf("%w: records were written with another key (re-import or use the region's key)", ErrHashKey)
			}
		}
		it, err := txn.Get(keySchema)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set(keySchema, []byte(SchemaVersion))
		}
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if string(v) != SchemaVersion {
			return fmt.Errorf("%w: directory has %q, this build reads %q", ErrSchema, v, SchemaVersion)
		}
		return nil
	})
}

// Close flushes and closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Sync makes every write so far durable (fsync). Call it before anything outside the device
// learns of a write.
func (s *Store) Sync() error {
	db, done := s.use()
	defer done()
	return syncDB(db)
}

func syncDB(db *badger.DB) error {
	if err := db.Sync(); err != nil {
		return fmt.Errorf("sync store: %w", err)
	}
	return nil
}

// HashID hashes an ID number with a region hash key, as Store.Key does (for callers that
// hold the key but not the store, such as a registration sent while the daemon runs).
func HashID(hashKey []byte, n engine.IDNumber) (PersonKey, error) {
	h, err := blake2b.New(16, hashKey)
	if err != nil {
		return PersonKey{}, fmt.Errorf("hash key: %w", err)
	}
	io.WriteString(h, n.Plain())
	var k PersonKey
	h.Sum(k[:0])
	return k, nil
}

// Key hashes an ID number into its stored key.
func (s *Store) Key(n engine.IDNumber) PersonKey {
	h := s.hashers.Get().(hash.Hash)
	h.Reset()
	_, _ = io.WriteString(h, n.Plain())
	var k PersonKey
	h.Sum(k[:0])
	s.hashers.Put(h)
	return k
}

// prefix returns the active person prefix.
func (s *Store) prefix() []byte {
	if s.altPrefix.Load() {
		return prefixPersonB
	}
	return prefixPersonA
}

func keyUnder(prefix []byte, k PersonKey) []byte {
	b := make([]byte, 0, len(prefix)+len(k))
	return append(append(b, prefix...), k[:]...)
}

func (s *Store) personKey(k PersonKey) []byte { return keyUnder(s.prefix(), k) }

// Lookup returns the facts held for a person, or (nil, nil) if none. A record that does not
// decode is reported with ErrCorrupt and not used.
func (s *Store) Lookup(k PersonKey) (*engine.Facts, error) {
	var f *engine.Facts
	var kb [5 + 16]byte
	db, done := s.use()
	defer done()
	copy(kb[:], s.prefix()) // under the lock: a bootstrap's swap changes it
	copy(kb[5:], k[:])
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(kb[:])
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			f = new(engine.Facts)
			if err := wire.DecodeFacts(v, f); err != nil {
				f = nil
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("look up person: %w", err)
	}
	return f, nil
}

// Person is one write of a person record: Facts nil deletes it.
type Person struct {
	Key   PersonKey
	Facts *engine.Facts
}

// Writer writes person records in bulk through a Badger WriteBatch. It is not atomic across
// the whole import (Badger splits it into transactions); each record is written whole, and
// writing the same record twice is harmless. Call Flush (or Cancel) when done: a bootstrap
// waits for open writers before it swaps the store.
type Writer struct {
	err  error // the floor was reached: every Put fails with it
	s    *Store
	db   *badger.DB
	wb   *badger.WriteBatch
	done func()
	once sync.Once
	now  time.Time
	n    int
}

// NewWriter starts a bulk write; now is recorded as the last refresh when it is flushed. It
// waits for another writer (an import, a delta batch, a bootstrap) to finish.
func (s *Store) NewWriter(now time.Time) *Writer {
	s.writeMu.Lock()
	db, done := s.use()
	done() // no swap can happen while this writer holds writeMu
	return &Writer{s: s, db: db, wb: db.NewWriteBatch(), done: s.writeMu.Unlock, now: now, err: s.floor.Check(0)}
}

func (w *Writer) release() { w.once.Do(w.done) }

// Put queues one record. Below the free-space floor it fails with diskspace.ErrLow (checked
// every 4,096 records).
func (w *Writer) Put(p Person) error {
	if w.err == nil && w.n%4096 == 4095 {
		w.err = w.s.floor.Check(0)
	}
	if w.err != nil {
		return fmt.Errorf("write records: %w", w.err)
	}
	key := w.s.personKey(p.Key)
	if p.Facts == nil {
		if err := w.wb.Delete(key); err != nil {
			return fmt.Errorf("queue delete: %w", err)
		}
		w.n++
		return nil
	}
	v, err := wire.EncodeFacts(p.Facts)
	if err != nil {
		return err
	}
	e := badger.NewEntry(key, v)
	// Badger hides expired entries by the machine clock, so the floor is the machine clock
	// at write time, whatever `now` the caller decides at.
	if until := reclaimAfter(p.Facts, time.Now(), w.s.retention); !until.IsZero() {
		e.ExpiresAt = uint64(until.Unix())
	}
	if err := w.wb.SetEntry(e); err != nil {
		return fmt.Errorf("queue record: %w", err)
	}
	w.n++
	return nil
}

// Flush writes what is queued, records now as the last refresh (if anything was written: an
// empty import brings no news and must not reset the offline clock) and makes it durable.
func (w *Writer) Flush() error {
	defer w.release()
	if err := w.wb.Flush(); err != nil {
		return fmt.Errorf("write records: %w", err)
	}
	if w.n > 0 {
		if err := w.s.setLastRefresh(w.db, w.now); err != nil {
			return err
		}
	}
	return syncDB(w.db)
}

// Cancel drops what is queued and not yet written.
func (w *Writer) Cancel() {
	defer w.release()
	w.wb.Cancel()
}

// Count is the number of records queued so far.
func (w *Writer) Count() int { return w.n }

// reclaimAfter returns when Badger may drop a record: retention past the latest of its times
// and now. A record that can matter indefinitely (a commuter tag not revoked, a popup 3 flag not
// cleared centrally, which only a manual clearance ends) is never dropped: the zero time.
func reclaimAfter(f *engine.Facts, now time.Time, retention time.Duration) time.Time {
	if f.Commuter != nil && !f.Commuter.Revoked.IsSet() {
		return time.Time{}
	}
	latest := engine.UnixOf(now)
	bump := func(u engine.Unix) {
		if u > latest {
			latest = u
		}
	}
	for _, t := range f.Tests {
		bump(t.Reported)
	}
	for _, p := range f.Popups {
		if p.N == 3 && !p.Cleared.IsSet() {
			return time.Time{}
		}
		bump(p.Since)
		bump(p.Ref)
		bump(p.Cleared)
	}
	for _, st := range f.Stays {
		bump(st.To)
		bump(st.From)
	}
	for _, d := range f.Declarations {
		bump(d)
	}
	bump(f.Inbound)
	bump(f.PortEntry)
	return latest.Time().Add(retention)
}

// SetLastRefresh records the time of the last successful import or sync. It never moves the
// time backwards.
func (s *Store) SetLastRefresh(t time.Time) error {
	db, done := s.use()
	defer done()
	return s.setLastRefresh(db, t)
}

func (s *Store) setLastRefresh(db *badger.DB, t time.Time) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if t.Unix() <= s.lastRefresh.Load() {
		return nil
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.Unix()))
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(keyLastRefresh, b[:]) }); err != nil {
		return fmt.Errorf("record last refresh: %w", err)
	}
	s.lastRefresh.Store(t.Unix())
	return nil
}

// LastRefresh returns the time of the last successful import or sync, or the zero time.
func (s *Store) LastRefresh() time.Time {
	u := s.lastRefresh.Load()
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(u, 0)
}

func readLastRefresh(db *badger.DB) (time.Time, error) {
	var t time.Time
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyLastRefresh)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: last refresh is %d bytes", ErrCorrupt, len(v))
			}
			t = time.Unix(int64(binary.BigEndian.Uint64(v)), 0)
			return nil
		})
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read last refresh: %w", err)
	}
	return t, nil
}

func snapshotKey(version uint64) []byte {
	k := append([]byte(nil), prefixSnapshot...)
	return binary.BigEndian.AppendUint64(k, version)
}

// PutSnapshot stores a verified snapshot's signed bytes under its version and syncs.
func (s *Store) PutSnapshot(version uint64, signed []byte) error {
	if err := s.floor.Check(uint64(len(signed))); err != nil {
		return fmt.Errorf("store snapshot %d: %w", version, err)
	}
	db, done := s.use()
	defer done()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(snapshotKey(version), signed) }); err != nil {
		return fmt.Errorf("store snapshot %d: %w", version, err)
	}
	return syncDB(db)
}

// DeleteSnapshot removes a stored snapshot.
func (s *Store) DeleteSnapshot(version uint64) error {
	db, done := s.use()
	defer done()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(snapshotKey(version)) }); err != nil {
		return fmt.Errorf("delete snapshot %d: %w", version, err)
	}
	return nil
}

// StoredSnapshot is a snapshot's signed bytes as stored.
type StoredSnapshot struct {
	Version uint64
	Signed  []byte
}

// Snapshots returns every stored snapshot, ascending by version. The bytes must be verified
// again before use.
func (s *Store) Snapshots() ([]StoredSnapshot, error) {
	db, done := s.use()
	defer done()
	return snapshotsIn(db)
}

func snapshotsIn(db *badger.DB) ([]StoredSnapshot, error) {
	var out []StoredSnapshot
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefixSnapshot
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(prefixSnapshot)+8 || !bytes.HasPrefix(k, prefixSnapshot) {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, StoredSnapshot{Version: binary.BigEndian.Uint64(k[len(prefixSnapshot):]), Signed: v})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return out, nil
}

// CountPeople counts stored person records (a full key scan; for status and tests).
func (s *Store) CountPeople() (int, error) {
	n := 0
	db, done := s.use()
	defer done()
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = s.prefix()
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count people: %w", err)
	}
	return n, nil
}

// Size returns Badger's own estimate of the LSM and value-log sizes (refreshed about once a
// minute by Badger).
func (s *Store) Size() (lsm, vlog int64) {
	db, done := s.use()
	defer done()
	return db.Size()
}

// DB exposes the Badger handle for packages of edge that add their own prefixes (tests keep
// an audit log here). A bootstrap replaces the handle: do not hold it across one.
func (s *Store) DB() *badger.DB {
	db, done := s.use()
	defer done()
	return db
}
