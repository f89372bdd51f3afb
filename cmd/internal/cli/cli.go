// Package cli holds what gatecheck's command-line mains share: flag parsing that allows flags
// after positional arguments, usage errors (exit 2) and the exit-code mapping.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// UsageError is a command-line mistake: exit code 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError.
func Usagef(format string, a ...any) error { return UsageError{fmt.Sprintf(format, a...)} }

// NewFlags makes a flag set that reports errors instead of exiting.
func NewFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// Parse parses args, allowing flags after positional arguments ("install FILE --config X"),
// and returns the positional arguments.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, UsageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ExitCode maps a command's error to an exit code, printing it: 0 ok (or -h), 2 usage, 1 other.
func ExitCode(prog string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// NoArgs refuses positional arguments for a command that takes none.
func NoArgs(cmd string, pos []string) error {
	if len(pos) > 0 {
		return Usagef("%s: unexpected argument %q", cmd, pos[0])
	}
	return nil
}

// RunFunc is a command's body: arguments and output streams in, an error out.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Main runs a command until it returns or SIGINT/SIGTERM cancels its context, and exits with
// the code ExitCode gives.
func Main(prog string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(ExitCode(prog, err, os.Stderr))
}

// UnitExecStart returns the arguments (after the binary) of a systemd unit file's ExecStart
// line, so tests can check that the shipped units call the commands with flags that exist.
func UnitExecStart(unit string) ([]string, error) {
	b, err := os.ReadFile(unit)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart="); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return f[1:], nil
		}
	}
	return nil, fmt.Errorf("%s: no ExecStart line", unit)
}

// Set by -ldflags "-X github.com/gatecheck/gatecheck/cmd/internal/cli.BuildVersion=..." (and
// BuildCommit) in scripts/build; a plain `go build` reports what the build info knows.
var BuildVersion, BuildCommit string

// PrintVersion prints the program's version and commit: `<prog> version`.
func PrintVersion(stdout io.Writer, prog string) error {
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
	if BuildVersion != "" {
		v = BuildVersion
	}
	if BuildCommit != "" {
		commit = BuildCommit
	}
	_, err := fmt.Fprintf(stdout, "%s %s (commit %s)\n", prog, v, strings.TrimSpace(commit))
	return err
}
