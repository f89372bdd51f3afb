package engine

import (
	"log/slog"
	"strings"
	"time"
)

// DocType is the kind of identity document a number belongs to.
type DocType uint8

// Document types. The card-type flag of a GA 467 text block maps onto these (see devices/ga467).
const (
	DocUnknown DocType = iota
	// DocResident is the 18-digit resident identity card (居民身份证).
	DocResident
	// DocHMT is the Hong Kong / Macao / Taiwan residence permit (港澳台居民居住证), numbers 81/82/83….
	DocHMT
	// DocForeign is the 2023 foreigner permanent residence ID card (外国人永久居留身份证), 18 digits
	// starting with 9.
	DocForeign
	// DocForeign2017 is the 2017 foreigner permanent residence card with its 15-character number.
	DocForeign2017
)

var docTypeNames = [...]string{"unknown", "resident", "hmt-permit", "foreign-permanent", "foreign-permanent-2017"}

func (d DocType) String() string {
	if int(d) < len(docTypeNames) {
		return docTypeNames[d]
	}
	return "unknown"
}

// IDNumber is an identity number. It redacts itself in logs and fmt output; use Plain for the
// few places (hashing, the officer's own screen) that need the digits.
type IDNumber string

// Plain returns the number itself.
func (n IDNumber) Plain() string { return string(n) }

// Masked shows the first 6 and last 4 characters only, as Chinese receipts do: 110105********002X.
func (n IDNumber) Masked() string {
	s := string(n)
	if len(s) <= 10 {
		return strings.Repeat("*", len(s))
	}
	return s[:6] + strings.Repeat("*", len(s)-10) + s[len(s)-4:]
}

// String redacts: an ID number never reaches a log by accident.
func (n IDNumber) String() string { return n.Masked() }

// LogValue redacts for log/slog.
func (n IDNumber) LogValue() slog.Value { return slog.StringValue(n.Masked()) }

// Identity is the person presented at the checkpoint: read from a card or typed in by an officer.
type Identity struct {
	Type   DocType
	Number IDNumber
	// Birth is the birth date at 00:00 Beijing time.
	Birth time.Time
	// Male is true for an odd sequence digit (resident, HMT, 2023 foreign numbers).
	Male bool
	// Region is the 6-digit administrative code of resident numbers (first six digits).
	Region string
}

// Beijing is UTC+8, the calendar every day count of the policy uses. It is a fixed zone, so the
// binary needs no tzdata on a device.
var Beijing = time.FixedZone("CST", 8*60*60)

var mod112Weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const mod112Check = "10X98765432"

// CheckDigit computes the ISO 7064 MOD 11-2 check character for the first 17 digits of an
// 18-character number. first17 must be 17 ASCII digits.
func CheckDigit(first17 string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * mod112Weights[i]
	}
	return mod112Check[sum%11]
}

// ParseID validates an identity number typed in or read from a card and returns the identity it
// names. Lower-case x is accepted as the check character. The error is an *IDError (matching
// ErrInvalidID) whose reason never repeats the number.
func ParseID(s string) (Identity, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	switch len(s) {
	case 18:
		return parse18(s)
	case 15:
		return parseForeign2017(s)
	case 0:
		return Identity{}, &IDError{Reason: "empty"}
	default:
		return Identity{}, &IDError{Reason: "must be 18 characters (or 15 for a 2017 foreigner card)"}
	}
}

func parse18(s string) (Identity, error) {
	for i := 0; i < 17; i++ {
		if s[i] < '0' || s[i] > '9' {
			return Identity{}, &IDError{Reason: "the first 17 characters must be digits"}
		}
	}
	if c := s[17]; (c < '0' || c > '9') && c != 'X' {
		return Identity{}, &IDError{Reason: "the last character must be a digit or X"}
	}
	if CheckDigit(s[:17]) != s[17] {
		return Identity{}, &IDError{Reason: "check digit does not match (ISO 7064 MOD 11-2)"}
	}
	birth, ok := parseDate(s[6:14])
	if !ok {
		return Identity{}, &IDError{Reason: "birth date is not a real date"}
	}
	id := Identity{Number: IDNumber(s), Birth: birth, Male: (s[16]-'0')%2 == 1, Region: s[:6]}
	switch {
	case s[0] == '9':
		id.Type = DocForeign
		id.Region = ""
	case s[:2] == "81" || s[:2] == "82" || s[:2] == "83":
		if s[2:6] != "0000" {
			return Identity{}, &IDError{Reason: "HK/Macao/Taiwan permit numbers start 810000, 820000 or 830000"}
		}
		id.Type = DocHMT
	case s[0] >= '1' && s[0] <= '6':
		id.Type = DocResident
	default:
		return Identity{}, &IDError{Reason: "region code is not a Chinese province code"}
	}
	return id, nil
}

// parseForeign2017 checks the 15-character number of the 2017 foreigner permanent residence card:
// a 3-letter nationality code, a 4-digit accepting-authority code, the birth date as YYMMDD and a
// 2-digit sequence. Its check rule is not public, so only the structure and the date are checked.
// The century is taken as 19YY for YY >= 30 and 20YY otherwise; a card read by the reader carries
// the full birth date, which the caller should prefer.
func parseForeign2017(s string) (Identity, error) {
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return Identity{}, &IDError{Reason: "a 15-character number starts with a 3-letter nationality code"}
		}
	}
	for i := 3; i < 15; i++ {
		if s[i] < '0' || s[i] > '9' {
			return Identity{}, &IDError{Reason: "characters 4-15 of a 15-character number must be digits"}
		}
	}
	century := "20"
	if s[7:9] >= "30" {
		century = "19"
	}
	birth, ok := parseDate(century + s[7:13])
	if !ok {
		return Identity{}, &IDError{Reason: "birth date is not a real date"}
	}
	return Identity{Type: DocForeign2017, Number: IDNumber(s), Birth: birth, Male: (s[14]-'0')%2 == 1}, nil
}

// parseDate parses YYYYMMDD as a Beijing calendar date, refusing dates that do not exist
// (20210230) and years before 1900.
func parseDate(s string) (time.Time, bool) {
	t, err := time.ParseInLocation("20060102", s, Beijing)
	if err != nil || t.Year() < 1900 {
		return time.Time{}, false
	}
	return t, true
}

// AgeAt returns the completed years of a person born on birth, at now, on the Beijing calendar.
// A person is N from the N-th birthday itself; a 29 February birthday counts on 1 March in
// other years.
func AgeAt(birth, now time.Time) int {
	b := birth.In(Beijing)
	n := now.In(Beijing)
	age := n.Year() - b.Year()
	bm, bd := b.Month(), b.Day()
	if bm == time.February && bd == 29 && !isLeap(n.Year()) {
		bm, bd = time.March, 1
	}
	if n.Month() < bm || (n.Month() == bm && n.Day() < bd) {
		age--
	}
	if age < 0 {
		return 0
	}
	return age
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// DayStart returns 00:00 Beijing time of the calendar day n days after t's Beijing date.
// DayStart(t, 0) is the start of t's own day. The policy's "N full days after X" ends at
// DayStart(X, N+1): arrived 1 Dec, 21 days, ends 00:00 on 23 Dec.
func DayStart(t time.Time, n int) time.Time {
	b := t.In(Beijing)
	return time.Date(b.Year(), b.Month(), b.Day()+n, 0, 0, 0, 0, Beijing)
}
