package ga467

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tarm/serial"
)

// Port is the byte stream to a reader. *serial.Port (tarm/serial) satisfies it.
type Port interface {
	io.ReadWriteCloser
}

// OpenFunc opens a port. The default opens a serial port with tarm/serial, 8N1, with a
// read timeout of vtime (Linux VTIME granularity is 0.1 s): a read with nothing to return
// gives (0, io.EOF) after vtime.
type OpenFunc func(path string, baud int, vtime time.Duration) (Port, error)

// OpenSerial is the default OpenFunc.
func OpenSerial(path string, baud int, vtime time.Duration) (Port, error) {
	p, err := serial.OpenPort(&serial.Config{Name: path, Baud: baud, ReadTimeout: vtime})
	if err != nil {
		return nil, err // already names the path
	}
	return p, nil
}

// Config configures a Reader.
type Config struct {
	// Path is the serial device (or a stable symlink to it). Required.
	Path string
	// Baud defaults to 115200, the GA 467 default.
	Baud int
	// CommandTimeout bounds find, select and the SAM status; zero means 1 s.
	CommandTimeout time.Duration
	// ReadTimeout bounds a text+photo read (1295 bytes: 112 ms at 115200, 1.35 s at 9600);
	// zero means 1 s plus the frame's transfer time at Baud.
	ReadTimeout time.Duration
	// Open opens the port; nil means OpenSerial.
	Open OpenFunc
	// Logger; nil discards logs.
	Logger *slog.Logger
}

// vtime is the port's read timeout: the granularity of every wait.
const vtime = 100 * time.Millisecond

// Validate fills defaults and checks the config.
func (c *Config) Validate() error {
	if c.Path == "" {
		return errors.New("ga467: port path is required")
	}
	if c.Baud == 0 {
		c.Baud = 115200
	}
	switch c.Baud {
	case 115200, 57600, 38400, 19200, 9600:
	default:
		return fmt.Errorf("ga467: baud %d: the reader speaks 115200, 57600, 38400, 19200 or 9600", c.Baud)
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = time.Second + TransferTime(7+4+4+TextLen+PhotoLen, c.Baud)
	}
	if c.Open == nil {
		c.Open = OpenSerial
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// TransferTime is how long n bytes take on the wire at baud (10 bits a byte, 8N1).
func TransferTime(n, baud int) time.Duration {
	return time.Duration(n) * 10 * time.Second / time.Duration(baud)
}

// Reader drives one GA 467 reader. Its methods are not safe for concurrent use; Close may be
// called from another goroutine and makes a pending command fail.
type Reader struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // guards port and closed against Close
	port   Port
	closed bool
	dec    *Decoder
	pr     *portReader
}

// Open opens the reader's port.
func Open(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Reader{cfg: cfg, log: cfg.Logger}
	r.pr = &portReader{r: r}
	r.dec = NewDecoder(r.pr)
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenLater returns a Reader whose port is not open yet (the reader is not plugged in): every
// command fails with ErrDisconnected until Reconnect opens it.
func OpenLater(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Reader{cfg: cfg, log: cfg.Logger}
	r.pr = &portReader{r: r}
	r.dec = NewDecoder(r.pr)
	return r, nil
}

func (r *Reader) open() error {
	p, err := r.cfg.Open(r.cfg.Path, r.cfg.Baud, vtime)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		p.Close()
		return ErrDisconnected
	}
	r.port = p
	r.dec.Reset(r.pr)
	return nil
}

// Connected reports whether the port is open.
func (r *Reader) Connected() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.port != nil
}

// Close closes the port. It is safe to call more than once.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.port == nil {
		return nil
	}
	err := r.port.Close()
	r.port = nil
	return err
}

// Reconnect closes the port and opens it again, retrying with backoff (100 ms doubling to 2 s)
// until it opens or ctx ends. A replugged USB reader, or a simulator that republished its
// symlink, comes back this way without restarting the process.
func (r *Reader) Reconnect(ctx context.Context) error {
	r.mu.Lock()
	if r.port != nil {
		r.port.Close()
		r.port = nil
	}
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrDisconnected
	}
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.open()
		if err == nil {
			r.log.Info("card reader reconnected", "port", r.cfg.Path, "attempts", attempt)
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			r.log.Warn("card reader not available; retrying", "port", r.cfg.Path, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// portReader turns the port's (0, io.EOF) timeouts into a deadline and tells a hangup (EOFs
// arriving much faster than the port's read timeout) from silence.
type portReader struct {
	r        *Reader
	deadline time.Time
}

func (p *portReader) Read(b []byte) (int, error) {
	quick := 0
	for {
		p.r.mu.Lock()
		port := p.r.port
		p.r.mu.Unlock()
		if port == nil {
			return 0, ErrDisconnected
		}
		start := time.Now()
		if start.After(p.deadline) {
			// Checked on every read, not only on silence: a line full of noise must not keep
			// a command waiting for ever.
			return 0, ErrTimeout
		}
		n, err := port.Read(b)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: %w", ErrDisconnected, err)
		}
		// (0, EOF): the port's read timeout, or a hangup if it came back at once.
		if time.Since(start) < vtime/10 {
			if quick++; quick >= 3 {
				return 0, fmt.Errorf("%w: port hung up", ErrDisconnected)
			}
		} else {
			quick = 0
		}
		if time.Now().After(p.deadline) {
			return 0, ErrTimeout
		}
	}
}

// Transact sends a command and returns the reader's response, or ErrTimeout, ErrChecksum,
// ErrLength or ErrDisconnected. Bytes left over from an earlier command are discarded first.
func (r *Reader) Transact(cmd, para byte, data []byte, timeout time.Duration) (Response, error) {
	r.mu.Lock()
	port := r.port
	r.mu.Unlock()
	if port == nil {
		return Response{}, ErrDisconnected
	}
	if f, ok := port.(interface{ Flush() error }); ok {
		_ = f.Flush() // drop a late answer to an earlier command
	}
	r.dec.Reset(r.pr)
	if _, err := port.Write(EncodeCommand(cmd, para, data)); err != nil {
		return Response{}, fmt.Errorf("%w: write: %w", ErrDisconnected, err)
	}
	r.pr.deadline = time.Now().Add(timeout)
	skipped := r.dec.Skipped
	resp, err := r.dec.ReadResponse()
	if n := r.dec.Skipped - skipped; n > 0 {
		r.log.Warn("card reader: skipped line noise before a frame", "bytes", n, "cmd", fmt.Sprintf("%02X %02X", cmd, para))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = ErrTimeout
	}
	if err != nil {
		if !errors.Is(err, ErrDisconnected) {
			// The rest of a broken frame may still be on the wire: wait for the line to go
			// quiet, so it is not taken for the answer to the next command.
			r.drain(2 * time.Second)
		}
		return Response{}, fmt.Errorf("command %02X %02X: %w", cmd, para, err)
	}
	return resp, nil
}

// drain discards input until the line has been quiet for one read timeout, or for at most max.
func (r *Reader) drain(max time.Duration) {
	r.mu.Lock()
	port := r.port
	r.mu.Unlock()
	if port == nil {
		return
	}
	buf := make([]byte, 512)
	end := time.Now().Add(max)
	dropped := r.dec.Buffered()
	for time.Now().Before(end) {
		start := time.Now()
		n, err := port.Read(buf)
		dropped += n
		if n == 0 && (err == nil || errors.Is(err, io.EOF)) && time.Since(start) >= vtime/2 {
			break // a full read timeout of silence
		}
		if n == 0 && time.Since(start) < vtime/10 {
			break // hung up: the next command will say so
		}
	}
	r.dec.Reset(r.pr)
	if dropped > 0 {
		r.log.Debug("card reader: drained the line", "bytes", dropped)
	}
}

func (r *Reader) expect(cmd, para byte, ok byte, timeout time.Duration) (Response, error) {
	resp, err := r.Transact(cmd, para, nil, timeout)
	if err != nil {
		return resp, err
	}
	if resp.SW3 != ok {
		return resp, &StatusError{Cmd: cmd, Para: para, Code: resp.SW3}
	}
	return resp, nil
}

// SAMStatus checks the reader's SAM module.
func (r *Reader) SAMStatus() error {
	_, err := r.expect(CmdSAMStatus, ParaNone, SWOK, r.cfg.CommandTimeout)
	return err
}

// FindCard reports whether a card is on the reader.
func (r *Reader) FindCard() (bool, error) {
	resp, err := r.Transact(CmdCard, ParaFind, nil, r.cfg.CommandTimeout)
	if err != nil {
		return false, err
	}
	switch resp.SW3 {
	case SWFindOK:
		return true, nil
	case SWNoCard:
		return false, nil
	}
	return false, &StatusError{Cmd: CmdCard, Para: ParaFind, Code: resp.SW3}
}

// SelectCard selects the card found.
func (r *Reader) SelectCard() error {
	_, err := r.expect(CmdCard, ParaSelect, SWOK, r.cfg.CommandTimeout)
	return err
}

// ReadCard reads the text and photo of the selected card, and its newest appended address
// where it has one.
func (r *Reader) ReadCard() (*Card, error) {
	resp, err := r.expect(CmdRead, ParaTextPhoto, SWOK, r.cfg.ReadTimeout)
	if err != nil {
		return nil, err
	}
	c, err := ParseTextPhoto(resp.Data)
	if err != nil {
		return nil, err
	}
	if c.Type == CardResident {
		addr, err := r.Transact(CmdRead, ParaAddress, nil, r.cfg.CommandTimeout)
		switch {
		case errors.Is(err, ErrDisconnected):
			// The card itself was read: decide on it; the next poll finds the reader gone.
			r.log.Warn("card reader: disconnected while reading the appended address", "err", err)
		case err != nil:
			r.log.Warn("card reader: appended address not read", "err", err)
		case addr.SW3 == SWOK:
			c.AppendedAddress = ucs2(addr.Data)
		}
	}
	return c, nil
}

// ParseTextPhoto parses the data of a 30 01 response: text length and photo length (2 bytes
// each, big-endian), the 256-byte text block and the photo.
func ParseTextPhoto(d []byte) (*Card, error) {
	if len(d) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrShortData, len(d))
	}
	tl := int(d[0])<<8 | int(d[1])
	pl := int(d[2])<<8 | int(d[3])
	if tl != TextLen || pl > PhotoLen || len(d) < 4+tl+pl {
		return nil, fmt.Errorf("%w: text %d, photo %d, data %d bytes", ErrShortData, tl, pl, len(d))
	}
	c, err := ParseText(d[4 : 4+tl])
	if err != nil {
		return nil, err
	}
	c.Photo = append([]byte(nil), d[4+tl:4+tl+pl]...)
	return c, nil
}

// Poll runs find -> select -> read once. It returns (nil, nil) when no card is on the reader.
func (r *Reader) Poll() (*Card, error) {
	found, err := r.FindCard()
	if err != nil || !found {
		return nil, err
	}
	if err := r.SelectCard(); err != nil {
		return nil, err
	}
	return r.ReadCard()
}

// Exists reports whether the configured path currently names a device node (a replugged USB
// reader's node, or a simulator's symlink, may be gone for a moment).
func (r *Reader) Exists() bool {
	_, err := os.Stat(r.cfg.Path)
	return err == nil
}
