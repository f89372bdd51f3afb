// Command gatecheck-central is the central sync server: it holds the authoritative person
// records and publishes signed rule snapshots and signed fact-level delta batches to devices,
// takes their audit logs and commuter registrations, and answers its operator on a local
// admin socket.
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
	os.Exit(cli.ExitCode("gatecheck-central", err, os.Stderr))
}
