package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatecheck/gatecheck/devices/cardsim"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/config"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Files the demo writes into its directory.
const (
	ConfigFile   = "device.yaml"
	PeopleFile   = "people.jsonl"
	KeyFile      = "policy-authority.key"
	PubFile      = "policy-authority.pub"
	HashKeyFile  = "id-hash.key"
	NovSnapshot  = "beijing-2021-11-17.cose"
	QueueFile    = "cardsim-queue.json"
	SyncedConfig = "synced-device.yaml"
	SyncedKey    = "lane-02.key"
	CentralAddr  = "127.0.0.1:8470"
	ReaderLink   = "reader"
	AugSnapshot  = "beijing-2021-08-07.cose"
	deviceDirRel = "device-data"
)

// Setup writes a complete demo device into dir at now: keys, a config, the two shipped policies
// re-signed relative to now (August in force until now, November from now), and the people
// file. It returns the config path.
func Setup(dir string, now time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("demo dir: %w", err)
	}
	pub, priv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	kb, _ := wire.MarshalPrivateKey(priv)
	pb, _ := wire.MarshalPublicKey(pub)
	hk := make([]byte, store.HashKeySize)
	if _, err := rand.Read(hk); err != nil {
		return "", fmt.Errorf("hash key: %w", err)
	}
	cfg := fmt.Sprintf(`# A demo highway-checkpoint kiosk, written by 'gatecheck demo'. Paths are relative to this file.
device_id: demo-kiosk-01
kind: highway-checkpoint
data_dir: %s
hash_key_file: %s
trusted_keys:
  - %s
store_profile: small
# gatecheck-cardsim --script %s --link %s publishes the simulated reader here.
reader:
  port: %s
  baud: 115200
  poll_interval: 200ms
# No gate hardware in the demo: each opening is printed. A railway gate uses kind: relay.
gate:
  kind: log
display: console
companion_window: 2m
`, deviceDirRel, HashKeyFile, PubFile, filepath.Join(dir, QueueFile), filepath.Join(dir, ReaderLink), ReaderLink)
	synced := fmt.Sprintf(`# A second demo device that gets its records and rules from the central server, written by
# 'gatecheck demo'. Start the server with: gatecheck-central serve --data %[1]s/central-data
#   --key %[1]s/%[2]s --hash-key %[1]s/%[3]s --listen %[4]s
device_id: demo-lane-02
kind: railway-gate
data_dir: synced-data
audit_dir: synced-audit
device_key_file: %[5]s
control_socket: synced.sock
hash_key_file: %[3]s
trusted_keys:
  - %[6]s
sync:
  url: http://%[4]s
  interval: 10s
display: console
`, dir, KeyFile, HashKeyFile, CentralAddr, SyncedKey, PubFile)
	files := map[string][]byte{KeyFile: kb, PubFile: pb, HashKeyFile: []byte(hex.EncodeToString(hk) + "\n"), ConfigFile: []byte(cfg), SyncedConfig: []byte(synced)}
	now = now.Truncate(time.Second)
	for _, s := range []struct {
		file, src string
		from, to  time.Time
	}{
		{AugSnapshot, policies.August2021, now.Add(-7 * 24 * time.Hour), now.Add(30 * 24 * time.Hour)},
		{NovSnapshot, policies.November2021, now.Add(-time.Minute), now.Add(30 * 24 * time.Hour)},
	} {
		snap, err := source.Load(policies.FS, s.src, source.Overrides{EffectiveFrom: s.from, ExpiresAt: s.to})
		if err != nil {
			return "", err
		}
		b, err := wire.SignSnapshot(snap, priv)
		if err != nil {
			return "", err
		}
		files[s.file] = b
	}
	var people strings.Builder
	for _, p := range People(now) {
		if !p.Imported {
			continue
		}
		b, err := json.Marshal(p.Record)
		if err != nil {
			return "", err
		}
		people.Write(b)
		people.WriteByte('\n')
	}
	files[PeopleFile] = []byte(people.String())
	queue, err := Queue(now)
	if err != nil {
		return "", err
	}
	files[QueueFile] = queue
	for name, b := range files {
		mode := os.FileMode(0o644)
		if name == KeyFile || name == HashKeyFile {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			return "", fmt.Errorf("demo: %w", err)
		}
	}
	if _, err := edge.WriteNewKey(filepath.Join(dir, SyncedKey)); err != nil {
		return "", err
	}
	if err := writeCheckpoint(dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, ConfigFile), nil
}

// Checkpoint lanes the demo writes: three devices of one checkpoint, of which only the first
// reaches the central server (the others' sync URL goes nowhere, as on a cut link).
var Lanes = []string{"lane-a", "lane-b", "lane-c"}

// writeCheckpoint writes checkpoint/<lane>.yaml, a device key per lane and the gossip key.
func writeCheckpoint(dir string) error {
	cp := filepath.Join(dir, "checkpoint")
	if err := os.MkdirAll(cp, 0o755); err != nil {
		return err
	}
	gk := make([]byte, 32)
	if _, err := rand.Read(gk); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cp, "gossip.key"), []byte(hex.EncodeToString(gk)+"\n"), 0o600); err != nil {
		return err
	}
	for i, lane := range Lanes {
		url := "http://" + CentralAddr
		if i > 0 {
			url = "http://127.0.0.1:9" // no central link: this lane syncs through lane-a
		}
		seeds := ""
		if i > 0 {
			seeds = "\n    - 127.0.0.1:17946"
		}
		cfg := fmt.Sprintf(`# Demo checkpoint device %[1]s, written by 'gatecheck demo'. Paths are relative to this file.
device_id: demo-%[1]s
kind: railway-gate
data_dir: %[1]s/data
audit_dir: %[1]s/audit
device_key_file: %[1]s.key
control_socket: %[1]s.sock
hash_key_file: ../%[2]s
trusted_keys:
  - ../%[3]s
sync:
  url: %[4]s
  interval: 3s
gossip:
  checkpoint: demo-checkpoint
  lane: %[1]s
  bind: 127.0.0.1:%[5]d
  relay: 127.0.0.1:%[6]d
  key_files: [gossip.key]
  seeds:%[7]s
display: none
`, lane, HashKeyFile, PubFile, url, 17946+i, 17950+i, seeds)
		if seeds == "" {
			cfg = strings.Replace(cfg, "  seeds:\n", "  seeds: []\n", 1)
		}
		if err := os.WriteFile(filepath.Join(cp, lane+".yaml"), []byte(cfg), 0o644); err != nil {
			return err
		}
		if _, err := edge.WriteNewKey(filepath.Join(cp, lane+".key")); err != nil {
			return err
		}
	}
	return nil
}

// Queue is a simulated reader's script for the demo population: every traveller's card in turn
// (the infant followed by the accompanying adult), with a few line faults the device survives.
func Queue(now time.Time) ([]byte, error) {
	faults := map[int]string{2: cardsim.FaultBadChecksum, 5: cardsim.FaultNoise, 7: cardsim.FaultTruncated}
	var s cardsim.Script
	people := People(now)
	for i, p := range people {
		n := p.Record.ID
		if len(n) != 18 || p.WantRule == engine.RuleInvalidID {
			continue // a mistyped number is an officer's typo, not a card
		}
		s.Steps = append(s.Steps, cardsim.Step{Fault: faults[i], Gap: 3, Card: &cardsim.CardSpec{
			Name: fmt.Sprintf("旅客%02d", i+1), Birth: n[6:14], Number: n, Gender: "1", Nation: "01",
			Address: "北京市朝阳区", Authority: "北京市公安局", ValidFrom: "20200101", ValidTo: "20400101"}})
		if p.Want == engine.Companion {
			a := people[0].Record.ID // the accompanying adult presents next
			s.Steps = append(s.Steps, cardsim.Step{Gap: 2, Card: &cardsim.CardSpec{Name: "同行成人", Birth: a[6:14], Number: a, Gender: "2", Nation: "01"}})
		}
	}
	return json.MarshalIndent(s, "", "  ")
}

// OpenDevice opens the device a config file describes.
func OpenDevice(cfgPath string, log *slog.Logger) (*edge.Device, *config.Config, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	d, err := edge.OpenConfig(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return d, cfg, nil
}

// Run sets up the demo in dir, installs both policies, imports the people and prints every
// traveller's decision under the policy in force now, and under the August 2021 one (an hour
// ago) for comparison. It reports an error if any decision differs from what the demo expects.
func Run(ctx context.Context, dir string, now time.Time, out io.Writer, log *slog.Logger) error {
	cfgPath, err := Setup(dir, now)
	if err != nil {
		return err
	}
	d, _, err := OpenDevice(cfgPath, log)
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(out, "gatecheck demo in %s\n\n", dir)
	for _, f := range []string{AugSnapshot, NovSnapshot} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		v, err := d.InstallSnapshot(b, now)
		if err != nil {
			return fmt.Errorf("install %s: %w", f, err)
		}
		fmt.Fprintf(out, "installed snapshot %d (%s), effective %s\n", v.Snapshot.Version, v.Snapshot.Name,
			v.Snapshot.Effective().In(engine.Beijing).Format("2006-01-02 15:04"))
	}
	pf, err := os.Open(filepath.Join(dir, PeopleFile))
	if err != nil {
		return err
	}
	st, err := d.Import(ctx, pf, now, nil)
	pf.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "imported %d people\n\n", st.Upserts)

	earlier := now.Add(-time.Hour)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRAVELLER\tID\tNOW (Nov 2021 policy)\tREASON\tAN HOUR AGO (Aug 2021 policy)")
	var mismatches []string
	for _, p := range People(now) {
		dec := d.Check(edge.CheckRequest{Number: p.Record.ID}, now)
		old := d.Check(edge.CheckRequest{Number: p.Record.ID, WhatIf: true}, earlier)
		mark := ""
		if dec.Commuter() {
			mark = " 通勤"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\t%s\t%s\n", p.Label, engine.IDNumber(p.Record.ID).Masked(), dec.Outcome, mark, dec.ReasonZH, old.Outcome)
		if dec.Outcome != p.Want || dec.Rule != p.WantRule {
			mismatches = append(mismatches, fmt.Sprintf("%s: got %s/%s, want %s/%s", p.Label, dec.Outcome, dec.Rule, p.Want, p.WantRule))
		}
	}
	tw.Flush()
	adult := People(now)[0].Record.ID
	fmt.Fprintf(out, `
Try it yourself (go run ./cmd/gatecheck, or bin/gatecheck after go build -o bin/ ./cmd/...):
  gatecheck check --config %[1]s --id %[2]s
  gatecheck check --config %[1]s --id %[2]s --json --at %[3]s
Run the kiosk with a simulated card reader (two terminals):
  go run ./cmd/gatecheck-cardsim --script %[4]s --link %[5]s --stay
  go run ./cmd/gatecheck run --config %[1]s
then, while it runs:  gatecheck audit list --config %[1]s   and   gatecheck audit verify --config %[1]s
A device that syncs from a central server: %[6]s (README, "Central server and sync").
`, cfgPath, adult, now.Add(2*24*time.Hour).In(engine.Beijing).Format(time.RFC3339), filepath.Join(dir, QueueFile), filepath.Join(dir, ReaderLink), filepath.Join(dir, SyncedConfig))
	if len(mismatches) > 0 {
		return fmt.Errorf("demo decisions differ from the expected ones:\n  %s", strings.Join(mismatches, "\n  "))
	}
	return nil
}
