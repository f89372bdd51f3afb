package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/bench"
	"github.com/gatecheck/gatecheck/edge/config"
	"github.com/gatecheck/gatecheck/edge/demo"
)

const usage = `usage: gatecheck <command> [flags]

commands:
  run                                             the device daemon: card reader -> decide -> audit -> gate
  check   --id N [--at RFC3339] [--json] [--test-only] [--explain]   decide for an ID number
                                                  (a manual entry, audited; --at is an unaudited what-if)
  import  FILE|-                                  import person records (JSON Lines)
  policy  install FILE | list                     install a signed rule snapshot, list held ones
  audit   verify [--pubkey F] | list [--from N] [--n M]   verify or list the audit log
  override --ref SEQ --officer NAME --reason TEXT [--outcome PASS]   record an officer's decision
  sync    --once                                  sync with the central server now (the daemon syncs by itself)
  register --id N --officer O --work W --residence R --test T   record a commuter registration (audited; it
                                                  goes upstream with the audit log for central approval)
  keygen  --out FILE                              make a device key (or let 'run' create one)
  officer-pin [--out FILE] < PIN                  hash the officer PIN for the page (web.officer_pin_file)
  demo    [--dir DIR] [--listen ADDR] [--print]   the whole system live: central, simulated reader, device
                                                  and its officer page (--print: a table of decisions)
  bench   [--records N] [--decisions M] [--profile small|large] [--dir DIR] [--memory-limit MiB] [--memprofile F] [--cpuprofile F]
                                                  measure ingest and decisions (JSON)
  bench   --sync [--records N] [--updates U] [--decisions M]   bootstrap, deltas and decisions over loopback (JSON)
  version                                         print the build's version

Flags may come before or after the arguments. Run 'gatecheck <command> -h' for a command's flags.
Commands that use the device talk to the running daemon through its control socket when it runs,
and open the store themselves when it does not. They take --config FILE (default $GATECHECK_CONFIG, then
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
	case "run":
		return runCmd(ctx, rest, stdout, stderr)
	case "officer-pin":
		return officerPIN(rest, os.Stdin, stdout, stderr)
	case "check":
		return check(ctx, rest, stdout, stderr)
	case "import":
		return importCmd(ctx, rest, stdout, stderr)
	case "policy":
		return policy(rest, stdout, stderr)
	case "audit":
		return auditCmd(rest, stdout, stderr)
	case "override":
		return override(ctx, rest, stdout, stderr)
	case "keygen":
		return keygen(rest, stdout, stderr)
	case "sync":
		return syncCmd(ctx, rest, stdout, stderr)
	case "register":
		return register(ctx, rest, stdout, stderr)
	case "demo":
		return demoCmd(ctx, rest, stdout, stderr)
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr)
	case "bench-central":
		return benchCentral(ctx, rest, stdout, stderr)
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

func addDeviceFlags(fs *flag.FlagSet) deviceFlags { return addDeviceFlagsLevel(fs, "warn") }

func addDeviceFlagsLevel(fs *flag.FlagSet, level string) deviceFlags {
	def := os.Getenv("GATECHECK_CONFIG")
	if def == "" {
		def = "/etc/gatecheck/gatecheck.yaml"
	}
	return deviceFlags{
		config:   fs.String("config", def, "device config file"),
		logLevel: fs.String("log-level", level, "debug, info, warn or error"),
	}
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, cli.UsageError{Msg: fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck demo", stderr)
	dir := fs.String("dir", "", "where to build the demo (default: a new directory under the system temp dir)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	listen := fs.String("listen", "127.0.0.1:8080", "the officer page's address")
	centralAddr := fs.String("central", "127.0.0.1:0", "the demo central server's address (port 0: any free port)")
	once := fs.Bool("once", false, "play the traveller queue once (default: again every --pause)")
	pause := fs.Duration("pause", 20*time.Second, "pause between rounds of the traveller queue")
	printOnly := fs.Bool("print", false, "no live system: build a device, print every traveller's decision and exit")
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
		if !*printOnly {
			// Keys and data of a live demo nobody asked to keep go with it.
			defer func() {
				os.RemoveAll(d)
				fmt.Fprintf(stdout, "removed %s\n", d)
			}()
		}
	} else if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		return cli.UsageError{Msg: fmt.Sprintf("demo: %s is not empty; pick a new directory", *dir)}
	}
	if *printOnly {
		return demo.Run(ctx, *dir, time.Now(), stdout, log)
	}
	return demo.Live(ctx, demo.LiveOptions{Dir: *dir, Listen: *listen, Central: *centralAddr, Once: *once, Pause: *pause}, stdout, log)
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck bench", stderr)
	records := fs.Int("records", 1_000_000, "synthetic people to load")
	decisions := fs.Int("decisions", 200_000, "decisions to time (random people, 10% unknown)")
	dir := fs.String("dir", "", "Badger directory (default: a temporary one, removed afterwards)")
	profile := fs.String("profile", "small", "store profile: small or large")
	memprofile := fs.String("memprofile", "", "write a heap profile taken after the deciding phase here")
	syncMode := fs.Bool("sync", false, "measure sync over loopback instead: central load, bootstrap, delta apply, bytes per update")
	updates := fs.Int("updates", 100_000, "with --sync: fact-level updates to pull as deltas")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run here")
	memLimit := fs.Int("memory-limit", -1, "Go soft memory limit in MiB, as the device config's memory_limit_mib (default: 192 with the small profile, none with large; 0: none)")
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
	if *memLimit < 0 {
		*memLimit = 0
		if *profile == "small" {
			*memLimit = config.DefaultMemoryLimitMiB
		}
	}
	edge.ApplyMemoryLimit(*memLimit, slog.New(slog.DiscardHandler))
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *syncMode {
		res, err := bench.Sync(ctx, bench.SyncConfig{Dir: *dir, Records: *records, Updates: *updates, Decisions: *decisions,
			MemoryLimitMiB: *memLimit, StartCentral: startCentralChild(stderr), Progress: func(msg string) { fmt.Fprintln(stderr, msg) }})
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res, err := bench.Run(ctx, bench.Config{Dir: *dir, Records: *records, Decisions: *decisions, Profile: *profile, MemProfile: *memprofile,
		MemoryLimitMiB: *memLimit,
		Progress:       func(msg string) { fmt.Fprintln(stderr, msg) }})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// startCentralChild runs the sync bench's central server as `gatecheck bench-central` in a
// child process, so the bench's memory figures are the device's alone.
func startCentralChild(stderr io.Writer) func(ctx context.Context, dir string, records int, device ed25519.PublicKey) (bench.Central, error) {
	return func(ctx context.Context, dir string, records int, device ed25519.PublicKey) (bench.Central, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		cmd := exec.CommandContext(ctx, exe, "bench-central", "--dir", dir, "--records", strconv.Itoa(records), "--device", hex.EncodeToString(device))
		cmd.Stderr = stderr
		cmd.Env = append(os.Environ(), "GOMEMLIMIT=off")
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("bench: start the central server: %w", err)
		}
		c := &bench.ChildCentral{Cmd: cmd, In: in, Out: json.NewDecoder(out)}
		if err := c.Ready(); err != nil {
			in.Close()
			cmd.Wait()
			return nil, err
		}
		return c, nil
	}
}

// benchCentral is the child side of startCentralChild (not for direct use).
func benchCentral(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck bench-central", stderr)
	dir := fs.String("dir", "", "central data directory")
	records := fs.Int("records", 0, "people to load")
	device := fs.String("device", "", "the bench device's public key (hex)")
	if _, err := cli.Parse(fs, args); err != nil {
		return err
	}
	pub, err := hex.DecodeString(*device)
	if err != nil || len(pub) != ed25519.PublicKeySize || *dir == "" {
		return cli.Usagef("bench-central: want --dir, --records and --device (hex)")
	}
	return bench.ServeCentral(ctx, *dir, *records, pub, os.Stdin, stdout)
}

func version(stdout io.Writer) error { return cli.PrintVersion(stdout, "gatecheck") }
