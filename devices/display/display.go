// Package display shows decisions to a highway-checkpoint officer on a text console (a
// terminal on the kiosk, or the daemon's standard output): the outcome in large letters, the
// commuter mark, the reason in Chinese and English, the masked ID number. It imports no other
// gatecheck package; edge maps its decisions onto Shown.
package display

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Shown is what the console shows for one decision.
type Shown struct {
	Outcome  string // PASS, PASS_COMMUTER, DENY_POPUP_n, NEED_TEST, COMPANION, MANUAL
	Commuter bool   // shows the 通勤 mark
	Opens    bool   // the gate opens
	ReasonZH string
	ReasonEN string
	Popups   []int
	MaskedID string // never the plain number
	Source   string // card, manual
	Time     time.Time
}

// Console writes decisions to a terminal. Safe for concurrent use.
type Console struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
}

// NewConsole writes to w; color adds ANSI colours (green for a pass, red for a denial).
func NewConsole(w io.Writer, color bool) *Console { return &Console{w: w, color: color} }

// Show writes one decision block.
func (c *Console) Show(s Shown) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	head := s.Outcome
	if s.Commuter {
		head += "  【通勤 COMMUTER】"
	}
	if s.Opens {
		head += "  → 闸机开启 GATE OPEN"
	}
	if c.color {
		code := "33" // yellow: manual, test, companion
		switch {
		case s.Opens:
			code = "32"
		case strings.HasPrefix(s.Outcome, "DENY"):
			code = "31"
		}
		head = "\x1b[1;" + code + "m" + head + "\x1b[0m"
	}
	fmt.Fprintf(&b, "──── %s  %s  (%s)\n", s.Time.Format("15:04:05"), s.MaskedID, s.Source)
	fmt.Fprintf(&b, "  %s\n  %s\n  %s\n", head, s.ReasonZH, s.ReasonEN)
	if len(s.Popups) > 0 {
		fmt.Fprintf(&b, "  弹窗 popups: %v\n", s.Popups)
	}
	_, err := io.WriteString(c.w, b.String())
	return err
}

// Status shows a line about the device (reader unplugged, reconnected ...).
func (c *Console) Status(t time.Time, msg string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := fmt.Fprintf(c.w, "···· %s  %s\n", t.Format("15:04:05"), msg)
	return err
}
