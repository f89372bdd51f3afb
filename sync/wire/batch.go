package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
)

// Content types of the sync protocol's signed payloads.
const (
	ContentBatch     = "application/vnd.gatecheck.batch+cbor"
	ContentTimeToken = "application/vnd.gatecheck.time+cbor"
)

// MaxBatchChanges bounds a delta batch; MaxBatchSize bounds its signed bytes.
const (
	MaxBatchChanges = 20000
	MaxBatchSize    = 4 << 20
)

// Batch is a signed delta batch: the changes with cursors in (From, To], and the manifest
// that binds them - the snapshot version the records belong with, the population's count and
// digest at To - and the server's time. Bootstrap chunks are batches of replace changes.
type Batch struct {
	From       uint64   `cbor:"1,keyasint"`
	To         uint64   `cbor:"2,keyasint"`
	Changes    []Change `cbor:"3,keyasint,omitempty"`
	Snapshot   uint64   `cbor:"4,keyasint,omitempty"` // the lowest snapshot version these records need
	Count      uint64   `cbor:"5,keyasint"`           // people held at To (with Digest)
	Digest     []byte   `cbor:"6,keyasint"`           // population digest at To (32 bytes) when To is the server's cursor; empty otherwise
	ServerTime int64    `cbor:"7,keyasint"`           // Unix milliseconds when the batch was signed
	Bootstrap  bool     `cbor:"8,keyasint,omitempty"` // a chunk of a full bootstrap stream
	Last       bool     `cbor:"9,keyasint,omitempty"` // the last chunk of a bootstrap stream
}

// SignBatch encodes and signs a batch with the central key.
func SignBatch(b *Batch, priv ed25519.PrivateKey) ([]byte, error) {
	payload, err := Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	return Sign(payload, ContentBatch, priv)
}

// VerifyBatch verifies a signed batch against the trusted keys and decodes it strictly:
// cursors in order, changes within (From, To], keys 16 bytes.
func VerifyBatch(signed []byte, keys KeyRing) (*Batch, Verified, error) {
	if len(signed) > MaxBatchSize {
		return nil, Verified{}, fmt.Errorf("%w: batch of %d bytes, at most %d", ErrTooLarge, len(signed), MaxBatchSize)
	}
	v, err := Verify(signed, ContentBatch, keys)
	if err != nil {
		return nil, v, fmt.Errorf("verify batch: %w", err)
	}
	var b Batch
	if err := decMode.Unmarshal(v.Payload, &b); err != nil {
		return nil, v, fmt.Errorf("%w: decode batch: %w", ErrMalformed, err)
	}
	if b.To < b.From || len(b.Changes) > MaxBatchChanges || (len(b.Digest) != 0 && len(b.Digest) != 32) || (b.Last && len(b.Digest) != 32) {
		return nil, v, fmt.Errorf("%w: batch (%d, %d] with %d changes", ErrMalformed, b.From, b.To, len(b.Changes))
	}
	prev := b.From
	for i := range b.Changes {
		c := &b.Changes[i]
		if len(c.Key) != 16 {
			return nil, v, fmt.Errorf("%w: change %d: key of %d bytes", ErrMalformed, i, len(c.Key))
		}
		if b.Bootstrap {
			if c.Op != OpReplace || c.Cursor != 0 {
				return nil, v, fmt.Errorf("%w: bootstrap change %d is not a replace", ErrMalformed, i)
			}
			if (c.Facts == nil) == (len(c.Record) == 0) || len(c.Record) > MaxRecordSize {
				return nil, v, fmt.Errorf("%w: bootstrap change %d: want facts or a record of at most %d bytes", ErrMalformed, i, MaxRecordSize)
			}
			if i > 0 && bytes.Compare(b.Changes[i-1].Key, c.Key) >= 0 {
				return nil, v, fmt.Errorf("%w: bootstrap change %d: keys out of order", ErrMalformed, i)
			}
			continue
		}
		if len(c.Record) != 0 {
			return nil, v, fmt.Errorf("%w: change %d: a record outside a bootstrap", ErrMalformed, i)
		}
		if c.Cursor <= prev || c.Cursor > b.To {
			return nil, v, fmt.Errorf("%w: change %d: cursor %d outside (%d, %d]", ErrMalformed, i, c.Cursor, prev, b.To)
		}
		prev = c.Cursor
	}
	return &b, v, nil
}

// TimeToken is the server's signed statement of its time, answering a device's nonce so it
// cannot be replayed; peers may relay it.
type TimeToken struct {
	Time      int64  `cbor:"1,keyasint"` // Unix milliseconds
	Nonce     []byte `cbor:"2,keyasint,omitempty"`
	Challenge []byte `cbor:"3,keyasint,omitempty"` // the client's own random challenge: a relay cannot replay an old token
}

// AuditAck is the central's signed acknowledgement of an audit upload, answering the
// client's challenge so that a relay can neither invent nor replay one.
type AuditAck struct {
	Device    string `cbor:"1,keyasint"`
	Acked     uint64 `cbor:"2,keyasint"`
	Challenge []byte `cbor:"3,keyasint"`
}

// ContentAuditAck is the content type of a signed AuditAck.
const ContentAuditAck = "application/vnd.gatecheck.audit-ack+cbor"

// Request signing: a device signs every request to the central server with its key over the
// method, the path with query, a server-issued single-use nonce and the body's SHA-256.
const (
	HeaderDevice    = "Gatecheck-Device"
	HeaderNonce     = "Gatecheck-Nonce"
	HeaderSignature = "Gatecheck-Signature"
)

// RequestMessage is what a device signs for one request.
func RequestMessage(method, pathQuery, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte("gatecheck-request-v1\n" + method + "\n" + pathQuery + "\n" + nonce + "\n" + base64.StdEncoding.EncodeToString(sum[:]) + "\n" + strconv.Itoa(len(body)))
}

// SignRequest returns the base64 signature header value.
func SignRequest(priv ed25519.PrivateKey, method, pathQuery, nonce string, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, RequestMessage(method, pathQuery, nonce, body)))
}

// VerifyRequest checks a request signature.
func VerifyRequest(pub ed25519.PublicKey, sig, method, pathQuery, nonce string, body []byte) bool {
	s, err := base64.StdEncoding.DecodeString(sig)
	return err == nil && ed25519.Verify(pub, RequestMessage(method, pathQuery, nonce, body), s)
}
