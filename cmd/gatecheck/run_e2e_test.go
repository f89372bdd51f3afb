package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gatecheck/gatecheck/devices/cardsim"
	"github.com/gatecheck/gatecheck/devices/relay"
	"github.com/gatecheck/gatecheck/edge/demo"
)

// built holds the binaries the end-to-end tests build, once per test binary each.
var built sync.Map // package path -> func() (string, error)

// binary builds the command in pkg (relative to this directory) once and returns its path.
func binary(t *testing.T, pkg, name string) string {
	t.Helper()
	f, _ := built.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "gatecheck-e2e-bin-")
		if err != nil {
			return "", err
		}
		path := filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		return path, nil
	}))
	path, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func gatecheckBinary(t *testing.T) string { return binary(t, ".", "gatecheck") }

type pulseCounter struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func countPulses(t *testing.T) (string, *pulseCounter) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	pc := &pulseCounter{ch: make(chan struct{}, 1000)}
	go func() {
		buf := make([]byte, 4)
		for {
			if _, err := io.ReadFull(m, buf); err != nil {
				return
			}
			if _, on, err := relay.ParseFrame(buf); err == nil && on {
				pc.mu.Lock()
				pc.n++
				pc.mu.Unlock()
				pc.ch <- struct{}{}
			}
		}
	}()
	return s.Name(), pc
}

func (p *pulseCounter) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// waitPulses waits (bounded) until n more gate pulses have been seen.
func (p *pulseCounter) waitPulses(t *testing.T, n int, bound time.Duration) {
	t.Helper()
	deadline := time.After(bound)
	for i := 0; i < n; i++ {
		select {
		case <-p.ch:
		case <-deadline:
			t.Fatalf("saw %d of %d gate pulses within %s", i, n, bound)
		}
	}
}

func gatecheckCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(gatecheckBinary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gatecheck %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// A real `gatecheck run` process with the simulated reader and a relay on pseudo-terminals is
// killed with SIGKILL while it opens the gate for a queue of travellers: after a restart the
// audit log verifies and holds an entry for every gate opening seen; SIGTERM then stops it
// cleanly with nothing lost.
func TestRunSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := gatecheckBinary(t)
	dir := t.TempDir()
	now := time.Now()
	if _, err := demo.Setup(dir, now); err != nil {
		t.Fatal(err)
	}
	relayPath, pulses := countPulses(t)
	link := filepath.Join(dir, "reader")
	cfg := filepath.Join(dir, "gate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`device_id: rail-gate-07
kind: railway-gate
data_dir: device-data
hash_key_file: %s
trusted_keys: [%s]
reader: {port: %s, poll_interval: 20ms}
gate: {kind: relay, port: %s, pulse: 5ms}
display: none
`, demo.HashKeyFile, demo.PubFile, link, relayPath)), 0o644)
	gatecheckCmd(t, "policy", "install", "--config", cfg, filepath.Join(dir, demo.NovSnapshot))
	gatecheckCmd(t, "import", "--config", cfg, filepath.Join(dir, demo.PeopleFile))

	adult := demo.People(now)[0].Record.ID
	var steps []cardsim.Step
	for i := 0; i < 200; i++ {
		steps = append(steps, cardsim.Step{Gap: 1, Hold: 1, Card: &cardsim.CardSpec{Name: "旅客", Birth: adult[6:14], Number: adult}})
	}
	sim, err := cardsim.Start(context.Background(), cardsim.Config{Script: &cardsim.Script{Steps: steps}, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", cfg, "--log-level", "warn")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		return cmd
	}
	run := start()
	pulses.waitPulses(t, 4, 60*time.Second)
	if err := run.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	run.Wait()
	seen := pulses.count()

	verify := gatecheckCmd(t, "audit", "verify", "--config", cfg)
	if !strings.Contains(verify, "verifies") {
		t.Fatalf("after kill -9: %s", verify)
	}
	gates := auditGates(t, cfg)
	if gates < seen {
		t.Fatalf("after kill -9: %d gate pulses seen but only %d audited gate openings", seen, gates)
	}

	// Restart: it continues the same log; SIGTERM stops it cleanly.
	run = start()
	pulses.waitPulses(t, 3, 60*time.Second)
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	seen = pulses.count()
	if !strings.Contains(gatecheckCmd(t, "audit", "verify", "--config", cfg), "verifies") {
		t.Fatal("audit log does not verify after restart")
	}
	if gates := auditGates(t, cfg); gates < seen {
		t.Fatalf("after SIGTERM: %d gate pulses seen but %d audited", seen, gates)
	}
}

func auditGates(t *testing.T, cfg string) int {
	t.Helper()
	out := gatecheckCmd(t, "audit", "list", "--config", cfg, "--n", "10000")
	n := strings.Count(out, "GATE")
	if n == 0 {
		t.Fatalf("no gate openings audited:\n%s", out)
	}
	return n
}
