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
	cfg := fmt.Sprintf(`# A demo field laptop, written by 'gatecheck demo'. Paths are relative to this file.
device_id: demo-laptop-01
kind: field-laptop
data_dir: %s
hash_key_file: %s
trusted_keys:
  - %s
store_profile: small
`, deviceDirRel, HashKeyFile, PubFile)
	files := map[string][]byte{KeyFile: kb, PubFile: pb, HashKeyFile: []byte(hex.EncodeToString(hk) + "\n"), ConfigFile: []byte(cfg)}
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
	for name, b := range files {
		mode := os.FileMode(0o644)
		if name == KeyFile || name == HashKeyFile {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			return "", fmt.Errorf("demo: %w", err)
		}
	}
	return filepath.Join(dir, ConfigFile), nil
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
	fmt.Fprintf(out, "\nTry it yourself:\n  gatecheck check --config %s --id %s\n  gatecheck check --config %s --id %s --json --at %s\n",
		cfgPath, adult, cfgPath, adult, now.Add(2*24*time.Hour).In(engine.Beijing).Format(time.RFC3339))
	if len(mismatches) > 0 {
		return fmt.Errorf("demo decisions differ from the expected ones:\n  %s", strings.Join(mismatches, "\n  "))
	}
	return nil
}
