// Package edge is the device runtime: it wires the engine, the Badger store (edge/store) and the
// signed snapshots of sync/wire into a Device that decides for an ID number at a moment, imports
// person records and installs rule snapshots. Later the card -> decide -> gate loop, the audit
// log and the status page live here too.
//
// edge may import engine, devices and sync/...; nothing but cmd imports edge.
package edge
