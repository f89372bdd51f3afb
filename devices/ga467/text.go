package ga467

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf16"
)

// TextLen and PhotoLen are the sizes of the blocks a 30 01 read returns.
const (
	TextLen  = 256
	PhotoLen = 1024
)

// CardType is the card-type flag at bytes 248-249 of the text block.
type CardType byte

// Card types.
const (
	CardResident   CardType = ' ' // resident identity card (no flag)
	CardHMT        CardType = 'J' // HK/Macao/Taiwan residence permit
	CardForeign    CardType = 'Y' // foreigner permanent residence card, 2023
	CardForeign17  CardType = 'I' // foreigner permanent residence card, 2017
	cardTypeOffset          = 248
)

func (t CardType) String() string {
	switch t {
	case CardResident:
		return "resident"
	case CardHMT:
		return "hmt-permit"
	case CardForeign:
		return "foreign-permanent"
	case CardForeign17:
		return "foreign-permanent-2017"
	}
	return fmt.Sprintf("unknown(%q)", byte(t))
}

// ErrText reports a text block that cannot be parsed.
var ErrText = errors.New("ga467: bad text block")

// Card is what a reader returns for one card. Number is the document number as printed; Card's
// String and LogValue redact it and the name.
type Card struct {
	Type        CardType
	Name        string // Chinese name (or the name of a resident/J card)
	EnglishName string // foreigner cards
	Gender      string // GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 not stated
	Nation      string // GB 3304 code (resident); unknown codes pass through
	Birth       string // YYYYMMDD
	Address     string
	Number      string
	Authority   string
	ValidFrom   string
	ValidTo     string // YYYYMMDD or 长期
	PassNumber  string // J: HK/Macao/Taiwan pass number
	Nationality string // foreigner cards: GB/T 2659 code
	// AppendedAddress is the newest appended address (追加住址) where the card has one.
	AppendedAddress string
	// Photo is the 1024-byte WLT photo, kept as read.
	Photo []byte
}

// String redacts the number and the name.
func (c *Card) String() string {
	return fmt.Sprintf("%s card %s", c.Type, maskNumber(c.Number))
}

// LogValue redacts for log/slog.
func (c *Card) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", c.Type.String()), slog.String("number", maskNumber(c.Number)))
}

func maskNumber(s string) string {
	if len(s) <= 10 {
		return strings.Repeat("*", len(s))
	}
	return s[:6] + strings.Repeat("*", len(s)-10) + s[len(s)-4:]
}

// ucs2 decodes a UCS-2 little-endian field, trimming the space padding (and NULs).
func ucs2(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
	}
	return strings.TrimRight(string(utf16.Decode(u)), " \x00")
}

type field struct {
	off, n int
	dst    func(*Card) *string
}

var (
	residentLayout = []field{
		{0, 30, func(c *Card) *string { return &c.Name }},
		{30, 2, func(c *Card) *string { return &c.Gender }},
		{32, 4, func(c *Card) *string { return &c.Nation }},
		{36, 16, func(c *Card) *string { return &c.Birth }},
		{52, 70, func(c *Card) *string { return &c.Address }},
		{122, 36, func(c *Card) *string { return &c.Number }},
		{158, 30, func(c *Card) *string { return &c.Authority }},
		{188, 16, func(c *Card) *string { return &c.ValidFrom }},
		{204, 16, func(c *Card) *string { return &c.ValidTo }},
	}
	hmtLayout = append(append([]field(nil), residentLayout...),
		field{220, 18, func(c *Card) *string { return &c.PassNumber }})
	foreignLayout = []field{
		{0, 30, func(c *Card) *string { return &c.Name }},
		{30, 2, func(c *Card) *string { return &c.Gender }},
		{36, 16, func(c *Card) *string { return &c.Birth }},
		{52, 70, func(c *Card) *string { return &c.EnglishName }}, // characters 1-35
		{122, 36, func(c *Card) *string { return &c.Number }},
		{188, 16, func(c *Card) *string { return &c.ValidFrom }},
		{204, 16, func(c *Card) *string { return &c.ValidTo }},
		{242, 6, func(c *Card) *string { return &c.Nationality }},
	}
	foreign17Layout = []field{
		{0, 120, func(c *Card) *string { return &c.EnglishName }},
		{120, 2, func(c *Card) *string { return &c.Gender }},
		{122, 30, func(c *Card) *string { return &c.Number }},
		{152, 6, func(c *Card) *string { return &c.Nationality }},
		{158, 30, func(c *Card) *string { return &c.Name }},
		{188, 16, func(c *Card) *string { return &c.ValidFrom }},
		{204, 16, func(c *Card) *string { return &c.ValidTo }},
		{220, 16, func(c *Card) *string { return &c.Birth }},
	}
)

// ParseText parses a 256-byte text block by its card-type flag. It checks the structure a
// reader guarantees (a known flag, a number of the right length in digits and letters, an
// 8-digit birth date); validating the number itself (check digit, real date) is the caller's.
func ParseText(b []byte) (*Card, error) {
	if len(b) != TextLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrText, len(b), TextLen)
	}
	c := &Card{}
	var layout []field
	var wantLen int
	switch flag := b[cardTypeOffset]; {
	case b[cardTypeOffset+1] != 0:
		return nil, fmt.Errorf("%w: card-type flag %02X %02X is not a UCS-2 letter", ErrText, b[cardTypeOffset], b[cardTypeOffset+1])
	case flag == ' ' || flag == 0:
		c.Type, layout, wantLen = CardResident, residentLayout, 18
	case flag == 'J':
		c.Type, layout, wantLen = CardHMT, hmtLayout, 18
	case flag == 'Y':
		c.Type, layout, wantLen = CardForeign, foreignLayout, 18
	case flag == 'I':
		c.Type, layout, wantLen = CardForeign17, foreign17Layout, 15
	default:
		return nil, fmt.Errorf("%w: unknown card-type flag %q", ErrText, flag)
	}
	for _, f := range layout {
		*f.dst(c) = ucs2(b[f.off : f.off+f.n])
	}
	if c.Type == CardForeign {
		c.EnglishName = strings.TrimRight(c.EnglishName+ucs2(b[220:242]), " ")
	}
	if len(c.Number) != wantLen || !alnum(c.Number) {
		return nil, fmt.Errorf("%w: %s number has %d characters, want %d letters or digits", ErrText, c.Type, len(c.Number), wantLen)
	}
	if len(c.Birth) != 8 || !digits(c.Birth) {
		return nil, fmt.Errorf("%w: birth date is not 8 digits", ErrText)
	}
	return c, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9') && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// EncodeText builds a 256-byte text block for a card (simulators and tests): the inverse of
// ParseText for the fields it reads.
func EncodeText(c *Card) []byte {
	b := make([]byte, TextLen)
	for i := 0; i < TextLen; i += 2 {
		b[i] = ' '
	}
	put := func(off, n int, s string) {
		u := utf16.Encode([]rune(s))
		for i := 0; i < len(u) && 2*i+1 < n; i++ {
			b[off+2*i] = byte(u[i])
			b[off+2*i+1] = byte(u[i] >> 8)
		}
	}
	layout := residentLayout
	switch c.Type {
	case CardHMT:
		layout = hmtLayout
	case CardForeign:
		layout = foreignLayout
	case CardForeign17:
		layout = foreign17Layout
	}
	for _, f := range layout {
		v := *f.dst(c)
		if c.Type == CardForeign && f.off == 52 && len([]rune(v)) > 35 {
			put(220, 22, string([]rune(v)[35:]))
			v = string([]rune(v)[:35])
		}
		put(f.off, f.n, v)
	}
	if c.Type != CardResident && c.Type != 0 {
		b[cardTypeOffset], b[cardTypeOffset+1] = byte(c.Type), 0
	}
	return b
}
