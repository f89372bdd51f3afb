// Package demo builds gatecheck's demo on the real clock: a policy key, the shipped policies
// re-signed relative to now, a device config, and a population of travellers generated relative
// to now so that every outcome shows. cmd/gatecheck's `demo` command runs it; tests use it too.
package demo
