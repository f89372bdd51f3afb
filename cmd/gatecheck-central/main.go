// Command gatecheck-central is the central sync server: it holds the authoritative person
// records and publishes signed rule snapshots and signed fact-level delta batches to devices,
// takes their audit logs and commuter registrations, and answers its operator on a local
// admin socket.
package main

import "github.com/gatecheck/gatecheck/cmd/internal/cli"

func main() { cli.Main("gatecheck-central", run) }
