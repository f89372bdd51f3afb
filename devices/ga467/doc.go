// Package ga467 speaks the GA 467 SAM serial protocol of second-generation ID-card readers: frame
// encoding and decoding (preamble, big-endian length, command/status, XOR checksum) with
// resynchronisation after line noise, every status code as a *StatusError, the command sequence a
// reader loop needs (SAM status, find, select, read text + photo, appended address), parsing of
// the 256-byte UCS-2 text block for resident cards, HK/Macao/Taiwan permits and both foreigner
// cards, and a Reader over github.com/tarm/serial that survives timeouts and a replugged reader.
//
// The protocol digest is ../shared/GA467.md. ga467 imports no other gatecheck package: it returns
// its own Card, and edge maps it onto engine.Identity.
package ga467
