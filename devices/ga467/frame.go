package ga467

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Preamble starts every frame: three sync bytes and the 96 69 start mark.
var Preamble = [5]byte{0xAA, 0xAA, 0xAA, 0x96, 0x69}

// Commands (CMD, Para) of GA467.md section 2.
const (
	CmdResetSAM        = 0x10
	CmdSAMStatus       = 0x11
	CmdSAMID           = 0x12
	CmdCard            = 0x20 // Para 01 find, 02 select
	CmdRead            = 0x30 // Para 01 text+photo, 03 appended address, 10 text+photo+fingerprint
	ParaFind           = 0x01
	ParaSelect         = 0x02
	ParaTextPhoto      = 0x01
	ParaAddress        = 0x03
	ParaTextPhotoPrint = 0x10
	ParaNone           = 0xFF
)

// Status codes (SW3) of GA467.md section 3.
const (
	SWOK           = 0x90
	SWFindOK       = 0x9F
	SWNoContent    = 0x91
	SWChecksum     = 0x10
	SWLength       = 0x11
	SWBadCommand   = 0x21
	SWNotPermitted = 0x23
	SWUnrecognised = 0x24
	SWCardAuthSAM  = 0x31
	SWSAMAuthCard  = 0x32
	SWVerify       = 0x33
	SWCardType     = 0x40
	SWReadFailed   = 0x41
	SWRandom       = 0x47
	SWSAMSelfTest  = 0x60
	SWSAMNotAuth   = 0x66
	SWNoCard       = 0x80
	SWSelectFailed = 0x81
)

// MaxFrameLen bounds the length field: the largest known frame (read with fingerprint) has
// Len 2314; anything above this is line noise, not a frame.
const MaxFrameLen = 4096

// Errors of the frame layer. Match with errors.Is.
var (
	// ErrChecksum reports a frame whose XOR checksum does not match.
	ErrChecksum = errors.New("ga467: frame checksum mismatch")
	// ErrLength reports a length field outside what any response can have.
	ErrLength = errors.New("ga467: bad frame length")
	// ErrTimeout reports no complete frame within the command's time limit.
	ErrTimeout = errors.New("ga467: timed out waiting for the reader")
	// ErrDisconnected reports a reader that went away (unplugged, port closed).
	ErrDisconnected = errors.New("ga467: reader disconnected")
	// ErrShortData reports a response whose data is shorter than its command needs.
	ErrShortData = errors.New("ga467: response data too short")
)

// Checksum is the XOR of every byte from the length field to the last data byte.
func Checksum(b []byte) byte {
	var c byte
	for _, x := range b {
		c ^= x
	}
	return c
}

// EncodeCommand builds a host -> reader frame.
func EncodeCommand(cmd, para byte, data []byte) []byte {
	n := 2 + len(data) + 1 // CMD + Para + data + CHK
	b := make([]byte, 0, 7+n)
	b = append(b, Preamble[:]...)
	b = append(b, byte(n>>8), byte(n), cmd, para)
	b = append(b, data...)
	return append(b, Checksum(b[5:]))
}

// EncodeResponse builds a reader -> host frame (for simulators and tests).
func EncodeResponse(sw1, sw2, sw3 byte, data []byte) []byte {
	n := 3 + len(data) + 1
	b := make([]byte, 0, 7+n)
	b = append(b, Preamble[:]...)
	b = append(b, byte(n>>8), byte(n), sw1, sw2, sw3)
	b = append(b, data...)
	return append(b, Checksum(b[5:]))
}

// Response is a decoded reader -> host frame.
type Response struct {
	SW1, SW2, SW3 byte
	Data          []byte
}

// Command is a decoded host -> reader frame.
type Command struct {
	Cmd, Para byte
	Data      []byte
}

// Decoder reads frames from a byte stream. It resynchronises on the 96 69 start mark, so
// garbage before a frame (line noise, the tail of a truncated frame) is skipped and counted.
type Decoder struct {
	r *bufio.Reader
	// Skipped counts bytes discarded while looking for a frame start.
	Skipped int
}

// NewDecoder reads frames from r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: bufio.NewReaderSize(r, 4096)} }

// Reset drops buffered bytes and reads from r from now on.
func (d *Decoder) Reset(r io.Reader) { d.r.Reset(r) }

// Buffered reports how many bytes are buffered.
func (d *Decoder) Buffered() int { return d.r.Buffered() }

// next returns the body of the next frame: the length bytes and everything after them,
// checksum verified.
func (d *Decoder) next() ([]byte, error) {
	var prev byte
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if prev == 0x96 && c == 0x69 {
			break
		}
		if c != 0xAA && c != 0x96 {
			d.Skipped++
		}
		prev = c
	}
	var lb [2]byte
	if _, err := io.ReadFull(d.r, lb[:]); err != nil {
		return nil, err
	}
	n := int(lb[0])<<8 | int(lb[1])
	if n < 3 || n > MaxFrameLen {
		return nil, fmt.Errorf("%w: %d", ErrLength, n)
	}
	body := make([]byte, 2+n)
	copy(body, lb[:])
	if _, err := io.ReadFull(d.r, body[2:]); err != nil {
		return nil, err
	}
	if Checksum(body[:len(body)-1]) != body[len(body)-1] {
		return nil, ErrChecksum
	}
	return body, nil
}

// ReadResponse reads the next reader -> host frame.
func (d *Decoder) ReadResponse() (Response, error) {
	body, err := d.next()
	if err != nil {
		return Response{}, err
	}
	if len(body) < 2+4 {
		return Response{}, fmt.Errorf("%w: %d, a response needs at least 4", ErrLength, len(body)-2)
	}
	return Response{SW1: body[2], SW2: body[3], SW3: body[4], Data: body[5 : len(body)-1]}, nil
}

// ReadCommand reads the next host -> reader frame (simulators).
func (d *Decoder) ReadCommand() (Command, error) {
	body, err := d.next()
	if err != nil {
		return Command{}, err
	}
	return Command{Cmd: body[2], Para: body[3], Data: body[4 : len(body)-1]}, nil
}
