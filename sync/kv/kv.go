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

// Open opens a Badger directory. A process killed just after Badger created a memtable or
// value-log file, before it sized it, leaves an empty .mem or .vlog file that makes the next
// Open fail with z.NewFile ("Create a new file"; badger #2207, open upstream). That Open has
// sized the file by then and no data was in it, so opening again succeeds and loses nothing
// (a few times: both kinds of file may be left).
func Open(opts badger.Options, log *slog.Logger) (*badger.DB, error) {
	db, err := badger.Open(opts)
	for try := 0; try < 3 && isEmptyFile(err); try++ {
		if log != nil {
			log.Warn("an empty Badger file left by a crash; opening again (badger #2207)", "dir", opts.Dir, "err", err)
		}
		db, err = badger.Open(opts)
	}
	return db, err
}

// isEmptyFile recognises the error; Badger formats its causes with %+v, not %w.
func isEmptyFile(err error) bool {
	return err != nil && (errors.Is(err, z.NewFile) || strings.HasSuffix(err.Error(), z.NewFile.Error()))
}
