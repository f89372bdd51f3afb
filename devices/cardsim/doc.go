// Package cardsim is a simulated GA 467 ID-card reader on a pseudo-terminal. It answers the
// protocol like a real reader - find, select, read text + photo, appended address, SAM status -
// for a scripted sequence of cards presented and removed, with fault injection (bad checksum,
// truncated frame, wrong length, silence, card removed mid-read, a burst of noise, SAM errors,
// unplugging). It paces its bytes at the configured baud, since a pseudo-terminal has none, and
// can publish a stable symlink to its port so that a replug keeps the configured path.
//
// cmd/gatecheck-cardsim runs it; tests drive the real tarm/serial code path against it. It
// imports devices/ga467 only.
package cardsim
