package cases_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatecheck/gatecheck/engine/cases"
)

// FuzzReadCases: a case file from anywhere is read or refused with an error; every case read
// builds an input or an error, never a panic.
func FuzzReadCases(f *testing.F) {
	files, _ := filepath.Glob("../testdata/cases/*.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("cases: [{name: a, now: x, birth: 1990-01-01, want: {outcome: PASS}, facts: [1]}]")
	f.Fuzz(func(t *testing.T, s string) {
		cf, err := cases.Read(strings.NewReader(s))
		if err != nil {
			return
		}
		for i := range cf.Cases {
			cf.Cases[i].Input()
		}
	})
}

func TestReadCasesRefusesIncompleteCases(t *testing.T) {
	for _, s := range []string{
		"cases: [{name: a, now: 2021-11-20T00:00:00+08:00, want: {outcome: PASS}}]", // no id or birth
		"cases: [{name: a, birth: 1990-01-01, want: {outcome: PASS}}]",              // no now
		"cases: [{name: a, birth: 1990-01-01, now: x, want: {outcome: PASS}, colour: red}]",
	} {
		if _, err := cases.Read(strings.NewReader(s)); err == nil {
			t.Errorf("read %q", s)
		}
	}
	cf, err := cases.Read(strings.NewReader("cases: [{name: a, birth: 1990-01-01, now: yesterday, want: {outcome: PASS}}]"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := cf.Cases[0].Input(); err == nil || !strings.Contains(err.Error(), `case "a": now`) {
		t.Errorf("bad now: %v", err)
	}
}
