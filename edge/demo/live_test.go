package demo_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/config"
	"github.com/gatecheck/gatecheck/edge/demo"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// chromium finds Debian's chromium; CI installs it (.ci/run), so there a missing browser
// fails the test instead of skipping it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH: .ci/run installs Debian's chromium package")
	}
	t.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// The README's first command, end to end: the demo's central server, simulated reader and
// device run; headless Chromium opens the officer page, sees every outcome pass through,
// logs in with the PIN, makes a manual entry, overrides it and registers a commuter; the
// device's audit log then holds exactly those, signed and chained.
func TestDemoPageInBrowser(t *testing.T) {
	exe := chromium(t)
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ready := make(chan demo.LiveInfo, 1)
	queued := make(chan int, 4)
	done := make(chan error, 1)
	var stopErr error
	stopped := false
	stop := func() error { // stops the demo once, before the test's logger goes away
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
		}
		return stopErr
	}
	t.Cleanup(func() { stop() })
	go func() {
		done <- demo.Live(ctx, demo.LiveOptions{Dir: dir, Listen: "127.0.0.1:0", Once: true, Pace: 1,
			Ready: func(i demo.LiveInfo) { ready <- i }, QueueDone: func(r int) { queued <- r }}, testWriter{t}, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}()
	var info demo.LiveInfo
	select {
	case info = <-ready:
	case err := <-done:
		stopped, stopErr = true, err
		t.Fatalf("demo stopped before it was ready: %v", err)
	case <-ctx.Done():
		t.Fatal("demo not ready")
	}
	select {
	case <-queued: // every traveller has been read: no companion window is open
	case err := <-done:
		stopped, stopErr = true, err
		t.Fatalf("demo stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("the traveller queue did not finish")
	}

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// Every outcome of the queue is on the page, streamed live.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(info.PageURL),
		chromedp.WaitVisible(css(`#conn.ok`)),
		chromedp.WaitVisible(css(`#feed li`)),
	); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	feed := text(t, bctx, `#feed`)
	for _, o := range []string{"PASS", "PASS_COMMUTER", "DENY_POPUP_1", "DENY_POPUP_2", "DENY_POPUP_3", "DENY_POPUP_4",
		"DENY_POPUP_5", "NEED_TEST", "COMPANION", "MANUAL"} {
		if !strings.Contains(feed, o) {
			t.Errorf("the page's feed lacks %s:\n%s", o, feed)
		}
	}
	if strings.Contains(feed, info.People[0].Record.ID) {
		t.Error("the page shows a plain ID number")
	}

	// A wrong PIN is refused; the right one logs in.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(css(`#login-officer`), "警号0471"),
		chromedp.SendKeys(css(`#login-pin`), "0000"),
		chromedp.Click(css(`#login button[type=submit]`)),
		chromedp.WaitVisible(css(`#result.err`)),
	); err != nil {
		t.Fatalf("wrong PIN: %v", err)
	}
	msg := text(t, bctx, `#result`)
	if !strings.Contains(msg, "PIN") {
		t.Errorf("wrong PIN message %q", msg)
	}
	needTest := info.People[7]  // no recent test: NEED_TEST
	applicant := info.People[1] // the commuter
	if needTest.Want != engine.NeedTest {
		t.Fatalf("demo people changed: %s", needTest.Label)
	}
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(css(`#login-pin`), info.PIN),
		chromedp.Click(css(`#login button[type=submit]`)),
		chromedp.WaitVisible(css(`#manual`)),
		// Manual entry of a traveller whose card cannot be read.
		chromedp.SendKeys(css(`#manual-id`), needTest.Record.ID),
		chromedp.Click(css(`#manual button[type=submit]`)),
		chromedp.WaitVisible(css(`#feed li:first-child .o-NEED_TEST`)),
	); err != nil {
		t.Fatalf("manual entry: %v", err)
	}
	result := text(t, bctx, `#result`)
	if !strings.Contains(result, "NEED_TEST") {
		t.Fatalf("manual entry result %q", result)
	}
	// Override it from the feed: the officer saw a paper test report.
	if err := chromedp.Do(bctx,
		chromedp.Click(css(`#feed li:first-child button.ovr`)),
		chromedp.SendKeys(css(`#override-reason`), "旅客出示纸质核酸阴性报告 paper negative test seen"),
		chromedp.SetValue(css(`#override-outcome`), "PASS"),
		chromedp.Click(css(`#override button[type=submit]`)),
		chromedp.WaitVisible(css(`#feed li:first-child .o-PASS`)),
	); err != nil {
		t.Fatalf("override: %v", err)
	}
	result = text(t, bctx, `#result`)
	top := text(t, bctx, `#feed li:first-child`)
	if !strings.Contains(result, "PASS") || !strings.Contains(top, "officer") {
		t.Errorf("override result %q, top of feed %q", result, top)
	}
	// Commuter registration (a highway checkpoint).
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(css(`#register-id`), applicant.Record.ID),
		chromedp.SendKeys(css(`#register-work`), "廊坊某物流公司 工作证 2021-0113"),
		chromedp.SendKeys(css(`#register-residence`), "燕郊 居住证 1310820042"),
		chromedp.SendKeys(css(`#register-test`), "三河市人民医院 2021-11-25 阴性"),
		chromedp.Click(css(`#register button[type=submit]`)),
		chromedp.WaitVisible(css(`#feed li:first-child .o-REGISTERED`)),
	); err != nil {
		t.Fatalf("registration: %v", err)
	}
	result = text(t, bctx, `#result`)
	if !strings.Contains(result, "审批") {
		t.Errorf("registration result %q", result)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if p := os.Getenv("GATECHECK_SCREENSHOT"); p != "" { // scripts/screenshot
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bcancel()
	acancel()
	if err := stop(); err != nil {
		t.Fatalf("demo: %v", err)
	}

	// The audit log holds the manual entry, the override of it and the registration, and
	// verifies.
	cfg, err := config.Load(filepath.Join(dir, demo.LiveConfig))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(cfg.DeviceKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := wire.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyDir(cfg.AuditDir, cfg.DeviceID, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	hk, _ := cfg.HashKey()
	key := func(n string) string {
		k, err := store.HashID(hk, engine.IDNumber(n))
		if err != nil {
			t.Fatal(err)
		}
		return string(k[:])
	}
	alog, err := audit.OpenDir(cfg.AuditDir, cfg.DeviceID, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close()
	entries, err := alog.Entries(1, int(rep.Entries))
	if err != nil {
		t.Fatal(err)
	}
	var manual, override, registration *audit.Entry
	for i := range entries {
		e := &entries[i]
		switch {
		case e.Kind == audit.KindDecision && e.Source == "manual" && string(e.Person) == key(needTest.Record.ID):
			manual = e
		case e.Kind == audit.KindOverride:
			override = e
		case e.Kind == audit.KindRegistration:
			registration = e
		}
	}
	switch {
	case manual == nil || manual.Outcome != "NEED_TEST":
		t.Fatalf("no manual NEED_TEST entry in the audit log: %+v", manual)
	case override == nil || override.Ref != manual.Seq || override.Outcome != "PASS" || override.Officer != "警号0471" ||
		!strings.Contains(override.Reason, "paper negative test"):
		t.Fatalf("override entry %+v does not record the officer's decision over entry %d", override, manual.Seq)
	case registration == nil || string(registration.Person) != key(applicant.Record.ID) || registration.WorkProof == "":
		t.Fatalf("registration entry %+v", registration)
	}
	if n := countSource(entries, "card"); n < len(info.People)-1 {
		t.Errorf("%d card decisions audited, want at least %d", n, len(info.People)-1)
	}
}

type css = chromedp.CSS

// text reads an element's text.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func countSource(entries []audit.Entry, src string) int {
	n := 0
	for _, e := range entries {
		if e.Source == src {
			n++
		}
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
