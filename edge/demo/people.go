package demo

import (
	"fmt"
	"time"

	"github.com/gatecheck/gatecheck/engine"
)

// Traveller is one demo person: who they are, their record, and what the November 2021 policy
// should decide for them at the demo's now.
type Traveller struct {
	Label  string
	Record engine.Record
	// Imported is false for a person the device holds no record of.
	Imported bool
	Want     engine.Outcome
	WantRule string
}

// ResidentID makes a valid resident ID number for a region code, birth date and sequence.
func ResidentID(region string, birth time.Time, seq int) string {
	s := fmt.Sprintf("%s%s%03d", region, birth.In(engine.Beijing).Format("20060102"), seq%1000)
	return s + string(engine.CheckDigit(s))
}

// People returns the demo population at now: one traveller (at least) for every outcome of the
// November 2021 policy.
func People(now time.Time) []Traveller {
	now = now.Truncate(time.Second)
	at := func(d time.Duration) engine.JSONTime { return engine.JSONTime(now.Add(d).Unix()) }
	years := func(n int) time.Time { return now.AddDate(-n, 0, -10) }
	neg := func(ago time.Duration) engine.RecordTest {
		return engine.RecordTest{Sampled: at(-ago), Reported: at(-ago + 6*time.Hour), Result: "negative", Lab: "Beijing Dian"}
	}
	declared := []engine.JSONTime{at(-48 * time.Hour)}
	id := func(region string, age, seq int) string { return ResidentID(region, years(age), seq) }
	return []Traveller{
		{Label: "adult, green code, test 20 h ago", Imported: true, Want: engine.Pass, WantRule: "green-pass",
			Record: engine.Record{ID: id("110105", 34, 11), Tests: []engine.RecordTest{neg(20 * time.Hour)}, Declarations: declared}},
		{Label: "commuter, test 5 days ago", Imported: true, Want: engine.PassCommuter, WantRule: "commuter",
			Record: engine.Record{ID: id("131082", 41, 21), Tests: []engine.RecordTest{neg(5 * 24 * time.Hour)},
				Commuter: &engine.RecordCommuter{Since: at(-200 * 24 * time.Hour), Source: "big-data"}}},
		{Label: "visited a risk area (popup 3)", Imported: true, Want: engine.DenyPopup3, WantRule: "popup-3",
			Record: engine.Record{ID: id("620102", 29, 31), Popups: []engine.RecordPopup{{N: 3, Since: at(-3 * 24 * time.Hour)}},
				Tests: []engine.RecordTest{neg(10 * time.Hour)}, Declarations: declared}},
		{Label: "stayed in a case county (popup 1)", Imported: true, Want: engine.DenyPopup1, WantRule: "popup-1",
			Record: engine.Record{ID: id("210283", 52, 41), Stays: []engine.RecordStay{{County: "210283", From: at(-9 * 24 * time.Hour), To: at(-4 * 24 * time.Hour)}},
				Tests: []engine.RecordTest{neg(10 * time.Hour)}, Declarations: declared}},
		{Label: "in inbound quarantine (popup 2)", Imported: true, Want: engine.DenyPopup2, WantRule: "popup-2",
			Record: engine.Record{ID: id("310104", 38, 51), Inbound: at(-10 * 24 * time.Hour)}},
		{Label: "bought fever drugs yesterday (popup 4)", Imported: true, Want: engine.DenyPopup4, WantRule: "popup-4",
			Record: engine.Record{ID: id("110108", 45, 61), Popups: []engine.RecordPopup{{N: 4, Since: at(-20 * time.Hour), Ref: at(-22 * time.Hour)}},
				Tests: []engine.RecordTest{neg(30 * time.Hour)}, Declarations: declared}},
		{Label: "stayed in a border-port county (popup 5)", Imported: true, Want: engine.DenyPopup5, WantRule: "popup-5",
			Record: engine.Record{ID: id("533102", 33, 71), Stays: []engine.RecordStay{{County: "533102", From: at(-12 * 24 * time.Hour), To: at(-6 * 24 * time.Hour)}}}},
		{Label: "adult, no recent test", Imported: true, Want: engine.NeedTest, WantRule: "need-test",
			Record: engine.Record{ID: id("110101", 27, 81), Tests: []engine.RecordTest{neg(5 * 24 * time.Hour)}, Declarations: declared}},
		{Label: "infant, 2 years old", Imported: true, Want: engine.Companion, WantRule: "infant",
			Record: engine.Record{ID: id("110105", 2, 92)}},
		{Label: "positive after a negative", Imported: true, Want: engine.Manual, WantRule: "manual-positive",
			Record: engine.Record{ID: id("130102", 36, 101), Tests: []engine.RecordTest{neg(60 * time.Hour),
				{Sampled: at(-20 * time.Hour), Reported: at(-8 * time.Hour), Result: "positive"}}}},
		{Label: "valid test, no itinerary declaration", Imported: true, Want: engine.Manual, WantRule: "no-declaration",
			Record: engine.Record{ID: id("120101", 31, 111), Tests: []engine.RecordTest{neg(12 * time.Hour)}}},
		{Label: "72-year-old without a smartphone, test 30 h ago", Imported: true, Want: engine.Pass, WantRule: "test-only-pass",
			Record: engine.Record{ID: id("110102", 72, 121), Tests: []engine.RecordTest{neg(30 * time.Hour)}}},
		{Label: "from another county of a case city, with a test", Imported: true, Want: engine.Pass, WantRule: "case-city-pass",
			Record: engine.Record{ID: id("130104", 40, 131), Stays: []engine.RecordStay{{County: "130104", From: at(-6 * 24 * time.Hour), To: at(-3 * 24 * time.Hour)}},
				Tests: []engine.RecordTest{neg(15 * time.Hour)}}},
		{Label: "no record on this device", Imported: false, Want: engine.Manual, WantRule: engine.RuleUnknownPerson,
			Record: engine.Record{ID: id("440305", 30, 141)}},
		{Label: "mistyped ID number", Imported: false, Want: engine.Manual, WantRule: engine.RuleInvalidID,
			Record: engine.Record{ID: "110105199005010017"}},
	}
}
