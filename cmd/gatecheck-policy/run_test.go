package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatecheck/gatecheck/sync/wire"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

func TestKeygenSignVerifyInspect(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCmd(t, "keygen", "--out", dir); err != nil {
		t.Fatalf("keygen: %v %s", err, out)
	}
	if _, err := runCmd(t, "keygen", "--out", dir); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}
	key, pub := filepath.Join(dir, "policy-authority.key"), filepath.Join(dir, "policy-authority.pub")
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	snap := filepath.Join(dir, "nov.cose")
	out, err := runCmd(t, "sign", "--key", key, "--out", snap, "--effective-from", "now", "--expires-at", "now+30d", "builtin:beijing-2021-11-17.yaml")
	if err != nil {
		t.Fatalf("sign: %v %s", err, out)
	}
	if out, err = runCmd(t, "verify", "--trusted", pub, snap); err != nil || !strings.HasPrefix(out, "OK snapshot 2021111700") {
		t.Fatalf("verify: %v %s", err, out)
	}
	out, err = runCmd(t, "inspect", "--trusted", pub, snap)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(out), &info); err != nil || info["version"] != float64(2021111700) || info["verified_by"] == nil {
		t.Fatalf("inspect: %v %s", err, out)
	}
	// A tampered file does not verify.
	b, _ := os.ReadFile(snap)
	b[len(b)-100] ^= 1
	os.WriteFile(snap, b, 0o644)
	if _, err := runCmd(t, "verify", "--trusted", pub, snap); !errors.Is(err, wire.ErrBadSignature) && !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("tampered verify: %v", err)
	}
}

func TestSignRefusesBadPolicy(t *testing.T) {
	dir := t.TempDir()
	runCmd(t, "keygen", "--out", dir)
	src := filepath.Join(dir, "p.yaml")
	os.WriteFile(src, []byte(`version: 5
effective_from: 2021-11-17T00:00:00+08:00
expires_at: 2022-01-31T00:00:00+08:00
max_offline: 72h
rules:
  - id: broken
    outcome: PASS
    when: test.has_negative && nosuch
    reason_zh: x
    reason_en: x
`), 0o644)
	_, err := runCmd(t, "sign", "--key", filepath.Join(dir, "policy-authority.key"), "--out", filepath.Join(dir, "p.cose"), src)
	if err == nil || !strings.Contains(err.Error(), `"broken"`) {
		t.Fatalf("sign of a broken rule: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p.cose")); err == nil {
		t.Fatal("a broken policy was written")
	}
}

func TestBuiltinExport(t *testing.T) {
	dir := t.TempDir()
	if _, err := runCmd(t, "builtin", "--out", dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"beijing-2021-11-17.yaml", "beijing-2021-08-07.yaml", "data/counties.csv"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// An exported source signs from the file system like the builtin.
	runCmd(t, "keygen", "--out", dir)
	if out, err := runCmd(t, "sign", "--key", filepath.Join(dir, "policy-authority.key"), "--out", filepath.Join(dir, "a.cose"), filepath.Join(dir, "beijing-2021-08-07.yaml")); err != nil {
		t.Fatalf("sign exported: %v %s", err, out)
	}
}
