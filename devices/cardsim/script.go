package cardsim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gatecheck/gatecheck/devices/ga467"
)

// Faults a step can inject.
const (
	FaultNone        = ""
	FaultBadChecksum = "bad_checksum" // the read response has a wrong checksum; the next read is fine
	FaultTruncated   = "truncated"    // only the first half of the read response is sent
	FaultWrongLength = "wrong_length" // the read response's length field is corrupt
	FaultSilence     = "silence"      // no answer to the read
	FaultRemoved     = "removed"      // the card is taken away mid-read: status 41, card gone
	FaultNoise       = "noise"        // a burst of line noise before the read response
	FaultSAMError    = "sam_error"    // the next SAM status check answers 60 (self-test failed)
	FaultUnplug      = "unplug"       // the reader is unplugged before the card (new pty, symlink moved)
)

// Script is a reader session: cards presented one after another.
type Script struct {
	// Baud paces the simulator's bytes; 0 means 115200.
	Baud int `json:"baud,omitempty"`
	// Refind makes find succeed again while a card that was read stays on the reader (some
	// readers do; most answer "no card" until the card is taken away and put back).
	Refind bool   `json:"refind,omitempty"`
	Steps  []Step `json:"steps"`
}

// Step is one card on the reader (or one fault).
type Step struct {
	Card *CardSpec `json:"card,omitempty"`
	// Fault injects one failure into this step (see the Fault* constants).
	Fault string `json:"fault,omitempty"`
	// Gap is how many find polls are answered "no card" before the card appears; 0 means 1.
	Gap int `json:"gap,omitempty"`
	// Hold is how many find polls the card stays on the reader after it was read; 0 means 2.
	Hold int `json:"hold,omitempty"`
	// Down is how long the reader stays unplugged (FaultUnplug); 0 means 300ms.
	Down Duration `json:"down,omitempty"`
}

// CardSpec is a card's printed fields, as JSON.
type CardSpec struct {
	Type            string `json:"type,omitempty"` // resident (default), hmt-permit, foreign-permanent, foreign-permanent-2017
	Name            string `json:"name"`
	EnglishName     string `json:"english_name,omitempty"`
	Gender          string `json:"gender,omitempty"`
	Nation          string `json:"nation,omitempty"`
	Birth           string `json:"birth"`
	Address         string `json:"address,omitempty"`
	Number          string `json:"number"`
	Authority       string `json:"authority,omitempty"`
	ValidFrom       string `json:"valid_from,omitempty"`
	ValidTo         string `json:"valid_to,omitempty"`
	PassNumber      string `json:"pass_number,omitempty"`
	Nationality     string `json:"nationality,omitempty"`
	AppendedAddress string `json:"appended_address,omitempty"`
}

// Duration is a time.Duration written as "300ms" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "300ms", "2s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"300ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "300ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Card converts the spec into the reader's card.
func (c *CardSpec) Card() (*ga467.Card, error) {
	t := ga467.CardResident
	switch c.Type {
	case "", "resident":
	case "hmt-permit":
		t = ga467.CardHMT
	case "foreign-permanent":
		t = ga467.CardForeign
	case "foreign-permanent-2017":
		t = ga467.CardForeign17
	default:
		return nil, fmt.Errorf("card type %q: want resident, hmt-permit, foreign-permanent or foreign-permanent-2017", c.Type)
	}
	g := c.Gender
	if g == "" {
		g = "1"
	}
	return &ga467.Card{Type: t, Name: c.Name, EnglishName: c.EnglishName, Gender: g, Nation: c.Nation, Birth: c.Birth,
		Address: c.Address, Number: c.Number, Authority: c.Authority, ValidFrom: c.ValidFrom, ValidTo: c.ValidTo,
		PassNumber: c.PassNumber, Nationality: c.Nationality, AppendedAddress: c.AppendedAddress}, nil
}

// Validate checks the script.
func (s *Script) Validate() error {
	switch s.Baud {
	case 0, 115200, 57600, 38400, 19200, 9600:
	default:
		return fmt.Errorf("baud %d: want 115200, 57600, 38400, 19200 or 9600", s.Baud)
	}
	for i, st := range s.Steps {
		switch st.Fault {
		case FaultNone, FaultBadChecksum, FaultTruncated, FaultWrongLength, FaultSilence, FaultRemoved, FaultNoise, FaultSAMError, FaultUnplug:
		default:
			return fmt.Errorf("step %d: unknown fault %q", i+1, st.Fault)
		}
		if st.Card != nil {
			c, err := st.Card.Card()
			if err != nil {
				return fmt.Errorf("step %d: %w", i+1, err)
			}
			if _, err := ga467.ParseText(ga467.EncodeText(c)); err != nil {
				return fmt.Errorf("step %d: card does not encode: %w", i+1, err)
			}
		} else if st.Fault != FaultUnplug && st.Fault != FaultSAMError {
			return fmt.Errorf("step %d: a card is required (only unplug and sam_error steps may have none)", i+1)
		}
	}
	return nil
}

// LoadScript reads a JSON script.
func LoadScript(path string) (*Script, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	defer f.Close()
	return ParseScript(f)
}

// ParseScript decodes and validates a JSON script.
func ParseScript(r io.Reader) (*Script, error) {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	var s Script
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parse script: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("script: %w", err)
	}
	return &s, nil
}
