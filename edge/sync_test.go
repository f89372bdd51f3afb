package edge_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/central"
	"github.com/gatecheck/gatecheck/sync/client"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// fakeClock is a settable clock shared by the central server and the device.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type syncWorld struct {
	t       testing.TB
	clock   *fakeClock
	hashKey []byte
	central *central.Server
	cdir    string
	cpriv   ed25519.PrivateKey
	ppriv   ed25519.PrivateKey // policy authority
	keys    wire.KeyRing
	srv     *http.Server
	url     string
	dev     *edge.Device
	devKey  ed25519.PrivateKey
	audit   *audit.Log
	syncer  *edge.Syncer
	cli     *client.Client
	fixture *fixture
}

func newSyncWorld(t testing.TB) *syncWorld {
	t.Helper()
	w := &syncWorld{t: t, clock: &fakeClock{t: time.Date(2021, 11, 17, 8, 0, 0, 0, engine.Beijing)}}
	w.hashKey = make([]byte, 32)
	rand.Read(w.hashKey)
	cpub, cpriv, _ := wire.GenerateKey(rand.Reader)
	ppub, ppriv, _ := wire.GenerateKey(rand.Reader)
	w.cpriv, w.ppriv = cpriv, ppriv
	w.keys = wire.KeyRing{}
	w.keys.Add(cpub)
	w.keys.Add(ppub)
	w.cdir = t.TempDir()
	w.startCentral()
	// The device.
	w.fixture = &fixture{dir: t.TempDir(), hashKey: w.hashKey}
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: w.fixture.dir, HashKey: w.hashKey}, TrustedKeys: w.keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	w.dev = d
	dpub, dpriv, _ := wire.GenerateKey(rand.Reader)
	w.devKey = dpriv
	if w.audit, err = audit.OpenDir(t.TempDir(), "lane-1", dpriv, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.audit.Close() })
	if err := w.central.AddDevice("lane-1", dpub); err != nil {
		t.Fatal(err)
	}
	w.syncer = &edge.Syncer{Device: d, Audit: w.audit, Clock: w.clock}
	w.cli = w.client(w.url)
	return w
}

func (w *syncWorld) client(url string) *client.Client {
	c, err := client.New(client.Config{URL: url, DeviceID: "lane-1", Key: w.devKey, Keys: w.keys, HTTP: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *syncWorld) startCentral() {
	w.t.Helper()
	policyKeys := wire.KeyRing{}
	policyKeys.Add(w.ppriv.Public().(ed25519.PublicKey))
	c, err := central.Open(central.Config{Dir: w.cdir, HashKey: w.hashKey, SigningKey: w.cpriv, PolicyKeys: policyKeys, Clock: w.clock.Now, MaxBatch: 50})
	if err != nil {
		w.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	w.central, w.srv = c, &http.Server{Handler: c.Handler()}
	go w.srv.Serve(ln)
	w.url = "http://" + ln.Addr().String()
	w.t.Cleanup(w.stopCentral)
}

func (w *syncWorld) stopCentral() {
	if w.srv != nil {
		w.srv.Close()
		w.central.Close()
		w.srv = nil
	}
}

func (w *syncWorld) publish(name string, o source.Overrides) {
	w.t.Helper()
	snap, err := source.Load(policies.FS, name, o)
	if err != nil {
		w.t.Fatal(err)
	}
	signed, _ := wire.SignSnapshot(snap, w.ppriv)
	if _, err := w.central.Publish(signed); err != nil {
		w.t.Fatal(err)
	}
}

func (w *syncWorld) importCentral(jsonl string) {
	w.t.Helper()
	if _, err := w.central.Import(context.Background(), strings.NewReader(jsonl)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *syncWorld) sync() client.Report {
	w.t.Helper()
	rep, err := w.cli.SyncOnce(context.Background(), w.syncer)
	if err != nil {
		w.t.Fatalf("sync: %v", err)
	}
	return rep
}

func (w *syncWorld) decide(id string) engine.Decision {
	return w.dev.Check(edge.CheckRequest{Number: id}, w.clock.Now())
}

func (w *syncWorld) converged() {
	w.t.Helper()
	cs, _ := w.central.State()
	ds, _ := w.dev.Store().SyncState()
	if cs.Cursor != ds.Cursor || cs.Count != ds.Count || !cs.Digest.Equal(ds.Digest) {
		w.t.Fatalf("not converged: central cursor %d count %d, device cursor %d count %d", cs.Cursor, cs.Count, ds.Cursor, ds.Count)
	}
}

func rec(id string, parts ...string) string {
	return `{"id":"` + id + `"` + strings.Join(append([]string{""}, parts...), ",") + "}\n"
}

func TestSyncCatchesUpAfterThreeDaysOffline(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult, `"tests":[{"sampled":"2021-11-16T20:00:00+08:00","reported":"2021-11-17T06:00:00+08:00","result":"negative"}]`, `"declarations":["2021-11-16"]`) +
		rec(elder) + rec(commuterN))
	rep := w.sync()
	if !rep.Bootstrapped || !rep.Reconciled || len(rep.Snapshots) != 1 {
		t.Fatalf("first sync: %+v", rep)
	}
	w.converged()
	if d := w.decide(adult); d.Outcome != engine.Pass {
		t.Fatalf("after bootstrap: %+v", d)
	}

	// Three days offline: the device keeps deciding, the test expires by the clock alone, and
	// past max_offline (72 h) a PASS would become MANUAL.
	w.clock.Add(73 * time.Hour)
	if d := w.decide(adult); d.Outcome != engine.NeedTest {
		t.Fatalf("offline, test expired: %+v", d)
	}
	// Meanwhile centrally: a new test, a popup, a commuter registration approved.
	w.importCentral(rec(adult, `"tests":[{"sampled":"2021-11-16T20:00:00+08:00","reported":"2021-11-17T06:00:00+08:00","result":"negative"},{"sampled":"2021-11-20T07:00:00+08:00","reported":"2021-11-20T08:00:00+08:00","result":"negative"}]`, `"declarations":["2021-11-16"]`) +
		rec(elder, `"popups":[{"n":4,"since":"2021-11-20T08:00:00+08:00"}]`))
	for i := 0; i < 200; i++ { // many small changes: several batches (MaxBatch 50)
		w.importCentral(rec(demoID(i), fmt.Sprintf(`"declarations":["2021-11-%02dT%02d:00:00+08:00"]`, 17+i/100, i%24)))
	}
	if d := w.decide(adult); d.Outcome != engine.NeedTest && d.Rule != engine.RuleMaxOffline {
		t.Fatalf("before catching up: %+v", d)
	}
	rep = w.sync()
	if rep.Bootstrapped || !rep.Reconciled || rep.Batches < 4 {
		t.Fatalf("catch-up: %+v", rep)
	}
	w.converged()
	if d := w.decide(adult); d.Outcome != engine.Pass {
		t.Fatalf("after catching up: %+v", d)
	}
	if d := w.decide(elder); d.Outcome != engine.DenyPopup4 {
		t.Fatalf("popup raised centrally: %+v", d)
	}
	// Nothing new: a sync is a no-op that still reconciles.
	if rep := w.sync(); rep.Changes != 0 || !rep.Reconciled {
		t.Fatalf("idle sync: %+v", rep)
	}
}

// A proxy that cuts every connection after n bytes from the server.
func cuttingProxy(t *testing.T, target string, n int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", strings.TrimPrefix(target, "http://"))
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.CopyN(c, u, n)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestSyncSurvivesCutConnectionsAndRestart(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	var b strings.Builder
	for i := 0; i < 400; i++ {
		b.WriteString(rec(demoID(i), fmt.Sprintf(`"tests":[{"sampled":"2021-11-16T%02d:00:00+08:00","reported":"2021-11-17T06:00:00+08:00","result":"negative"}]`, i%24)))
	}
	w.importCentral(b.String())
	// Every connection is cut after 6000 bytes: bootstrap and batches fail part-way, again and
	// again; each attempt keeps what was applied whole; bounded retries converge.
	cut := w.client(cuttingProxy(t, w.url, 6000))
	var lastErr error
	for i := 0; i < 50; i++ {
		if _, lastErr = cut.SyncOnce(context.Background(), w.syncer); lastErr == nil {
			break
		}
	}
	if lastErr == nil {
		t.Fatal("a bootstrap of 400 records fit in 6000 bytes: the proxy did not cut anything")
	}
	// Through a proxy that allows more per connection, the device gets there.
	roomy := w.client(cuttingProxy(t, w.url, 64<<10))
	var ok bool
	for i := 0; i < 20 && !ok; i++ {
		_, err := roomy.SyncOnce(context.Background(), w.syncer)
		ok = err == nil
	}
	if !ok {
		t.Fatal("did not converge through the cutting proxy")
	}
	w.converged()

	// Central restart mid-stream: more changes, the server restarts on the same data, the
	// device carries on from its cursor.
	var more strings.Builder
	for i := 0; i < 120; i++ {
		more.WriteString(rec(demoID(i), `"inbound":"2021-11-10"`))
	}
	w.importCentral(more.String())
	b1, _, err := w.central.Batch(mustState(t, w).Cursor)
	if err != nil {
		t.Fatal(err)
	}
	batch, _, err := wire.VerifyBatch(b1, w.keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.syncer.ApplyBatch(batch); err != nil {
		t.Fatal(err)
	}
	w.stopCentral()
	w.startCentral()
	w.cli = w.client(w.url)
	w.sync()
	w.converged()
	if d := w.decide(demoID(5)); d.Outcome != engine.DenyPopup2 {
		t.Fatalf("after restart: %+v", d)
	}
}

func mustState(t *testing.T, w *syncWorld) store.SyncState {
	st, err := w.dev.Store().SyncState()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func demoID(i int) string {
	s := fmt.Sprintf("110105%s%03d", time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i).Format("20060102"), i%1000)
	return s + string(engine.CheckDigit(s))
}

func TestSyncRefusesForgedReplayedRolledBack(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult) + rec(elder))
	w.sync()
	st := mustState(t, w)

	t.Run("duplicate and reordered batches", func(t *testing.T) {
		w.importCentral(rec(adult, `"inbound":"2021-11-10"`))
		w.importCentral(rec(elder, `"inbound":"2021-11-11"`))
		signed, b, err := w.central.Batch(st.Cursor)
		if err != nil || len(b.Changes) < 2 {
			t.Fatalf("batch: %v %+v", err, b)
		}
		// A later batch first (from the future): refused, nothing changes.
		later := *b
		later.From, later.Changes = b.Changes[0].Cursor, b.Changes[1:]
		laterSigned, _ := wire.SignBatch(&later, w.cpriv)
		lb, _, _ := wire.VerifyBatch(laterSigned, w.keys)
		if err := w.syncer.ApplyBatch(lb); !errors.Is(err, store.ErrGap) {
			t.Fatalf("batch from the future: %v", err)
		}
		vb, _, _ := wire.VerifyBatch(signed, w.keys)
		if err := w.syncer.ApplyBatch(vb); err != nil {
			t.Fatal(err)
		}
		before := mustState(t, w)
		if err := w.syncer.ApplyBatch(vb); err != nil { // again: harmless
			t.Fatal(err)
		}
		if after := mustState(t, w); after != before {
			t.Fatalf("a duplicate batch changed the state: %+v -> %+v", before, after)
		}
		w.converged()
	})
	t.Run("forged batch", func(t *testing.T) {
		_, evil, _ := wire.GenerateKey(rand.Reader)
		forged, _ := wire.SignBatch(&wire.Batch{From: 0, To: 1, Digest: make([]byte, 32)}, evil)
		if _, _, err := wire.VerifyBatch(forged, w.keys); !errors.Is(err, wire.ErrUnknownKey) {
			t.Fatalf("forged batch: %v", err)
		}
		signed, _, _ := w.central.Batch(0)
		signed[len(signed)-70] ^= 1
		if _, _, err := wire.VerifyBatch(signed, w.keys); err == nil {
			t.Fatal("an altered batch verified")
		}
	})
	t.Run("replayed request", func(t *testing.T) {
		resp, _ := http.Get(w.url + "/v1/nonce")
		var n struct{ Nonce string }
		jsonDecode(t, resp.Body, &n)
		do := func() int {
			req, _ := http.NewRequest("GET", w.url+"/v1/time", nil)
			req.Header.Set(wire.HeaderDevice, "lane-1")
			req.Header.Set(wire.HeaderNonce, n.Nonce)
			req.Header.Set(wire.HeaderSignature, wire.SignRequest(w.devKey, "GET", "/v1/time", n.Nonce, nil))
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			return r.StatusCode
		}
		if c := do(); c != 200 {
			t.Fatalf("first request: %d", c)
		}
		if c := do(); c != http.StatusUnauthorized {
			t.Fatalf("replayed request: %d, want 401", c)
		}
	})
	t.Run("revoked device", func(t *testing.T) {
		if err := w.central.RevokeDevice("lane-1"); err != nil {
			t.Fatal(err)
		}
		_, err := w.cli.SyncOnce(context.Background(), w.syncer)
		var se *client.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusForbidden {
			t.Fatalf("revoked: %v", err)
		}
		pub := w.devKey.Public().(ed25519.PublicKey)
		w.central.AddDevice("lane-1", pub)
	})
	t.Run("rolled-back snapshot", func(t *testing.T) {
		old, _ := source.Load(policies.FS, policies.August2021, source.Overrides{})
		signed, _ := wire.SignSnapshot(old, w.ppriv)
		if err := w.syncer.InstallSnapshot(signed); !errors.Is(err, engine.ErrRollback) {
			t.Fatalf("rollback: %v", err)
		}
		if _, err := w.central.Publish(signed); !errors.Is(err, engine.ErrRollback) {
			t.Fatalf("central published a rollback: %v", err)
		}
	})
	t.Run("expired snapshot decides MANUAL", func(t *testing.T) {
		w.clock.Add(80 * 24 * time.Hour)
		if d := w.decide(adult); d.Rule != engine.RuleExpired {
			t.Fatalf("expired: %+v", d)
		}
		w.clock.Add(-80 * 24 * time.Hour)
	})
}

// Changing the policy centrally changes the device's decision after its next sync.
func TestPolicyPublishedCentrallyReachesTheDevice(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.August2021, source.Overrides{EffectiveFrom: w.clock.Now().Add(-24 * time.Hour)})
	w.importCentral(rec(adult, `"declarations":["2021-11-16"]`))
	w.sync()
	if d := w.decide(adult); d.Outcome != engine.Pass || d.SnapshotVersion != 2021080700 {
		t.Fatalf("August policy, no test needed: %+v", d)
	}
	w.publish(policies.November2021, source.Overrides{EffectiveFrom: w.clock.Now().Add(-time.Hour)})
	if rep := w.sync(); len(rep.Snapshots) != 1 || rep.Snapshots[0] != 2021111700 {
		t.Fatalf("sync: %+v", rep)
	}
	if d := w.decide(adult); d.Outcome != engine.NeedTest || d.SnapshotVersion != 2021111700 {
		t.Fatalf("November policy after the sync: %+v", d)
	}
}

func TestAuditUploadedExactlyOnce(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult))
	w.sync()
	for i := 0; i < 7; i++ {
		if _, err := w.audit.Append(audit.Entry{Kind: audit.KindDecision, TimeMs: w.clock.Now().UnixMilli(), Outcome: "PASS", Rule: "green-pass"}); err != nil {
			t.Fatal(err)
		}
	}
	rep := w.sync()
	if rep.AuditUploaded != 7 || rep.AuditAcked != 7 {
		t.Fatalf("upload: %+v", rep)
	}
	// A retry of records already stored (the ack was lost): stored once.
	recs, _ := w.audit.Records(0, 100)
	dev, _ := w.central.Devices()
	acked, err := w.central.StoreAudit(&dev[0], recs)
	if err != nil || acked != 7 {
		t.Fatalf("retry: %d %v", acked, err)
	}
	for i := 0; i < 3; i++ {
		w.audit.Append(audit.Entry{Kind: audit.KindDecision, TimeMs: w.clock.Now().UnixMilli(), Outcome: "MANUAL"})
	}
	if rep := w.sync(); rep.AuditUploaded != 3 || rep.AuditAcked != 10 {
		t.Fatalf("second upload: %+v", rep)
	}
	if n, _ := w.central.AuditCount("lane-1"); n != 10 {
		t.Fatalf("central holds %d entries, want 10", n)
	}
	// A tampered upload is refused and nothing is stored.
	recs, _ = w.audit.Records(9, 1)
	recs[0].Entry = bytes.Clone(recs[0].Entry)
	recs[0].Entry[len(recs[0].Entry)-1] ^= 1
	if _, err := w.central.StoreAudit(&dev[0], recs); err == nil {
		t.Fatal("tampered resend accepted")
	}
	w.audit.Append(audit.Entry{Kind: audit.KindDecision, TimeMs: w.clock.Now().UnixMilli(), Outcome: "PASS"})
	recs, _ = w.audit.Records(10, 1)
	recs[0].Entry = bytes.Clone(recs[0].Entry)
	recs[0].Entry[len(recs[0].Entry)-1] ^= 1
	if _, err := w.central.StoreAudit(&dev[0], recs); err == nil {
		t.Fatal("tampered new entry accepted")
	}
	if n, _ := w.central.AuditCount("lane-1"); n != 10 {
		t.Fatalf("central holds %d entries after refused uploads, want 10", n)
	}
}

func TestCommuterRegistrationTakesEffectNextDay(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(commuterN, `"tests":[{"sampled":"2021-11-16T08:00:00+08:00","reported":"2021-11-16T18:00:00+08:00","result":"negative"}]`))
	w.sync()
	id, _ := engine.ParseID(commuterN)
	key := w.dev.Store().Key(id.Number)
	resp := signedPost(t, w, "/v1/registrations", fmt.Sprintf(`{"key":"%x","masked_id":"%s","work_proof":"employer letter 17","residence_proof":"lease","test_proof":"Dian 2021-11-16"}`, key[:], id.Number.Masked()))
	if resp != 200 {
		t.Fatalf("registration: %d", resp)
	}
	regs, _ := w.central.Registrations("pending")
	if len(regs) != 1 {
		t.Fatalf("pending: %+v", regs)
	}
	if _, err := w.central.Approve(regs[0].ID, w.clock.Now()); err != nil {
		t.Fatal(err)
	}
	w.sync()
	if d := w.decide(commuterN); d.Outcome == engine.PassCommuter {
		t.Fatalf("the tag took effect the same day: %+v", d)
	}
	w.clock.Add(16 * time.Hour) // 00:00 the next day
	if d := w.decide(commuterN); d.Outcome != engine.PassCommuter {
		t.Fatalf("the next day: %+v", d)
	}
}

func signedPost(t *testing.T, w *syncWorld, path, body string) int {
	t.Helper()
	resp, err := http.Get(w.url + "/v1/nonce")
	if err != nil {
		t.Fatal(err)
	}
	var n struct{ Nonce string }
	jsonDecode(t, resp.Body, &n)
	req, _ := http.NewRequest("POST", w.url+path, strings.NewReader(body))
	req.Header.Set(wire.HeaderDevice, "lane-1")
	req.Header.Set(wire.HeaderNonce, n.Nonce)
	req.Header.Set(wire.HeaderSignature, wire.SignRequest(w.devKey, "POST", path, n.Nonce, []byte(body)))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r.StatusCode
}

func TestClockCheck(t *testing.T) {
	d := time.Date(2021, 11, 20, 8, 0, 0, 0, engine.Beijing)
	for _, c := range []struct {
		offset, elapsed, wall time.Duration
		bad                   bool
	}{
		{0, time.Hour, time.Hour, false},
		{0, time.Hour, time.Hour + 119*time.Minute, false},
		{0, time.Hour, 3*time.Hour + time.Minute, true},        // jumped 2 h ahead
		{0, 3 * time.Hour, 30 * time.Minute, true},             // went back
		{0, 72 * time.Hour, 72*time.Hour + time.Minute, false}, // days offline, consistent
		{3 * time.Hour, time.Hour, time.Hour, true},            // 3 h off the server at the sync
		{-90 * time.Minute, time.Hour, time.Hour, false},       // off, but within 2 h
		{-90 * time.Minute, time.Hour, 0, true},                // and then set back an hour
	} {
		if got := edge.ClockCheckForTest(d, c.offset, c.elapsed, c.wall) != ""; got != c.bad {
			t.Errorf("offset %s elapsed %s wall %s: untrusted=%v, want %v", c.offset, c.elapsed, c.wall, got, c.bad)
		}
	}
}

// A device whose clock is 3 hours off the server's at a sync decides MANUAL until it is
// corrected; the server's time, not the device's, is what it trusts.
func TestDeviceClockOffServerTimeIsUntrusted(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult, `"tests":[{"sampled":"2021-11-16T20:00:00+08:00","reported":"2021-11-17T06:00:00+08:00","result":"negative"}]`, `"declarations":["2021-11-16"]`))
	devClock := &fakeClock{t: w.clock.Now().Add(3 * time.Hour)}
	w.syncer.Clock = devClock
	w.sync()
	if d := w.dev.Check(edge.CheckRequest{Number: adult}, devClock.Now()); d.Rule != engine.RuleClock {
		t.Fatalf("3 h off: %+v", d)
	}
	devClock.Add(-3 * time.Hour) // corrected; the next sync anchors trusted time again
	w.sync()
	if d := w.dev.Check(edge.CheckRequest{Number: adult}, devClock.Now()); d.Outcome != engine.Pass {
		t.Fatalf("corrected clock after a sync: %+v", d)
	}
}

// One nonce, one request: the same signed request sent eight times at once is served once.
func TestNonceSingleUseUnderConcurrency(t *testing.T) {
	w := newSyncWorld(t)
	resp, err := http.Get(w.url + "/v1/nonce")
	if err != nil {
		t.Fatal(err)
	}
	var n struct{ Nonce string }
	jsonDecode(t, resp.Body, &n)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", w.url+"/v1/time", nil)
			req.Header.Set(wire.HeaderDevice, "lane-1")
			req.Header.Set(wire.HeaderNonce, n.Nonce)
			req.Header.Set(wire.HeaderSignature, wire.SignRequest(w.devKey, "GET", "/v1/time", n.Nonce, nil))
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			r.Body.Close()
			if r.StatusCode == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d of 8 concurrent uses of one nonce were served, want 1", ok.Load())
	}
	// A nonce the server did not issue is refused.
	req, _ := http.NewRequest("GET", w.url+"/v1/time", nil)
	req.Header.Set(wire.HeaderDevice, "lane-1")
	req.Header.Set(wire.HeaderNonce, strings.Repeat("ab", 48))
	req.Header.Set(wire.HeaderSignature, wire.SignRequest(w.devKey, "GET", "/v1/time", strings.Repeat("ab", 48), nil))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged nonce: %d", r.StatusCode)
	}
}

// Large records: batches and bootstrap chunks stay under what a device accepts, and a device
// still converges.
func TestLargeRecordsFitInBatches(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	var stays []string
	for i := 0; i < engine.MaxStays; i++ {
		stays = append(stays, fmt.Sprintf(`{"county":"130104","from":"2021-10-%02dT%02d:00:00+08:00"}`, 1+i%28, i%24))
	}
	var b strings.Builder
	for i := 0; i < 2500; i++ {
		b.WriteString(rec(demoID(i), `"stays":[`+strings.Join(stays, ",")+`]`))
	}
	w.importCentral(b.String())
	signed, batch, err := w.central.Batch(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(signed) > wire.MaxBatchSize || len(batch.Changes) >= 2500 {
		t.Fatalf("batch of %d bytes, %d changes", len(signed), len(batch.Changes))
	}
	w.sync()
	w.converged()
}

// New hardware registered under an old device id starts a fresh audit chain centrally.
func TestRekeyedDeviceStartsFreshAudit(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult))
	w.audit.Append(audit.Entry{Kind: audit.KindDecision, TimeMs: 1, Outcome: "PASS"})
	w.sync()
	// The device is replaced: new key, new (empty) audit log.
	pub, priv, _ := wire.GenerateKey(rand.Reader)
	if err := w.central.AddDevice("lane-1", pub); err != nil {
		t.Fatal(err)
	}
	w.devKey = priv
	fresh, err := audit.OpenDir(t.TempDir(), "lane-1", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	fresh.Append(audit.Entry{Kind: audit.KindDecision, TimeMs: 2, Outcome: "MANUAL"})
	w.syncer.Audit = fresh
	w.cli = w.client(w.url)
	if rep := w.sync(); rep.AuditAcked != 1 {
		t.Fatalf("the new device's first entry: %+v", rep)
	}
	if n, _ := w.central.AuditCount("lane-1"); n != 2 {
		t.Fatalf("central holds %d entries of lane-1, want the old device's and the new one's", n)
	}
}

// A registration taken on the officer's page travels in the audit log: queued centrally once
// (a re-sent log does not queue it again), approved, and in force the next day.
func TestRegistrationTravelsInTheAuditLog(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(commuterN, `"tests":[{"sampled":"2021-11-16T08:00:00+08:00","reported":"2021-11-16T18:00:00+08:00","result":"negative"}]`))
	w.sync()
	dm, err := edge.NewDaemon(edge.DaemonConfig{Device: w.dev, Audit: w.audit, Clock: w.clock, Registrations: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dm.Register(edge.Registration{ID: commuterN, Officer: "0471", WorkProof: "w"}); !errors.Is(err, edge.ErrBadRegistration) {
		t.Fatalf("registration without proofs: %v", err)
	}
	seq, err := dm.Register(edge.Registration{ID: commuterN, Officer: "0471", WorkProof: "employer letter 17", Residence: "lease", TestProof: "Dian 2021-11-16"})
	if err != nil {
		t.Fatal(err)
	}
	if regs, _ := w.central.Registrations(""); len(regs) != 0 {
		t.Fatalf("queued before any sync: %+v", regs)
	}
	w.sync()
	// The device resends its whole log (as after losing its ack): still one registration.
	if err := w.audit.SetAcked(0); err != nil {
		t.Fatal(err)
	}
	w.sync()
	regs, _ := w.central.Registrations("pending")
	if len(regs) != 1 || !strings.HasPrefix(regs[0].ID, "lane-1-") || !strings.HasSuffix(regs[0].ID, fmt.Sprintf("-%d", seq)) || regs[0].TestProof != "Dian 2021-11-16" {
		t.Fatalf("pending registrations: %+v", regs)
	}
	if _, err := w.central.Approve(regs[0].ID, w.clock.Now()); err != nil {
		t.Fatal(err)
	}
	w.sync()
	if d := w.decide(commuterN); d.Outcome == engine.PassCommuter {
		t.Fatalf("the tag took effect the same day: %+v", d)
	}
	w.clock.Add(16 * time.Hour)
	if d := w.decide(commuterN); d.Outcome != engine.PassCommuter {
		t.Fatalf("the next day: %+v", d)
	}
}

// A sync that finds nothing new still refreshes the device: max_offline runs from the last
// successful sync, not from the last change.
func TestQuietSyncRefreshes(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult, `"tests":[{"sampled":"2021-11-16T08:00:00+08:00","reported":"2021-11-16T18:00:00+08:00","result":"negative"}],"declarations":["2021-11-16T08:00:00+08:00"]`))
	w.sync()
	w.clock.Add(70 * time.Hour)
	w.sync() // nothing changed centrally
	if got := w.dev.Store().LastRefresh(); got.Before(w.clock.Now().Add(-time.Second)) {
		t.Fatalf("last refresh %s after a quiet sync at %s", got, w.clock.Now())
	}
	w.clock.Add(3 * time.Hour) // 73 h after the last change, 3 h after the last sync
	if d := w.decide(adult); d.Rule == "system.max-offline" {
		t.Fatalf("decided as offline although synced 3 h ago: %+v", d)
	}
}
