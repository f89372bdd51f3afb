package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/bench"
	"github.com/gatecheck/gatecheck/edge/demo"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
)

const usage = `usage: gatecheck <command> [flags]

commands:
  check   --id N [--at RFC3339] [--json] [--test-only] [--explain]   decide for an ID number
  import  FILE|-                                  import person records (JSON Lines)
  policy  install FILE | list                     install a signed rule snapshot, list held ones
  demo    [--dir DIR]                             a demo device with every outcome
  bench   [--records N] [--decisions M] [--profile small|large] [--dir DIR] [--memprofile F]
                                                  measure ingest and decisions (JSON)
  version                                         print the build's version

Flags may come before or after the arguments. Run 'gatecheck <command> -h' for a command's flags.
Commands that use the device take --config FILE (default $GATECHECK_CONFIG, then
/etc/gatecheck/gatecheck.yaml) and --log-level debug|info|warn|error. Exit codes: 0 done (a MANUAL or DENY decision is still 0),
1 operational error (config, store, rejected file), 2 usage error.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.UsageError{Msg: "no command"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "check":
		return check(rest, stdout, stderr)
	case "import":
		return importCmd(ctx, rest, stdout, stderr)
	case "policy":
		return policy(rest, stdout, stderr)
	case "demo":
		return demoCmd(ctx, rest, stdout, stderr)
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr)
	case "version":
		return version(stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return cli.UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
}

// deviceFlags adds --config and --log-level.
type deviceFlags struct {
	config   *string
	logLevel *string
}

func addDeviceFlags(fs *flag.FlagSet) deviceFlags {
	def := os.Getenv("GATECHECK_CONFIG")
	if def == "" {
		def = "/etc/gatecheck/gatecheck.yaml"
	}
	return deviceFlags{
		config:   fs.String("config", def, "device config file"),
		logLevel: fs.String("log-level", "warn", "debug, info, warn or error"),
	}
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, cli.UsageError{Msg: fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func (f deviceFlags) open(stderr io.Writer) (*edge.Device, error) {
	log, err := newLogger(*f.logLevel, stderr)
	if err != nil {
		return nil, err
	}
	d, _, err := demo.OpenDevice(*f.config, log)
	return d, err
}

func check(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck check", stderr)
	df := addDeviceFlags(fs)
	id := fs.String("id", "", "ID number (required)")
	at := fs.String("at", "", "what-if: decide as of this time (RFC 3339) instead of now")
	asJSON := fs.Bool("json", false, "print the decision as JSON")
	testOnly := fs.Bool("test-only", false, "officer input: visual/hearing disability or no smartphone")
	explain := fs.Bool("explain", false, "also print every definition of the policy for this person")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("check", pos); err != nil {
		return err
	}
	if *id == "" {
		return cli.UsageError{Msg: "check: --id is required"}
	}
	now := time.Now()
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return cli.UsageError{Msg: fmt.Sprintf("check: --at %q: want RFC 3339, e.g. 2021-11-20T10:00:00+08:00", *at)}
		}
		now = t
	}
	d, err := df.open(stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	req := edge.CheckRequest{Number: *id, TestOnly: *testOnly, WhatIf: *at != ""}
	dec := d.Check(req, now)
	var defs map[string]string
	if *explain {
		if defs, err = d.Explain(req, now); err != nil {
			return fmt.Errorf("check --explain: %w", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if defs == nil {
			return enc.Encode(dec)
		}
		b, err := json.Marshal(dec)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		m["explain"] = defs
		return enc.Encode(m)
	}
	printDecision(stdout, dec)
	if req.WhatIf {
		fmt.Fprintln(stdout, "  (what-if at --at: the device's clock checks are not applied)")
	}
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		fmt.Fprintf(stdout, "  def.%s = %s\n", name, defs[name])
	}
	return nil
}

func printDecision(w io.Writer, d engine.Decision) {
	mark := ""
	if d.Commuter() {
		mark = "  [通勤 commuter]"
	}
	fmt.Fprintf(w, "%s%s  rule %s  snapshot %d  at %s\n", d.Outcome, mark, d.Rule, d.SnapshotVersion,
		d.At.In(engine.Beijing).Format(time.RFC3339))
	fmt.Fprintf(w, "  %s\n  %s\n", d.ReasonZH, d.ReasonEN)
	if len(d.Popups) > 0 {
		fmt.Fprintf(w, "  active popups: %v\n", d.Popups)
	}
	for _, f := range d.Flags {
		fmt.Fprintf(w, "  flag: %s\n", f)
	}
}

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck import", stderr)
	df := addDeviceFlags(fs)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.UsageError{Msg: "import: want FILE (JSON Lines) or - for standard input"}
	}
	var r io.ReadSeeker
	if name := pos[0]; name == "-" {
		// Standard input cannot be read twice: spool it to a temporary file first.
		tmp, err := os.CreateTemp("", "gatecheck-import-*.jsonl")
		if err != nil {
			return fmt.Errorf("import: spool stdin: %w", err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, os.Stdin); err != nil {
			return fmt.Errorf("import: spool stdin: %w", err)
		}
		r = tmp
	} else {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	d, err := df.open(stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	start := time.Now()
	st, err := d.Import(ctx, r, start, func(n int) { fmt.Fprintf(stderr, "... %d records written\n", n) })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d records, deleted %d, in %s\n", st.Upserts, st.Deletes, time.Since(start).Round(time.Millisecond))
	return nil
}

func policy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.UsageError{Msg: "policy: want install FILE or list"}
	}
	fs := cli.NewFlags("gatecheck policy "+args[0], stderr)
	df := addDeviceFlags(fs)
	pos, err := cli.Parse(fs, args[1:])
	if err != nil {
		return err
	}
	switch args[0] {
	case "install":
		if len(pos) != 1 {
			return cli.UsageError{Msg: "policy install: want FILE (a signed snapshot)"}
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("policy install: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(f, wire.MaxSignedSize+1))
		f.Close()
		if err != nil {
			return fmt.Errorf("policy install: %w", err)
		}
		d, err := df.open(stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		v, err := d.InstallSnapshot(b, time.Now())
		if err != nil {
			return fmt.Errorf("policy install %s: %w", filepath.Base(pos[0]), err)
		}
		fmt.Fprintf(stdout, "installed snapshot %d (%s) signed by %s, effective %s, expires %s\n",
			v.Snapshot.Version, v.Snapshot.Name, v.KeyID,
			v.Snapshot.Effective().In(engine.Beijing).Format(time.RFC3339), v.Snapshot.Expires().In(engine.Beijing).Format(time.RFC3339))
		return nil
	case "list":
		d, err := df.open(stderr)
		if err != nil {
			return err
		}
		defer d.Close()
		now := time.Now()
		cur := d.InForce(now)
		for _, p := range d.Policies() {
			s := p.Snapshot()
			state := "later"
			switch {
			case cur != nil && p.Version() == cur.Version() && engine.UnixOf(now) >= s.ExpiresAt:
				state = "EXPIRED (decisions are MANUAL)"
			case cur != nil && p.Version() == cur.Version():
				state = "in force"
			case cur != nil && p.Version() < cur.Version():
				state = "superseded"
			}
			fmt.Fprintf(stdout, "%d  %-28s effective %s  expires %s  %s\n", p.Version(), s.Name,
				s.Effective().In(engine.Beijing).Format(time.RFC3339), s.Expires().In(engine.Beijing).Format(time.RFC3339), state)
		}
		for _, err := range d.Refused() {
			fmt.Fprintf(stdout, "REFUSED %v\n", err)
		}
		return nil
	}
	return cli.UsageError{Msg: fmt.Sprintf("policy: unknown subcommand %q (want install or list)", args[0])}
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck demo", stderr)
	dir := fs.String("dir", "", "where to build the demo device (default: a new directory under the system temp dir)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("demo", pos); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "gatecheck-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		*dir = d
	} else if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		return cli.UsageError{Msg: fmt.Sprintf("demo: %s is not empty; pick a new directory", *dir)}
	}
	return demo.Run(ctx, *dir, time.Now(), stdout, log)
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck bench", stderr)
	records := fs.Int("records", 1_000_000, "synthetic people to load")
	decisions := fs.Int("decisions", 200_000, "decisions to time (random people, 10% unknown)")
	dir := fs.String("dir", "", "Badger directory (default: a temporary one, removed afterwards)")
	profile := fs.String("profile", "small", "store profile: small or large")
	memprofile := fs.String("memprofile", "", "write a heap profile taken after the deciding phase here")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("bench", pos); err != nil {
		return err
	}
	if *records <= 0 || *decisions <= 0 {
		return cli.UsageError{Msg: "bench: --records and --decisions must be > 0"}
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "gatecheck-bench-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	res, err := bench.Run(ctx, bench.Config{Dir: *dir, Records: *records, Decisions: *decisions, Profile: *profile, MemProfile: *memprofile,
		Progress: func(msg string) { fmt.Fprintln(stderr, msg) }})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

func version(stdout io.Writer) error {
	v, commit := "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	if buildVersion != "" {
		v = buildVersion
	}
	if buildCommit != "" {
		commit = buildCommit
	}
	fmt.Fprintf(stdout, "gatecheck %s (commit %s)\n", v, strings.TrimSpace(commit))
	return nil
}

// Set by -ldflags "-X main.buildVersion=... -X main.buildCommit=..." in scripts/build.
var buildVersion, buildCommit string
