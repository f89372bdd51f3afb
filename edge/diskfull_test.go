package edge_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/diskspace"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// A filling disk, through an injected free-space probe: below the store's floor imports and
// syncs stop and say why, while decisions go on and are audited; below the audit log's lower
// floor decisions are MANUAL with the reason and open no gate; with space back, all resumes.
// Nothing already stored is lost at any point.
func TestDiskFullFloors(t *testing.T) {
	const mib = 1 << 20
	var free atomic.Uint64
	free.Store(10_000 * mib)
	probe := func(string) (uint64, error) { return free.Load(), nil }
	f := newFixture(t)
	keys := wire.KeyRing{}
	keys.Add(f.pub)
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: filepath.Join(t.TempDir(), "data"), HashKey: f.hashKey,
		MinFree: 256 * mib, FreeSpace: probe}, TrustedKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.InstallSnapshot(f.sign(t, policies.November2021, source.Overrides{}), nov20); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Import(context.Background(), strings.NewReader(people), nov20, nil); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	alog, err := audit.OpenDir(t.TempDir(), "lane-1", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close()
	alog.SetFloor(diskspace.Floor{Dir: t.TempDir(), Min: edge.AuditFloor(256), Probe: probe})
	gate := &countingGate{}
	dm, err := edge.NewDaemon(edge.DaemonConfig{Device: d, Audit: alog, Gate: gate, Clock: fixedClock{nov20}})
	if err != nil {
		t.Fatal(err)
	}
	pass := func(want engine.Outcome) edge.Passage {
		t.Helper()
		p, _ := dm.PresentManual(context.Background(), adult, false, "")
		if p.Decision.Outcome != want {
			t.Fatalf("decision %s (%s), want %s", p.Decision.Outcome, p.Decision.ReasonEN, want)
		}
		return p
	}
	pass(engine.Pass)

	// Below the store's floor: no import, no batch; decisions go on, audited.
	free.Store(200 * mib)
	if err := d.Store().SpaceProblem(); !errors.Is(err, diskspace.ErrLow) {
		t.Fatalf("space problem: %v", err)
	}
	_, err = d.Import(context.Background(), strings.NewReader(`{"id":"`+adult+`","popups":[{"n":4,"since":"2021-11-20T10:00:00+08:00"}]}`+"\n"), nov20, nil)
	if !errors.Is(err, diskspace.ErrLow) {
		t.Fatalf("import below the floor: %v", err)
	}
	key := d.Store().Key(engine.IDNumber(adult))
	change := wire.Change{Cursor: 1, Key: key[:], Op: wire.OpReplace, Facts: &engine.Facts{Schema: 1, Inbound: 1}}
	if err := d.Store().ApplyBatch(&wire.Batch{From: 0, To: 1, Changes: []wire.Change{change}}); !errors.Is(err, diskspace.ErrLow) {
		t.Fatalf("batch below the floor: %v", err)
	}
	if st, _ := d.Store().SyncState(); st.Cursor != 0 {
		t.Fatalf("cursor moved to %d", st.Cursor)
	}
	p := pass(engine.Pass) // the import above changed nothing
	if !p.GateOpened || p.Seq != 2 {
		t.Fatalf("passage below the store floor: %+v", p)
	}

	// Below the audit floor: MANUAL, the reason says why, no gate, nothing appended.
	free.Store(40 * mib)
	opens := gate.n
	p = pass(engine.Manual)
	if p.GateOpened || gate.n != opens || !strings.Contains(p.Decision.ReasonEN, "disk is full") || alog.Seq() != 2 {
		t.Fatalf("passage below the audit floor: %+v (gate %d, seq %d)", p, gate.n-opens, alog.Seq())
	}

	// Space back: all resumes, and what was stored is intact.
	free.Store(10_000 * mib)
	if p = pass(engine.Pass); p.Seq != 3 {
		t.Fatalf("after space returned: %+v", p)
	}
	if rep, err := alog.Verify(priv.Public().(ed25519.PublicKey)); err != nil || rep.Entries != 3 {
		t.Fatalf("audit log: %+v %v", rep, err)
	}
}
