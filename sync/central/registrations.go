package central

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Registration is a commuter registration taken at a highway checkpoint (seed 004): the ID
// card, work proof, residence proof and a negative test were seen by the officer; the central
// approves the same day and the tag takes effect the next day.
type Registration struct {
	ID          string `cbor:"1,keyasint" json:"id"`
	Device      string `cbor:"2,keyasint" json:"device"`
	Key         []byte `cbor:"3,keyasint" json:"-"` // the person's hashed key
	Masked      string `cbor:"4,keyasint" json:"masked_id"`
	WorkProof   string `cbor:"5,keyasint" json:"work_proof"`
	Residence   string `cbor:"6,keyasint" json:"residence_proof"`
	TestProof   string `cbor:"7,keyasint" json:"test_proof"`
	Status      string `cbor:"8,keyasint" json:"status"` // pending, approved, rejected
	CreatedMs   int64  `cbor:"9,keyasint" json:"created_ms"`
	DecidedMs   int64  `cbor:"10,keyasint,omitempty" json:"decided_ms,omitempty"`
	EffectiveMs int64  `cbor:"11,keyasint,omitempty" json:"effective_ms,omitempty"`
	Reason      string `cbor:"12,keyasint,omitempty" json:"reason,omitempty"`
}

// RegistrationBody is what a device posts (JSON). Key is the hex hashed key.
type RegistrationBody struct {
	Key       string `json:"key"`
	Masked    string `json:"masked_id"`
	WorkProof string `json:"work_proof"`
	Residence string `json:"residence_proof"`
	TestProof string `json:"test_proof"`
}

func regKey(id string) []byte { return append(append([]byte(nil), prefixReg...), id...) }

func (s *Server) register(w http.ResponseWriter, r *http.Request, d *Device, _ string, body []byte) {
	var b RegistrationBody
	dec := json.NewDecoder(io.LimitReader(bytesReader(body), 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		httpErr(w, http.StatusBadRequest, fmt.Errorf("registration: %w", err))
		return
	}
	key, err := hex.DecodeString(b.Key)
	if err != nil || len(key) != 16 || b.WorkProof == "" || b.Residence == "" || b.TestProof == "" {
		httpErr(w, http.StatusBadRequest, errors.New("registration: key (32 hex) and the work, residence and test proofs are required"))
		return
	}
	id := make([]byte, 8)
	rand.Read(id)
	reg := Registration{ID: hex.EncodeToString(id), Device: d.ID, Key: key, Masked: b.Masked, WorkProof: b.WorkProof,
		Residence: b.Residence, TestProof: b.TestProof, Status: "pending", CreatedMs: s.cfg.Clock().UnixMilli()}
	if err := s.putRegistration(&reg); err != nil {
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	if err := s.db.Sync(); err != nil {
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(reg)
}

// queueRegistration queues a registration that arrived in a device's audit log. It is named
// by the device, its key and the entry's sequence, so a re-sent log queues it once and a
// re-keyed device (whose audit chain starts again at 1) does not collide with its old entries.
func (s *Server) queueRegistration(txn *badger.Txn, dev *Device, e *wire.AuditEntry) error {
	if len(e.Person) != 16 || e.WorkProof == "" || e.Residence == "" || e.TestProof == "" {
		s.log.Warn("audit entry of kind registration without a person or its proofs; not queued",
			"device", dev.ID, "seq", e.Seq)
		return nil
	}
	id := fmt.Sprintf("%s-%s-%d", dev.ID, wire.KeyID(ed25519.PublicKey(dev.PubKey)), e.Seq)
	b, err := get(txn, regKey(id))
	if err != nil || b != nil {
		return err
	}
	if b, err = wire.Marshal(&Registration{ID: id, Device: dev.ID, Key: e.Person, Masked: e.Masked, WorkProof: e.WorkProof,
		Residence: e.Residence, TestProof: e.TestProof, Status: "pending", CreatedMs: e.TimeMs}); err != nil {
		return fmt.Errorf("queue registration %s: %w", id, err)
	}
	if err := txn.Set(regKey(id), b); err != nil {
		return fmt.Errorf("queue registration %s: %w", id, err)
	}
	s.log.Info("commuter registration queued", "id", id, "device", dev.ID)
	return nil
}

func (s *Server) putRegistration(r *Registration) error {
	b, err := wire.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(regKey(r.ID), b) })
}

// Registrations lists registrations, all or with one status.
func (s *Server) Registrations(status string) ([]Registration, error) {
	var out []Registration
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixReg, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var r Registration
			if err := wire.Unmarshal(b, &r); err != nil {
				return err
			}
			if status == "" || r.Status == status {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

func (s *Server) registration(id string) (*Registration, error) {
	var r Registration
	err := s.db.View(func(txn *badger.Txn) error {
		b, err := get(txn, regKey(id))
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("no registration %q", id)
		}
		return wire.Unmarshal(b, &r)
	})
	return &r, err
}

// Approve approves a pending registration at now: the commuter tag takes effect at 00:00
// Beijing time the next day and reaches devices as a delta like any other change.
func (s *Server) Approve(id string, now time.Time) (*Registration, error) {
	r, err := s.registration(id)
	if err != nil {
		return nil, err
	}
	if r.Status != "pending" {
		return nil, fmt.Errorf("registration %s is %s", id, r.Status)
	}
	effective := engine.DayStart(now, 1)
	var key [16]byte
	copy(key[:], r.Key)
	_, err = s.Modify(key, func(cur *engine.Facts) *engine.Facts {
		next := &engine.Facts{Schema: 1}
		if cur != nil {
			c := *cur
			next = &c
		}
		next.Commuter = &engine.Commuter{Since: engine.UnixOf(effective), Source: "checkpoint"}
		return next
	})
	if err != nil {
		return nil, err
	}
	r.Status, r.DecidedMs, r.EffectiveMs = "approved", now.UnixMilli(), effective.UnixMilli()
	if err := s.putRegistration(r); err != nil {
		return nil, err
	}
	return r, s.db.Sync()
}

// Reject rejects a pending registration with a reason.
func (s *Server) Reject(id, reason string, now time.Time) (*Registration, error) {
	r, err := s.registration(id)
	if err != nil {
		return nil, err
	}
	if r.Status != "pending" {
		return nil, fmt.Errorf("registration %s is %s", id, r.Status)
	}
	r.Status, r.DecidedMs, r.Reason = "rejected", now.UnixMilli(), reason
	if err := s.putRegistration(r); err != nil {
		return nil, err
	}
	return r, s.db.Sync()
}
