// Command gatecheck-cardsim is a simulated GA 467 ID-card reader on a pseudo-terminal: it
// prints the port a device should open, plays a scripted queue of cards (with faults) and
// answers the protocol like a real reader, paced at the configured baud.
package main

import "github.com/gatecheck/gatecheck/cmd/internal/cli"

func main() { cli.Main("gatecheck-cardsim", run) }
