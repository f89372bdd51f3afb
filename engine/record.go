package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Record is one person as JSON (a line of an import file, a policy test case): the plain ID number
// and the facts, with times in RFC 3339 (or a bare date, meaning 00:00 Beijing time).
type Record struct {
	ID           string          `json:"id"`
	Delete       bool            `json:"delete,omitempty"`
	Tests        []RecordTest    `json:"tests,omitempty"`
	Commuter     *RecordCommuter `json:"commuter,omitempty"`
	Popups       []RecordPopup   `json:"popups,omitempty"`
	Stays        []RecordStay    `json:"stays,omitempty"`
	Declarations []JSONTime      `json:"declarations,omitempty"`
	Inbound      JSONTime        `json:"inbound,omitempty"`
	PortEntry    JSONTime        `json:"port_entry,omitempty"`
	Clearances   []JSONTime      `json:"clearances,omitempty"`
	Updated      JSONTime        `json:"updated,omitempty"`
}

// RecordTest is a test in a Record.
type RecordTest struct {
	Sampled  JSONTime `json:"sampled"`
	Reported JSONTime `json:"reported"`
	Result   string   `json:"result"` // negative | positive
	Lab      string   `json:"lab,omitempty"`
}

// RecordCommuter is commuter membership in a Record.
type RecordCommuter struct {
	Since   JSONTime `json:"since"`
	Source  string   `json:"source,omitempty"`
	Revoked JSONTime `json:"revoked,omitempty"`
}

// RecordPopup is a popup flag in a Record.
type RecordPopup struct {
	N       uint8    `json:"n"`
	Since   JSONTime `json:"since"`
	Ref     JSONTime `json:"ref,omitempty"`
	Cleared JSONTime `json:"cleared,omitempty"`
}

// RecordStay is a stay in a Record.
type RecordStay struct {
	County string   `json:"county"`
	From   JSONTime `json:"from"`
	To     JSONTime `json:"to,omitempty"`
}

// JSONTime is a time in JSON: RFC 3339, or YYYY-MM-DD meaning 00:00 Beijing time. Empty or
// absent is zero.
type JSONTime Unix

// UnmarshalJSON parses RFC 3339 or a bare date.
func (t *JSONTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time must be a string: %w", err)
	}
	if s == "" {
		*t = 0
		return nil
	}
	if len(s) == len("2006-01-02") {
		d, err := time.ParseInLocation("2006-01-02", s, Beijing)
		if err != nil {
			return fmt.Errorf("date %q: want YYYY-MM-DD", s)
		}
		*t = JSONTime(d.Unix())
		return nil
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("time %q: want RFC 3339, e.g. 2021-11-20T08:00:00+08:00", s)
	}
	if v.Year() < 1971 || v.Year() > 9999 {
		return fmt.Errorf("time %q out of range", s)
	}
	*t = JSONTime(v.Unix())
	return nil
}

// MarshalJSON writes RFC 3339 in Beijing time; zero is "".
func (t JSONTime) MarshalJSON() ([]byte, error) {
	if t == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(time.Unix(int64(t), 0).In(Beijing).Format(time.RFC3339))
}

// MaxRecordLine bounds one JSON record.
const MaxRecordLine = 64 << 10

// ParseRecord decodes one JSON record strictly (unknown fields are errors), validates the ID
// number and the facts, and returns them. A delete record returns nil facts.
func ParseRecord(line []byte) (Identity, *Facts, error) {
	if len(line) > MaxRecordLine {
		return Identity{}, nil, fmt.Errorf("record is %d bytes, at most %d", len(line), MaxRecordLine)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return Identity{}, nil, fmt.Errorf("decode JSON: %w", err)
	}
	if dec.More() {
		return Identity{}, nil, fmt.Errorf("decode JSON: more than one value on the line")
	}
	return r.Facts()
}

// Facts validates the record and converts it.
func (r *Record) Facts() (Identity, *Facts, error) {
	id, err := ParseID(r.ID)
	if err != nil {
		return Identity{}, nil, err
	}
	if r.Delete {
		return id, nil, nil
	}
	f := &Facts{Schema: 1, Inbound: Unix(r.Inbound), PortEntry: Unix(r.PortEntry), Updated: Unix(r.Updated)}
	for _, t := range r.Tests {
		var res Result
		switch strings.ToLower(t.Result) {
		case "negative":
			res = ResultNegative
		case "positive":
			res = ResultPositive
		default:
			return id, nil, fmt.Errorf("%w: test result %q: want negative or positive", ErrInvalidFacts, t.Result)
		}
		f.Tests = append(f.Tests, Test{Sampled: Unix(t.Sampled), Reported: Unix(t.Reported), Result: res, Lab: t.Lab})
	}
	if c := r.Commuter; c != nil {
		if c.Since == 0 {
			return id, nil, fmt.Errorf("%w: commuter.since is required", ErrInvalidFacts)
		}
		f.Commuter = &Commuter{Since: Unix(c.Since), Source: c.Source, Revoked: Unix(c.Revoked)}
	}
	for _, p := range r.Popups {
		f.Popups = append(f.Popups, Popup{N: p.N, Since: Unix(p.Since), Ref: Unix(p.Ref), Cleared: Unix(p.Cleared)})
	}
	for _, s := range r.Stays {
		f.Stays = append(f.Stays, Stay{County: s.County, From: Unix(s.From), To: Unix(s.To)})
	}
	for _, d := range r.Declarations {
		f.Declarations = append(f.Declarations, Unix(d))
	}
	for _, c := range r.Clearances {
		f.Clearances = append(f.Clearances, Unix(c))
	}
	if err := f.Validate(); err != nil {
		return id, nil, err
	}
	return id, f, nil
}
