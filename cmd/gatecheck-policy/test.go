package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/cases"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// loadPolicy compiles a policy from a source (a .yaml path or builtin:NAME) or a signed
// snapshot (verified when trusted is given). It says which in the returned note.
func loadPolicy(path, trusted string) (*engine.Policy, string, error) {
	if strings.HasPrefix(path, "builtin:") || strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") {
		snap, err := loadSource(path, source.Overrides{})
		if err != nil {
			return nil, "", err
		}
		p, err := engine.Compile(snap)
		return p, "source, unsigned", err
	}
	b, err := readSnapshot(path)
	if err != nil {
		return nil, "", err
	}
	if trusted != "" {
		ring, err := keyRing(trusted)
		if err != nil {
			return nil, "", err
		}
		v, err := wire.VerifySnapshot(b, ring)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		return v.Policy, "signed by " + v.KeyID + ", verified", nil
	}
	payload, kid, err := wire.UnverifiedPayload(b, wire.ContentSnapshot)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	snap, err := wire.DecodeSnapshot(payload)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	p, err := engine.Compile(snap)
	return p, "signed by " + kid + ", signature NOT checked (give --trusted)", err
}

// testCmd runs policy case files against a snapshot before it is published.
func testCmd(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-policy test", stderr)
	trusted := fs.String("trusted", "", "comma-separated public keys (PEM): check the snapshot's signature too")
	verbose := fs.Bool("v", false, "print every case, not only the failures")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return cli.Usagef("test: want SNAPSHOT CASES.yaml [CASES.yaml...]")
	}
	p, note, err := loadPolicy(pos[0], *trusted)
	if err != nil {
		return fmt.Errorf("test: %w", err)
	}
	var set engine.SnapshotSet
	if err := set.Add(p, [32]byte{1}); err != nil {
		return fmt.Errorf("test: %w", err)
	}
	fmt.Fprintf(stdout, "snapshot %d %s (%s)\n", p.Version(), p.Snapshot().Name, note)
	total, failed, skipped := 0, 0, 0
	for _, path := range pos[1:] {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("test: %w", err)
		}
		cf, err := cases.Read(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("test: %s: %w", path, err)
		}
		for i := range cf.Cases {
			c := &cf.Cases[i]
			if c.Policy != "" && c.Policy != cf.Policy {
				skipped++ // written for another policy than the file's
				if *verbose {
					fmt.Fprintf(stdout, "skip  %s: %s: written for %s\n", path, c.Name, c.Policy)
				}
				continue
			}
			total++
			res, err := cases.Run(&set, c)
			switch {
			case err != nil:
				failed++
				fmt.Fprintf(stdout, "ERROR %s: %s: %v\n", path, c.Name, err)
			case res.Mismatch != "":
				failed++
				fmt.Fprintf(stdout, "FAIL  %s: %s: %s\n", path, c.Name, res.Mismatch)
				if !p.Snapshot().Effective().Before(mustTime(c.Now)) || !mustTime(c.Now).Before(p.Snapshot().Expires()) {
					fmt.Fprintf(stdout, "      (the snapshot is in force %s .. %s; this case is at %s)\n",
						p.Snapshot().Effective().Format(time.RFC3339), p.Snapshot().Expires().Format(time.RFC3339), c.Now)
				}
			case *verbose:
				fmt.Fprintf(stdout, "ok    %s: %s: %s %s\n", path, c.Name, res.Decision.Outcome, res.Decision.Rule)
			}
		}
	}
	fmt.Fprintf(stdout, "%d cases, %d passed, %d failed", total, total-failed, failed)
	if skipped > 0 {
		fmt.Fprintf(stdout, " (%d skipped: they name another policy than their file's)", skipped)
	}
	fmt.Fprintln(stdout)
	if failed > 0 {
		return fmt.Errorf("test: %d of %d cases failed", failed, total)
	}
	if total == 0 {
		return errors.New("test: no case ran: every case names another policy than its file's")
	}
	return nil
}

func mustTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// Change counts decisions that went from one outcome to another.
type Change struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

// DiffReport is what diff prints with --json.
type DiffReport struct {
	Old       uint64   `json:"old"`
	New       uint64   `json:"new"`
	At        string   `json:"at"`
	People    int      `json:"people"`
	Changed   int      `json:"changed"`
	Changes   []Change `json:"changes"`
	Stricter  int      `json:"stricter"`   // a pass became something else
	Looser    int      `json:"looser"`     // something else became a pass
	RuleMoved int      `json:"rule_moved"` // same outcome, decided by another rule
}

// diffCmd counts how many decisions over a population would change between two policies.
func diffCmd(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-policy diff", stderr)
	people := fs.String("people", "", "person records, JSON Lines (the import schema) (required)")
	at := fs.String("at", "now", "the moment to decide at: RFC 3339 or now[+-]DURATION")
	trusted := fs.String("trusted", "", "comma-separated public keys (PEM): check signed snapshots' signatures")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || *people == "" {
		return cli.Usagef("diff: want OLD NEW --people FILE [--at TIME]")
	}
	when, err := parseWhen(*at, time.Now())
	if err != nil {
		return cli.Usagef("diff: --at: %v", err)
	}
	oldP, _, err := loadPolicy(pos[0], *trusted)
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	newP, _, err := loadPolicy(pos[1], *trusted)
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	f, err := os.Open(*people)
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	defer f.Close()
	rep := DiffReport{Old: oldP.Version(), New: newP.Version(), At: when.In(engine.Beijing).Format(time.RFC3339)}
	counts := map[[2]string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), engine.MaxRecordLine)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		id, facts, err := engine.ParseRecord(b)
		if err != nil {
			return fmt.Errorf("diff: %s line %d: %w", *people, line, err)
		}
		in := engine.Input{Identity: id, Facts: facts}
		a, n := oldP.Decide(in, when), newP.Decide(in, when)
		rep.People++
		if a.Outcome != n.Outcome {
			rep.Changed++
			counts[[2]string{a.Outcome.String(), n.Outcome.String()}]++
			switch {
			case a.Outcome.Opens() && !n.Outcome.Opens():
				rep.Stricter++
			case !a.Outcome.Opens() && n.Outcome.Opens():
				rep.Looser++
			}
		} else if a.Rule != n.Rule {
			rep.RuleMoved++
		}
		if rep.People%100000 == 0 {
			fmt.Fprintf(stderr, "diff: %d people...\n", rep.People)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("diff: %s line %d: longer than %d bytes", *people, line+1, engine.MaxRecordLine)
		}
		return fmt.Errorf("diff: %s: %w", *people, err)
	}
	for _, k := range slices.SortedFunc(maps.Keys(counts), func(x, y [2]string) int {
		if c := counts[y] - counts[x]; c != 0 {
			return c
		}
		return strings.Compare(x[0]+x[1], y[0]+y[1])
	}) {
		rep.Changes = append(rep.Changes, Change{From: k[0], To: k[1], Count: counts[k]})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "%d people at %s: %d decisions change from snapshot %d to %d (%d stricter: a pass no more; %d looser: now a pass); %d keep their outcome under another rule\n",
		rep.People, rep.At, rep.Changed, rep.Old, rep.New, rep.Stricter, rep.Looser, rep.RuleMoved)
	if len(rep.Changes) > 0 {
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FROM\tTO\tPEOPLE")
		for _, c := range rep.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", c.From, c.To, c.Count)
		}
		tw.Flush()
	}
	return nil
}
