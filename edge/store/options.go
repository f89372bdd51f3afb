package store

import (
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Profile names a set of Badger options.
type Profile string

// Profiles. Small is the default for devices (1-4 GB RAM, SD card): small memtables and caches,
// records kept in the LSM tree, Snappy compression. Large trades memory for ingest speed on a
// laptop or the bench machine.
const (
	ProfileSmall Profile = "small"
	ProfileLarge Profile = "large"
)

// badgerOptions returns the Badger options for dir and a profile. Why each is set:
//   - MemTableSize 16 MiB x 2 memtables: Badger's default (64 MiB x 5) alone is 320 MiB of arenas.
//   - NumLevelZeroTables 2 / stall 8: keep L0 small so reads touch few tables.
//   - NumCompactors 2 (Open rejects 1), NumGoroutines 2: a 2-core device.
//   - ValueThreshold 1 KiB: records (< 1 KiB) stay in the LSM tree, never only in the value log
//     (badger #2000 lost a vlog value after a power cut while its key survived).
//   - ValueLogFileSize 64 MiB: the vlog is mmapped at twice its size, which matters on 32-bit ARM.
//   - BlockCacheSize 32 MiB, IndexCacheSize 32 MiB: bounded; 0 would keep every index and bloom
//     filter in memory (about 1.2 B/key).
//   - No compression (small profile): measured at 1M records, random reads skip a block
//     decompress each, so decisions' p99 drops from ~75 to ~50 us and fact-level delta apply
//     (read-modify-write) runs ~30% faster, for ~45% more disk (66 -> 96 MB at 1M people).
//     The large profile keeps Snappy (ZSTD cost 2x on reads for 15% less disk: LIBRARIES.md).
//   - DetectConflicts off: the store has one writer.
//   - SyncWrites off: writes that matter call db.Sync() before anything outside learns of them.
func badgerOptions(dir string, p Profile, log *slog.Logger) (badger.Options, error) {
	o := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(64 << 20).
		WithCompression(options.None).
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithSyncWrites(false).
		WithMetricsEnabled(false)
	switch p {
	case ProfileSmall, "":
		o = o.WithMemTableSize(16 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(2).
			WithNumLevelZeroTablesStall(8).
			WithBaseTableSize(4 << 20).
			WithBlockCacheSize(32 << 20).
			WithIndexCacheSize(32 << 20)
	case ProfileLarge:
		o = o.WithCompression(options.Snappy).
			WithMemTableSize(64 << 20).
			WithNumMemtables(3).
			WithBlockCacheSize(128 << 20).
			WithIndexCacheSize(64 << 20)
	default:
		return o, fmt.Errorf("unknown store profile %q (want small or large)", p)
	}
	return o, nil
}

// badgerLogger routes Badger's logs to slog; its info chatter goes to debug.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.log.Error(fmt.Sprintf(f, a...), "subsystem", "badger")
}
func (l badgerLogger) Warningf(f string, a ...any) {
	l.log.Warn(fmt.Sprintf(f, a...), "subsystem", "badger")
}
func (l badgerLogger) Infof(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...), "subsystem", "badger")
}
func (l badgerLogger) Debugf(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...), "subsystem", "badger")
}
