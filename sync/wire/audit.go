package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// AuditKind is what an audit entry records.
type AuditKind uint8

// Entry kinds.
const (
	AuditDecision AuditKind = 1
	AuditOverride AuditKind = 2
	// AuditRegistration is a commuter registration taken at a highway checkpoint (seed 004):
	// it travels upstream with the audit log and is queued centrally for approval.
	AuditRegistration AuditKind = 3
)

func (k AuditKind) String() string {
	switch k {
	case AuditDecision:
		return "decision"
	case AuditOverride:
		return "override"
	case AuditRegistration:
		return "registration"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// AuditEntry is one audit record's content.
type AuditEntry struct {
	Seq      uint64    `cbor:"1,keyasint" json:"seq"`
	Device   string    `cbor:"2,keyasint" json:"device"`
	TimeMs   int64     `cbor:"3,keyasint" json:"time_ms"`
	Kind     AuditKind `cbor:"4,keyasint" json:"kind"`
	Person   []byte    `cbor:"5,keyasint,omitempty" json:"person,omitempty"` // hashed store key, never the number
	Source   string    `cbor:"6,keyasint,omitempty" json:"source,omitempty"` // card, manual
	Outcome  string    `cbor:"7,keyasint,omitempty" json:"outcome,omitempty"`
	Rule     string    `cbor:"8,keyasint,omitempty" json:"rule,omitempty"`
	Snapshot uint64    `cbor:"9,keyasint,omitempty" json:"snapshot,omitempty"`
	Popups   []int     `cbor:"10,keyasint,omitempty" json:"popups,omitempty"`
	Gate     bool      `cbor:"11,keyasint,omitempty" json:"gate,omitempty"` // the gate opens after this entry
	Officer  string    `cbor:"12,keyasint,omitempty" json:"officer,omitempty"`
	Reason   string    `cbor:"13,keyasint,omitempty" json:"reason,omitempty"` // an override's reason
	Ref      uint64    `cbor:"14,keyasint,omitempty" json:"ref,omitempty"`    // the entry an override overrides
	Prev     []byte    `cbor:"15,keyasint" json:"-"`
	// A registration's masked ID number and the proofs the officer saw.
	Masked    string `cbor:"16,keyasint,omitempty" json:"masked_id,omitempty"`
	WorkProof string `cbor:"17,keyasint,omitempty" json:"work_proof,omitempty"`
	Residence string `cbor:"18,keyasint,omitempty" json:"residence_proof,omitempty"`
	TestProof string `cbor:"19,keyasint,omitempty" json:"test_proof,omitempty"`
}

// Time returns the entry's time.
func (e *AuditEntry) Time() time.Time { return time.UnixMilli(e.TimeMs) }

// AuditRecord is an entry as stored and carried: its deterministic CBOR and the device's signature
// over those bytes.
type AuditRecord struct {
	Entry []byte `cbor:"1,keyasint"`
	Sig   []byte `cbor:"2,keyasint"`
}

// Hash is the record's SHA-256 over entry bytes and signature: what the next entry's Prev holds.
func (r *AuditRecord) Hash() [32]byte {
	h := sha256.New()
	h.Write(r.Entry)
	h.Write(r.Sig)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// AuditHead names the last entry; it is signed like an entry so a cut-off tail is found.
type AuditHead struct {
	Device string `cbor:"1,keyasint"`
	Seq    uint64 `cbor:"2,keyasint"`
	Hash   []byte `cbor:"3,keyasint"`
}

// Errors of audit verification; match with errors.Is.
var (
	ErrAuditGap       = errors.New("audit: entry missing (sequence gap)")
	ErrAuditSignature = errors.New("audit: bad signature")
	ErrAuditChain     = errors.New("audit: hash chain broken")
	ErrAuditHead      = errors.New("audit: head does not match the last entry")
	ErrAuditMalformed = errors.New("audit: malformed record")
)

// DecodeAuditRecord decodes a stored or uploaded record.
func DecodeAuditRecord(b []byte) (AuditRecord, error) {
	var r AuditRecord
	if err := decMode.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: %w", ErrAuditMalformed, err)
	}
	return r, nil
}

// OpenAuditHead verifies and decodes a signed head.
func OpenAuditHead(b []byte, pub ed25519.PublicKey) (AuditHead, error) {
	r, err := DecodeAuditRecord(b)
	if err != nil {
		return AuditHead{}, err
	}
	if !ed25519.Verify(pub, r.Entry, r.Sig) {
		return AuditHead{}, fmt.Errorf("%w: head", ErrAuditSignature)
	}
	var h AuditHead
	if err := decMode.Unmarshal(r.Entry, &h); err != nil {
		return AuditHead{}, fmt.Errorf("%w: head: %w", ErrAuditMalformed, err)
	}
	return h, nil
}

// AuditVerifier checks records in sequence order: signatures, sequence, chain, and at the end
// the head. Feed it from a device's store or from records a peer or an upload carried.
type AuditVerifier struct {
	pub    ed25519.PublicKey
	device string
	next   uint64
	prev   [32]byte
	// Entries counts the entries verified.
	Entries int
}

// NewAuditVerifier verifies a device's log with its public key from the first entry.
func NewAuditVerifier(device string, pub ed25519.PublicKey) *AuditVerifier {
	return &AuditVerifier{pub: pub, device: device, next: 1}
}

// ResumeAuditVerifier continues after entry seq whose record hash is prev (central keeps
// these per device between uploads).
func ResumeAuditVerifier(device string, pub ed25519.PublicKey, seq uint64, prev [32]byte) *AuditVerifier {
	return &AuditVerifier{pub: pub, device: device, next: seq + 1, prev: prev}
}

// Next is the sequence the verifier expects next; Prev the hash it expects in it.
func (v *AuditVerifier) Next() uint64 { return v.next }

// Prev is the hash of the last record verified.
func (v *AuditVerifier) Prev() [32]byte { return v.prev }

// Add verifies the next record and returns its entry.
func (v *AuditVerifier) Add(r AuditRecord) (AuditEntry, error) {
	var e AuditEntry
	if !ed25519.Verify(v.pub, r.Entry, r.Sig) {
		return e, fmt.Errorf("%w: entry after %d", ErrAuditSignature, v.next-1)
	}
	if err := decMode.Unmarshal(r.Entry, &e); err != nil {
		return e, fmt.Errorf("%w: entry after %d: %w", ErrAuditMalformed, v.next-1, err)
	}
	if e.Device != v.device {
		return e, fmt.Errorf("%w: entry %d is from device %q", ErrAuditSignature, e.Seq, e.Device)
	}
	if e.Seq != v.next {
		return e, fmt.Errorf("%w: expected %d, found %d", ErrAuditGap, v.next, e.Seq)
	}
	if !bytes.Equal(e.Prev, v.prev[:]) {
		return e, fmt.Errorf("%w at entry %d", ErrAuditChain, e.Seq)
	}
	v.prev, v.next = r.Hash(), v.next+1
	v.Entries++
	return e, nil
}

// Finish checks the signed head against the last record added.
func (v *AuditVerifier) Finish(head AuditRecord) error {
	if !ed25519.Verify(v.pub, head.Entry, head.Sig) {
		return fmt.Errorf("%w: head", ErrAuditSignature)
	}
	var h AuditHead
	if err := decMode.Unmarshal(head.Entry, &h); err != nil {
		return fmt.Errorf("%w: head: %w", ErrAuditMalformed, err)
	}
	if h.Device != v.device {
		return fmt.Errorf("%w: head is from device %q", ErrAuditHead, h.Device)
	}
	if h.Seq != v.next-1 || !bytes.Equal(h.Hash, v.prev[:]) {
		return fmt.Errorf("%w: head names entry %d, the log ends at %d", ErrAuditHead, h.Seq, v.next-1)
	}
	return nil
}
