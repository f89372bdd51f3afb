package edge_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gatecheck/gatecheck/devices/cardsim"
	"github.com/gatecheck/gatecheck/devices/display"
	"github.com/gatecheck/gatecheck/devices/ga467"
	"github.com/gatecheck/gatecheck/devices/relay"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

const (
	infant    = "110105201905010013" // born 2019-05-01: 2 years old on 20 Nov 2021
	commuterN = "110105198503030017"
)

const daemonPeople = people + `{"id":"110105201905010013"}
{"id":"110105198503030017","commuter":{"since":"2021-06-01"},"tests":[{"sampled":"2021-11-18T08:00:00+08:00","reported":"2021-11-18T18:00:00+08:00","result":"negative"}]}
`

func simCard(number, birth string) *cardsim.CardSpec {
	return &cardsim.CardSpec{Name: "测试", Birth: birth, Number: number, Gender: "1", Nation: "01", Address: "北京市", Authority: "北京市公安局", ValidFrom: "20150101", ValidTo: "20350101"}
}

// relayWatcher counts the gate pulses a relay board would see on its port.
type relayWatcher struct {
	mu     sync.Mutex
	pulses int
}

func watchRelay(t *testing.T) (string, *relayWatcher) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	w := &relayWatcher{}
	go func() {
		buf := make([]byte, 4)
		for {
			if _, err := io.ReadFull(m, buf); err != nil {
				return
			}
			if _, on, err := relay.ParseFrame(buf); err == nil && on {
				w.mu.Lock()
				w.pulses++
				w.mu.Unlock()
			}
		}
	}()
	return s.Name(), w
}

func (w *relayWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pulses
}

// A queue of cards through the simulator on a pseudo-terminal, the real tarm/serial reader,
// the device and a relay on another pseudo-terminal: each card gives one decision, one audit
// entry, and a gate pulse only for a pass; every injected fault is survived; the infant's
// passage follows the adult's test; the audit log verifies.
func TestDaemonEndToEnd(t *testing.T) {
	f := newFixture(t)
	d := f.open(t)
	defer d.Close()
	ctx := context.Background()
	if _, err := d.InstallSnapshot(f.sign(t, policies.November2021, source.Overrides{}), nov20); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Import(ctx, strings.NewReader(daemonPeople), nov20.Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	log, err := audit.Open(d.Store().DB(), "lane-3", devKey)
	if err != nil {
		t.Fatal(err)
	}
	link := t.TempDir() + "/reader"
	script := &cardsim.Script{Steps: []cardsim.Step{
		{Card: simCard(adult, "19900501")},                                  // PASS, gate
		{Card: simCard(elder, "19491231"), Fault: cardsim.FaultBadChecksum}, // popup 4 after a retry
		{Card: simCard("110105199005010026", "19900501")},                   // unknown person
		{Card: simCard(infant, "20190501"), Fault: cardsim.FaultNoise},      // COMPANION
		{Card: simCard(adult, "19900501"), Fault: cardsim.FaultTruncated},   // the adult: PASS + infant PASS
		{Card: simCard(commuterN, "19850303"), Fault: cardsim.FaultSilence}, // PASS_COMMUTER
		{Fault: cardsim.FaultUnplug, Card: simCard(adult, "19900501")},      // replugged, PASS
		{Card: simCard(adult, "19900502")},                                  // birth date does not match the number
		{Card: simCard(elder, "19491231"), Fault: cardsim.FaultRemoved},     // removed mid-read: no decision
		{Card: simCard(elder, "19491231"), Fault: cardsim.FaultSAMError},    // SAM fault, then popup 4
	}}
	sim, err := cardsim.Start(ctx, cardsim.Config{Script: script, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	reader, err := ga467.Open(ga467.Config{Path: link, CommandTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	relayPath, watcher := watchRelay(t)
	gate, err := relay.Open(relay.Config{Path: relayPath, Pulse: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	var screen strings.Builder
	var screenMu sync.Mutex
	dm, err := edge.NewDaemon(edge.DaemonConfig{Device: d, Audit: log, Reader: reader, Gate: gate,
		Display: display.NewConsole(lockedWriter{&screen, &screenMu}, false), Clock: fixedClock{nov20}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- dm.Run(runCtx) }()
	select {
	case <-sim.Finished():
	case <-time.After(60 * time.Second):
		t.Fatal("the simulator's script did not finish in 60 s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	entries, err := log.Entries(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Outcome+"/"+e.Rule)
	}
	want := []string{
		"PASS/green-pass",
		"DENY_POPUP_4/popup-4",
		"MANUAL/system.unknown-person",
		"COMPANION/infant",
		"PASS/green-pass", "PASS/" + edge.RuleCompanionPass,
		"PASS_COMMUTER/commuter",
		"PASS/green-pass",
		"MANUAL/" + edge.RuleCardMismatch,
		"DENY_POPUP_4/popup-4",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit entries:\n got %v\nwant %v\nscreen:\n%s", got, want, screen.String())
	}
	gates := 0
	for _, e := range entries {
		if e.Gate {
			gates++
		}
	}
	if gates != 5 || watcher.count() != gates || dm.GateOpens.Load() != int64(gates) {
		t.Fatalf("gate: %d audited, %d relay pulses, %d counted; want 5", gates, watcher.count(), dm.GateOpens.Load())
	}
	if entries[5].Ref != entries[3].Seq {
		t.Errorf("the infant's passage refers to entry %d, want the COMPANION entry %d", entries[5].Ref, entries[3].Seq)
	}
	if dm.ReaderErrors.Load() < 6 {
		t.Errorf("reader errors counted: %d, want at least one per fault", dm.ReaderErrors.Load())
	}
	rep, err := audit.Verify(d.Store().DB(), "lane-3", devKey.Public().(ed25519.PublicKey))
	if err != nil || rep.Entries != len(want) {
		t.Fatalf("audit verify: %+v %v", rep, err)
	}
	screenMu.Lock()
	out := screen.String()
	screenMu.Unlock()
	for _, s := range []string{"GATE OPEN", "通勤", "card reader disconnected", "card reader reconnected", "110105********0018"} {
		if !strings.Contains(out, s) {
			t.Errorf("display lacks %q", s)
		}
	}
	if strings.Contains(out, adult) {
		t.Error("display shows a plain ID number")
	}

	// An officer overrides the unknown person's MANUAL with a reason: audited, gate opens.
	p, err := dm.Override(ctx, entries[2].Seq, "officer 0042", "paper test and green code checked by hand", engine.Pass)
	if err != nil || !p.GateOpened {
		t.Fatalf("override: %+v %v", p, err)
	}
	if _, err := dm.Override(ctx, entries[2].Seq, "officer 0042", "", engine.Pass); err == nil {
		t.Fatal("override without a reason accepted")
	}
	last, _ := log.Entries(p.Seq, 1)
	if last[0].Kind != audit.KindOverride || last[0].Officer != "officer 0042" || last[0].Ref != entries[2].Seq {
		t.Fatalf("override entry: %+v", last[0])
	}
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
