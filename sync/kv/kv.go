// Package kv holds what the device's and the central's Badger stores share: opening a Badger
// directory so that it survives a crash at any moment.
//
// kv imports Badger and nothing of the project.
package kv

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Open opens a Badger directory. A process killed just after Badger created a memtable file,
// before it sized it, leaves an empty .mem file that makes the next Open fail with
// z.NewFile ("Create a new file"; badger #2207, open upstream); that Open has sized the file
// by then, and no data was in it, so opening once more succeeds and loses nothing.
func Open(opts badger.Options, log *slog.Logger) (*badger.DB, error) {
	db, err := badger.Open(opts)
	// Badger formats the cause with %+v, not %w: match the text.
	if err != nil && (errors.Is(err, z.NewFile) || strings.Contains(err.Error(), "while opening memtables") && strings.Contains(err.Error(), z.NewFile.Error())) {
		if log != nil {
			log.Warn("an empty memtable file left by a crash; opening again (badger #2207)", "dir", opts.Dir)
		}
		db, err = badger.Open(opts)
	}
	return db, err
}
