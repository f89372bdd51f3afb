package relay_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gatecheck/gatecheck/devices/relay"
)

func TestFrames(t *testing.T) {
	on, off := relay.Frame(1, true), relay.Frame(1, false)
	if !bytes.Equal(on[:], []byte{0xA0, 0x01, 0x01, 0xA2}) || !bytes.Equal(off[:], []byte{0xA0, 0x01, 0x00, 0xA1}) {
		t.Fatalf("on % X off % X", on, off)
	}
	if ch, st, err := relay.ParseFrame(on[:]); err != nil || ch != 1 || !st {
		t.Fatalf("parse: %d %v %v", ch, st, err)
	}
	for _, bad := range [][]byte{{0xA0, 1, 1, 0xA3}, {0xA1, 1, 1, 0xA3}, {0xA0, 1, 2, 0xA3}, {0xA0, 1}} {
		if _, _, err := relay.ParseFrame(bad); err == nil {
			t.Errorf("accepted % X", bad)
		}
	}
}

// The real serial path: a pulse writes "on" then "off" to the board's port.
func TestPulseOverPTY(t *testing.T) {
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer s.Close()
	r, err := relay.Open(relay.Config{Path: s.Name(), Pulse: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Pulse(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 16)
	if _, err := io.ReadFull(m, got); err != nil {
		t.Fatal(err)
	}
	var states []bool
	for i := 0; i < len(got); i += 4 {
		_, on, err := relay.ParseFrame(got[i : i+4])
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, on)
	}
	// off at open, on + off for the pulse, off at close
	if want := []bool{false, true, false, false}; !equal(states, want) {
		t.Fatalf("relay states %v, want %v", states, want)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
