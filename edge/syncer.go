package edge

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/sync/client"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Syncer is the device as sync/client drives it: its store, snapshots and audit log.
type Syncer struct {
	Device *Device
	Audit  *audit.Log // nil: nothing to upload
	Clock  Clock
	// Running is held for each whole sync (client.Config.Lock): a sync on demand and the
	// background loop never interleave their batches.
	Running sync.Mutex

	mu     sync.Mutex
	last   client.Report
	err    error
	at     time.Time
	linked bool
	// Central is the central server's own URL: a sync through it (not a peer's relay) means
	// this device has a link.
	Central string
}

var _ client.Applier = (*Syncer)(nil)

func (s *Syncer) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

// SyncState implements client.Applier.
func (s *Syncer) SyncState() (client.State, error) {
	st, err := s.Device.store.SyncState()
	if err != nil {
		return client.State{}, err
	}
	out := client.State{Cursor: st.Cursor, Count: st.Count, Digest: st.Digest, NeedBootstrap: !st.Synced || st.LocalImport}
	s.Device.mu.RLock()
	out.Snapshot = s.Device.set.Highest()
	s.Device.mu.RUnlock()
	if s.Audit != nil {
		if out.AuditAcked, err = s.Audit.Acked(); err != nil {
			return out, err
		}
		out.AuditSeq = s.Audit.Seq()
	}
	return out, nil
}

// InstallSnapshot implements client.Applier.
func (s *Syncer) InstallSnapshot(signed []byte) error {
	_, err := s.Device.InstallSnapshot(signed, s.now())
	return err
}

// ApplyBatch implements client.Applier.
func (s *Syncer) ApplyBatch(b *wire.Batch) error { return s.Device.store.ApplyBatch(b) }

// Bootstrap implements client.Applier.
func (s *Syncer) Bootstrap(next func() (*wire.Batch, error)) error {
	return s.Device.store.Bootstrap(next)
}

// AuditAfter implements client.Applier.
func (s *Syncer) AuditAfter(seq uint64, n int) ([]wire.AuditRecord, error) {
	if s.Audit == nil {
		return nil, nil
	}
	return s.Audit.Records(seq, n)
}

// AuditAcked implements client.Applier.
func (s *Syncer) AuditAcked(seq uint64) error {
	if s.Audit == nil {
		return nil
	}
	return s.Audit.SetAcked(seq)
}

// Synced implements client.Applier: the server's time anchors the device's trusted time, and
// a sync that found nothing new still counts as a refresh - the device is confirmed current
// (max_offline and the page's staleness run from it).
func (s *Syncer) Synced(serverTime time.Time) error {
	if serverTime.IsZero() {
		return fmt.Errorf("sync: no server time")
	}
	if err := s.Device.SetTrustedTime(serverTime, s.now()); err != nil {
		return err
	}
	return s.Device.Store().SetLastRefresh(serverTime)
}

// Record keeps the last sync's outcome for status.
func (s *Syncer) Record(rep client.Report, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.err, s.at = rep, err, s.now()
	s.linked = err == nil && (s.Central == "" || rep.Via == strings.TrimRight(s.Central, "/"))
}

// Linked reports whether the last sync reached the central directly.
func (s *Syncer) Linked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linked
}

// Last returns the last sync's outcome and when it ran.
func (s *Syncer) Last() (client.Report, error, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.err, s.at
}
