package central

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gatecheck/gatecheck/sync/kv"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
	"golang.org/x/crypto/blake2b"
)

var (
	keyCursor   = []byte("c1/meta/cursor")
	keyCount    = []byte("c1/meta/count")
	keyDigest   = []byte("c1/meta/digest")
	keySnapshot = []byte("c1/meta/snapshot")
	// keyLogStart is the cursor the change log starts after (a bulk initial load has none):
	// a device behind it must bootstrap.
	keyLogStart = []byte("c1/meta/log_start")
	prefixChg   = []byte("c1/chg/")
	prefixP     = []byte("c1/p/")
	prefixSnap  = []byte("c1/snap/")
	prefixDev   = []byte("c1/dev/")
	prefixNonce = []byte("c1/nonce/")
	prefixAudit = []byte("c1/audit/")
	prefixReg   = []byte("c1/reg/")
)

// Errors.
var (
	ErrUnknownDevice = errors.New("unknown device")
	ErrRevoked       = errors.New("device revoked")
	ErrNonce         = errors.New("nonce unknown, used or expired")
	ErrAhead         = errors.New("device cursor is ahead of the server")
)

// Config configures a Server.
type Config struct {
	// Dir is the Badger directory. Required.
	Dir string
	// HashKey is the region's 32-byte ID hash key (the devices' too). Required.
	HashKey []byte
	// SigningKey signs batches and time tokens; devices trust its public key. Required.
	SigningKey ed25519.PrivateKey
	// PolicyKeys verify snapshots before they are published; nil accepts any well-formed
	// snapshot signed by SigningKey only.
	PolicyKeys wire.KeyRing
	// Clock; nil means time.Now.
	Clock func() time.Time
	// MaxBatch bounds the changes of one delta batch; zero means 10000.
	MaxBatch int
	// Logger; nil discards logs.
	Logger *slog.Logger
}

// Server is the central store and its HTTP API. Safe for concurrent use.
type Server struct {
	cfg   Config
	db    *badger.DB
	log   *slog.Logger
	mu    sync.Mutex // serialises writers of the change log
	devMu sync.Mutex // serialises read-modify-writes of device records and nonces
	nonce []byte     // HMAC key of stateless nonces
}

// Open opens (or creates) the central store.
func Open(cfg Config) (*Server, error) {
	if cfg.Dir == "" || len(cfg.HashKey) != 32 || len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("central: data dir, a 32-byte hash key and a signing key are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 10000
	}
	cfg.MaxBatch = min(cfg.MaxBatch, wire.MaxBatchChanges) // devices refuse larger batches
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := badger.DefaultOptions(cfg.Dir).WithLogger(nil).WithCompression(options.Snappy).
		WithValueThreshold(1 << 10).WithNumCompactors(2).WithDetectConflicts(false).WithMetricsEnabled(false).
		WithMemTableSize(32 << 20).WithBlockCacheSize(64 << 20).WithIndexCacheSize(32 << 20)
	db, err := kv.Open(opts, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("open central store %s: %w", cfg.Dir, err)
	}
	nk := sha256.Sum256(append(append([]byte(nil), cfg.SigningKey.Seed()...), "gatecheck nonce key"...))
	return &Server{cfg: cfg, db: db, log: cfg.Logger, nonce: nk[:]}, nil
}

// Close closes the store.
func (s *Server) Close() error { return s.db.Close() }

// Sync makes writes durable.
func (s *Server) Sync() error { return s.db.Sync() }

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func be(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func get(txn *badger.Txn, k []byte) ([]byte, error) {
	it, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// State is the server's position.
type State struct {
	Cursor   uint64
	Count    uint64
	Digest   wire.Digest
	Snapshot uint64
}

func readState(txn *badger.Txn) (State, error) {
	var st State
	for _, f := range []struct {
		k   []byte
		dst func([]byte)
	}{
		{keyCursor, func(b []byte) { st.Cursor = u64(b) }},
		{keyCount, func(b []byte) { st.Count = u64(b) }},
		{keyDigest, func(b []byte) { copy(st.Digest[:], b) }},
		{keySnapshot, func(b []byte) { st.Snapshot = u64(b) }},
	} {
		b, err := get(txn, f.k)
		if err != nil {
			return st, err
		}
		f.dst(b)
	}
	return st, nil
}

// State returns the current cursor, count, digest and snapshot version.
func (s *Server) State() (State, error) {
	var st State
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		st, err = readState(txn)
		return err
	})
	return st, err
}

// Key hashes an ID number with the region key (as devices do).
func (s *Server) Key(n engine.IDNumber) [16]byte {
	h, _ := blake2b.New(16, s.cfg.HashKey) // key length checked by Open
	io.WriteString(h, n.Plain())
	var k [16]byte
	h.Sum(k[:0])
	return k
}

// Person is one authoritative update: Facts nil deletes.
type Person struct {
	Key   [16]byte
	Facts *engine.Facts
}

// Put applies authoritative updates as fact-level changes, each with the next cursor, in one
// transaction (the change log, the states, cursor, count and digest move together). The
// caller bounds len(people) so the transaction fits.
func (s *Server) Put(people []Person) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(people)
}

// putLocked is Put with s.mu held. A chunk too big for one transaction is split in halves.
func (s *Server) putLocked(people []Person) (uint64, error) {
	c, err := s.putTxn(people)
	if errors.Is(err, badger.ErrTxnTooBig) && len(people) > 1 {
		if _, err := s.putLocked(people[:len(people)/2]); err != nil {
			return 0, err
		}
		return s.putLocked(people[len(people)/2:])
	}
	return c, err
}

func (s *Server) putTxn(people []Person) (uint64, error) {
	var cursor uint64
	err := s.db.Update(func(txn *badger.Txn) error {
		st, err := readState(txn)
		if err != nil {
			return err
		}
		for _, p := range people {
			pk := append(append([]byte(nil), prefixP...), p.Key[:]...)
			var old *engine.Facts
			if b, err := get(txn, pk); err != nil {
				return err
			} else if b != nil {
				old = new(engine.Facts)
				if err := wire.DecodeFacts(b, old); err != nil {
					return fmt.Errorf("stored record: %w", err)
				}
			}
			changes := wire.Diff(old, p.Facts)
			if len(changes) == 0 {
				continue
			}
			state := old
			for i := range changes {
				st.Cursor++
				changes[i].Cursor, changes[i].Key = st.Cursor, p.Key[:]
				if state, err = wire.Apply(state, &changes[i]); err != nil {
					return err
				}
				cb, err := wire.Marshal(changes[i])
				if err != nil {
					return err
				}
				if err := txn.Set(append(append([]byte(nil), prefixChg...), be(st.Cursor)...), cb); err != nil {
					return err
				}
			}
			b, err := st.Digest.Move(p.Key[:], old, state, &st.Count)
			if err != nil {
				return err
			}
			if state == nil {
				if err := txn.Delete(pk); err != nil {
					return err
				}
				continue
			}
			if err := txn.Set(pk, b); err != nil {
				return err
			}
		}
		cursor = st.Cursor
		for _, kv := range [][2][]byte{{keyCursor, be(st.Cursor)}, {keyCount, be(st.Count)}, {keyDigest, st.Digest[:]}} {
			if err := txn.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("central: put records: %w", err)
	}
	return cursor, nil
}

// ErrNotEmpty refuses an initial load into a server that already holds records.
var ErrNotEmpty = errors.New("central: the server already holds records")

// LoadInitial writes a region's population into an empty server in bulk: records only, no
// change log (devices bootstrap; nothing has been published as deltas yet), then the count,
// digest and cursor 1 in one transaction. next returns people until ok is false. It is many
// times faster than Put for tens of millions of people; later updates go through Put.
func (s *Server) LoadInitial(next func() (p Person, ok bool, err error)) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.State()
	if err != nil {
		return st, err
	}
	if st.Cursor != 0 || st.Count != 0 {
		return st, fmt.Errorf("load: %w (cursor %d, %d records): use import", ErrNotEmpty, st.Cursor, st.Count)
	}
	var held bool
	if err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixP})
		defer it.Close()
		it.Rewind()
		held = it.Valid()
		return nil
	}); err != nil {
		return st, err
	}
	if held {
		return st, fmt.Errorf("load: %w (records without a state: an interrupted load? start from an empty directory)", ErrNotEmpty)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for {
		p, ok, err := next()
		if err != nil {
			return st, fmt.Errorf("load: %w", err)
		}
		if !ok {
			break
		}
		if p.Facts == nil {
			continue
		}
		b, err := st.Digest.Move(p.Key[:], nil, p.Facts, &st.Count)
		if err != nil {
			return st, fmt.Errorf("load: %w", err)
		}
		if err := wb.Set(append(append([]byte(nil), prefixP...), p.Key[:]...), b); err != nil {
			return st, fmt.Errorf("load: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return st, fmt.Errorf("load: %w", err)
	}
	st.Cursor = 1
	if err := s.db.Update(func(txn *badger.Txn) error {
		for _, kv := range [][2][]byte{{keyCursor, be(st.Cursor)}, {keyCount, be(st.Count)}, {keyDigest, st.Digest[:]}, {keyLogStart, be(st.Cursor)}} {
			if err := txn.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("load: %w", err)
	}
	return st, s.db.Sync()
}

// Modify applies fn to one person's current facts and stores the result as changes, all under
// the change-log lock, so nothing imported meanwhile is lost.
func (s *Server) Modify(key [16]byte, fn func(*engine.Facts) *engine.Facts) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur *engine.Facts
	err := s.db.View(func(txn *badger.Txn) error {
		b, err := get(txn, append(append([]byte(nil), prefixP...), key[:]...))
		if err != nil || b == nil {
			return err
		}
		cur = new(engine.Facts)
		return wire.DecodeFacts(b, cur)
	})
	if err != nil {
		return 0, err
	}
	return s.putLocked([]Person{{Key: key, Facts: fn(cur)}})
}

// ImportStats summarises an import.
type ImportStats struct {
	Records int
	Cursor  uint64
}

// Import reads JSON Lines records (the device's schema), validates the whole file first (a bad
// line rejects the file, nothing is written), then applies them in chunks and syncs.
func (s *Server) Import(ctx context.Context, r io.ReadSeeker) (ImportStats, error) {
	var bad []string
	if err := eachJSONLine(r, func(n int, b []byte) error {
		if _, _, err := engine.ParseRecord(b); err != nil && len(bad) < 20 {
			bad = append(bad, fmt.Sprintf("line %d: %v", n, err))
		}
		return nil
	}); err != nil {
		return ImportStats{}, err
	}
	if len(bad) > 0 {
		return ImportStats{}, fmt.Errorf("import rejected, nothing written:\n  %s", joinLines(bad))
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return ImportStats{}, err
	}
	var st ImportStats
	var chunk []Person
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		c, err := s.Put(chunk)
		if err != nil {
			return err
		}
		st.Cursor = c
		st.Records += len(chunk)
		chunk = chunk[:0]
		return nil
	}
	err := eachJSONLine(r, func(n int, b []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, f, err := engine.ParseRecord(b)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		chunk = append(chunk, Person{Key: s.Key(id.Number), Facts: f})
		if len(chunk) >= 1000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return st, fmt.Errorf("central import (%d records applied, safe to re-run): %w", st.Records, err)
	}
	if st.Cursor == 0 {
		state, _ := s.State()
		st.Cursor = state.Cursor
	}
	return st, s.db.Sync()
}

func joinLines(l []string) string {
	var b bytes.Buffer
	for i, s := range l {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(s)
	}
	return b.String()
}

func eachJSONLine(r io.Reader, fn func(n int, b []byte) error) error {
	br := bufioReader(r)
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			n++
			if t := bytes.TrimSpace(line); len(t) > 0 {
				if len(t) > engine.MaxRecordLine {
					if ferr := fn(n, nil); ferr != nil {
						return ferr
					}
				} else if ferr := fn(n, t); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read import: %w", err)
		}
	}
}

// Publish stores a signed snapshot (verified against PolicyKeys when set) and makes it the
// version new batches require.
func (s *Server) Publish(signed []byte) (uint64, error) {
	keys := s.cfg.PolicyKeys
	if keys == nil {
		keys = wire.KeyRing{}
		keys.Add(s.cfg.SigningKey.Public().(ed25519.PublicKey))
	}
	v, err := wire.VerifySnapshot(signed, keys)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	ver := v.Snapshot.Version
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(txn *badger.Txn) error {
		st, err := readState(txn)
		if err != nil {
			return err
		}
		if ver < st.Snapshot {
			return fmt.Errorf("%w: version %d is lower than the published %d", engine.ErrRollback, ver, st.Snapshot)
		}
		if err := txn.Set(append(append([]byte(nil), prefixSnap...), be(ver)...), signed); err != nil {
			return err
		}
		return txn.Set(keySnapshot, be(ver))
	})
	if err != nil {
		return 0, fmt.Errorf("publish snapshot %d: %w", ver, err)
	}
	return ver, s.db.Sync()
}
