package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/sync/wire"
	"go.yaml.in/yaml/v3"
)

// Device kinds.
const (
	KindHighway = "highway-checkpoint"
	KindRailway = "railway-gate"
	KindField   = "field-laptop"
)

// Config is a device's configuration. Relative paths are relative to the file's directory.
type Config struct {
	// DeviceID names the device in audit logs and to the central server. Required.
	DeviceID string `yaml:"device_id"`
	// Kind is highway-checkpoint, railway-gate or field-laptop. Required.
	Kind string `yaml:"kind"`
	// DataDir is the Badger directory the device owns. Required.
	DataDir string `yaml:"data_dir"`
	// HashKeyFile holds the region's secret ID hash key: 64 hex characters. Required.
	HashKeyFile string `yaml:"hash_key_file"`
	// TrustedKeys are PEM public keys of the policy authority; snapshots signed by any other
	// key are refused. At least one is required.
	TrustedKeys []string `yaml:"trusted_keys"`
	// StoreProfile is the Badger profile: small (default) or large.
	StoreProfile string `yaml:"store_profile"`

	file string
}

// FieldError reports a bad field of a config file.
type FieldError struct {
	File  string
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s: %v", e.File, e.Field, e.Err) }

func (e *FieldError) Unwrap() error { return e.Err }

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(b, path)
}

// Parse decodes config bytes; path names the file (for errors and relative paths).
func Parse(b []byte, path string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.file = path
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.DataDir = abs(c.DataDir)
	c.HashKeyFile = abs(c.HashKeyFile)
	for i, k := range c.TrustedKeys {
		c.TrustedKeys[i] = abs(k)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every field that needs no file access.
func (c *Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &FieldError{File: c.file, Field: field, Err: fmt.Errorf(format, a...)}
	}
	switch {
	case c.DeviceID == "":
		return bad("device_id", "required")
	case c.Kind != KindHighway && c.Kind != KindRailway && c.Kind != KindField:
		return bad("kind", "%q: want %s, %s or %s", c.Kind, KindHighway, KindRailway, KindField)
	case c.DataDir == "":
		return bad("data_dir", "required")
	case c.HashKeyFile == "":
		return bad("hash_key_file", "required")
	case len(c.TrustedKeys) == 0:
		return bad("trusted_keys", "at least one policy authority key is required")
	case c.StoreProfile != "" && c.StoreProfile != string(store.ProfileSmall) && c.StoreProfile != string(store.ProfileLarge):
		return bad("store_profile", "%q: want small or large", c.StoreProfile)
	}
	return nil
}

// HashKey reads the ID hash key file.
func (c *Config) HashKey() ([]byte, error) {
	b, err := os.ReadFile(c.HashKeyFile)
	if err != nil {
		return nil, &FieldError{File: c.file, Field: "hash_key_file", Err: err}
	}
	k, err := ParseHashKey(b)
	if err != nil {
		return nil, &FieldError{File: c.file, Field: "hash_key_file", Err: err}
	}
	return k, nil
}

// ParseHashKey reads a hash key written as 64 hex characters.
func ParseHashKey(b []byte) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("hash key must be %d hex characters: %w", 2*store.HashKeySize, err)
	}
	if len(k) != store.HashKeySize {
		return nil, fmt.Errorf("hash key must be %d bytes, got %d", store.HashKeySize, len(k))
	}
	return k, nil
}

// KeyRing reads the trusted public keys.
func (c *Config) KeyRing() (wire.KeyRing, error) {
	ring := wire.KeyRing{}
	for i, p := range c.TrustedKeys {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, &FieldError{File: c.file, Field: fmt.Sprintf("trusted_keys[%d]", i), Err: err}
		}
		pub, err := wire.ParsePublicKey(b)
		if err != nil {
			return nil, &FieldError{File: c.file, Field: fmt.Sprintf("trusted_keys[%d]", i), Err: fmt.Errorf("%s: %w", p, err)}
		}
		ring.Add(ed25519.PublicKey(pub))
	}
	if len(ring) == 0 {
		return nil, &FieldError{File: c.file, Field: "trusted_keys", Err: errors.New("no keys")}
	}
	return ring, nil
}
