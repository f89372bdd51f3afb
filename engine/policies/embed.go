// Package policies holds the policy sources gatecheck ships (YAML, compiled by engine/source)
// and the reference data they load (county codes with city units, border-port counties).
package policies

import "embed"

// FS holds the shipped policy sources and their data/ directory.
//
//go:embed *.yaml data/*.csv
var FS embed.FS

// Shipped policy source files, oldest first.
const (
	August2021   = "beijing-2021-08-07.yaml"
	November2021 = "beijing-2021-11-17.yaml"
)
