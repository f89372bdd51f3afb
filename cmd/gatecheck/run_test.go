package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/edge/demo"
	"github.com/gatecheck/gatecheck/engine"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// The README's first command: the demo builds a device and every outcome shows.
func TestDemoAndCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out, stderr, err := runCLI(t, "demo", "--print", "--dir", dir)
	if err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out, stderr)
	}
	for o := engine.Pass; o <= engine.Manual; o++ {
		if !strings.Contains(out, o.String()) {
			t.Errorf("demo output lacks %s:\n%s", o, out)
		}
	}
	cfg := filepath.Join(dir, demo.ConfigFile)
	people := demo.People(time.Now())

	// check --json has the documented fields.
	out, _, err = runCLI(t, "check", "--config", cfg, "--id", people[1].Record.ID, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("check --json: %v: %s", err, out)
	}
	for _, k := range []string{"outcome", "rule", "snapshot_version", "reason_zh", "reason_en", "popups"} {
		if _, ok := got[k]; !ok {
			t.Errorf("check --json lacks %q: %s", k, out)
		}
	}
	if got["outcome"] != "PASS_COMMUTER" || got["snapshot_version"] != float64(2021111700) {
		t.Errorf("commuter: %s", out)
	}

	// --at moves the clock: two days later the adult's 20 h old test has expired.
	out, _, err = runCLI(t, "check", "--config", cfg, "--id", people[0].Record.ID, "--at", time.Now().Add(48*time.Hour).Format(time.RFC3339))
	if err != nil || !strings.HasPrefix(out, "NEED_TEST") {
		t.Errorf("check --at +48h: %v\n%s", err, out)
	}
	// An invalid number is a MANUAL decision, exit 0.
	out, _, err = runCLI(t, "check", "--config", cfg, "--id", "12345")
	if err != nil || !strings.HasPrefix(out, "MANUAL") || !strings.Contains(out, engine.RuleInvalidID) {
		t.Errorf("invalid id: %v\n%s", err, out)
	}

	// A rejected import names the line and writes nothing.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("{\"id\":\""+people[0].Record.ID+"\",\"delete\":true}\n{\"id\":\"110105199005010017\"}\n"), 0o644)
	_, _, err = runCLI(t, "import", "--config", cfg, bad)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad import: %v", err)
	}
	out, _, _ = runCLI(t, "check", "--config", cfg, "--id", people[0].Record.ID)
	if !strings.HasPrefix(out, "PASS") {
		t.Fatalf("a rejected import's delete was applied: %s", out)
	}

	// Re-installing the August snapshot after November is a refused rollback.
	_, _, err = runCLI(t, "policy", "install", "--config", cfg, filepath.Join(dir, demo.AugSnapshot))
	if !errors.Is(err, engine.ErrRollback) {
		t.Fatalf("re-installing August after November: err = %v, want ErrRollback", err)
	}
	out, _, err = runCLI(t, "policy", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "2021111700") || !strings.Contains(out, "in force") {
		t.Fatalf("policy list: %v\n%s", err, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nosuch"}, {"check"}, {"check", "--id", "1", "--at", "yesterday"}, {"import"}, {"policy"}, {"bench", "--records", "0"}} {
		_, _, err := runCLI(t, args...)
		var ue cli.UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	// A missing config is an operational error, not a crash.
	_, _, err := runCLI(t, "check", "--config", filepath.Join(t.TempDir(), "none.yaml"), "--id", "11010519491231002X")
	var ue cli.UsageError
	if err == nil || errors.As(err, &ue) {
		t.Errorf("missing config: err = %v", err)
	}
}

func TestBenchSmall(t *testing.T) {
	out, _, err := runCLI(t, "bench", "--records", "3000", "--decisions", "2000")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench output: %v\n%s", err, out)
	}
	for _, k := range []string{"ingest_records_per_s", "peak_rss_anon_ingest_mib", "memory_limit_mib"} {
		if v, ok := res[k].(float64); !ok || v <= 0 {
			t.Errorf("bench %s = %v", k, res[k])
		}
	}
	dec, _ := res["decisions"].(map[string]any)
	for _, k := range []string{"p50_us", "p99_us", "p999_us", "per_s_1core", "per_s_2cores", "peak_rss_anon_mib"} {
		if v, ok := dec[k].(float64); !ok || v <= 0 {
			t.Errorf("bench decisions.%s = %v", k, dec[k])
		}
	}
}

// The shipped systemd unit starts the daemon with flags that exist: without its config file it
// fails on the file, not on its command line.
func TestSystemdUnitCommandLine(t *testing.T) {
	args, err := cli.UnitExecStart("../../firmware-config/systemd/gatecheck.service")
	if err != nil {
		t.Fatal(err)
	}
	if len(args) < 3 || args[0] != "run" {
		t.Fatalf("ExecStart %v", args)
	}
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			args[i+1] = filepath.Join(t.TempDir(), "gatecheck.yaml")
		}
	}
	_, _, err = runCLI(t, args...)
	if err == nil || cli.ExitCode("gatecheck", err, io.Discard) != 1 || !strings.Contains(err.Error(), "gatecheck.yaml") {
		t.Fatalf("gatecheck %v: %v (exit %d)", args, err, cli.ExitCode("gatecheck", err, io.Discard))
	}
}

// A registration taken with no link and no daemon is recorded in the audit log, to go
// upstream with it.
func TestRegisterOffline(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	if _, stderr, err := runCLI(t, "demo", "--print", "--dir", dir); err != nil {
		t.Fatalf("demo: %v %s", err, stderr)
	}
	cfg := filepath.Join(dir, demo.ConfigFile)
	id := demo.People(time.Now())[1].Record.ID
	if _, _, err := runCLI(t, "register", "--config", cfg, "--id", id, "--work", "w", "--residence", "r", "--test", "t"); cli.ExitCode("gatecheck", err, io.Discard) != 2 {
		t.Fatalf("register without --officer: %v", err)
	}
	out, stderr, err := runCLI(t, "register", "--config", cfg, "--id", id, "--officer", "0471", "--work", "letter 7", "--residence", "lease", "--test", "Dian")
	if err != nil || !strings.Contains(out, "audit entry 1") || strings.Contains(out, id) {
		t.Fatalf("register: %v\n%s%s", err, out, stderr)
	}
	out, _, err = runCLI(t, "audit", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "registration") || !strings.Contains(out, `by 0471: work "letter 7"`) {
		t.Fatalf("audit list: %v\n%s", err, out)
	}
}
