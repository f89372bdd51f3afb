package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Kind is what an entry records.
type Kind uint8

// Entry kinds.
const (
	KindDecision Kind = 1
	KindOverride Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindDecision:
		return "decision"
	case KindOverride:
		return "override"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one audit record's content.
type Entry struct {
	Seq      uint64 `cbor:"1,keyasint" json:"seq"`
	Device   string `cbor:"2,keyasint" json:"device"`
	TimeMs   int64  `cbor:"3,keyasint" json:"time_ms"`
	Kind     Kind   `cbor:"4,keyasint" json:"kind"`
	Person   []byte `cbor:"5,keyasint,omitempty" json:"person,omitempty"` // hashed store key, never the number
	Source   string `cbor:"6,keyasint,omitempty" json:"source,omitempty"` // card, manual
	Outcome  string `cbor:"7,keyasint,omitempty" json:"outcome,omitempty"`
	Rule     string `cbor:"8,keyasint,omitempty" json:"rule,omitempty"`
	Snapshot uint64 `cbor:"9,keyasint,omitempty" json:"snapshot,omitempty"`
	Popups   []int  `cbor:"10,keyasint,omitempty" json:"popups,omitempty"`
	Gate     bool   `cbor:"11,keyasint,omitempty" json:"gate,omitempty"` // the gate opens after this entry
	Officer  string `cbor:"12,keyasint,omitempty" json:"officer,omitempty"`
	Reason   string `cbor:"13,keyasint,omitempty" json:"reason,omitempty"` // an override's reason
	Ref      uint64 `cbor:"14,keyasint,omitempty" json:"ref,omitempty"`    // the entry an override overrides
	Prev     []byte `cbor:"15,keyasint" json:"-"`
}

// Time returns the entry's time.
func (e *Entry) Time() time.Time { return time.UnixMilli(e.TimeMs) }

// Record is an entry as stored and carried: its deterministic CBOR and the device's signature
// over those bytes.
type Record struct {
	Entry []byte `cbor:"1,keyasint"`
	Sig   []byte `cbor:"2,keyasint"`
}

// Hash is the record's SHA-256 over entry bytes and signature: what the next entry's Prev holds.
func (r *Record) Hash() [32]byte {
	h := sha256.New()
	h.Write(r.Entry)
	h.Write(r.Sig)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Head names the last entry; it is signed like an entry so a cut-off tail is found.
type Head struct {
	Device string `cbor:"1,keyasint"`
	Seq    uint64 `cbor:"2,keyasint"`
	Hash   []byte `cbor:"3,keyasint"`
}

// Errors Verify reports; match with errors.Is.
var (
	ErrGap       = errors.New("audit: entry missing (sequence gap)")
	ErrSignature = errors.New("audit: bad signature")
	ErrChain     = errors.New("audit: hash chain broken")
	ErrHead      = errors.New("audit: head does not match the last entry")
	ErrMalformed = errors.New("audit: malformed record")
)

var (
	prefixEntry = []byte("v1/audit/e/")
	keyHead     = []byte("v1/audit/head")
)

func entryKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixEntry...), seq)
}

// Log appends to the audit log. Safe for concurrent use.
type Log struct {
	db     *badger.DB
	device string
	priv   ed25519.PrivateKey

	mu    sync.Mutex
	seq   uint64
	prev  [32]byte
	owned bool // Close closes db
}

// Open opens the log in db for a device, continuing from the signed head.
func Open(db *badger.DB, device string, priv ed25519.PrivateKey) (*Log, error) {
	if device == "" || len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("audit: device id and an Ed25519 key are required")
	}
	l := &Log{db: db, device: device, priv: priv}
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyHead)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		h, err := openHead(v, priv.Public().(ed25519.PublicKey))
		if err != nil {
			return err
		}
		l.seq = h.Seq
		copy(l.prev[:], h.Hash)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return l, nil
}

// Seq returns the last sequence written.
func (l *Log) Seq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

func (l *Log) sign(v any) (Record, error) {
	b, err := wire.Marshal(v)
	if err != nil {
		return Record{}, fmt.Errorf("encode audit record: %w", err)
	}
	return Record{Entry: b, Sig: ed25519.Sign(l.priv, b)}, nil
}

// Append writes an entry durably (the entry and the new head in one transaction, then fsync)
// and returns it with its sequence. Only after Append returns may the gate open.
func (l *Log) Append(e Entry) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq, e.Device, e.Prev = l.seq+1, l.device, append([]byte(nil), l.prev[:]...)
	rec, err := l.sign(e)
	if err != nil {
		return e, err
	}
	hash := rec.Hash()
	head, err := l.sign(Head{Device: l.device, Seq: e.Seq, Hash: hash[:]})
	if err != nil {
		return e, err
	}
	rb, err := wire.Marshal(rec)
	if err != nil {
		return e, err
	}
	hb, err := wire.Marshal(head)
	if err != nil {
		return e, err
	}
	err = l.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(entryKey(e.Seq), rb); err != nil {
			return err
		}
		return txn.Set(keyHead, hb)
	})
	if err != nil {
		return e, fmt.Errorf("append audit entry %d: %w", e.Seq, err)
	}
	// Committed: the chain moves on even if the sync below fails, so the next entry never
	// overwrites this one.
	l.seq, l.prev = e.Seq, hash
	if err := l.db.Sync(); err != nil {
		return e, fmt.Errorf("sync audit entry %d: %w", e.Seq, err)
	}
	return e, nil
}

func decodeRecord(b []byte) (Record, error) {
	var r Record
	if err := wire.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return r, nil
}

func openHead(b []byte, pub ed25519.PublicKey) (Head, error) {
	r, err := decodeRecord(b)
	if err != nil {
		return Head{}, err
	}
	if !ed25519.Verify(pub, r.Entry, r.Sig) {
		return Head{}, fmt.Errorf("%w: head", ErrSignature)
	}
	var h Head
	if err := wire.Unmarshal(r.Entry, &h); err != nil {
		return Head{}, fmt.Errorf("%w: head: %w", ErrMalformed, err)
	}
	return h, nil
}

// Verifier checks records in sequence order: signatures, sequence, chain, and at the end the
// head. Feed it from the device's store or from records a peer carried.
type Verifier struct {
	pub    ed25519.PublicKey
	device string
	next   uint64
	prev   [32]byte
	// Entries counts the entries verified.
	Entries int
}

// NewVerifier verifies a device's log with its public key.
func NewVerifier(device string, pub ed25519.PublicKey) *Verifier {
	return &Verifier{pub: pub, device: device, next: 1}
}

// Add verifies the next record and returns its entry.
func (v *Verifier) Add(r Record) (Entry, error) {
	var e Entry
	if !ed25519.Verify(v.pub, r.Entry, r.Sig) {
		return e, fmt.Errorf("%w: entry after %d", ErrSignature, v.next-1)
	}
	if err := wire.Unmarshal(r.Entry, &e); err != nil {
		return e, fmt.Errorf("%w: entry after %d: %w", ErrMalformed, v.next-1, err)
	}
	if e.Device != v.device {
		return e, fmt.Errorf("%w: entry %d is from device %q", ErrSignature, e.Seq, e.Device)
	}
	if e.Seq != v.next {
		return e, fmt.Errorf("%w: expected %d, found %d", ErrGap, v.next, e.Seq)
	}
	if !bytes.Equal(e.Prev, v.prev[:]) {
		return e, fmt.Errorf("%w at entry %d", ErrChain, e.Seq)
	}
	v.prev, v.next = r.Hash(), v.next+1
	v.Entries++
	return e, nil
}

// Finish checks the signed head against the last record added.
func (v *Verifier) Finish(head Record) error {
	if !ed25519.Verify(v.pub, head.Entry, head.Sig) {
		return fmt.Errorf("%w: head", ErrSignature)
	}
	var h Head
	if err := wire.Unmarshal(head.Entry, &h); err != nil {
		return fmt.Errorf("%w: head: %w", ErrMalformed, err)
	}
	if h.Device != v.device {
		return fmt.Errorf("%w: head is from device %q", ErrHead, h.Device)
	}
	if h.Seq != v.next-1 || !bytes.Equal(h.Hash, v.prev[:]) {
		return fmt.Errorf("%w: head names entry %d, the log ends at %d", ErrHead, h.Seq, v.next-1)
	}
	return nil
}

// Report is the result of verifying a stored log.
type Report struct {
	Entries   int
	Decisions int
	Overrides int
	GateOpens int
	Last      Entry
}

// Verify checks the whole log stored in db.
func Verify(db *badger.DB, device string, pub ed25519.PublicKey) (Report, error) {
	var rep Report
	v := NewVerifier(device, pub)
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefixEntry
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			r, err := decodeRecord(b)
			if err != nil {
				return err
			}
			e, err := v.Add(r)
			if err != nil {
				return err
			}
			if binary.BigEndian.Uint64(it.Item().Key()[len(prefixEntry):]) != e.Seq {
				return fmt.Errorf("%w: entry %d stored under another key", ErrGap, e.Seq)
			}
			rep.Last = e
			switch e.Kind {
			case KindDecision:
				rep.Decisions++
			case KindOverride:
				rep.Overrides++
			}
			if e.Gate {
				rep.GateOpens++
			}
		}
		item, err := txn.Get(keyHead)
		if errors.Is(err, badger.ErrKeyNotFound) {
			if v.Entries == 0 {
				return nil
			}
			return fmt.Errorf("%w: no head", ErrHead)
		}
		if err != nil {
			return err
		}
		hb, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		hr, err := decodeRecord(hb)
		if err != nil {
			return err
		}
		return v.Finish(hr)
	})
	rep.Entries = v.Entries
	if err != nil {
		return rep, fmt.Errorf("verify audit log: %w", err)
	}
	return rep, nil
}

// Entries returns up to n entries from seq from (1-based), for listing and upload.
func (l *Log) Entries(from uint64, n int) ([]Entry, error) {
	var out []Entry
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixEntry, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(entryKey(max(from, 1))); it.Valid() && len(out) < n; it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			r, err := decodeRecord(b)
			if err != nil {
				return err
			}
			var e Entry
			if err := wire.Unmarshal(r.Entry, &e); err != nil {
				return fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}
