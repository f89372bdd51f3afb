// Package wire owns gatecheck's bytes: the CBOR encodings of rule snapshots and person records,
// Ed25519 keys, and COSE_Sign1 signatures over snapshots (and, later, delta batches).
//
// Decoders take outside bytes: they bound size, nesting and list lengths, forbid duplicate map
// keys, indefinite lengths, tags and unknown fields, and verify a signature over the bytes
// received, never over a re-encoding. The verifier is picked from a trusted-key table by key id,
// never from the message's algorithm header. It imports engine alone.
package wire
