// Package config loads and validates a device's configuration file (YAML). The files gatecheck
// ships for each device kind live in firmware-config/, whose README documents the schema.
package config
