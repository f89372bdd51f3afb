package edge

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gatecheck/gatecheck/sync/wire"
)

// LoadOrCreateKey reads the device's Ed25519 key (PKCS #8 PEM) from path, or creates it (mode
// 0600, with the public key beside it as path+".pub") when the file does not exist.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := wire.ParsePrivateKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("device key %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("device key: %w", err)
	}
	k, err := WriteNewKey(path)
	return k, true, err
}

// WriteNewKey makes a device key at path (never overwriting one) and its public key at
// path+".pub".
func WriteNewKey(path string) (ed25519.PrivateKey, error) {
	pub, priv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	kb, err := wire.MarshalPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pb, err := wire.MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	if _, err := f.Write(kb); err != nil {
		f.Close()
		return nil, fmt.Errorf("device key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	if err := os.WriteFile(path+".pub", pb, 0o644); err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	return priv, nil
}
