// Command gatecheck-cardsim is a simulated GA 467 ID-card reader on a pseudo-terminal: it
// prints the port a device should open, plays a scripted queue of cards (with faults) and
// answers the protocol like a real reader, paced at the configured baud.
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
	os.Exit(cli.ExitCode("gatecheck-cardsim", err, os.Stderr))
}
