package cli

import (
	"errors"
	"io"
	"slices"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	fs := NewFlags("t", io.Discard)
	cfg := fs.String("config", "", "")
	v := fs.Bool("v", false, "")
	pos, err := Parse(fs, []string{"install", "a.cose", "--config", "x.yaml", "-v", "b"})
	if err != nil || *cfg != "x.yaml" || !*v || !slices.Equal(pos, []string{"install", "a.cose", "b"}) {
		t.Fatalf("pos %v cfg %q v %v err %v", pos, *cfg, *v, err)
	}
	_, err = Parse(NewFlags("t", io.Discard), []string{"--nosuch"})
	var ue UsageError
	if !errors.As(err, &ue) || ExitCode("t", err, io.Discard) != 2 {
		t.Fatalf("unknown flag: %v", err)
	}
}
