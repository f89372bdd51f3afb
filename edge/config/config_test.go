package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatecheck/gatecheck/edge/config"
)

// Every config file that ships in firmware-config/ loads and validates.
func TestShippedConfigs(t *testing.T) {
	files, err := filepath.Glob("../../firmware-config/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("want the three device kinds in firmware-config, found %v (%v)", files, err)
	}
	kinds := map[string]bool{}
	for _, f := range files {
		c, err := config.Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		kinds[c.Kind] = true
	}
	for _, k := range []string{config.KindHighway, config.KindRailway, config.KindField} {
		if !kinds[k] {
			t.Errorf("no shipped config for %s", k)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	base := "device_id: d1\nkind: railway-gate\ndata_dir: data\nhash_key_file: k\ntrusted_keys: [a.pub]\n"
	for _, c := range []struct{ yaml, field string }{
		{strings.Replace(base, "device_id: d1\n", "", 1), "device_id"},
		{strings.Replace(base, "railway-gate", "tram", 1), "kind"},
		{strings.Replace(base, "trusted_keys: [a.pub]\n", "", 1), "trusted_keys"},
		{base + "store_profile: huge\n", "store_profile"},
	} {
		_, err := config.Parse([]byte(c.yaml), "/etc/gatecheck/x.yaml")
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%q: err = %v, want a FieldError for %s", c.field, err, c.field)
		}
	}
	if _, err := config.Parse([]byte(base+"colour: red\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown field: err = %v", err)
	}
	c, err := config.Parse([]byte(base), "/etc/gatecheck/x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/etc/gatecheck/data" || c.TrustedKeys[0] != "/etc/gatecheck/a.pub" {
		t.Errorf("relative paths not resolved against the file: %s %v", c.DataDir, c.TrustedKeys)
	}
}

func TestHashKeyFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		content string
		ok      bool
	}{
		{strings.Repeat("ab", 32) + "\n", true},
		{strings.Repeat("ab", 16), false},
		{strings.Repeat("zz", 32), false},
	} {
		p := filepath.Join(dir, "k")
		os.WriteFile(p, []byte(c.content), 0o600)
		cfg, err := config.Parse([]byte("device_id: d\nkind: field-laptop\ndata_dir: d\nhash_key_file: k\ntrusted_keys: [p]\n"), filepath.Join(dir, "c.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cfg.HashKey()
		if (err == nil) != c.ok {
			t.Errorf("hash key %q: err = %v", c.content, err)
		}
	}
}
