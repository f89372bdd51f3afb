// Command gatecheck is the device binary: it decides for an ID number (check), imports person
// records, installs signed rule snapshots, runs the demo and the benchmark.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode("gatecheck", err, os.Stderr))
}
