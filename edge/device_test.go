package edge_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
)

type fixture struct {
	dir     string
	hashKey []byte
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pub, priv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, store.HashKeySize)
	rand.Read(key)
	return &fixture{hashKey: key, pub: pub, priv: priv}
}

func (f *fixture) open(t *testing.T) *edge.Device { return f.openTB(t) }

func (f *fixture) openTB(t testing.TB) *edge.Device {
	t.Helper()
	if f.dir == "" {
		f.dir = t.TempDir()
	}
	keys := wire.KeyRing{}
	keys.Add(f.pub)
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: f.dir, HashKey: f.hashKey}, TrustedKeys: keys,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("open device: %v", err)
	}
	return d
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (f *fixture) sign(t *testing.T, name string, o source.Overrides) []byte {
	t.Helper()
	snap, err := source.Load(policies.FS, name, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.SignSnapshot(snap, f.priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	nov20 = time.Date(2021, 11, 20, 15, 0, 0, 0, engine.Beijing)
	adult = "110105199005010018"
	elder = "11010519491231002X"
)

const people = `{"id":"110105199005010018","tests":[{"sampled":"2021-11-19T09:00:00+08:00","reported":"2021-11-19T20:00:00+08:00","result":"negative"}],"declarations":["2021-11-18T12:00:00+08:00"]}

{"id":"11010519491231002X","popups":[{"n":4,"since":"2021-11-19T10:00:00+08:00"}]}
`

func TestDeviceDecidesFromStoreAndSnapshot(t *testing.T) {
	if engine.CheckDigit(adult[:17]) != adult[17] {
		t.Fatalf("fixture id has a bad check digit; want %c", engine.CheckDigit(adult[:17]))
	}
	f := newFixture(t)
	d := f.open(t)
	ctx := context.Background()
	imported := nov20.Add(-time.Hour)

	// No snapshot yet: MANUAL, not a crash.
	if got := d.Check(edge.CheckRequest{Number: adult}, nov20); got.Outcome != engine.Manual || got.Rule != engine.RuleNoSnapshot {
		t.Fatalf("no snapshot: %+v", got)
	}
	if _, err := d.InstallSnapshot(f.sign(t, policies.November2021, source.Overrides{}), imported); err != nil {
		t.Fatal(err)
	}
	// Unknown person before any import.
	if got := d.Check(edge.CheckRequest{Number: adult}, nov20); got.Rule != engine.RuleUnknownPerson {
		t.Fatalf("unknown person: %+v", got)
	}
	st, err := d.Import(ctx, strings.NewReader(people), imported, nil)
	if err != nil || st.Upserts != 2 {
		t.Fatalf("import: %+v %v", st, err)
	}
	for _, c := range []struct {
		id   string
		want engine.Outcome
		rule string
	}{
		{adult, engine.Pass, "green-pass"},
		{elder, engine.DenyPopup4, "popup-4"},
		{"110105199005010017", engine.Manual, engine.RuleInvalidID},
		{"hello", engine.Manual, engine.RuleInvalidID},
	} {
		got := d.Check(edge.CheckRequest{Number: c.id}, nov20)
		if got.Outcome != c.want || got.Rule != c.rule {
			t.Errorf("%s: got %s/%s (%s), want %s/%s", c.id, got.Outcome, got.Rule, got.ReasonEN, c.want, c.rule)
		}
	}
	// Past max_offline (72 h) since the last refresh, the PASS becomes MANUAL; the denial stands.
	// The facts are still valid 73 h after a refresh when the refresh came before them.
	g := newFixture(t)
	stale := g.open(t)
	if _, err := stale.InstallSnapshot(g.sign(t, policies.November2021, source.Overrides{}), nov20.Add(-73*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Import(ctx, strings.NewReader(people), nov20.Add(-73*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if got := stale.Check(edge.CheckRequest{Number: adult}, nov20); got.Outcome != engine.Manual || got.Rule != engine.RuleMaxOffline {
		t.Fatalf("past max_offline: %+v", got)
	}
	if got := stale.Check(edge.CheckRequest{Number: elder}, nov20); got.Outcome != engine.DenyPopup4 {
		t.Fatalf("denial past max_offline: %+v", got)
	}
	stale.Close()

	// A clock that reads earlier than the last data refresh is not trusted; a what-if is no
	// live decision and is answered.
	early := imported.Add(-time.Hour)
	if got := d.Check(edge.CheckRequest{Number: adult}, early); got.Outcome != engine.Manual || got.Rule != engine.RuleClock {
		t.Fatalf("clock before the last refresh: %+v", got)
	}
	if got := d.Check(edge.CheckRequest{Number: adult, WhatIf: true}, early); got.Rule == engine.RuleClock {
		t.Fatalf("what-if decided by the clock check: %+v", got)
	}
	// An empty import brings no news: the offline clock stays where it was.
	if _, err := d.Import(ctx, strings.NewReader("\n"), nov20.Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if got := d.Store().LastRefresh(); !got.Equal(imported) {
		t.Fatalf("an empty import moved the last refresh to %s", got)
	}

	// Records and snapshots survive a restart; the snapshot is verified again.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = f.open(t)
	defer d.Close()
	if got := d.Check(edge.CheckRequest{Number: adult}, nov20); got.Outcome != engine.Pass || got.SnapshotVersion != 2021111700 {
		t.Fatalf("after restart: %+v", got)
	}
}

func TestImportRejectsBadFileWhole(t *testing.T) {
	f := newFixture(t)
	d := f.open(t)
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Import(ctx, strings.NewReader(people), nov20, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := d.Store().CountPeople()
	bad := `{"id":"110105199005010018","delete":true}
{"id":"110105199005010017"}
{"id":"11010519491231002X","tests":[{"sampled":"2021-11-19","reported":"2021-11-18","result":"negative"}]}
{"id":"11010519491231002X","frobnicate":1}
not json
` + `{"id":"11010519491231002X","stays":[` + strings.Repeat(`{"county":"110105","from":"2021-11-01"},`, 70000/40) + `{"county":"110105","from":"2021-11-01"}]}` + "\n"
	_, err := d.Import(ctx, strings.NewReader(bad), nov20, nil)
	var ie *edge.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want *ImportError", err)
	}
	wantLines := []int{2, 3, 4, 5, 6}
	if ie.Bad != len(wantLines) {
		t.Fatalf("bad lines = %d, want %d: %v", ie.Bad, len(wantLines), err)
	}
	for i, l := range ie.Lines {
		if l.Line != wantLines[i] {
			t.Errorf("reported line %d, want %d (%v)", l.Line, wantLines[i], l.Err)
		}
	}
	for _, s := range []string{"check digit", "reported before", "frobnicate", "longer than"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not explain %q:\n%v", s, err)
		}
	}
	// Nothing of the rejected file was applied: line 1's delete did not happen.
	after, _ := d.Store().CountPeople()
	if after != before {
		t.Fatalf("people %d -> %d after a rejected import", before, after)
	}
	// A delete in a good file works.
	st, err := d.Import(ctx, strings.NewReader(`{"id":"110105199005010018","delete":true}`), nov20, nil)
	if err != nil || st.Deletes != 1 {
		t.Fatalf("delete import: %+v %v", st, err)
	}
	if n, _ := d.Store().CountPeople(); n != before-1 {
		t.Fatalf("after delete: %d people, want %d", n, before-1)
	}
}

func TestSnapshotTrust(t *testing.T) {
	f := newFixture(t)
	d := f.open(t)
	nov := f.sign(t, policies.November2021, source.Overrides{})
	aug := f.sign(t, policies.August2021, source.Overrides{})
	at := time.Date(2021, 11, 10, 0, 0, 0, 0, engine.Beijing)

	if _, err := d.InstallSnapshot(aug, at); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InstallSnapshot(nov, at); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InstallSnapshot(nov, at); err != nil {
		t.Fatalf("installing the same snapshot twice: %v", err)
	}
	// Both held; the one in force is picked by now.
	if p := d.InForce(time.Date(2021, 11, 16, 23, 0, 0, 0, engine.Beijing)); p == nil || p.Version() != 2021080700 {
		t.Fatalf("in force on 16 Nov: %v", p)
	}
	if p := d.InForce(time.Date(2021, 11, 17, 0, 0, 0, 0, engine.Beijing)); p == nil || p.Version() != 2021111700 {
		t.Fatalf("in force on 17 Nov: %v", p)
	}

	t.Run("rollback refused", func(t *testing.T) {
		_, err := d.InstallSnapshot(f.sign(t, policies.August2021, source.Overrides{Version: 2021090100}), at)
		if !errors.Is(err, engine.ErrRollback) {
			t.Fatalf("err = %v, want ErrRollback", err)
		}
	})
	t.Run("same version other content refused", func(t *testing.T) {
		_, err := d.InstallSnapshot(f.sign(t, policies.August2021, source.Overrides{Version: 2021111700}), at)
		if !errors.Is(err, engine.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
	})
	t.Run("tampered refused", func(t *testing.T) {
		bad := bytes.Clone(nov)
		bad[len(bad)-80] ^= 0x20
		if _, err := d.InstallSnapshot(bad, at); err == nil {
			t.Fatal("tampered snapshot accepted")
		}
	})
	t.Run("unknown key refused", func(t *testing.T) {
		_, other, _ := wire.GenerateKey(rand.Reader)
		snap, _ := source.Load(policies.FS, policies.November2021, source.Overrides{Version: 2021120100})
		b, _ := wire.SignSnapshot(snap, other)
		if _, err := d.InstallSnapshot(b, at); !errors.Is(err, wire.ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("expired refused", func(t *testing.T) {
		b := f.sign(t, policies.November2021, source.Overrides{Version: 2021120100})
		if _, err := d.InstallSnapshot(b, time.Date(2022, 2, 1, 0, 0, 0, 0, engine.Beijing)); !errors.Is(err, engine.ErrExpired) {
			t.Fatalf("err = %v, want ErrExpired", err)
		}
	})
	if got := len(d.Policies()); got != 2 {
		t.Fatalf("refused snapshots changed the set: %d policies", got)
	}

	// A snapshot altered on disk is found at the next start and not used.
	d.Close()
	corruptStoredSnapshot(t, f, 2021111700)
	d = f.open(t)
	defer d.Close()
	if len(d.Refused()) != 1 || !strings.Contains(d.Refused()[0].Error(), "2021111700") {
		t.Fatalf("refused at start: %v", d.Refused())
	}
	if p := d.InForce(time.Date(2021, 11, 18, 0, 0, 0, 0, engine.Beijing)); p == nil || p.Version() != 2021080700 {
		t.Fatalf("after corruption the device should fall back to the verified snapshot, got %v", p)
	}
}

func corruptStoredSnapshot(t *testing.T, f *fixture, version uint64) {
	t.Helper()
	st, err := store.Open(store.Config{Dir: f.dir, HashKey: f.hashKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snaps, _ := st.Snapshots()
	for _, s := range snaps {
		if s.Version == version {
			s.Signed[len(s.Signed)/2] ^= 0x01
			if err := st.PutSnapshot(version, s.Signed); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("snapshot %d not stored", version)
}

func TestCorruptRecordDecidesManual(t *testing.T) {
	f := newFixture(t)
	d := f.open(t)
	defer d.Close()
	if _, err := d.InstallSnapshot(f.sign(t, policies.November2021, source.Overrides{}), nov20); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Import(context.Background(), strings.NewReader(people), nov20, nil); err != nil {
		t.Fatal(err)
	}
	id, _ := engine.ParseID(adult)
	k := d.Store().Key(id.Number)
	err := d.Store().DB().Update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte("v1/p/"), k[:]...), []byte{0xa1, 0x01, 0x9f, 0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	got := d.Check(edge.CheckRequest{Number: adult}, nov20)
	if got.Outcome != engine.Manual || got.Rule != engine.RuleStore {
		t.Fatalf("corrupt record: %+v", got)
	}
	// Other records are unaffected.
	if got := d.Check(edge.CheckRequest{Number: elder}, nov20); got.Outcome != engine.DenyPopup4 {
		t.Fatalf("neighbour of a corrupt record: %+v", got)
	}
}

func signWith(f *fixture, snap *engine.Snapshot) ([]byte, error) {
	return wire.SignSnapshot(snap, f.priv)
}
