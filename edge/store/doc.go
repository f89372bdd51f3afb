// Package store is the device's Badger store: person records keyed by a keyed hash of the ID
// number, signed rule snapshots, and device metadata.
//
// Key layout (schema version 1; Open refuses any other):
//
//	v1/meta/schema          "1"
//	v1/meta/last_refresh    int64 big-endian Unix seconds of the last successful import or sync
//	v1/meta/hash_key_check  the keyed hash of a fixed string: Open refuses another hash key
//	v1/p/<16-byte hash>     person facts, compact CBOR (sync/wire.EncodeFacts)
//	v1/snap/<8-byte BE ver> a signed snapshot exactly as received (COSE_Sign1 bytes)
//	v1/meta/sync_cursor, sync_count, sync_digest, local_import, person_prefix
//	                        the sync position; person_prefix v1/q/ only in stores bootstrapped by
//	                        older builds (a bootstrap now writes a new directory, DIR.next,
//	                        swapped in whole: bootstrap.go)
//
// The person key is BLAKE2b-128 keyed with the region's secret hash key, so plain ID numbers are
// never stored. Validity of a record is judged by the engine against trusted time; Badger's TTL
// (which hides entries by the machine clock) is set well past a record's last relevant time,
// only to reclaim space. It imports engine, sync/wire, sync/kv and edge/diskspace, never edge or
// cmd.
package store
