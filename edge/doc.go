// Package edge is the device runtime: it wires the engine, the Badger store (edge/store) and the
// signed snapshots of sync/wire into a Device that decides for an ID number at a moment, imports
// person records and installs rule snapshots; the card -> decide -> audit -> gate loop
// (Daemon), the control socket, the sync client's applier, the checkpoint relay and
// anti-passback, and Run, which wires them for `gatecheck run`.
//
// edge may import engine, devices and sync/...; nothing but cmd imports edge.
package edge
