package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// KeyID names a public key: the first 8 bytes of the SHA-256 of its raw bytes, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey makes a new Ed25519 key pair from r (crypto/rand.Reader in production).
func GenerateKey(r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// MarshalPrivateKey encodes a private key as PKCS #8 PEM ("PRIVATE KEY").
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey encodes a public key as PKIX PEM ("PUBLIC KEY").
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKey reads a PKCS #8 PEM Ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want Ed25519", k)
	}
	return priv, nil
}

// ParsePublicKey reads a PKIX PEM Ed25519 public key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want Ed25519", k)
	}
	return pub, nil
}

// KeyRing is a table of trusted public keys by key id.
type KeyRing map[string]ed25519.PublicKey

// Add trusts pub and returns its key id.
func (r KeyRing) Add(pub ed25519.PublicKey) string {
	id := KeyID(pub)
	r[id] = pub
	return id
}

// WriteKeyPair makes a new Ed25519 key pair and writes the private key to keyPath (PKCS #8
// PEM, mode 0600, never over an existing file) and the public key to pubPath (PEM, 0644).
func WriteKeyPair(keyPath, pubPath string) (ed25519.PrivateKey, error) {
	pub, priv, err := GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	kb, err := MarshalPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pb, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o755); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s exists; refusing to overwrite a key", keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(kb); err != nil {
		f.Close()
		return nil, fmt.Errorf("write key %s: %w", keyPath, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write key %s: %w", keyPath, err)
	}
	if err := os.WriteFile(pubPath, pb, 0o644); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	return priv, nil
}
