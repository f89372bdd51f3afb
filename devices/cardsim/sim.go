package cardsim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"
	"github.com/gatecheck/gatecheck/devices/ga467"
	"golang.org/x/sys/unix"
)

// Config configures a simulator.
type Config struct {
	// Script is the session to play. Required.
	Script *Script
	// Link, if set, is a symlink the simulator keeps pointing at its current pseudo-terminal,
	// so a device configured with it survives a replug.
	Link string
	// Logger; nil discards logs.
	Logger *slog.Logger
}

// Event is something the simulator did, for tests and the CLI's log.
type Event struct {
	Step int    // 1-based step of the script
	Kind string // served, fault, unplugged, replugged, finished
	Info string // the fault, or the masked card number
}

// Sim is a running simulator.
type Sim struct {
	cfg  Config
	log  *slog.Logger
	baud int
	rng  *rand.Rand

	mu            sync.Mutex
	master, slave *os.File
	path          string
	closed        bool

	events   chan Event
	finished chan struct{}
	done     chan struct{}
	cancel   context.CancelFunc
	closing  sync.Once

	// state, owned by the run goroutine
	step      int
	phase     int // 0 waiting for the card, 1 card present, 2 card read and held
	gap, hold int
	faultUsed bool
	cards     []*ga467.Card
}

const (
	phaseWaiting = iota
	phasePresent
	phaseRead
)

// Start opens a pseudo-terminal, publishes its path (and the link) and begins answering.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	if cfg.Script == nil {
		return nil, errors.New("cardsim: no script")
	}
	if err := cfg.Script.Validate(); err != nil {
		return nil, fmt.Errorf("cardsim: %w", err)
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, baud: cfg.Script.Baud, events: make(chan Event, 256),
		finished: make(chan struct{}), done: make(chan struct{}), rng: rand.New(rand.NewPCG(1, 2))}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.baud == 0 {
		s.baud = 115200
	}
	for _, st := range cfg.Script.Steps {
		var c *ga467.Card
		if st.Card != nil {
			c, _ = st.Card.Card() // checked by Validate
			c.Photo = photo(c.Number)
		}
		s.cards = append(s.cards, c)
	}
	if err := s.plug(); err != nil {
		return nil, err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.begin(0)
	go s.run(ctx)
	return s, nil
}

// photo makes deterministic 1024 bytes standing in for a WLT photo.
func photo(number string) []byte {
	h := fnv.New64a()
	h.Write([]byte(number))
	r := rand.New(rand.NewPCG(h.Sum64(), 7))
	b := make([]byte, ga467.PhotoLen)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// plug opens a new pseudo-terminal and points the link at it.
func (s *Sim) plug() error {
	m, sl, err := pty.Open()
	if err != nil {
		return fmt.Errorf("cardsim: open pseudo-terminal: %w", err)
	}
	// Raw mode from the start, so nothing is echoed before the device opens the port.
	if t, err := unix.IoctlGetTermios(int(sl.Fd()), unix.TCGETS); err == nil {
		t.Iflag, t.Oflag, t.Lflag = 0, 0, 0
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
		_ = unix.IoctlSetTermios(int(sl.Fd()), unix.TCSETS, t)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		m.Close()
		sl.Close()
		return errors.New("cardsim: closed")
	}
	s.master, s.slave, s.path = m, sl, sl.Name()
	s.mu.Unlock()
	if s.cfg.Link != "" {
		tmp := s.cfg.Link + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(sl.Name(), tmp); err != nil {
			return fmt.Errorf("cardsim: link: %w", err)
		}
		if err := os.Rename(tmp, s.cfg.Link); err != nil {
			return fmt.Errorf("cardsim: link: %w", err)
		}
	}
	return nil
}

// unplug closes the pseudo-terminal: the device sees a hangup.
func (s *Sim) unplug() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.master != nil {
		s.master.Close()
		s.slave.Close()
		s.master, s.slave = nil, nil
	}
	if s.cfg.Link != "" {
		os.Remove(s.cfg.Link)
	}
}

// Path is the pseudo-terminal the device should open: the link if one is configured.
func (s *Sim) Path() string {
	if s.cfg.Link != "" {
		return s.cfg.Link
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// Events reports what the simulator does. The channel is buffered; events are dropped when
// nobody reads them.
func (s *Sim) Events() <-chan Event { return s.events }

// Finished is closed when every step of the script has been played.
func (s *Sim) Finished() <-chan struct{} { return s.finished }

// Close stops the simulator and closes its pseudo-terminal. Safe to call more than once.
func (s *Sim) Close() error {
	s.closing.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.unplug()
		<-s.done
		if s.cfg.Link != "" {
			os.Remove(s.cfg.Link)
		}
	})
	return nil
}

func (s *Sim) emit(kind, info string) {
	e := Event{Step: s.step + 1, Kind: kind, Info: info}
	s.log.Info("cardsim", "step", e.Step, "event", kind, "info", info)
	select {
	case s.events <- e:
	default:
	}
}

func (s *Sim) run(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		s.mu.Lock()
		m := s.master
		s.mu.Unlock()
		if m == nil {
			return
		}
		dec := ga467.NewDecoder(m)
		for ctx.Err() == nil {
			cmd, err := dec.ReadCommand()
			if err != nil {
				if errors.Is(err, ga467.ErrChecksum) {
					s.send(m, ga467.EncodeResponse(0, 0, ga467.SWChecksum, nil))
					continue
				}
				if errors.Is(err, ga467.ErrLength) {
					s.send(m, ga467.EncodeResponse(0, 0, ga467.SWLength, nil))
					continue
				}
				break // closed by unplug or Close
			}
			if replug := s.handle(m, cmd); replug {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The loop broke for an unplug: open the next pseudo-terminal.
		s.mu.Lock()
		unplugged := s.master == nil
		s.mu.Unlock()
		if !unplugged {
			return
		}
		down := 300 * time.Millisecond
		if st := s.current(); st != nil && st.Down > 0 {
			down = time.Duration(st.Down)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(down):
		}
		if err := s.plug(); err != nil {
			s.log.Error("cardsim: replug failed", "err", err)
			return
		}
		s.emit("replugged", s.Path())
		s.advancePastUnplug()
	}
}

// send writes b paced at the baud rate: a pseudo-terminal has no baud rate of its own.
func (s *Sim) send(m *os.File, b []byte) {
	const chunk = 32
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := m.Write(b[:n]); err != nil {
			return
		}
		time.Sleep(ga467.TransferTime(n, s.baud))
		b = b[n:]
	}
}

func (s *Sim) begin(i int) {
	s.step, s.phase, s.faultUsed = i, phaseWaiting, false
	if i >= len(s.cfg.Script.Steps) {
		select {
		case <-s.finished:
		default:
			s.emit("finished", "")
			close(s.finished)
		}
		return
	}
	st := s.cfg.Script.Steps[i]
	s.gap, s.hold = max(st.Gap, 1), st.Hold
	if s.hold == 0 {
		s.hold = 2
	}
}

func (s *Sim) current() *Step {
	if s.step >= len(s.cfg.Script.Steps) {
		return nil
	}
	return &s.cfg.Script.Steps[s.step]
}

// advance moves to the next step; it reports true when that step unplugs the reader.
func (s *Sim) advance() bool {
	s.begin(s.step + 1)
	if st := s.current(); st != nil && st.Fault == FaultUnplug {
		s.emit("unplugged", "")
		s.unplug()
		return true
	}
	return false
}

// advancePastUnplug runs after a replug: the unplug step goes on with its card, if any.
func (s *Sim) advancePastUnplug() {
	if s.current() == nil {
		return
	}
	s.faultUsed = true
	if s.cards[s.step] == nil {
		s.begin(s.step + 1)
	}
}

// handle answers one command. It reports true when the reader was unplugged.
func (s *Sim) handle(m *os.File, c ga467.Command) bool {
	st := s.current()
	card := (*ga467.Card)(nil)
	if st != nil {
		card = s.cards[s.step]
	}
	reply := func(sw3 byte, data []byte) { s.send(m, ga467.EncodeResponse(0, 0, sw3, data)) }
	if st != nil && st.Fault == FaultSAMError && !s.faultUsed && c.Cmd != ga467.CmdRead {
		s.faultUsed = true
		s.emit("fault", FaultSAMError)
		reply(ga467.SWSAMSelfTest, nil)
		if card == nil {
			return s.advance()
		}
		return false
	}
	switch {
	case c.Cmd == ga467.CmdSAMStatus, c.Cmd == ga467.CmdResetSAM:
		reply(ga467.SWOK, nil)
	case c.Cmd == ga467.CmdSAMID:
		reply(ga467.SWOK, make([]byte, 16))
	case c.Cmd == ga467.CmdCard && c.Para == ga467.ParaFind:
		switch {
		case card == nil:
			reply(ga467.SWNoCard, nil)
		case s.phase == phaseWaiting && s.gap > 0:
			s.gap--
			reply(ga467.SWNoCard, nil)
			if s.gap == 0 {
				s.phase = phasePresent
			}
		case s.phase == phasePresent:
			reply(ga467.SWFindOK, []byte{0, 0, 0, 0})
		case s.phase == phaseRead:
			s.hold--
			if s.cfg.Script.Refind && s.hold > 0 {
				reply(ga467.SWFindOK, []byte{0, 0, 0, 0})
				return false
			}
			reply(ga467.SWNoCard, nil)
			if s.hold <= 0 {
				return s.advance()
			}
		default:
			reply(ga467.SWNoCard, nil)
		}
	case c.Cmd == ga467.CmdCard && c.Para == ga467.ParaSelect:
		if card != nil && (s.phase == phasePresent || (s.phase == phaseRead && s.cfg.Script.Refind)) {
			reply(ga467.SWOK, make([]byte, 8))
		} else {
			reply(ga467.SWSelectFailed, nil)
		}
	case c.Cmd == ga467.CmdRead && c.Para == ga467.ParaTextPhoto:
		if card == nil || !(s.phase == phasePresent || (s.phase == phaseRead && s.cfg.Script.Refind)) {
			reply(ga467.SWReadFailed, nil)
			return false
		}
		return s.read(m, st, card)
	case c.Cmd == ga467.CmdRead && c.Para == ga467.ParaAddress:
		if card == nil || card.AppendedAddress == "" {
			reply(ga467.SWNoContent, nil)
			return false
		}
		reply(ga467.SWOK, ucs2(card.AppendedAddress, 70))
	default:
		reply(ga467.SWBadCommand, nil)
	}
	return false
}

func (s *Sim) read(m *os.File, st *Step, card *ga467.Card) bool {
	data := make([]byte, 0, 4+ga467.TextLen+ga467.PhotoLen)
	data = append(data, byte(ga467.TextLen>>8), byte(ga467.TextLen&0xff), byte(ga467.PhotoLen>>8), byte(ga467.PhotoLen&0xff))
	data = append(data, ga467.EncodeText(card)...)
	data = append(data, card.Photo...)
	frame := ga467.EncodeResponse(0, 0, ga467.SWOK, data)
	fault := ""
	if !s.faultUsed {
		fault = st.Fault
	}
	switch fault {
	case FaultBadChecksum:
		frame[len(frame)-1] ^= 0xFF
	case FaultTruncated:
		frame = frame[:len(frame)/2]
	case FaultWrongLength:
		frame[5], frame[6] = 0xFF, 0xF0
	case FaultSilence:
		frame = nil
	case FaultRemoved:
		s.faultUsed = true
		s.emit("fault", fault)
		s.send(m, ga467.EncodeResponse(0, 0, ga467.SWReadFailed, nil))
		return s.advance()
	case FaultNoise:
		noise := make([]byte, 48)
		for i := range noise {
			for noise[i] == 0 || noise[i] == 0x96 || noise[i] == 0xAA {
				noise[i] = byte(s.rng.UintN(256))
			}
		}
		frame = append(noise, frame...)
	}
	if fault != FaultNone && fault != FaultSAMError && fault != FaultUnplug {
		s.faultUsed = true
		s.emit("fault", fault)
		s.send(m, frame)
		if fault != FaultNoise {
			return false // the card stays; the device's next attempt reads it
		}
	} else {
		s.send(m, frame)
	}
	s.phase = phaseRead
	s.emit("served", maskNumber(card.Number))
	return false
}

func maskNumber(n string) string {
	if len(n) <= 10 {
		return strings.Repeat("*", len(n))
	}
	return n[:6] + strings.Repeat("*", len(n)-10) + n[len(n)-4:]
}

func ucs2(s string, n int) []byte {
	c := &ga467.Card{Address: s}
	b := ga467.EncodeText(c) // address field is 70 bytes at offset 52
	return b[52 : 52+n]
}
