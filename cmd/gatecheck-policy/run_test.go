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

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
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

// A policy author runs the case files against a snapshot before publishing it: the shipped
// November policy passes its cases (signed, with the signature checked); the August one fails
// November's cases, each failure named, and the command exits non-zero.
func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	runCmd(t, "keygen", "--out", dir)
	key, pub := filepath.Join(dir, "policy-authority.key"), filepath.Join(dir, "policy-authority.pub")
	snap := filepath.Join(dir, "nov.cose")
	if out, err := runCmd(t, "sign", "--key", key, "--out", snap, "builtin:beijing-2021-11-17.yaml"); err != nil {
		t.Fatalf("sign: %v %s", err, out)
	}
	all, _ := filepath.Glob("../../engine/testdata/cases/*.yaml")
	var nov []string
	for _, f := range all {
		if !strings.HasSuffix(f, "two-policies.yaml") {
			nov = append(nov, f)
		}
	}
	out, err := runCmd(t, append([]string{"test", "--trusted", pub, snap}, nov...)...)
	if err != nil || !strings.Contains(out, "verified") || !strings.Contains(out, " 0 failed") {
		t.Fatalf("November cases against November: %v\n%s", err, out)
	}
	out, err = runCmd(t, "test", "builtin:beijing-2021-08-07.yaml", "../../engine/testdata/cases/entry.yaml")
	if err == nil || !strings.Contains(out, "FAIL  ../../engine/testdata/cases/entry.yaml: valid test but no itinerary declaration: got PASS green-pass") {
		t.Fatalf("November cases against August: %v\n%s", err, out)
	}
	// A signature that does not verify is refused before any case runs.
	other := t.TempDir()
	runCmd(t, "keygen", "--out", other)
	if out, err := runCmd(t, "test", "--trusted", filepath.Join(other, "policy-authority.pub"), snap, nov[0]); err == nil || strings.Contains(out, "cases,") {
		t.Fatalf("untrusted signature: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "test", snap); !errors.As(err, new(cli.UsageError)) {
		t.Fatalf("no case file: %v", err)
	}
}

// diff counts the decisions that change between two policies over a population at a moment,
// and which way.
func TestPolicyDiff(t *testing.T) {
	people := filepath.Join(t.TempDir(), "people.jsonl")
	os.WriteFile(people, []byte(`{"id":"110105199005010018","declarations":["2021-11-19T10:00:00+08:00"]}
{"id":"110105198503030017","commuter":{"since":"2021-06-01"},"tests":[{"sampled":"2021-10-27T08:00:00+08:00","reported":"2021-10-27T18:00:00+08:00","result":"negative"}]}
{"id":"11010519491231002X","popups":[{"n":4,"since":"2021-11-20T10:00:00+08:00"}]}

{"id":"110105199005010018","tests":[{"sampled":"2021-11-19T19:00:00+08:00","reported":"2021-11-20T01:00:00+08:00","result":"negative"}],"declarations":["2021-11-19T10:00:00+08:00"]}
`), 0o644)
	out, err := runCmd(t, "diff", "builtin:beijing-2021-08-07.yaml", "builtin:beijing-2021-11-17.yaml", "--people", people, "--at", "2021-11-20T15:00:00+08:00", "--json")
	if err != nil {
		t.Fatalf("diff: %v\n%s", err, out)
	}
	var rep DiffReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The adult without a test and the commuter with a 24-day-old test no longer pass; the
	// popup and the adult with a fresh test keep their outcomes.
	if rep.People != 4 || rep.Changed != 2 || rep.Stricter != 2 || rep.Looser != 0 {
		t.Fatalf("report %+v", rep)
	}
	want := map[string]int{"PASS->NEED_TEST": 1, "PASS_COMMUTER->NEED_TEST": 1}
	for _, c := range rep.Changes {
		if want[c.From+"->"+c.To] != c.Count {
			t.Errorf("change %+v not expected (want %v)", c, want)
		}
	}
	// A bad line is named, not skipped.
	os.WriteFile(people, []byte("{\"id\":\"110105199005010018\"}\n{\"id\":\"12345\"}\n"), 0o644)
	if out, err := runCmd(t, "diff", "builtin:beijing-2021-08-07.yaml", "builtin:beijing-2021-11-17.yaml", "--people", people); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad line: %v\n%s", err, out)
	}
}
