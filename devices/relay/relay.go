// Package relay drives the common single-channel USB serial relay boards (LCUS-1 and clones, a
// CH340 USB-serial chip in front of a relay) that railway gate controllers take as their "open"
// input. The protocol is four bytes at 9600 baud, 8N1, with no answer:
//
//	A0 <channel> <state> <checksum>   state 01 closes the relay, 00 opens it;
//	                                  checksum = (A0 + channel + state) mod 256
//
// so channel 1 on is A0 01 01 A2 and off is A0 01 00 A1. A gate pulse is "on", a hold time, then
// "off". relay imports no other gatecheck package.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tarm/serial"
)

// Frame returns the 4-byte command that sets a channel on or off.
func Frame(channel byte, on bool) [4]byte {
	var state byte
	if on {
		state = 1
	}
	return [4]byte{0xA0, channel, state, 0xA0 + channel + state}
}

// ErrFrame reports bytes that are not a relay command.
var ErrFrame = errors.New("relay: not a relay command")

// ParseFrame decodes a 4-byte relay command (for simulators and tests).
func ParseFrame(b []byte) (channel byte, on bool, err error) {
	if len(b) != 4 || b[0] != 0xA0 || b[2] > 1 || b[3] != b[0]+b[1]+b[2] {
		return 0, false, fmt.Errorf("%w: % X", ErrFrame, b)
	}
	return b[1], b[2] == 1, nil
}

// Config configures a relay board.
type Config struct {
	// Path is the board's serial port. Required.
	Path string
	// Baud defaults to 9600.
	Baud int
	// Channel defaults to 1.
	Channel byte
	// Pulse is how long the relay stays closed to open the gate; zero means 1 s.
	Pulse time.Duration
}

// Relay is an open relay board. Safe for concurrent use.
type Relay struct {
	cfg  Config
	mu   sync.Mutex
	port io.WriteCloser
}

// Open opens the board's port and makes sure the relay is off.
func Open(cfg Config) (*Relay, error) {
	if cfg.Path == "" {
		return nil, errors.New("relay: port path is required")
	}
	if cfg.Baud == 0 {
		cfg.Baud = 9600
	}
	if cfg.Channel == 0 {
		cfg.Channel = 1
	}
	if cfg.Pulse == 0 {
		cfg.Pulse = time.Second
	}
	p, err := serial.OpenPort(&serial.Config{Name: cfg.Path, Baud: cfg.Baud, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("relay: open %s: %w", cfg.Path, err)
	}
	r := &Relay{cfg: cfg, port: p}
	if err := r.set(false); err != nil {
		p.Close()
		return nil, err
	}
	return r, nil
}

func (r *Relay) set(on bool) error {
	f := Frame(r.cfg.Channel, on)
	if _, err := r.port.Write(f[:]); err != nil {
		return fmt.Errorf("relay: write: %w", err)
	}
	return nil
}

// Pulse closes the relay for the configured pulse and opens it again: one gate passage. The
// relay is switched off even if ctx ends during the pulse, and then ctx's error is returned: a
// cut-short pulse may not have opened the gate.
func (r *Relay) Pulse(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.set(true); err != nil {
		return err
	}
	t := time.NewTimer(r.cfg.Pulse)
	var cut error
	select {
	case <-ctx.Done():
		cut = ctx.Err()
	case <-t.C:
	}
	t.Stop()
	if err := r.set(false); err != nil {
		return err
	}
	return cut
}

// Close switches the relay off and closes the port.
func (r *Relay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.set(false)
	if cerr := r.port.Close(); err == nil {
		err = cerr
	}
	return err
}
