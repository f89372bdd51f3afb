// Command gatecheck is the device binary: it decides for an ID number (check), imports person
// records, installs signed rule snapshots, runs the demo and the benchmark.
package main

import "github.com/gatecheck/gatecheck/cmd/internal/cli"

func main() { cli.Main("gatecheck", run) }
