package web_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/edge/web"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
	"golang.org/x/crypto/bcrypt"
)

var nov20 = time.Date(2021, 11, 20, 15, 0, 0, 0, engine.Beijing)

const (
	passer   = "110105199005010018" // negative test 20 h before nov20: PASS
	popup4   = "11010519491231002X" // popup 4
	pin      = "4827"
	officerA = "警号0471"
)

type clock struct{ t time.Time }

func (c clock) Now() time.Time { return c.t }

type fixture struct {
	wall  *wallClock
	dev   *edge.Device
	audit *audit.Log
	dm    *edge.Daemon
	srv   *httptest.Server
	m     *web.Metrics
}

// newFixture makes a device (real Badger in a temp dir) with the November 2021 policy and two
// people, its daemon, and the page over real HTTP on loopback.
func newFixture(t testing.TB, kind string, withSnapshot bool, syncer bool, pageAt ...time.Time) *fixture {
	t.Helper()
	pub, priv, _ := wire.GenerateKey(rand.Reader)
	hk := make([]byte, store.HashKeySize)
	rand.Read(hk)
	ring := wire.KeyRing{}
	ring.Add(pub)
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: t.TempDir(), HashKey: hk}, TrustedKeys: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if withSnapshot {
		snap, err := source.Load(policies.FS, policies.November2021, source.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := wire.SignSnapshot(snap, priv)
		if _, err := d.InstallSnapshot(b, nov20); err != nil {
			t.Fatal(err)
		}
	}
	people := `{"id":"` + passer + `","tests":[{"sampled":"2021-11-19T19:00:00+08:00","reported":"2021-11-20T01:00:00+08:00","result":"negative"}],"declarations":["2021-11-19T10:00:00+08:00"]}
{"id":"` + popup4 + `","popups":[{"n":4,"since":"2021-11-20T10:00:00+08:00"}]}
`
	if _, err := d.Import(context.Background(), strings.NewReader(people), nov20, nil); err != nil {
		t.Fatal(err)
	}
	_, dpriv, _ := ed25519.GenerateKey(rand.Reader)
	alog, err := audit.Open(d.Store().DB(), "kiosk-1", dpriv)
	if err != nil {
		t.Fatal(err)
	}
	m := web.NewMetrics()
	dm, err := edge.NewDaemon(edge.DaemonConfig{Device: d, Audit: alog, Clock: clock{nov20}, Observer: m, Gate: openGate{},
		Registrations: kind == "highway-checkpoint"})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte(pin), bcrypt.MinCost)
	at := nov20
	if len(pageAt) > 0 {
		at = pageAt[0]
	}
	f := &fixture{wall: &wallClock{t: time.Now()}}
	cfg := web.Config{Daemon: dm, Device: d, Audit: alog, Metrics: m, DeviceID: "kiosk-1", Kind: kind, HasGate: true,
		PINHash: h, Clock: clock{at}, StatusEvery: 50 * time.Millisecond, Wall: f.wall.now}
	if syncer {
		cfg.Syncer = &edge.Syncer{Device: d, Central: "http://127.0.0.1:9"}
	}
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	f.dev, f.audit, f.dm, f.srv, f.m = d, alog, dm, srv, m
	return f
}

// wallClock is the machine clock of sessions and lockouts, moved by tests.
type wallClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *wallClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *wallClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type openGate struct{}

func (openGate) Pulse(context.Context) error { return nil }

// call makes a request and decodes the JSON answer into out (when not nil).
func (f *fixture) call(t testing.TB, method, path, token, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (f *fixture) login(t testing.TB) string {
	t.Helper()
	var r struct{ Token string }
	if code := f.call(t, "POST", "/api/login", "", `{"officer":"`+officerA+`","pin":"`+pin+`"}`, &r); code != 200 || r.Token == "" {
		t.Fatalf("login: %d", code)
	}
	return r.Token
}

func TestPageAndStatus(t *testing.T) {
	f := newFixture(t, "highway-checkpoint", true, false)
	resp, err := http.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `lang="zh-CN"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "'self'") {
		t.Fatalf("page: %d %q", resp.StatusCode, resp.Header)
	}
	for _, p := range []string{"/static/app.js", "/static/style.css"} {
		if code := f.call(t, "GET", p, "", "", nil); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	var st web.Status
	if code := f.call(t, "GET", "/status", "", "", &st); code != 200 {
		t.Fatalf("status %d", code)
	}
	if st.Snapshot == nil || st.Snapshot.Version != 2021111700 || !st.Registration || !st.Officer || len(st.Alerts) != 0 {
		t.Fatalf("status: %+v", st)
	}
	if st.Snapshot.AgeSeconds != int64(nov20.Sub(st.Snapshot.EffectiveFrom).Seconds()) {
		t.Errorf("snapshot age %d at %s, effective %s", st.Snapshot.AgeSeconds, nov20, st.Snapshot.EffectiveFrom)
	}
}

// Stale data is shown loudly: no snapshot, never synced.
func TestStatusAlerts(t *testing.T) {
	f := newFixture(t, "railway-gate", false, true, nov20.Add(time.Hour)) // an hour after the import
	var st web.Status
	f.call(t, "GET", "/status", "", "", &st)
	if st.Snapshot != nil || !st.Sync.Stale || st.Registration {
		t.Fatalf("status: %+v", st)
	}
	var all string
	for _, a := range st.Alerts {
		all += a.Level + ": " + a.EN + "\n"
	}
	for _, want := range []string{"error: no rule snapshot in force", "warning: data may be stale: no sync for 1h0m0s"} {
		if !strings.Contains(all, want) {
			t.Errorf("alerts lack %q:\n%s", want, all)
		}
	}
}

// Officer actions need a login; the PIN is checked and locked out after repeated failures;
// each action is audited under the logged-in officer's name.
func TestOfficerActions(t *testing.T) {
	f := newFixture(t, "highway-checkpoint", true, false)
	if code := f.call(t, "POST", "/api/check", "", `{"id":"`+passer+`"}`, nil); code != 401 {
		t.Fatalf("check without login: %d", code)
	}
	if code := f.call(t, "POST", "/api/check", "bogus", `{"id":"`+passer+`"}`, nil); code != 401 {
		t.Fatalf("check with a bad token: %d", code)
	}
	tok := f.login(t)
	var p edge.Passage
	if code := f.call(t, "POST", "/api/check", tok, `{"id":"`+passer+`"}`, &p); code != 200 || p.Decision.Outcome != engine.Pass || !p.GateOpened {
		t.Fatalf("manual entry: %d %+v", code, p)
	}
	var e struct{ Error string }
	if code := f.call(t, "POST", "/api/check", tok, `{"id":"`+passer+`","officer":"x"}`, &e); code != 400 || !strings.Contains(e.Error, "unknown field") {
		t.Fatalf("unknown field: %d %q", code, e.Error)
	}
	// An invalid number is decided MANUAL and audited, not refused.
	if code := f.call(t, "POST", "/api/check", tok, `{"id":"110105199005010017"}`, &p); code != 200 || p.Decision.Outcome != engine.Manual {
		t.Fatalf("invalid number: %d %+v", code, p)
	}
	if code := f.call(t, "POST", "/api/override", tok, `{"ref":1,"outcome":"PASS","reason":" "}`, &e); code != 400 {
		t.Fatalf("override without a reason: %d %q", code, e.Error)
	}
	if code := f.call(t, "POST", "/api/override", tok, `{"ref":99,"outcome":"PASS","reason":"x"}`, &e); code != 404 {
		t.Fatalf("override of a missing entry: %d", code)
	}
	var o edge.Passage
	if code := f.call(t, "POST", "/api/override", tok, `{"ref":2,"outcome":"PASS","reason":"number checked on the passport"}`, &o); code != 200 || !o.GateOpened {
		t.Fatalf("override: %d %+v", code, o)
	}
	var reg struct {
		Seq    uint64 `json:"audit_seq"`
		Status string
	}
	if code := f.call(t, "POST", "/api/register", tok, `{"id":"`+popup4+`","work_proof":"w","residence_proof":"r"}`, &e); code != 400 {
		t.Fatalf("registration without a test proof: %d", code)
	}
	if code := f.call(t, "POST", "/api/register", tok, `{"id":"`+popup4+`","work_proof":"employer letter 7","residence_proof":"lease 12","test_proof":"lab 3, 2021-11-19"}`, &reg); code != 200 || reg.Status != "queued" {
		t.Fatalf("registration: %d %+v", code, reg)
	}
	entries, err := f.audit.Entries(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d audit entries, want 4: %+v", len(entries), entries)
	}
	if entries[0].Officer != officerA || entries[0].Source != "manual" {
		t.Errorf("manual entry %+v does not name the officer", entries[0])
	}
	ov, rg := entries[2], entries[3]
	if ov.Kind != audit.KindOverride || ov.Ref != 2 || ov.Officer != officerA || ov.Reason != "number checked on the passport" {
		t.Errorf("override entry %+v", ov)
	}
	if rg.Kind != audit.KindRegistration || rg.Seq != reg.Seq || rg.Officer != officerA || rg.TestProof != "lab 3, 2021-11-19" ||
		rg.Masked != engine.IDNumber(popup4).Masked() {
		t.Errorf("registration entry %+v", rg)
	}
	// Only decisions can be overridden: not a registration, not another override.
	for _, ref := range []uint64{3, 4} {
		if code := f.call(t, "POST", "/api/override", tok, fmt.Sprintf(`{"ref":%d,"outcome":"PASS","reason":"x"}`, ref), &e); code != 400 || !strings.Contains(e.Error, "not a decision") {
			t.Errorf("override of entry %d: %d %q", ref, code, e.Error)
		}
	}
	// Logging out ends the session.
	f.call(t, "POST", "/api/logout", tok, `{}`, nil)
	if code := f.call(t, "POST", "/api/check", tok, `{"id":"`+passer+`"}`, nil); code != 401 {
		t.Fatalf("after logout: %d", code)
	}
}

func TestRegistrationOnlyAtHighwayCheckpoints(t *testing.T) {
	f := newFixture(t, "railway-gate", true, false)
	tok := f.login(t)
	if code := f.call(t, "POST", "/api/register", tok, `{"id":"`+popup4+`","work_proof":"a","residence_proof":"b","test_proof":"c"}`, nil); code != 403 {
		t.Fatalf("registration at a railway gate: %d", code)
	}
	if f.audit.Seq() != 0 {
		t.Fatal("a refused registration was audited")
	}
}

func TestPINLockout(t *testing.T) {
	f := newFixture(t, "highway-checkpoint", true, false)
	for i := 0; i < web.MaxFailures; i++ {
		if code := f.call(t, "POST", "/api/login", "", `{"officer":"x","pin":"0000"}`, nil); code != 401 {
			t.Fatalf("wrong PIN %d: %d", i, code)
		}
	}
	var e struct{ Error string }
	if code := f.call(t, "POST", "/api/login", "", `{"officer":"x","pin":"`+pin+`"}`, &e); code != 429 || !strings.Contains(e.Error, "too many") {
		t.Fatalf("right PIN during lockout: %d %q", code, e.Error)
	}
	f.wall.add(web.Lockout + time.Second) // the lockout ends
	tok := f.login(t)
	f.wall.add(web.SessionTTL + time.Second) // and a shift later the session has expired
	if code := f.call(t, "POST", "/api/check", tok, `{"id":"`+passer+`"}`, &e); code != 401 || !strings.Contains(e.Error, "expired") {
		t.Fatalf("after the session's end: %d %q", code, e.Error)
	}
}

// Wrong PINs sent in parallel cannot outrun the lockout: at most MaxFailures are checked.
func TestPINLockoutUnderParallelGuesses(t *testing.T) {
	f := newFixture(t, "highway-checkpoint", true, false)
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := 0; i < cap(codes); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- f.call(t, "POST", "/api/login", "", `{"officer":"x","pin":"000000"}`, nil)
		}()
	}
	wg.Wait()
	close(codes)
	checked := 0
	for c := range codes {
		switch c {
		case 401:
			checked++
		case 429:
		default:
			t.Errorf("status %d", c)
		}
	}
	if checked != web.MaxFailures {
		t.Fatalf("%d PINs checked of %d guesses, want %d", checked, cap(codes), web.MaxFailures)
	}
}

// The page answers only to its own host names and to JSON POSTs from its own origin.
func TestRequestGuards(t *testing.T) {
	f := newFixture(t, "highway-checkpoint", true, false)
	do := func(host, ctype, origin string) int {
		req, _ := http.NewRequest("POST", f.srv.URL+"/api/login", strings.NewReader(`{"officer":"x","pin":"000000"}`))
		if host != "" {
			req.Host = host
		}
		req.Header.Set("Content-Type", ctype)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do("gatecheck.attacker.example:8080", "application/json", ""); c != http.StatusMisdirectedRequest {
		t.Errorf("foreign host name: %d", c)
	}
	if c := do("", "text/plain", ""); c != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain POST: %d", c)
	}
	if c := do("", "application/json", "http://attacker.example"); c != http.StatusForbidden {
		t.Errorf("cross-origin POST: %d", c)
	}
	if c := do("localhost:8080", "application/json", "http://localhost:8080"); c != http.StatusUnauthorized {
		t.Errorf("same-origin POST by name: %d (want a PIN check: 401)", c)
	}
}

// Metrics count decisions by outcome and time them; gauges read the device.
func TestMetrics(t *testing.T) {
	f := newFixture(t, "highway-checkpoint", true, false)
	tok := f.login(t)
	f.call(t, "POST", "/api/check", tok, `{"id":"`+passer+`"}`, nil)
	f.call(t, "POST", "/api/check", tok, `{"id":"`+popup4+`"}`, nil)
	f.call(t, "POST", "/api/check", tok, `{"id":"`+passer+`"}`, nil)
	f.m.ReaderError(edge.ReaderErrorKind(context.DeadlineExceeded))
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`gatecheck_decisions_total{outcome="PASS"} 2`,
		`gatecheck_decisions_total{outcome="DENY_POPUP_4"} 1`,
		`gatecheck_decision_seconds_count 3`,
		`gatecheck_reader_errors_total{kind="other"} 1`,
		`gatecheck_audit_backlog 3`,
		`gatecheck_snapshot_version 2.0211117e+09`,
		`gatecheck_gossip_members 0`,
		`gatecheck_sync_lag_seconds 0`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// The live stream: status at once, then each decision as it happens, with the number masked.
func TestEventStream(t *testing.T) {
	f := newFixture(t, "highway-checkpoint", true, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/events", nil)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan [2]string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				ev = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				select {
				case events <- [2]string{ev, v}:
				case <-ctx.Done():
					return
				}
			}
		}
		close(events)
	}()
	next := func(kind string) string {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("stream ended waiting for %s", kind)
				}
				if e[0] == kind {
					return e[1]
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", kind)
			}
		}
	}
	var st web.Status
	if err := json.Unmarshal([]byte(next("status")), &st); err != nil || st.Device != "kiosk-1" {
		t.Fatalf("status event: %v %+v", err, st)
	}
	if _, err := f.dm.PresentManual(ctx, popup4, false, ""); err != nil {
		t.Fatal(err)
	}
	data := next("decision")
	var it edge.FeedItem
	if err := json.Unmarshal([]byte(data), &it); err != nil {
		t.Fatal(err)
	}
	if it.Outcome != "DENY_POPUP_4" || it.Masked != engine.IDNumber(popup4).Masked() || strings.Contains(data, popup4) {
		t.Fatalf("decision event %s", data)
	}
	var list []edge.FeedItem
	if f.call(t, "GET", "/decisions?n=5", "", "", &list); len(list) != 1 || list[0].Seq != it.Seq {
		t.Fatalf("/decisions: %+v", list)
	}
}
