package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/veraison/go-cose"
)

// Content types of signed payloads, in the COSE protected header. A payload of one kind is
// never accepted as another.
const (
	ContentSnapshot = "application/vnd.gatecheck.snapshot+cbor"
)

// MaxSignedSize bounds any signed message before it is parsed.
const MaxSignedSize = MaxSnapshotSize + 4096

// Sign wraps payload in a COSE_Sign1 message signed with priv (EdDSA), naming the key id and
// content type in the protected header.
func Sign(payload []byte, contentType string, priv ed25519.PrivateKey) ([]byte, error) {
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	if err != nil {
		return nil, fmt.Errorf("cose signer: %w", err)
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmEdDSA)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(KeyID(priv.Public().(ed25519.PublicKey)))
	msg.Headers.Protected[cose.HeaderLabelContentType] = contentType
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		return nil, fmt.Errorf("cose sign: %w", err)
	}
	b, err := msg.MarshalCBOR()
	if err != nil {
		return nil, fmt.Errorf("encode COSE_Sign1: %w", err)
	}
	return b, nil
}

// Verified describes a message that verified.
type Verified struct {
	KeyID   string
	Payload []byte
	// Digest is the SHA-256 of the whole signed message, identifying it.
	Digest [32]byte
}

// Verify checks a COSE_Sign1 message against the trusted keys: the key is looked up by the key
// id in the protected header and the algorithm is fixed to EdDSA by the table, not taken from
// the message. contentType must match the protected header's.
func Verify(signed []byte, contentType string, keys KeyRing) (Verified, error) {
	if len(signed) > MaxSignedSize {
		return Verified{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(signed), MaxSignedSize)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(signed); err != nil {
		return Verified{}, fmt.Errorf("%w: not a COSE_Sign1 message: %w", ErrMalformed, err)
	}
	kidRaw, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok || len(kidRaw) == 0 {
		return Verified{}, fmt.Errorf("%w: no key id in the protected header", ErrMalformed)
	}
	kid := string(kidRaw)
	if ct, _ := msg.Headers.Protected[cose.HeaderLabelContentType].(string); ct != contentType {
		return Verified{}, fmt.Errorf("%w: content type %q, want %q", ErrMalformed, ct, contentType)
	}
	pub, ok := keys[kid]
	if !ok {
		return Verified{}, fmt.Errorf("%w: key id %q", ErrUnknownKey, kid)
	}
	verifier, err := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err != nil {
		return Verified{}, fmt.Errorf("cose verifier: %w", err)
	}
	if err := msg.Verify(nil, verifier); err != nil {
		if errors.Is(err, cose.ErrVerification) {
			return Verified{}, fmt.Errorf("%w (key %s)", ErrBadSignature, kid)
		}
		return Verified{}, fmt.Errorf("%w: %w (key %s)", ErrBadSignature, err, kid)
	}
	return Verified{KeyID: kid, Payload: msg.Payload, Digest: sha256.Sum256(signed)}, nil
}

// SignSnapshot encodes and signs a snapshot.
func SignSnapshot(s *engine.Snapshot, priv ed25519.PrivateKey) ([]byte, error) {
	payload, err := EncodeSnapshot(s)
	if err != nil {
		return nil, err
	}
	return Sign(payload, ContentSnapshot, priv)
}

// VerifiedSnapshot is a snapshot whose signature verified, compiled and ready to decide.
type VerifiedSnapshot struct {
	Verified
	Snapshot *engine.Snapshot
	Policy   *engine.Policy
}

// VerifySnapshot verifies a signed snapshot, decodes its payload strictly and compiles it.
func VerifySnapshot(signed []byte, keys KeyRing) (*VerifiedSnapshot, error) {
	v, err := Verify(signed, ContentSnapshot, keys)
	if err != nil {
		return nil, fmt.Errorf("verify snapshot: %w", err)
	}
	snap, err := DecodeSnapshot(v.Payload)
	if err != nil {
		return nil, err
	}
	p, err := engine.Compile(snap)
	if err != nil {
		return nil, fmt.Errorf("compile snapshot %d: %w", snap.Version, err)
	}
	return &VerifiedSnapshot{Verified: v, Snapshot: snap, Policy: p}, nil
}

// UnverifiedPayload returns a COSE_Sign1 message's payload and key id WITHOUT checking the
// signature, for inspection tools only. Never decide from it.
func UnverifiedPayload(signed []byte, contentType string) (payload []byte, keyID string, err error) {
	if len(signed) > MaxSignedSize {
		return nil, "", fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(signed), MaxSignedSize)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(signed); err != nil {
		return nil, "", fmt.Errorf("%w: not a COSE_Sign1 message: %w", ErrMalformed, err)
	}
	if ct, _ := msg.Headers.Protected[cose.HeaderLabelContentType].(string); ct != contentType {
		return nil, "", fmt.Errorf("%w: content type %q, want %q", ErrMalformed, ct, contentType)
	}
	kid, _ := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	return msg.Payload, string(kid), nil
}

// UnverifiedVersion reads a snapshot's version without verifying it (for reports only).
func UnverifiedVersion(signed []byte) (uint64, error) {
	p, _, err := UnverifiedPayload(signed, ContentSnapshot)
	if err != nil {
		return 0, err
	}
	s, err := DecodeSnapshot(p)
	if err != nil {
		return 0, err
	}
	return s.Version, nil
}
