// Package audit is the device's audit log in its Badger store: every decision and every
// officer override, with a monotonic sequence per device, hash-chained (each entry carries the
// SHA-256 of the previous record) and signed with the device's Ed25519 key, with a signed head
// naming the last sequence. A removed, altered, reordered or forged entry - or a cut-off tail -
// is found by Verify, on the device's own store or on records carried elsewhere.
//
// Keys: v1/audit/e/<8-byte big-endian seq> -> Record; v1/audit/head -> Record of a Head, in the
// log's own Badger directory opened with SyncWrites (OpenDir). Plain ID numbers are never
// written: an entry holds the person's hashed store key.
package audit
