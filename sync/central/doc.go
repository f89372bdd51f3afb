// Package central is gatecheck's central sync server: its own Badger store of authoritative
// person records and a change log ordered by cursor, the published rule snapshots, the device
// registry, audit logs received from devices and commuter registrations taken at checkpoints.
// It serves signed snapshots, signed fact-level delta batches and a signed bootstrap stream
// over HTTP with CBOR bodies, to devices that sign every request with their own key and a
// single-use server nonce.
//
// Key layout (c1/...): meta/{cursor,count,digest,snapshot}, chg/<cursor> -> wire.Change,
// p/<16-byte key> -> facts, snap/<version> -> signed snapshot, dev/<id> -> device record,
// nonce/<hex> -> expiry, audit/<device>/<seq> -> audit record, reg/<id> -> registration.
// It imports engine and sync/wire only.
package central
