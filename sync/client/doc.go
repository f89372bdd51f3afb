// Package client is the device's side of sync: it pulls signed snapshots, signed delta batches
// and, when needed, the bootstrap stream from the central server, verifies every signature
// against the device's trusted keys (never trusting the channel), hands verified batches to an
// Applier that applies each atomically with its cursor, reconciles count and digest at the end
// of a catch-up, and uploads the audit log from its last acknowledged sequence. Every request
// is signed with the device's key over a single-use server nonce.
//
// It imports engine and sync/wire only; edge implements Applier.
package client
