// Package gossip joins the devices of one checkpoint into a hashicorp/memberlist cluster,
// encrypted with memberlist's keyring and labelled with the checkpoint id. Each node
// advertises, in its memberlist metadata, its snapshot version, its sync cursor, whether it
// currently reaches the central server, and the address of its sync relay; local events
// (decisions for anti-passback, overrides, registrations) travel as broadcasts.
//
// A peer is never trusted with data: devices without a central link send their own signed
// requests through a linked peer's relay (a plain forwarding proxy) and verify the central's
// signatures on everything that comes back, exactly as if they had dialled the central
// themselves. It imports engine and sync/wire only.
package gossip
