// Command gatecheck-policy is the policy authority's tool: it makes signing keys and compiles,
// signs, verifies and inspects rule snapshots.
package main

import "github.com/gatecheck/gatecheck/cmd/internal/cli"

func main() { cli.Main("gatecheck-policy", run) }
