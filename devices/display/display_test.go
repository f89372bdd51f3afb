package display_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/devices/display"
)

func TestConsoleShowsOutcomeMarkAndReason(t *testing.T) {
	var b strings.Builder
	c := display.NewConsole(&b, false)
	c.Show(display.Shown{Outcome: "PASS_COMMUTER", Commuter: true, Opens: true, ReasonZH: "通勤人员", ReasonEN: "commuter",
		MaskedID: "110105********002X", Source: "card", Time: time.Date(2021, 11, 20, 8, 0, 0, 0, time.UTC)})
	out := b.String()
	for _, want := range []string{"PASS_COMMUTER", "通勤", "GATE OPEN", "通勤人员", "commuter", "110105********002X"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	c.Show(display.Shown{Outcome: "DENY_POPUP_4", Popups: []int{4, 2}, ReasonZH: "弹窗④", ReasonEN: "popup 4"})
	if out := b.String(); strings.Contains(out, "GATE OPEN") || !strings.Contains(out, "[4 2]") {
		t.Errorf("denial shown as:\n%s", out)
	}
}
