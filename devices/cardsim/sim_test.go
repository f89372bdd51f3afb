package cardsim_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/devices/cardsim"
	"github.com/gatecheck/gatecheck/devices/ga467"
)

func card(number, name, birth string) *cardsim.CardSpec {
	return &cardsim.CardSpec{Name: name, Birth: birth, Number: number, Gender: "1", Nation: "01",
		Address: "北京市朝阳区", Authority: "北京市公安局朝阳分局", ValidFrom: "20150101", ValidTo: "20350101"}
}

// poll runs the reader loop's basic cycle until a card is read, an error other than "no card"
// is returned, or the bound runs out.
func poll(t *testing.T, r *ga467.Reader, bound int) (*ga467.Card, error) {
	t.Helper()
	for i := 0; i < bound; i++ {
		c, err := r.Poll()
		if err != nil || c != nil {
			return c, err
		}
	}
	t.Fatalf("no card within %d polls", bound)
	return nil, nil
}

func startSim(t *testing.T, s *cardsim.Script, link string) *cardsim.Sim {
	t.Helper()
	sim, err := cardsim.Start(context.Background(), cardsim.Config{Script: s, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// The real tarm/serial path reads every card type from the simulator at 115200 baud.
func TestReaderReadsCardsOverPTY(t *testing.T) {
	s := &cardsim.Script{Steps: []cardsim.Step{
		{Card: func() *cardsim.CardSpec {
			c := card("11010519491231002X", "张三", "19491231")
			c.AppendedAddress = "北京市海淀区中关村大街1号"
			return c
		}()},
		{Card: &cardsim.CardSpec{Type: "hmt-permit", Name: "陈大文", Birth: "19900501", Number: "810000199005010016", PassNumber: "H12345678"}},
		{Card: &cardsim.CardSpec{Type: "foreign-permanent", Name: "史密斯", EnglishName: "SMITH JOHN", Birth: "19900501", Number: "911156199005010018", Nationality: "USA"}},
		{Card: &cardsim.CardSpec{Type: "foreign-permanent-2017", Name: "约翰", EnglishName: "JOHN SMITH", Birth: "19880529", Number: "USA310088052911", Nationality: "USA"}},
	}}
	sim := startSim(t, s, "")
	r, err := ga467.Open(ga467.Config{Path: sim.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SAMStatus(); err != nil {
		t.Fatalf("SAM status: %v", err)
	}
	want := []struct {
		number string
		typ    ga467.CardType
	}{{"11010519491231002X", ga467.CardResident}, {"810000199005010016", ga467.CardHMT}, {"911156199005010018", ga467.CardForeign}, {"USA310088052911", ga467.CardForeign17}}
	for i, w := range want {
		start := time.Now()
		c, err := poll(t, r, 20)
		if err != nil {
			t.Fatalf("card %d: %v", i, err)
		}
		if c.Number != w.number || c.Type != w.typ || len(c.Photo) != ga467.PhotoLen {
			t.Fatalf("card %d: %s type %v photo %d", i, c.Number, c.Type, len(c.Photo))
		}
		if i == 0 && c.AppendedAddress != "北京市海淀区中关村大街1号" {
			t.Errorf("appended address %q", c.AppendedAddress)
		}
		// A 1295-byte frame takes >= 112 ms at 115200 baud: the simulator paces its bytes.
		if d := time.Since(start); d < ga467.TransferTime(1295, 115200) {
			t.Errorf("card %d read in %v: faster than the wire allows", i, d)
		}
		// The card stays on the reader, but find answers "no card" until the next one.
		if c, err := r.Poll(); c != nil || err != nil {
			t.Fatalf("card %d read twice: %v %v", i, c, err)
		}
	}
	select {
	case <-sim.Finished():
	case <-time.After(5 * time.Second):
		// the last hold polls may still be pending; drain them
		for j := 0; j < 3; j++ {
			r.Poll()
		}
		<-sim.Finished()
	}
}

// Every injected fault gives a clear error the caller can tell apart, and the next poll reads
// the card (or the next one).
func TestReaderFaults(t *testing.T) {
	faults := []struct {
		fault string
		want  error
	}{
		{cardsim.FaultBadChecksum, ga467.ErrChecksum},
		{cardsim.FaultTruncated, ga467.ErrTimeout},
		{cardsim.FaultWrongLength, ga467.ErrLength},
		{cardsim.FaultSilence, ga467.ErrTimeout},
		{cardsim.FaultRemoved, &ga467.StatusError{Code: ga467.SWReadFailed}},
		{cardsim.FaultSAMError, &ga467.StatusError{Code: ga467.SWSAMSelfTest}},
	}
	s := &cardsim.Script{}
	for i, f := range faults {
		s.Steps = append(s.Steps, cardsim.Step{Card: card("11010519491231002X", "张三", "19491231"), Fault: f.fault, Hold: 1})
		_ = i
	}
	s.Steps = append(s.Steps, cardsim.Step{Card: card("110105199005010018", "李四", "19900501"), Fault: cardsim.FaultNoise})
	sim := startSim(t, s, "")
	r, err := ga467.Open(ga467.Config{Path: sim.Path(), CommandTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, f := range faults {
		t.Run(f.fault, func(t *testing.T) {
			_, err := poll(t, r, 20)
			if !errors.Is(err, f.want) {
				t.Fatalf("err = %v, want %v", err, f.want)
			}
			if f.fault == cardsim.FaultRemoved {
				return // the card is gone
			}
			c, err := poll(t, r, 20)
			if err != nil || c == nil || c.Number != "11010519491231002X" {
				t.Fatalf("after %s: %v %v", f.fault, c, err)
			}
		})
	}
	t.Run("noise", func(t *testing.T) {
		c, err := poll(t, r, 20)
		if err != nil || c.Number != "110105199005010018" {
			t.Fatalf("noise before the frame: %v %v", c, err)
		}
	})
}

// Unplugging the reader (the pseudo-terminal goes away, a new one appears behind the same
// symlink) is detected as a disconnection, and Reconnect finds the new port.
func TestReaderReconnectsAfterUnplug(t *testing.T) {
	link := filepath.Join(t.TempDir(), "reader")
	s := &cardsim.Script{Steps: []cardsim.Step{
		{Card: card("11010519491231002X", "张三", "19491231"), Hold: 1},
		{Fault: cardsim.FaultUnplug, Down: cardsim.Duration(200 * time.Millisecond), Card: card("110105199005010018", "李四", "19900501")},
	}}
	sim := startSim(t, s, link)
	r, err := ga467.Open(ga467.Config{Path: link, CommandTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if c, err := poll(t, r, 20); err != nil || c.Number != "11010519491231002X" {
		t.Fatalf("first card: %v %v", c, err)
	}
	var perr error
	for i := 0; i < 20 && perr == nil; i++ {
		_, perr = r.Poll()
	}
	if !errors.Is(perr, ga467.ErrDisconnected) {
		t.Fatalf("after unplug: %v, want ErrDisconnected", perr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Reconnect(ctx); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	if c, err := poll(t, r, 20); err != nil || c.Number != "110105199005010018" {
		t.Fatalf("card after replug: %v %v", c, err)
	}
	_ = sim
}

func TestScriptValidation(t *testing.T) {
	for _, bad := range []string{
		`{"steps":[{"fault":"gremlins","card":{"name":"a","birth":"19900101","number":"11010519491231002X"}}]}`,
		`{"steps":[{}]}`,
		`{"baud":12345,"steps":[]}`,
		`{"steps":[{"card":{"name":"a","birth":"1990","number":"11010519491231002X"}}]}`,
		`{"steps":[],"colour":"red"}`,
	} {
		if _, err := cardsim.ParseScript(stringsReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// FuzzParseScript: a script file is outside input; bad ones are refused, never panic.
func FuzzParseScript(f *testing.F) {
	f.Add([]byte(`{"baud":115200,"refind":true,"steps":[{"card":{"name":"张三","birth":"19491231","number":"11010519491231002X"},"fault":"noise","gap":2,"hold":1}]}`))
	f.Add([]byte(`{"steps":[{"fault":"unplug","down":"200ms"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := cardsim.ParseScript(stringsReader(string(b)))
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed script does not validate: %v", err)
		}
	})
}
