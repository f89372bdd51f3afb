package central

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Device is a registered device.
type Device struct {
	ID        string `cbor:"1,keyasint" json:"id"`
	PubKey    []byte `cbor:"2,keyasint" json:"-"`
	Revoked   bool   `cbor:"3,keyasint,omitempty" json:"revoked"`
	AddedMs   int64  `cbor:"4,keyasint" json:"added_ms"`
	AuditSeq  uint64 `cbor:"5,keyasint,omitempty" json:"audit_acked"`
	AuditHash []byte `cbor:"6,keyasint,omitempty" json:"-"`
	LastSeen  int64  `cbor:"7,keyasint,omitempty" json:"last_seen_ms"`
	Cursor    uint64 `cbor:"8,keyasint,omitempty" json:"cursor"` // the device's cursor at its last delta request
}

func devKey(id string) []byte { return append(append([]byte(nil), prefixDev...), id...) }

// AddDevice registers a device's public key (re-adding an existing id replaces the key and
// clears a revocation).
func (s *Server) AddDevice(id string, pub ed25519.PublicKey) error {
	if id == "" || len(id) > 128 || len(pub) != ed25519.PublicKeySize {
		return errors.New("central: a device id (<= 128 bytes) and an Ed25519 public key are required")
	}
	return s.updateDevice(id, true, func(d *Device) error {
		d.PubKey, d.Revoked = pub, false
		if d.AddedMs == 0 {
			d.AddedMs = s.cfg.Clock().UnixMilli()
		}
		return nil
	})
}

// RevokeDevice refuses every later request of a device.
func (s *Server) RevokeDevice(id string) error {
	return s.updateDevice(id, false, func(d *Device) error { d.Revoked = true; return nil })
}

func (s *Server) updateDevice(id string, create bool, fn func(*Device) error) error {
	return s.db.Update(func(txn *badger.Txn) error {
		d, err := readDevice(txn, id)
		if errors.Is(err, ErrUnknownDevice) && create {
			d, err = &Device{ID: id}, nil
		}
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
		b, err := wire.Marshal(d)
		if err != nil {
			return err
		}
		return txn.Set(devKey(id), b)
	})
}

func readDevice(txn *badger.Txn, id string) (*Device, error) {
	b, err := get(txn, devKey(id))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, id)
	}
	var d Device
	if err := wire.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("device %q: %w", id, err)
	}
	return &d, nil
}

// Devices lists the registered devices.
func (s *Server) Devices() ([]Device, error) {
	var out []Device
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixDev, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var d Device
			if err := wire.Unmarshal(b, &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// nonceTTL is how long a nonce may wait for its request.
const nonceTTL = 2 * time.Minute

// NewNonce issues a single-use nonce.
func (s *Server) NewNonce() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	n := hex.EncodeToString(b)
	exp := s.cfg.Clock().Add(nonceTTL).UnixMilli()
	err := s.db.Update(func(txn *badger.Txn) error {
		// Badger's TTL only reclaims space; expiry is checked against the server clock.
		e := badger.NewEntry(append(append([]byte(nil), prefixNonce...), n...), be(uint64(exp))).WithTTL(time.Hour)
		return txn.SetEntry(e)
	})
	return n, err
}

// authenticate checks a signed request: the device is known and not revoked, the nonce is
// live (and is consumed, so the request cannot be replayed), the signature verifies.
func (s *Server) authenticate(deviceID, nonce, sig, method, pathQuery string, body []byte) (*Device, error) {
	var dev *Device
	err := s.db.Update(func(txn *badger.Txn) error {
		d, err := readDevice(txn, deviceID)
		if err != nil {
			return err
		}
		if d.Revoked {
			return fmt.Errorf("%w: %q", ErrRevoked, deviceID)
		}
		nk := append(append([]byte(nil), prefixNonce...), nonce...)
		b, err := get(txn, nk)
		if err != nil {
			return err
		}
		if b == nil || int64(u64(b)) < s.cfg.Clock().UnixMilli() {
			return ErrNonce
		}
		if !wire.VerifyRequest(ed25519.PublicKey(d.PubKey), sig, method, pathQuery, nonce, body) {
			return fmt.Errorf("%w: request of %q", wire.ErrBadSignature, deviceID)
		}
		d.LastSeen = s.cfg.Clock().UnixMilli()
		db, err := wire.Marshal(d)
		if err != nil {
			return err
		}
		if err := txn.Set(devKey(deviceID), db); err != nil {
			return err
		}
		dev = d
		return txn.Delete(nk)
	})
	return dev, err
}
