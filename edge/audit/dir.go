package audit

import (
	"crypto/ed25519"
	"fmt"
	"github.com/gatecheck/gatecheck/sync/kv"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// OpenDB opens the audit log's own Badger directory. It is separate from the person store and
// opened with SyncWrites, so each append is on disk when its transaction commits - whatever
// imports or syncs do to the person store's memtables meanwhile (Badger's Sync only syncs the
// active memtable's log). Audit traffic is small, so the cost is one fsync per passage.
func OpenDB(dir string, log *slog.Logger) (*badger.DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(true).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(1 << 20).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(16 << 20).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumCompactors(2).
		WithNumGoroutines(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	db, err := kv.Open(opts, log)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", dir, err)
	}
	return db, nil
}

// OpenDir opens (or creates) a device's audit log in its own directory; Close closes it.
func OpenDir(dir, device string, priv ed25519.PrivateKey, log *slog.Logger) (*Log, error) {
	db, err := OpenDB(dir, log)
	if err != nil {
		return nil, err
	}
	l, err := Open(db, device, priv)
	if err != nil {
		db.Close()
		return nil, err
	}
	l.owned = true
	return l, nil
}

// Close closes the log's directory if the log opened it.
func (l *Log) Close() error {
	if !l.owned {
		return nil
	}
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

// Verify checks the log with the device's public key.
func (l *Log) Verify(pub ed25519.PublicKey) (Report, error) { return Verify(l.db, l.device, pub) }

// VerifyDir checks the audit log stored in dir.
func VerifyDir(dir, device string, pub ed25519.PublicKey) (Report, error) {
	db, err := OpenDB(dir, nil)
	if err != nil {
		return Report{}, err
	}
	defer db.Close()
	return Verify(db, device, pub)
}
