package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
)

const usage = `usage: gatecheck-policy <command> [flags]

commands:
  keygen   --out DIR [--name NAME]        make an Ed25519 signing key pair (NAME.key, NAME.pub)
  sign     --key FILE --out FILE SOURCE   compile a policy source (YAML) and sign it (COSE_Sign1)
  verify   --trusted FILE[,FILE] SNAPSHOT verify a signed snapshot; exit 1 if it does not verify
  inspect  [--trusted FILE] SNAPSHOT      print a signed snapshot as JSON
  builtin  [--out DIR] [--force]          list the shipped policy sources, or write them to DIR
  version                                the build's version and commit
  test     [--trusted F] [-v] SNAPSHOT CASES.yaml...   run policy cases against a snapshot; exit 1 on a failure
  diff     OLD NEW --people FILE [--at TIME] [--json]  count the decisions that change, and which way

SOURCE is a path, or builtin:NAME for a shipped policy (see 'builtin'). SNAPSHOT, OLD and NEW are
signed snapshots or sources (.yaml, builtin:NAME). Case files: engine/testdata/cases in the source.
Run 'gatecheck-policy <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.UsageError{Msg: "no command"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "keygen":
		return keygen(rest, stdout, stderr)
	case "sign":
		return sign(rest, stdout, stderr)
	case "verify":
		return verify(rest, stdout, stderr)
	case "inspect":
		return inspect(rest, stdout, stderr)
	case "builtin":
		return builtin(rest, stdout, stderr)
	case "test":
		return testCmd(rest, stdout, stderr)
	case "diff":
		return diffCmd(rest, stdout, stderr)
	case "version":
		return cli.PrintVersion(stdout, "gatecheck-policy")
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return cli.UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-policy keygen", stderr)
	out := fs.String("out", "", "directory for the key files (required)")
	name := fs.String("name", "policy-authority", "base name of the key files")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("keygen", pos); err != nil {
		return err
	}
	if *out == "" {
		return cli.UsageError{Msg: "keygen: --out is required"}
	}
	keyPath := filepath.Join(*out, *name+".key")
	pubPath := filepath.Join(*out, *name+".pub")
	priv, err := wire.WriteKeyPair(keyPath, pubPath)
	if err != nil {
		return fmt.Errorf("keygen: %w (pick another --out or --name)", err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "key id %s\nprivate key %s (keep it secret)\npublic key  %s (goes into trusted_keys of every device)\n",
		wire.KeyID(pub), keyPath, pubPath)
	return nil
}

// parseWhen reads "now", "now+24h", "now-1h", "now+14d" or RFC 3339.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if strings.HasPrefix(s, "now") {
		rest := s[3:]
		if rest == "" {
			return now, nil
		}
		sign := time.Duration(1)
		switch rest[0] {
		case '+':
		case '-':
			sign = -1
		default:
			return time.Time{}, fmt.Errorf("%q: want now, now+DURATION or now-DURATION", s)
		}
		d, err := source.ParseDuration(rest[1:])
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(sign * d).Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 or now[+-]DURATION", s)
	}
	return t, nil
}

func loadSource(src string, o source.Overrides) (*engine.Snapshot, error) {
	if name, ok := strings.CutPrefix(src, "builtin:"); ok {
		return source.Load(policies.FS, name, o)
	}
	dir, file := filepath.Split(src)
	if dir == "" {
		dir = "."
	}
	return source.Load(os.DirFS(dir), file, o)
}

func sign(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-policy sign", stderr)
	keyPath := fs.String("key", "", "private signing key (PEM, from keygen) (required)")
	out := fs.String("out", "", "where to write the signed snapshot (required)")
	version := fs.Uint64("version", 0, "override the source's version")
	from := fs.String("effective-from", "", "override effective_from: RFC 3339, now, now-1h ...")
	until := fs.String("expires-at", "", "override expires_at: RFC 3339, now+30d ...")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if *keyPath == "" || *out == "" || len(pos) != 1 {
		return cli.UsageError{Msg: "sign: want --key FILE --out FILE SOURCE"}
	}
	now := time.Now()
	var o source.Overrides
	o.Version = *version
	if o.EffectiveFrom, err = parseWhen(*from, now); err != nil {
		return cli.UsageError{Msg: "sign: --effective-from " + err.Error()}
	}
	if o.ExpiresAt, err = parseWhen(*until, now); err != nil {
		return cli.UsageError{Msg: "sign: --expires-at " + err.Error()}
	}
	kb, err := os.ReadFile(*keyPath)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	priv, err := wire.ParsePrivateKey(kb)
	if err != nil {
		return fmt.Errorf("sign: %s: %w", *keyPath, err)
	}
	snap, err := loadSource(pos[0], o)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	signed, err := wire.SignSnapshot(snap, priv)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if err := writeFileAtomic(*out, signed); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if !snap.Expires().After(now) {
		fmt.Fprintf(stderr, "warning: snapshot %d expired at %s: devices will refuse it; sign with --effective-from now --expires-at now+30d to re-date it\n",
			snap.Version, snap.Expires().In(engine.Beijing).Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "signed snapshot %d (%s) effective %s expires %s, %d rules, %d bytes -> %s\n",
		snap.Version, snap.Name, snap.Effective().In(engine.Beijing).Format(time.RFC3339),
		snap.Expires().In(engine.Beijing).Format(time.RFC3339), len(snap.Rules), len(signed), *out)
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func keyRing(list string) (wire.KeyRing, error) {
	ring := wire.KeyRing{}
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		pub, err := wire.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		ring.Add(pub)
	}
	return ring, nil
}

func readSnapshot(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, wire.MaxSignedSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func verify(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-policy verify", stderr)
	trusted := fs.String("trusted", "", "comma-separated public keys (PEM) to trust (required)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if *trusted == "" || len(pos) != 1 {
		return cli.UsageError{Msg: "verify: want --trusted FILE[,FILE] SNAPSHOT"}
	}
	ring, err := keyRing(*trusted)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	b, err := readSnapshot(pos[0])
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v, err := wire.VerifySnapshot(b, ring)
	if err != nil {
		return fmt.Errorf("verify %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "OK snapshot %d signed by %s, %d rules, estimated cost %d\n",
		v.Snapshot.Version, v.KeyID, len(v.Snapshot.Rules), v.Policy.EstimatedCost())
	return nil
}

func inspect(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-policy inspect", stderr)
	trusted := fs.String("trusted", "", "comma-separated public keys (PEM); when given, the signature is checked too")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.UsageError{Msg: "inspect: want SNAPSHOT"}
	}
	b, err := readSnapshot(pos[0])
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	out := map[string]any{"bytes": len(b)}
	var snap *engine.Snapshot
	if *trusted != "" {
		ring, err := keyRing(*trusted)
		if err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		v, err := wire.VerifySnapshot(b, ring)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", pos[0], err)
		}
		snap = v.Snapshot
		out["verified_by"] = v.KeyID
		out["estimated_cost"] = v.Policy.EstimatedCost()
	} else {
		payload, kid, err := wire.UnverifiedPayload(b, wire.ContentSnapshot)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", pos[0], err)
		}
		if snap, err = wire.DecodeSnapshot(payload); err != nil {
			return fmt.Errorf("inspect %s: %w", pos[0], err)
		}
		out["key_id"] = kid
		out["verified_by"] = nil
	}
	out["version"] = snap.Version
	out["name"] = snap.Name
	out["effective_from"] = snap.Effective().In(engine.Beijing).Format(time.RFC3339)
	out["expires_at"] = snap.Expires().In(engine.Beijing).Format(time.RFC3339)
	out["max_offline"] = snap.MaxOfflineDuration().String()
	out["params"] = snap.Params
	lists := map[string]int{}
	for k, v := range snap.Lists {
		lists[k] = len(v)
	}
	out["lists"] = lists
	out["city_units"] = len(snap.CityUnits)
	out["definitions"] = snap.Definitions
	out["popups"] = snap.Popups
	out["rules"] = snap.Rules
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

func builtin(args []string, stdout, stderr io.Writer) error {
	fset := cli.NewFlags("gatecheck-policy builtin", stderr)
	out := fset.String("out", "", "write the shipped sources and their data/ here")
	force := fset.Bool("force", false, "overwrite files that exist")
	pos, err := cli.Parse(fset, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("builtin", pos); err != nil {
		return err
	}
	if *out == "" {
		names, _ := fs.Glob(policies.FS, "*.yaml")
		for _, n := range names {
			fmt.Fprintln(stdout, "builtin:"+n)
		}
		return nil
	}
	return fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(*out, p)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if !*force {
			flags |= os.O_EXCL // never overwrite an author's edits by accident
		}
		f, err := os.OpenFile(dst, flags, 0o644)
		if err != nil {
			return fmt.Errorf("builtin: %w (use --force to overwrite)", err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return fmt.Errorf("builtin: write %s: %w", dst, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("builtin: write %s: %w", dst, err)
		}
		fmt.Fprintln(stdout, dst)
		return nil
	})
}
