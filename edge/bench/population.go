package bench

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
)

// Now is the moment the synthetic population is generated for and decided at.
var Now = time.Date(2021, 11, 20, 12, 0, 0, 0, engine.Beijing)

var (
	regionsOnce sync.Once
	regions     []string
)

// countyCodes returns every county code of data/counties.csv.
func countyCodes() []string {
	regionsOnce.Do(func() {
		b, err := fs.ReadFile(policies.FS, "data/counties.csv")
		if err != nil {
			panic(err)
		}
		rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			panic(err)
		}
		for _, r := range rows[1:] {
			regions = append(regions, r[0])
		}
	})
	return regions
}

const birthDays = 80 * 365 // births spread over 80 years

var birthBase = time.Date(1941, 1, 1, 0, 0, 0, 0, engine.Beijing)

// ID returns the i-th synthetic person's resident ID number; distinct for distinct i (up to
// about 8.7e10 people).
func ID(i int) string {
	r := countyCodes()
	region := r[i%len(r)]
	j := i / len(r)
	birth := birthBase.AddDate(0, 0, j%birthDays)
	seq := (j / birthDays) % 1000
	s := fmt.Sprintf("%s%s%03d", region, birth.Format("20060102"), seq)
	return s + string(engine.CheckDigit(s))
}

// Hot counties the synthetic travel history draws from: case counties, a risk area, border-port
// counties and ordinary ones (codes from the shipped November 2021 policy and data/).
var (
	caseCounties   = []string{"210283", "152923", "130102", "231102"}
	borderCounties = []string{"533102", "450681", "654004"}
	caseCityOthers = []string{"130104", "130105", "231121"}
)

// Facts returns the i-th synthetic person's facts around now: a deterministic, realistic mix
// (most people with recent negative tests and a declaration; commuters; every popup kind; travel
// history with some stays in case, case-city and border counties; a few positives).
func Facts(i int, now time.Time) *engine.Facts {
	rng := rand.New(rand.NewPCG(uint64(i), 0x9a7ec4ec))
	n := engine.UnixOf(now)
	hours := func(h int) engine.Unix { return n - engine.Unix(h*3600) }
	f := &engine.Facts{Schema: 1}
	tests := rng.IntN(4) // 0..3 tests
	for t := 0; t < tests; t++ {
		s := hours(2 + rng.IntN(14*24))
		f.Tests = append(f.Tests, engine.Test{Sampled: s, Reported: s + engine.Unix(3600*(4+rng.IntN(20))), Result: engine.ResultNegative, Lab: "lab"})
	}
	if rng.IntN(100) == 0 {
		s := hours(2 + rng.IntN(72))
		f.Tests = append(f.Tests, engine.Test{Sampled: s, Reported: s + 6*3600, Result: engine.ResultPositive, Lab: "lab"})
	}
	if rng.IntN(100) < 80 {
		f.Declarations = []engine.Unix{hours(rng.IntN(20 * 24))}
	}
	if rng.IntN(10) == 0 {
		f.Commuter = &engine.Commuter{Since: hours(24 * (30 + rng.IntN(300))), Source: "big-data"}
		if rng.IntN(20) == 0 {
			f.Commuter.Revoked = hours(rng.IntN(240))
		}
	}
	if rng.IntN(100) < 6 {
		k := uint8(1 + rng.IntN(5))
		p := engine.Popup{N: k, Since: hours(rng.IntN(20 * 24))}
		p.Ref = p.Since - 3600
		if rng.IntN(3) == 0 {
			p.Cleared = p.Since + engine.Unix(3600*rng.IntN(48))
		}
		f.Popups = append(f.Popups, p)
	}
	if rng.IntN(100) < 5 {
		f.Inbound = hours(24 * rng.IntN(40))
	}
	if rng.IntN(100) < 25 {
		stays := 1 + rng.IntN(5)
		for s := 0; s < stays; s++ {
			var c string
			switch x := rng.IntN(100); {
			case x < 3:
				c = caseCounties[rng.IntN(len(caseCounties))]
			case x < 6:
				c = caseCityOthers[rng.IntN(len(caseCityOthers))]
			case x < 8:
				c = borderCounties[rng.IntN(len(borderCounties))]
			default:
				r := countyCodes()
				c = r[rng.IntN(len(r))]
			}
			from := hours(24 * (1 + rng.IntN(14)))
			f.Stays = append(f.Stays, engine.Stay{County: c, From: from, To: from + engine.Unix(3600*(2+rng.IntN(72)))})
		}
	}
	return f
}
