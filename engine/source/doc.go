// Package source compiles a policy's human-editable YAML source into an engine.Snapshot, ready
// to be encoded and signed by sync/wire. Reference lists and the county -> city unit table may be
// written inline or loaded from CSV files next to the source.
//
// It reads only from the fs.FS it is given and imports engine alone.
package source
