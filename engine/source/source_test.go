package source_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
)

const minimal = `version: 3
effective_from: 2021-11-17T00:00:00+08:00
expires_at: 2022-01-31T00:00:00+08:00
max_offline: 3d
params:
  window: 48h
  days: 14
  label: beijing
lists:
  cases: {csv: data/c.csv, column: code}
city_units: {csv: data/c.csv, key: code, value: unit}
rules:
  - id: pass
    outcome: PASS
    when: now - test.negative_sampled <= params.window && params.days == 14 && params.label == "beijing"
    reason_zh: 通行
    reason_en: pass
`

func fsWith(src string) fstest.MapFS {
	return fstest.MapFS{
		"p.yaml":     {Data: []byte(src)},
		"data/c.csv": {Data: []byte("code,unit\n210283,210283\n130104,1301\n")},
	}
}

func TestParseTypesParamsAndLoadsCSV(t *testing.T) {
	s, err := source.Load(fsWith(minimal), "p.yaml", source.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxOffline != 3*24*3600 || s.Params.Durations["window"] != 48*3600 || s.Params.Ints["days"] != 14 || s.Params.Strings["label"] != "beijing" {
		t.Fatalf("params: %+v, max_offline %d", s.Params, s.MaxOffline)
	}
	if len(s.Lists["cases"]) != 2 || s.CityUnits["130104"] != "1301" {
		t.Fatalf("csv: %v %v", s.Lists, s.CityUnits)
	}
	o := source.Overrides{Version: 7, EffectiveFrom: time.Unix(1700000000, 0), ExpiresAt: time.Unix(1800000000, 0)}
	s, err = source.Load(fsWith(minimal), "p.yaml", o)
	if err != nil || s.Version != 7 || s.EffectiveFrom != 1700000000 || s.ExpiresAt != 1800000000 {
		t.Fatalf("overrides: %+v %v", s, err)
	}
}

func TestSourceErrors(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"unknown field":  {minimal + "colour: red\n", "colour"},
		"bad duration":   {strings.Replace(minimal, "max_offline: 3d", "max_offline: soon", 1), "max_offline"},
		"missing column": {strings.Replace(minimal, "column: code", "column: county", 1), "county"},
		"missing csv":    {strings.Replace(minimal, "cases: {csv: data/c.csv", "cases: {csv: data/none.csv", 1), "none.csv"},
		"bad time":       {strings.Replace(minimal, "2021-11-17T00:00:00+08:00", "17 Nov 2021", 1), "effective_from"},
		"bad rule":       {strings.Replace(minimal, "params.days == 14", "params.nosuch == 14", 1), `"pass"`},
		"empty":          {"", "empty"},
	} {
		_, err := source.Load(fsWith(c.src), "p.yaml", source.Overrides{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
}

func TestShippedPoliciesCompile(t *testing.T) {
	for _, n := range []string{policies.August2021, policies.November2021} {
		if _, err := source.Load(policies.FS, n, source.Overrides{}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}
