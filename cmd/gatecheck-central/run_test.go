package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/edge/demo"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func call(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out, &out); err != nil {
		t.Fatalf("gatecheck-central %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// The operator's path: keys, serve, publish, import, register a device, list and approve.
func TestCentralCommands(t *testing.T) {
	dir := t.TempDir()
	if _, err := demo.Setup(filepath.Join(dir, "demo"), time.Now()); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "central-data")
	call(t, "keygen", "--out", filepath.Join(dir, "central.key"), "--hash-key-out", filepath.Join(dir, "id-hash.key"))
	if err := run(context.Background(), []string{"keygen", "--out", filepath.Join(dir, "central.key")}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("keygen overwrote a key")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", data, "--listen", "127.0.0.1:0",
			"--policy-keys", filepath.Join(dir, "demo", demo.PubFile)}, &out, &out)
	}()
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	for i := 0; i < 200 && !addr.MatchString(out.String()); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !addr.MatchString(out.String()) {
		t.Fatalf("serve did not start:\n%s", out.String())
	}
	if s := call(t, "publish", "--data", data, filepath.Join(dir, "demo", demo.NovSnapshot)); !strings.Contains(s, "published snapshot 2021111700") {
		t.Fatalf("publish: %s", s)
	}
	if s := call(t, "import", "--data", data, filepath.Join(dir, "demo", demo.PeopleFile)); !strings.Contains(s, "imported 13 records") {
		t.Fatalf("import: %s", s)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id":"12345"}`+"\n"), 0o644)
	if err := run(context.Background(), []string{"import", "--data", data, bad}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad import: %v", err)
	}
	call(t, "devices", "add", "--data", data, "--id", "lane-2", "--pubkey", filepath.Join(dir, "demo", demo.SyncedKey+".pub"))
	if s := call(t, "devices", "list", "--data", data); !strings.Contains(s, "lane-2") {
		t.Fatalf("devices list: %s", s)
	}
	if s := call(t, "state", "--data", data); !strings.Contains(s, `"count": 13`) {
		t.Fatalf("state: %s", s)
	}
	if s := call(t, "registrations", "list", "--data", data); strings.TrimSpace(s) != "null" {
		t.Fatalf("registrations: %s", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := run(context.Background(), []string{"state", "--data", data}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "serve") {
		t.Fatalf("admin command without a server: %v", err)
	}
}

// The shipped systemd unit starts the server with flags that exist: without its keys it fails
// on the key file, not on its command line.
func TestSystemdUnitCommandLine(t *testing.T) {
	args, err := cli.UnitExecStart("../../firmware-config/systemd/gatecheck-central.service")
	if err != nil {
		t.Fatal(err)
	}
	if len(args) < 3 || args[0] != "serve" {
		t.Fatalf("ExecStart %v", args)
	}
	tmp := t.TempDir()
	for i, a := range args {
		switch {
		case a == "--data" && i+1 < len(args):
			args[i+1] = filepath.Join(tmp, "data")
		case a == "--policy-keys" && i+1 < len(args):
			args[i+1] = filepath.Join(tmp, "policy-authority.pub")
		case a == "--listen" && i+1 < len(args):
			args[i+1] = "127.0.0.1:0"
		}
	}
	var out bytes.Buffer
	err = run(context.Background(), args, &out, &out)
	if err == nil || cli.ExitCode("gatecheck", err, io.Discard) != 1 || !strings.Contains(err.Error(), ".key") {
		t.Fatalf("gatecheck-central %v: %v (exit %d)\n%s", args, err, cli.ExitCode("gatecheck", err, io.Discard), out.String())
	}
}
