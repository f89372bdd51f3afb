package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/sync/wire"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
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
	// MemoryLimitMiB is the Go runtime's soft memory limit (debug.SetMemoryLimit) in MiB: the
	// garbage collector works harder as the heap nears it instead of letting it double.
	// Default 192 with the small profile, none (0) with large; the GOMEMLIMIT environment
	// variable, when set, wins.
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
	// MinFreeMiB is the free-space floor under data_dir: below it imports, syncs and
	// bootstraps stop (the device decides from what it holds). The audit log's floor is a
	// quarter of it (at least 32 MiB): below that, decisions are MANUAL (they cannot be
	// recorded). Default 256.
	MinFreeMiB int `yaml:"min_free_mib"`
	// DeviceKeyFile is the device's Ed25519 key (PEM) that signs its audit log; created at
	// first start if missing. Default: device.key in data_dir's parent directory.
	DeviceKeyFile string `yaml:"device_key_file"`
	// AuditDir is the audit log's own Badger directory (synced on every append). Default:
	// audit in data_dir's parent directory.
	AuditDir string `yaml:"audit_dir"`
	// ControlSocket is the unix socket of the running daemon's control API. Default:
	// gatecheck.sock in data_dir's parent directory.
	ControlSocket string `yaml:"control_socket"`
	// Reader is the ID-card reader; omitted on devices without one (manual entry only).
	Reader *Reader `yaml:"reader"`
	// Gate is what opens for a pass; omitted means no gate (an officer waves the traveller on).
	Gate *Gate `yaml:"gate"`
	// Display shows decisions: console (the daemon's standard output) or none. Default console.
	Display string `yaml:"display"`
	// Sync is the central server this device pulls from; omitted means offline-only (imports).
	Sync *Sync `yaml:"sync"`
	// Gossip joins the checkpoint's other devices; omitted means this device is alone.
	Gossip *Gossip `yaml:"gossip"`
	// CompanionWindow is how long after a COMPANION decision (an infant) the next card read is
	// taken as the accompanying adult. Default 2m.
	CompanionWindow Duration `yaml:"companion_window"`
	// Web serves the officer's page, /status, /decisions and /metrics; omitted means none.
	Web *Web `yaml:"web"`

	file string
}

// Reader configures the GA 467 ID-card reader.
type Reader struct {
	// Port is the serial device or a stable symlink (/dev/serial/by-id/...). Required.
	Port string `yaml:"port"`
	// Baud is 115200 (default), 57600, 38400, 19200 or 9600.
	Baud int `yaml:"baud"`
	// PollInterval is the pause between find-card polls. Default 300ms.
	PollInterval Duration `yaml:"poll_interval"`
}

// Gate configures the gate output.
type Gate struct {
	// Kind is relay (a USB serial relay board, A0 01 01 A2 protocol), or log (no hardware: each
	// opening is printed and logged; for demos and bench tests). Required.
	Kind string `yaml:"kind"`
	// Port is the relay board's serial device. Required for relay.
	Port string `yaml:"port"`
	// Baud defaults to 9600.
	Baud int `yaml:"baud"`
	// Pulse is how long the relay stays closed per passage. Default 1s.
	Pulse Duration `yaml:"pulse"`
}

// Sync configures the device's sync with the central server.
type Sync struct {
	// URL of the central server. Required.
	URL string `yaml:"url"`
	// Interval between syncs while the link is up. Default 30s; failures back off with jitter
	// up to ten intervals.
	Interval Duration `yaml:"interval"`
}

// Gossip configures the checkpoint cluster (hashicorp/memberlist).
type Gossip struct {
	// Checkpoint labels the cluster; devices of another checkpoint are refused. Required.
	Checkpoint string `yaml:"checkpoint"`
	// Lane names this device in anti-passback reasons ("card used at lane 3 at 08:15").
	// Default: the device id.
	Lane string `yaml:"lane"`
	// Bind is host:port for memberlist (TCP and UDP). Default 0.0.0.0:7946.
	Bind string `yaml:"bind"`
	// Seeds are peers to join (host:port).
	Seeds []string `yaml:"seeds"`
	// KeyFiles hold the gossip keys, 64 hex characters each; the first encrypts, all decrypt
	// (rotation: add the new key everywhere, move it first everywhere, then remove the old).
	// At least one is required.
	KeyFiles []string `yaml:"key_files"`
	// Relay is host:port where this device forwards peers' sync requests to the central while
	// it has a link (needs a sync section). Default: Bind's host, port 7947.
	Relay string `yaml:"relay"`
	// PassbackWindow: the same card at another lane within this window is MANUAL. Default 2m.
	PassbackWindow Duration `yaml:"passback_window"`
}

// DefaultMemoryLimitMiB is the soft memory limit of the small store profile.
const DefaultMemoryLimitMiB = 192

// Web configures the officer's page.
type Web struct {
	// Listen is host:port of the page. Default 127.0.0.1:8080 (loopback: put a tablet on the
	// device's own network only by naming its address).
	Listen string `yaml:"listen"`
	// OfficerPINFile holds the bcrypt hash of the officer PIN (`gatecheck officer-pin`).
	// Without it the page is read-only: no manual entry, override or registration.
	OfficerPINFile string `yaml:"officer_pin_file"`
	// Stale is when the page shows sync data as stale, loudly. Default 10m.
	Stale Duration `yaml:"stale"`
	// Hosts are host names (besides IP addresses and localhost) the page answers to.
	Hosts []string `yaml:"hosts"`
	// TLSCert and TLSKey (PEM files) serve the page over HTTPS: set them when a tablet reaches
	// it over the LAN, or the PIN and the session travel in clear.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// Duration is a time.Duration written as "300ms" or "2m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. 300ms, 2s, 2m", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
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
	if c.DeviceKeyFile == "" && c.DataDir != "" {
		c.DeviceKeyFile = filepath.Join(filepath.Dir(c.DataDir), "device.key")
	}
	if c.AuditDir == "" && c.DataDir != "" {
		c.AuditDir = filepath.Join(filepath.Dir(c.DataDir), "audit")
	}
	c.AuditDir = abs(c.AuditDir)
	if c.ControlSocket == "" && c.DataDir != "" {
		c.ControlSocket = filepath.Join(filepath.Dir(c.DataDir), "gatecheck.sock")
	}
	c.DeviceKeyFile = abs(c.DeviceKeyFile)
	c.ControlSocket = abs(c.ControlSocket)
	if c.Reader != nil {
		c.Reader.Port = abs(c.Reader.Port)
		if c.Reader.Baud == 0 {
			c.Reader.Baud = 115200
		}
		if c.Reader.PollInterval == 0 {
			c.Reader.PollInterval = Duration(300 * time.Millisecond)
		}
	}
	if c.Gate != nil {
		c.Gate.Port = abs(c.Gate.Port)
		if c.Gate.Baud == 0 {
			c.Gate.Baud = 9600
		}
		if c.Gate.Pulse == 0 {
			c.Gate.Pulse = Duration(time.Second)
		}
	}
	if g := c.Gossip; g != nil {
		if g.Bind == "" {
			g.Bind = "0.0.0.0:7946"
		}
		if g.Relay == "" {
			host, _, _ := strings.Cut(g.Bind, ":")
			g.Relay = host + ":7947"
		}
		if g.Lane == "" {
			g.Lane = c.DeviceID
		}
		if g.PassbackWindow == 0 {
			g.PassbackWindow = Duration(2 * time.Minute)
		}
		for i, k := range g.KeyFiles {
			g.KeyFiles[i] = abs(k)
		}
	}
	if w := c.Web; w != nil {
		if w.Listen == "" {
			w.Listen = "127.0.0.1:8080"
		}
		if w.OfficerPINFile != "" {
			w.OfficerPINFile = abs(w.OfficerPINFile)
		}
		if w.TLSCert != "" {
			w.TLSCert, w.TLSKey = abs(w.TLSCert), abs(w.TLSKey)
		}
		if w.Stale == 0 {
			w.Stale = Duration(10 * time.Minute)
		}
	}
	if c.Sync != nil && c.Sync.Interval == 0 {
		c.Sync.Interval = Duration(30 * time.Second)
	}
	if c.Display == "" {
		c.Display = "console"
	}
	if c.MinFreeMiB == 0 {
		c.MinFreeMiB = 256
	}
	if c.MemoryLimitMiB == 0 && (c.StoreProfile == "" || c.StoreProfile == string(store.ProfileSmall)) {
		c.MemoryLimitMiB = DefaultMemoryLimitMiB
	}
	if c.CompanionWindow == 0 {
		c.CompanionWindow = Duration(2 * time.Minute)
	}
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
	case c.Display != "" && c.Display != "console" && c.Display != "none":
		return bad("display", "%q: want console or none", c.Display)
	}
	if r := c.Reader; r != nil {
		switch {
		case r.Port == "":
			return bad("reader.port", "required")
		case r.Baud != 115200 && r.Baud != 57600 && r.Baud != 38400 && r.Baud != 19200 && r.Baud != 9600:
			return bad("reader.baud", "%d: want 115200, 57600, 38400, 19200 or 9600", r.Baud)
		}
	}
	if sc := c.Sync; sc != nil && !strings.HasPrefix(sc.URL, "http://") && !strings.HasPrefix(sc.URL, "https://") {
		return bad("sync.url", "%q: want http://host:port or https://...", sc.URL)
	}
	if g := c.Gossip; g != nil {
		switch {
		case g.Checkpoint == "":
			return bad("gossip.checkpoint", "required")
		case len(g.KeyFiles) == 0:
			return bad("gossip.key_files", "at least one gossip key is required (gossip is never unencrypted)")
		case len(g.Lane) > 64:
			return bad("gossip.lane", "%d characters, at most 64 (it travels in every node's metadata)", len(g.Lane))
		}
	}
	if c.MinFreeMiB < 64 {
		return bad("min_free_mib", "%d: at least 64 (Badger needs room for a memtable flush and a compaction after writes stop; below that a full disk crashes it)", c.MinFreeMiB)
	}
	if w := c.Web; w != nil {
		if _, _, err := net.SplitHostPort(w.Listen); err != nil {
			return bad("web.listen", "%q: want host:port", w.Listen)
		}
		if (w.TLSCert == "") != (w.TLSKey == "") {
			return bad("web.tls_cert", "tls_cert and tls_key go together")
		}
	}
	if g := c.Gate; g != nil {
		switch {
		case g.Kind != "relay" && g.Kind != "log":
			return bad("gate.kind", "%q: want relay or log (or leave gate out)", g.Kind)
		case g.Kind == "relay" && g.Port == "":
			return bad("gate.port", "required for a relay")
		}
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

// OfficerPINHash reads the bcrypt hash of the officer PIN; nil when none is configured.
func (c *Config) OfficerPINHash() ([]byte, error) {
	if c.Web == nil || c.Web.OfficerPINFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.Web.OfficerPINFile)
	if err != nil {
		return nil, &FieldError{File: c.file, Field: "web.officer_pin_file", Err: err}
	}
	h := []byte(strings.TrimSpace(string(b)))
	if _, err := bcrypt.Cost(h); err != nil {
		return nil, &FieldError{File: c.file, Field: "web.officer_pin_file", Err: fmt.Errorf("not a bcrypt hash (make one with gatecheck officer-pin): %w", err)}
	}
	return h, nil
}

// GossipKeys reads the gossip key files (64 hex characters each).
func (c *Config) GossipKeys() ([][]byte, error) {
	var out [][]byte
	for i, p := range c.Gossip.KeyFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, &FieldError{File: c.file, Field: fmt.Sprintf("gossip.key_files[%d]", i), Err: err}
		}
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
			return nil, &FieldError{File: c.file, Field: fmt.Sprintf("gossip.key_files[%d]", i), Err: fmt.Errorf("%s: want 32, 48 or 64 hex characters", p)}
		}
		out = append(out, k)
	}
	return out, nil
}
