// Command gatecheck-policy is the policy authority's tool: it makes signing keys and compiles,
// signs, verifies and inspects rule snapshots.
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
	os.Exit(cli.ExitCode("gatecheck-policy", err, os.Stderr))
}
