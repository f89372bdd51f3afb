package audit

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gatecheck/gatecheck/edge/diskspace"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// The audit formats live in sync/wire: the central server verifies uploaded records too.
type (
	// Kind is what an entry records.
	Kind = wire.AuditKind
	// Entry is one audit record's content.
	Entry = wire.AuditEntry
	// Record is an entry as stored and carried.
	Record = wire.AuditRecord
	// Head names the last entry.
	Head = wire.AuditHead
	// Verifier checks records in sequence order.
	Verifier = wire.AuditVerifier
)

// Entry kinds.
const (
	KindDecision     = wire.AuditDecision
	KindOverride     = wire.AuditOverride
	KindRegistration = wire.AuditRegistration
)

// Errors Verify reports; match with errors.Is.
var (
	ErrGap       = wire.ErrAuditGap
	ErrSignature = wire.ErrAuditSignature
	ErrChain     = wire.ErrAuditChain
	ErrHead      = wire.ErrAuditHead
	ErrMalformed = wire.ErrAuditMalformed
)

// NewVerifier verifies a device's log with its public key.
func NewVerifier(device string, pub ed25519.PublicKey) *Verifier {
	return wire.NewAuditVerifier(device, pub)
}

var (
	prefixEntry = []byte("v1/audit/e/")
	keyHead     = []byte("v1/audit/head")
	keyAcked    = []byte("v1/audit/acked") // last sequence the central acknowledged
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
	floor diskspace.Floor
}

// SetFloor sets the free-space floor below which Append refuses (diskspace.ErrLow) instead
// of writing: a decision that cannot be recorded becomes MANUAL and opens no gate. Set it
// lower than the store's, so syncs stop long before decisions do.
func (l *Log) SetFloor(f diskspace.Floor) {
	l.mu.Lock()
	l.floor = f
	l.mu.Unlock()
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
		h, err := wire.OpenAuditHead(v, priv.Public().(ed25519.PublicKey))
		if err != nil {
			return err
		}
		if h.Device != device {
			return fmt.Errorf("%w: this log belongs to device %q", ErrHead, h.Device)
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
	if err := l.floor.Check(0); err != nil {
		return e, fmt.Errorf("append audit entry %d: %w", l.seq+1, err)
	}
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

// Report is the result of verifying a stored log.
type Report struct {
	Entries       int
	Decisions     int
	Overrides     int
	Registrations int
	GateOpens     int
	Last          Entry
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
			r, err := wire.DecodeAuditRecord(b)
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
			case KindRegistration:
				rep.Registrations++
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
		hr, err := wire.DecodeAuditRecord(hb)
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

// Entries returns up to n entries from seq from (1-based), for listing.
func (l *Log) Entries(from uint64, n int) ([]Entry, error) {
	recs, err := l.Records(max(from, 1)-1, n)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(recs))
	for _, r := range recs {
		var e Entry
		if err := wire.Unmarshal(r.Entry, &e); err != nil {
			return nil, fmt.Errorf("list audit entries: %w: %w", ErrMalformed, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Records returns up to n stored records after sequence seq, as they are carried upstream.
func (l *Log) Records(after uint64, n int) ([]Record, error) {
	var out []Record
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixEntry, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(entryKey(after + 1)); it.Valid() && len(out) < n; it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			r, err := wire.DecodeAuditRecord(b)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit records: %w", err)
	}
	return out, nil
}

// Acked returns the last sequence the central server acknowledged.
func (l *Log) Acked() (uint64, error) {
	var v uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keyAcked)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error {
			if len(b) == 8 {
				v = binary.BigEndian.Uint64(b)
			}
			return nil
		})
	})
	return v, err
}

// SetAcked records the central's acknowledgement (never moving backwards).
func (l *Log) SetAcked(seq uint64) error {
	cur, err := l.Acked()
	if err != nil || seq <= cur {
		return err
	}
	return l.db.Update(func(txn *badger.Txn) error { return txn.Set(keyAcked, binary.BigEndian.AppendUint64(nil, seq)) })
}
