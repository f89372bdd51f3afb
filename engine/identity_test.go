package engine_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/engine"
)

var idVectors = []struct {
	in      string
	typ     engine.DocType
	birth   string // YYYY-MM-DD, empty when invalid
	male    bool
	wantErr string
}{
	{"11010519491231002X", engine.DocResident, "1949-12-31", false, ""},
	{"11010519491231002x", engine.DocResident, "1949-12-31", false, ""},
	{" 11010519491231002X ", engine.DocResident, "1949-12-31", false, ""},
	{"810000199005010016", engine.DocHMT, "1990-05-01", true, ""},
	{"911156199005010018", engine.DocForeign, "1990-05-01", true, ""},
	{"USA310088052911", engine.DocForeign2017, "1988-05-29", true, ""},
	{"CHN310000052900", engine.DocForeign2017, "2000-05-29", false, ""},
	{"110105194912310021", 0, "", false, "check digit"},
	{"110105194902300020", 0, "", false, "not a real date"}, // 30 Feb
	{"110105189912310023", 0, "", false, "not a real date"}, // before 1900
	{"1101051949123100AX", 0, "", false, "must be digits"},
	{"11010519491231002", 0, "", false, "must be 18"},
	{"", 0, "", false, "empty"},
	{"810100199005010011", 0, "", false, "810000"},
	{"US1310088052911", 0, "", false, "nationality"},
	{"USA3100880529AB", 0, "", false, "must be digits"},
	{"USA310088023011", 0, "", false, "not a real date"},
}

func TestParseID(t *testing.T) {
	for _, v := range idVectors {
		t.Run(v.in, func(t *testing.T) {
			id, err := engine.ParseID(v.in)
			if v.wantErr != "" {
				if err == nil || !errors.Is(err, engine.ErrInvalidID) || !strings.Contains(err.Error(), v.wantErr) {
					t.Fatalf("ParseID(%q) err = %v, want ErrInvalidID containing %q", v.in, err, v.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(v.in)) && v.in != "" {
					t.Fatalf("error repeats the number: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", v.in, err)
			}
			if id.Type != v.typ || id.Birth.Format("2006-01-02") != v.birth || id.Male != v.male {
				t.Fatalf("ParseID(%q) = %v %s male=%v, want %v %s male=%v", v.in, id.Type, id.Birth.Format("2006-01-02"), id.Male, v.typ, v.birth, v.male)
			}
		})
	}
}

func TestIDNumberRedacts(t *testing.T) {
	n := engine.IDNumber("11010519491231002X")
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("card", "id", n)
	for _, s := range []string{fmt.Sprint(n), fmt.Sprintf("%v", n), b.String()} {
		if strings.Contains(s, "19491231") {
			t.Fatalf("number leaked: %s", s)
		}
	}
	if got := n.Masked(); got != "110105********002X" {
		t.Fatalf("Masked = %s", got)
	}
}

func TestAgeAt(t *testing.T) {
	bj := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, engine.Beijing)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		birth, now string
		want       int
	}{
		{"2017-11-20 00:00", "2021-11-19 23:59", 3},
		{"2017-11-20 00:00", "2021-11-20 00:00", 4},
		{"1960-02-29 00:00", "2020-02-28 12:00", 59},
		{"1960-02-29 00:00", "2020-02-29 00:00", 60}, // leap year: the birthday itself
		{"1960-02-29 00:00", "2019-02-28 12:00", 58},
		{"1960-02-29 00:00", "2019-03-01 00:00", 59}, // 1 Mar in other years
		{"2021-11-20 00:00", "2021-11-19 00:00", 0},  // not born yet: 0, never negative
	} {
		if got := engine.AgeAt(bj(c.birth), bj(c.now)); got != c.want {
			t.Errorf("AgeAt(%s, %s) = %d, want %d", c.birth, c.now, got, c.want)
		}
	}
	// Beijing calendar: 16:00 UTC on the 19th is already the 20th in Beijing.
	if got := engine.AgeAt(bj("2017-11-20 00:00"), time.Date(2021, 11, 19, 16, 0, 0, 0, time.UTC)); got != 4 {
		t.Errorf("AgeAt across UTC midnight = %d, want 4", got)
	}
}

func TestDayStart(t *testing.T) {
	arr := time.Date(2021, 12, 1, 15, 0, 0, 0, engine.Beijing)
	if got := engine.DayStart(arr, 22); !got.Equal(time.Date(2021, 12, 23, 0, 0, 0, 0, engine.Beijing)) {
		t.Fatalf("DayStart(1 Dec, 22) = %s, want 23 Dec 00:00 Beijing", got)
	}
	// 23:30 UTC on 30 Nov is 07:30 on 1 Dec in Beijing.
	if got := engine.DayStart(time.Date(2021, 11, 30, 23, 30, 0, 0, time.UTC), 0); !got.Equal(time.Date(2021, 12, 1, 0, 0, 0, 0, engine.Beijing)) {
		t.Fatalf("DayStart uses the Beijing date: got %s", got)
	}
}

func FuzzParseID(f *testing.F) {
	for _, v := range idVectors {
		f.Add(v.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := engine.ParseID(s)
		if err != nil {
			if !errors.Is(err, engine.ErrInvalidID) {
				t.Fatalf("error does not match ErrInvalidID: %v", err)
			}
			return
		}
		// A valid number round-trips and has a plausible birth date.
		again, err := engine.ParseID(id.Number.Plain())
		if err != nil || again != id {
			t.Fatalf("round trip %q: %v %+v != %+v", s, err, again, id)
		}
		if id.Birth.Year() < 1900 || id.Type == engine.DocUnknown {
			t.Fatalf("accepted %q with birth %s type %v", s, id.Birth, id.Type)
		}
		if len(id.Number) == 18 && engine.CheckDigit(string(id.Number[:17])) != id.Number[17] {
			t.Fatalf("accepted %q with a bad check digit", s)
		}
	})
}

func BenchmarkParseID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := engine.ParseID("11010519491231002X"); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseRecord feeds arbitrary lines to the JSON Lines record parser: never panic, and a
// record that parses has facts within every limit.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"id":"11010519491231002X","tests":[{"sampled":"2021-11-19T09:00:00+08:00","reported":"2021-11-19T20:00:00+08:00","result":"negative"}],"declarations":["2021-11-18"]}`))
	f.Add([]byte(`{"id":"11010519491231002X","delete":true}`))
	f.Add([]byte(`{"id":"810000199005010016","popups":[{"n":4,"since":"2021-11-19"}],"stays":[{"county":"533102","from":"2021-11-01","to":"2021-11-05"}]}`))
	f.Add([]byte(`{"id":"11010519491231002X","commuter":{"since":"2021-06-01","source":"big-data","revoked":""}}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		id, facts, err := engine.ParseRecord(line)
		if err != nil {
			return
		}
		if _, err := engine.ParseID(id.Number.Plain()); err != nil {
			t.Fatalf("accepted record with invalid id: %v", err)
		}
		if facts != nil {
			if err := facts.Validate(); err != nil {
				t.Fatalf("accepted facts that do not validate: %v", err)
			}
		}
	})
}
