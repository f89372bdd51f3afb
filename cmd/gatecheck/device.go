package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/config"
	"github.com/gatecheck/gatecheck/edge/diskspace"
	"github.com/gatecheck/gatecheck/edge/web"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/client"
	"github.com/gatecheck/gatecheck/sync/wire"
	"golang.org/x/crypto/bcrypt"
)

func (f deviceFlags) load(stderr io.Writer) (*config.Config, *slog.Logger, error) {
	log, err := newLogger(*f.logLevel, stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(*f.config)
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// local is the device opened by this process (no daemon running): the store, its audit log
// and a daemon without reader or gate for manual entries and overrides.
type local struct {
	dev   *edge.Device
	audit *audit.Log
	dm    *edge.Daemon
	pub   ed25519.PublicKey
}

func openLocal(cfg *config.Config, log *slog.Logger, withAudit bool) (*local, error) {
	d, err := edge.OpenConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	l := &local{dev: d}
	if !withAudit {
		return l, nil
	}
	priv, _, err := edge.LoadOrCreateKey(cfg.DeviceKeyFile)
	if err != nil {
		d.Close()
		return nil, err
	}
	if l.audit, err = audit.OpenDir(cfg.AuditDir, cfg.DeviceID, priv, log); err != nil {
		d.Close()
		return nil, err
	}
	l.audit.SetFloor(diskspace.Floor{Dir: filepath.Dir(cfg.AuditDir), Min: edge.AuditFloor(cfg.MinFreeMiB)})
	l.pub = priv.Public().(ed25519.PublicKey)
	if l.dm, err = edge.NewDaemon(edge.DaemonConfig{Device: d, Audit: l.audit, Logger: log, Registrations: cfg.Kind == config.KindHighway}); err != nil {
		d.Close()
		return nil, err
	}
	return l, nil
}

func (l *local) Close() error {
	if l.audit != nil {
		l.audit.Close()
	}
	return l.dev.Close()
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck run", stderr)
	df := addDeviceFlagsLevel(fs, "info")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("run", pos); err != nil {
		return err
	}
	cfg, log, err := df.load(stderr)
	if err != nil {
		return err
	}
	opts := edge.RunOptions{Screen: stdout}
	if err := web.Attach(&opts, cfg, log, nil); err != nil {
		return err
	}
	return edge.Run(ctx, cfg, opts, log)
}

// officerPIN reads a PIN (stdin, one line) and prints its bcrypt hash for web.officer_pin_file.
func officerPIN(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck officer-pin", stderr)
	out := fs.String("out", "", "write the hash to this file (mode 0640: make it readable by the daemon's group) instead of standard output")
	force := fs.Bool("force", false, "replace an existing --out file")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("officer-pin", pos); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("officer-pin: read the PIN from standard input: %w", err)
	}
	pin := strings.TrimSpace(line)
	if len(pin) < 6 || len(pin) > 72 {
		return cli.Usagef("officer-pin: the PIN (one line on standard input) must be 6 to 72 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pin), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("officer-pin: %w", err)
	}
	if *out == "" {
		fmt.Fprintln(stdout, string(h))
		return nil
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("officer-pin: %s exists; --force replaces it", *out)
	}
	if err := os.WriteFile(*out, append(h, '\n'), 0o640); err != nil {
		return fmt.Errorf("officer-pin: %w", err)
	}
	fmt.Fprintf(stdout, "officer PIN hash written to %s (name it in web.officer_pin_file)\n", *out)
	return nil
}

func check(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck check", stderr)
	df := addDeviceFlags(fs)
	id := fs.String("id", "", "ID number (required)")
	at := fs.String("at", "", "what-if: decide as of this time (RFC 3339) instead of now; not audited")
	asJSON := fs.Bool("json", false, "print the decision as JSON")
	testOnly := fs.Bool("test-only", false, "officer input: visual/hearing disability or no smartphone")
	explain := fs.Bool("explain", false, "also print every definition of the policy for this person")
	officer := fs.String("officer", "", "the officer entering the number, recorded in the audit entry")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("check", pos); err != nil {
		return err
	}
	if *id == "" {
		return cli.Usagef("check: --id is required")
	}
	now := time.Now()
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return cli.Usagef("check: --at %q: want RFC 3339, e.g. 2021-11-20T10:00:00+08:00", *at)
		}
		now = t
	}
	cfg, log, err := df.load(stderr)
	if err != nil {
		return err
	}
	var p edge.Passage
	var defs map[string]string
	if ctl := dialControl(cfg); ctl != nil {
		if *explain {
			return cli.Usagef("check: --explain needs the store; stop the daemon or use its status page")
		}
		if err := ctl.postJSON("/v1/check", edge.CheckBody{ID: *id, TestOnly: *testOnly, At: *at, Officer: *officer}, &p); err != nil {
			return err
		}
	} else {
		l, err := openLocal(cfg, log, *at == "")
		if err != nil {
			return err
		}
		defer l.Close()
		req := edge.CheckRequest{Number: *id, TestOnly: *testOnly, WhatIf: *at != ""}
		if req.WhatIf {
			p.Decision = l.dev.Check(req, now)
		} else if p, err = l.dm.PresentManual(ctx, *id, *testOnly, *officer); err != nil {
			fmt.Fprintln(stderr, "gatecheck:", err)
		}
		if *explain {
			if defs, err = l.dev.Explain(req, now); err != nil {
				return fmt.Errorf("check --explain: %w", err)
			}
		}
	}
	if *asJSON {
		b, err := json.Marshal(p.Decision)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if defs != nil {
			m["explain"] = defs
		}
		if p.Seq != 0 {
			m["audit_seq"] = p.Seq
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(m)
	}
	printDecision(stdout, p.Decision)
	switch {
	case *at != "":
		fmt.Fprintln(stdout, "  (what-if at --at: not audited, the device's clock checks not applied)")
	case p.Seq != 0:
		fmt.Fprintf(stdout, "  audit entry %d, gate opened: %v\n", p.Seq, p.GateOpened)
	}
	if p.Infant != nil {
		fmt.Fprintln(stdout, "accompanied infant:")
		printDecision(stdout, p.Infant.Decision)
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
		return cli.Usagef("import: want FILE (JSON Lines) or - for standard input")
	}
	var r io.ReadSeeker
	if pos[0] == "-" {
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
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	cfg, log, err := df.load(stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	var st edge.ImportStats
	if ctl := dialControl(cfg); ctl != nil {
		if err := ctl.call(http.MethodPost, "/v1/import", r, &st); err != nil {
			return err
		}
	} else {
		l, err := openLocal(cfg, log, false)
		if err != nil {
			return err
		}
		defer l.Close()
		if st, err = l.dev.Import(ctx, r, start, func(n int) { fmt.Fprintf(stderr, "... %d records written\n", n) }); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "imported %d records, deleted %d, in %s\n", st.Upserts, st.Deletes, time.Since(start).Round(time.Millisecond))
	return nil
}

func policy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: gatecheck policy install FILE | list   (--config FILE)")
		if len(args) == 0 {
			return cli.Usagef("policy: want install FILE or list")
		}
		return flag.ErrHelp
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
			return cli.Usagef("policy install: want FILE (a signed snapshot)")
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
		cfg, log, err := df.load(stderr)
		if err != nil {
			return err
		}
		var info edge.PolicyInfo
		if ctl := dialControl(cfg); ctl != nil {
			if err := ctl.call(http.MethodPost, "/v1/policy", strings.NewReader(string(b)), &info); err != nil {
				return fmt.Errorf("policy install %s: %w", filepath.Base(pos[0]), err)
			}
		} else {
			l, err := openLocal(cfg, log, false)
			if err != nil {
				return err
			}
			defer l.Close()
			v, err := l.dev.InstallSnapshot(b, time.Now())
			if err != nil {
				return fmt.Errorf("policy install %s: %w", filepath.Base(pos[0]), err)
			}
			info = edge.PolicyInfo{Version: v.Snapshot.Version, Name: v.Snapshot.Name, KeyID: v.KeyID, EffectiveFrom: v.Snapshot.Effective(), ExpiresAt: v.Snapshot.Expires()}
		}
		fmt.Fprintf(stdout, "installed snapshot %d (%s) signed by %s, effective %s, expires %s\n", info.Version, info.Name, info.KeyID,
			info.EffectiveFrom.In(engine.Beijing).Format(time.RFC3339), info.ExpiresAt.In(engine.Beijing).Format(time.RFC3339))
		return nil
	case "list":
		if err := cli.NoArgs("policy list", pos); err != nil {
			return err
		}
		cfg, log, err := df.load(stderr)
		if err != nil {
			return err
		}
		var out struct {
			Policies []edge.PolicyInfo `json:"policies"`
			Refused  []string          `json:"refused"`
		}
		if ctl := dialControl(cfg); ctl != nil {
			if err := ctl.call(http.MethodGet, "/v1/policy", nil, &out); err != nil {
				return err
			}
		} else {
			l, err := openLocal(cfg, log, false)
			if err != nil {
				return err
			}
			defer l.Close()
			out.Policies = l.dev.PolicyList(time.Now())
			for _, e := range l.dev.Refused() {
				out.Refused = append(out.Refused, e.Error())
			}
		}
		for _, p := range out.Policies {
			fmt.Fprintf(stdout, "%d  %-28s effective %s  expires %s  %s\n", p.Version, p.Name,
				p.EffectiveFrom.In(engine.Beijing).Format(time.RFC3339), p.ExpiresAt.In(engine.Beijing).Format(time.RFC3339), p.State)
		}
		for _, r := range out.Refused {
			fmt.Fprintf(stdout, "REFUSED %s\n", r)
		}
		return nil
	}
	return cli.Usagef("policy: unknown subcommand %q (want install or list)", args[0])
}

func auditCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: gatecheck audit verify [--pubkey FILE] | list [--from SEQ] [--n N]   (--config FILE)")
		if len(args) == 0 {
			return cli.Usagef("audit: want verify or list")
		}
		return flag.ErrHelp
	}
	fs := cli.NewFlags("gatecheck audit "+args[0], stderr)
	df := addDeviceFlags(fs)
	pubPath := fs.String("pubkey", "", "verify with this device public key (PEM) instead of the device key file")
	from := fs.Uint64("from", 1, "list from this sequence")
	n := fs.Int("n", 50, "list at most this many entries")
	last := fs.Int("last", 0, "list the newest N entries (instead of --from/--n)")
	pos, err := cli.Parse(fs, args[1:])
	if err != nil {
		return err
	}
	if err := cli.NoArgs("audit "+args[0], pos); err != nil {
		return err
	}
	cfg, log, err := df.load(stderr)
	if err != nil {
		return err
	}
	ctl := dialControl(cfg)
	switch args[0] {
	case "verify":
		var res struct {
			OK     bool         `json:"ok"`
			Error  string       `json:"error"`
			Report audit.Report `json:"report"`
		}
		if ctl != nil && *pubPath == "" {
			if err := ctl.call(http.MethodGet, "/v1/audit/verify", nil, &res); err != nil {
				return err
			}
		} else {
			pub, err := devicePub(cfg, *pubPath)
			if err != nil {
				return err
			}
			res.Report, err = audit.VerifyDir(cfg.AuditDir, cfg.DeviceID, pub)
			res.OK = err == nil
			if err != nil {
				res.Error = err.Error()
			}
		}
		r := res.Report
		if !res.OK {
			return fmt.Errorf("audit log of %s does NOT verify after %d good entries: %s", cfg.DeviceID, r.Entries, res.Error)
		}
		fmt.Fprintf(stdout, "audit log of %s verifies: %d entries (%d decisions, %d overrides, %d registrations, %d gate openings), chain and signatures intact\n",
			cfg.DeviceID, r.Entries, r.Decisions, r.Overrides, r.Registrations, r.GateOpens)
		return nil
	case "list":
		var list []audit.Entry
		newest := func(seq uint64) {
			if *last > 0 {
				*n = *last
				*from = 1
				if seq > uint64(*last) {
					*from = seq - uint64(*last) + 1
				}
			}
		}
		if ctl != nil {
			if *last > 0 {
				var st edge.Status
				if err := ctl.call(http.MethodGet, "/v1/status", nil, &st); err != nil {
					return err
				}
				newest(st.AuditSeq)
			}
			if err := ctl.call(http.MethodGet, fmt.Sprintf("/v1/audit?from=%d&n=%d", *from, *n), nil, &list); err != nil {
				return err
			}
		} else {
			priv, _, err := edge.LoadOrCreateKey(cfg.DeviceKeyFile)
			if err != nil {
				return err
			}
			al, err := audit.OpenDir(cfg.AuditDir, cfg.DeviceID, priv, log)
			if err != nil {
				return err
			}
			defer al.Close()
			newest(al.Seq())
			if list, err = al.Entries(*from, *n); err != nil {
				return err
			}
		}
		for _, e := range list {
			fmt.Fprintf(stdout, "%6d  %s  %-8s %-9s %-14s %-30s snapshot %d", e.Seq, e.Time().In(engine.Beijing).Format("2006-01-02 15:04:05"),
				e.Kind, e.Source, e.Outcome, e.Rule, e.Snapshot)
			if e.Gate {
				fmt.Fprint(stdout, "  GATE")
			}
			switch e.Kind {
			case audit.KindOverride:
				fmt.Fprintf(stdout, "  overrides %d by %s: %s", e.Ref, e.Officer, e.Reason)
			case audit.KindRegistration:
				fmt.Fprintf(stdout, "  commuter %s by %s: work %q, residence %q, test %q", e.Masked, e.Officer, e.WorkProof, e.Residence, e.TestProof)
			}
			fmt.Fprintln(stdout)
		}
		return nil
	}
	return cli.Usagef("audit: unknown subcommand %q (want verify or list)", args[0])
}

func devicePub(cfg *config.Config, pubPath string) (ed25519.PublicKey, error) {
	if pubPath != "" {
		b, err := os.ReadFile(pubPath)
		if err != nil {
			return nil, err
		}
		return wire.ParsePublicKey(b)
	}
	b, err := os.ReadFile(cfg.DeviceKeyFile)
	if err != nil {
		return nil, fmt.Errorf("device key (or give --pubkey): %w", err)
	}
	priv, err := wire.ParsePrivateKey(b)
	if err != nil {
		return nil, err
	}
	return priv.Public().(ed25519.PublicKey), nil
}

func override(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck override", stderr)
	df := addDeviceFlags(fs)
	ref := fs.Uint64("ref", 0, "the audit entry (sequence) the officer decides over (required)")
	officer := fs.String("officer", "", "the officer's name or badge number (required)")
	reason := fs.String("reason", "", "why (required)")
	outcome := fs.String("outcome", "PASS", "the officer's decision: PASS, NEED_TEST, MANUAL or DENY_POPUP_n")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("override", pos); err != nil {
		return err
	}
	if *ref == 0 || *officer == "" || *reason == "" {
		return cli.Usagef("override: --ref, --officer and --reason are required")
	}
	o, err := engine.ParseOutcome(*outcome)
	if err != nil {
		return cli.Usagef("override: --outcome: %v", err)
	}
	cfg, log, err := df.load(stderr)
	if err != nil {
		return err
	}
	var p edge.Passage
	if ctl := dialControl(cfg); ctl != nil {
		if err := ctl.postJSON("/v1/override", edge.OverrideBody{Ref: *ref, Officer: *officer, Reason: *reason, Outcome: o.String()}, &p); err != nil {
			return err
		}
	} else {
		l, err := openLocal(cfg, log, true)
		if err != nil {
			return err
		}
		defer l.Close()
		if p, err = l.dm.Override(ctx, *ref, *officer, *reason, o); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "override recorded as audit entry %d (%s over entry %d), gate opened: %v\n", p.Seq, o, *ref, p.GateOpened)
	return nil
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck keygen", stderr)
	out := fs.String("out", "", "where to write the device key (PEM, 0600); the public key goes to FILE.pub (required)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("keygen", pos); err != nil {
		return err
	}
	if *out == "" {
		return cli.Usagef("keygen: --out is required")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("keygen: %s exists; refusing to overwrite a device key", *out)
	}
	priv, err := edge.WriteNewKey(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device key %s (key id %s), public key %s.pub\n", *out, wire.KeyID(priv.Public().(ed25519.PublicKey)), *out)
	return nil
}

func syncCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck sync", stderr)
	df := addDeviceFlags(fs)
	once := fs.Bool("once", true, "sync once and exit (the daemon syncs by itself)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("sync", pos); err != nil {
		return err
	}
	if !*once {
		return cli.Usagef("sync: only --once; 'gatecheck run' syncs continuously")
	}
	cfg, log, err := df.load(stderr)
	if err != nil {
		return err
	}
	if cfg.Sync == nil {
		return fmt.Errorf("sync: %s has no sync section (url of the central server)", *df.config)
	}
	var rep client.Report
	if ctl := dialControl(cfg); ctl != nil {
		if err := ctl.call(http.MethodPost, "/v1/sync", nil, &rep); err != nil {
			return err
		}
	} else {
		l, err := openLocal(cfg, log, true)
		if err != nil {
			return err
		}
		defer l.Close()
		cl, err := newSyncClient(cfg, log)
		if err != nil {
			return err
		}
		if rep, err = cl.SyncOnce(ctx, &edge.Syncer{Device: l.dev, Audit: l.audit}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "synced: cursor %d, %d changes in %d batches, snapshots %v, bootstrap %v, reconciled %v, audit uploaded %d (acked %d), server time %s\n",
		rep.Cursor, rep.Changes, rep.Batches, rep.Snapshots, rep.Bootstrapped, rep.Reconciled, rep.AuditUploaded, rep.AuditAcked,
		rep.ServerTime.In(engine.Beijing).Format(time.RFC3339))
	for _, e := range rep.Refused {
		fmt.Fprintf(stdout, "refused: %v\n", e)
	}
	return nil
}

func register(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck register", stderr)
	df := addDeviceFlags(fs)
	id := fs.String("id", "", "the applicant's ID number (required)")
	officer := fs.String("officer", "", "the officer's name or badge number (required)")
	work := fs.String("work", "", "work proof seen (e.g. employer letter reference) (required)")
	residence := fs.String("residence", "", "residence proof seen (required)")
	test := fs.String("test", "", "negative test proof seen (lab and date) (required)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("register", pos); err != nil {
		return err
	}
	if *id == "" || *officer == "" || *work == "" || *residence == "" || *test == "" {
		return cli.Usagef("register: --id, --officer, --work, --residence and --test are required (seed 004: ID card, work, residence and test proofs)")
	}
	if _, err := engine.ParseID(*id); err != nil {
		return cli.Usagef("register: %v", err)
	}
	cfg, log, err := df.load(stderr)
	if err != nil {
		return err
	}
	reg := edge.Registration{ID: *id, Officer: *officer, WorkProof: *work, Residence: *residence, TestProof: *test}
	var seq uint64
	if ctl := dialControl(cfg); ctl != nil {
		var out struct {
			Seq uint64 `json:"audit_seq"`
		}
		if err := ctl.postJSON("/v1/register", reg, &out); err != nil {
			return err
		}
		seq = out.Seq
	} else {
		l, err := openLocal(cfg, log, true)
		if err != nil {
			return err
		}
		defer l.Close()
		if seq, err = l.dm.Register(reg); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "registration of %s recorded as audit entry %d; it goes to the central server with the audit log at the next sync, and once approved the commuter mark takes effect at 00:00 the next day\n",
		engine.IDNumber(*id).Masked(), seq)
	return nil
}

// newSyncClient makes the device's sync client from its config (device key, trusted keys).
func newSyncClient(cfg *config.Config, log *slog.Logger) (*client.Client, error) {
	priv, _, err := edge.LoadOrCreateKey(cfg.DeviceKeyFile)
	if err != nil {
		return nil, err
	}
	ring, err := cfg.KeyRing()
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{URL: cfg.Sync.URL, DeviceID: cfg.DeviceID, Key: priv, Keys: ring, Logger: log})
}
