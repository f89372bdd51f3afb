package edge

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
	k, err := wire.WriteKeyPair(path, path+".pub")
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	return k, nil
}
