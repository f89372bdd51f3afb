// Package bench builds synthetic workloads (people with realistic fact mixes) and measures the
// device on them: ingest rate, decision latency, decisions per second and anonymous memory. The
// Go benchmarks and `gatecheck bench` share it. Production code never imports testing.
package bench
