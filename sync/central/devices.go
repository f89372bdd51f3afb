package central

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
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
	Cursor    uint64 `cbor:"8,keyasint,omitempty" json:"cursor_requested"` // the cursor the device asked deltas after, last time
}

func devKey(id string) []byte { return append(append([]byte(nil), prefixDev...), id...) }

// AddDevice registers a device's public key (re-adding an existing id replaces the key and
// clears a revocation).
func (s *Server) AddDevice(id string, pub ed25519.PublicKey) error {
	if id == "" || len(id) > 128 || len(pub) != ed25519.PublicKeySize {
		return errors.New("central: a device id (<= 128 bytes) and an Ed25519 public key are required")
	}
	return s.updateDevice(id, true, func(d *Device) error {
		if len(d.PubKey) > 0 && !ed25519.PublicKey(d.PubKey).Equal(pub) {
			// New hardware under an old name: its audit log and cursor start afresh.
			d.AuditSeq, d.AuditHash, d.Cursor = 0, nil, 0
		}
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
	s.devMu.Lock()
	defer s.devMu.Unlock()
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

// NewNonce issues a single-use nonce. Nonces are stateless (an expiry, randomness and a MAC
// under a server key), so handing them out stores nothing; only nonces consumed by a valid
// signed request are remembered, until they expire.
func (s *Server) NewNonce() (string, error) {
	b := make([]byte, 16, 48)
	binary.BigEndian.PutUint64(b, uint64(s.cfg.Clock().Add(nonceTTL).UnixMilli()))
	if _, err := rand.Read(b[8:16]); err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, s.nonce)
	m.Write(b)
	return hex.EncodeToString(m.Sum(b)), nil
}

// checkNonce verifies a nonce's MAC and expiry.
func (s *Server) checkNonce(n string) bool {
	b, err := hex.DecodeString(n)
	if err != nil || len(b) != 48 {
		return false
	}
	m := hmac.New(sha256.New, s.nonce)
	m.Write(b[:16])
	if !hmac.Equal(m.Sum(nil), b[16:]) {
		return false
	}
	return int64(binary.BigEndian.Uint64(b[:8])) >= s.cfg.Clock().UnixMilli()
}

// authenticate checks a signed request: the device is known and not revoked, the nonce is
// live (and is consumed, so the request cannot be replayed), the signature verifies.
func (s *Server) authenticate(deviceID, nonce, sig, method, pathQuery string, body []byte) (*Device, error) {
	if !s.checkNonce(nonce) {
		return nil, ErrNonce
	}
	s.devMu.Lock()
	defer s.devMu.Unlock()
	var dev *Device
	err := s.db.Update(func(txn *badger.Txn) error {
		d, err := readDevice(txn, deviceID)
		if err != nil {
			return err
		}
		// The signature first: only its holder learns whether the device is revoked.
		if !wire.VerifyRequest(ed25519.PublicKey(d.PubKey), sig, method, pathQuery, nonce, body) {
			return fmt.Errorf("%w: request of %q", wire.ErrBadSignature, deviceID)
		}
		if d.Revoked {
			return fmt.Errorf("%w: %q", ErrRevoked, deviceID)
		}
		nk := append(append([]byte(nil), prefixNonce...), nonce...)
		if used, err := get(txn, nk); err != nil {
			return err
		} else if used != nil {
			return ErrNonce // replayed
		}
		// Remembered until it would have expired anyway (Badger's TTL reclaims it).
		if err := txn.SetEntry(badger.NewEntry(nk, []byte{1}).WithTTL(2 * nonceTTL)); err != nil {
			return err
		}
		d.LastSeen = s.cfg.Clock().UnixMilli()
		db, err := wire.Marshal(d)
		if err != nil {
			return err
		}
		dev = d
		return txn.Set(devKey(deviceID), db)
	})
	return dev, err
}
