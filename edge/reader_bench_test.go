package edge_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/devices/cardsim"
	"github.com/gatecheck/gatecheck/devices/ga467"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
)

func benchDevice(b *testing.B) (*edge.Device, *audit.Log) {
	b.Helper()
	f := newFixture(b)
	d := f.openTB(b)
	b.Cleanup(func() { d.Close() })
	snap, _ := source.Load(policies.FS, policies.November2021, source.Overrides{})
	signed, _ := signWith(f, snap)
	if _, err := d.InstallSnapshot(signed, nov20); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Import(context.Background(), strings.NewReader(people), nov20.Add(-time.Hour), nil); err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	log, err := audit.Open(d.Store().DB(), "bench", priv)
	if err != nil {
		b.Fatal(err)
	}
	return d, log
}

// BenchmarkFrameToDecision: the software path of one card - decode the 1295-byte read frame,
// parse the text block, validate the number, look the person up and decide (no audit).
func BenchmarkFrameToDecision(b *testing.B) {
	d, _ := benchDevice(b)
	c := &ga467.Card{Type: ga467.CardResident, Name: "张三", Gender: "1", Nation: "01", Birth: "19900501", Number: adult, Address: "北京市"}
	data := append([]byte{1, 0, 4, 0}, ga467.EncodeText(c)...)
	frame := ga467.EncodeResponse(0, 0, 0x90, append(data, make([]byte, 1024)...))
	r := strings.NewReader(string(frame))
	dec := ga467.NewDecoder(r)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		r.Reset(string(frame))
		dec.Reset(r)
		resp, err := dec.ReadResponse()
		if err != nil {
			b.Fatal(err)
		}
		card, err := ga467.ParseTextPhoto(resp.Data)
		if err != nil {
			b.Fatal(err)
		}
		if got := d.Check(edge.CheckRequest{Number: card.Number}, nov20); got.Outcome != engine.Pass {
			b.Fatalf("decision %s", got.Outcome)
		}
	}
}

// BenchmarkCardToGate: a card presented to the simulated reader at 115200 baud until the gate
// command: find + select + read + appended address over the pseudo-terminal (serial_ms), then
// decide + durable audit append + gate command (software_ms).
func BenchmarkCardToGate(b *testing.B) {
	d, log := benchDevice(b)
	steps := make([]cardsim.Step, 0, b.N+1)
	for i := 0; i < b.N+1; i++ {
		steps = append(steps, cardsim.Step{Gap: 1, Hold: 1, Card: &cardsim.CardSpec{Name: "张三", Birth: "19900501", Number: adult}})
	}
	sim, err := cardsim.Start(context.Background(), cardsim.Config{Script: &cardsim.Script{Steps: steps}})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	reader, err := ga467.Open(ga467.Config{Path: sim.Path()})
	if err != nil {
		b.Fatal(err)
	}
	defer reader.Close()
	gate := &countingGate{}
	dm, err := edge.NewDaemon(edge.DaemonConfig{Device: d, Audit: log, Gate: gate, Clock: fixedClock{nov20}})
	if err != nil {
		b.Fatal(err)
	}
	var serial, software time.Duration
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var card *ga467.Card
		var t0 time.Time
		for card == nil {
			t0 = time.Now()
			if card, err = reader.Poll(); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		if _, err := dm.PresentCard(context.Background(), card); err != nil {
			b.Fatal(err)
		}
		serial += t1.Sub(t0)
		software += time.Since(t1)
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(serial.Microseconds())/float64(n)/1000, "serial_ms/card")
		b.ReportMetric(float64(software.Microseconds())/float64(n)/1000, "software_ms/card")
	}
	if gate.n != n {
		b.Fatalf("%d gate commands for %d cards", gate.n, n)
	}
}
