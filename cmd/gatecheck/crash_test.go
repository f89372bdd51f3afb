package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/devices/cardsim"
	"github.com/gatecheck/gatecheck/edge/demo"
)

// crashBudget is how long each crash loop runs: GATECHECK_CRASH_SECONDS, default 20 s per
// loop (CI); the README's longer run sets more.
func crashBudget() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("GATECHECK_CRASH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 20 * time.Second
}

func centralBinary(t *testing.T) string {
	return binary(t, "../gatecheck-central", "gatecheck-central")
}

// killAfter starts cmd and SIGKILLs it after d unless it ended first; it returns whether the
// command completed successfully by itself.
func killAfter(t *testing.T, cmd *exec.Cmd, d time.Duration) (completed bool, out string) {
	t.Helper()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err == nil, buf.String()
	case <-time.After(d):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return false, buf.String()
	}
}

// The device killed with SIGKILL again and again while it opens the gate for travellers: after
// every kill the audit log verifies and holds an entry for every gate opening seen (the entry
// is synced before the gate command goes out).
func TestCrashLoopDevicePassages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
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
	os.WriteFile(cfg, []byte(fmt.Sprintf(`device_id: rail-gate-crash
kind: railway-gate
data_dir: device-data
hash_key_file: %s
trusted_keys: [%s]
reader: {port: %s, poll_interval: 10ms}
gate: {kind: relay, port: %s, pulse: 2ms}
display: none
`, demo.HashKeyFile, demo.PubFile, link, relayPath)), 0o644)
	gatecheckCmd(t, "policy", "install", "--config", cfg, filepath.Join(dir, demo.NovSnapshot))
	gatecheckCmd(t, "import", "--config", cfg, filepath.Join(dir, demo.PeopleFile))
	adult := demo.People(now)[0].Record.ID
	var steps []cardsim.Step
	for i := 0; i < 100000; i++ {
		steps = append(steps, cardsim.Step{Gap: 1, Hold: 1, Card: &cardsim.CardSpec{Name: "旅客", Birth: adult[6:14], Number: adult}})
	}
	sim, err := cardsim.Start(context.Background(), cardsim.Config{Script: &cardsim.Script{Steps: steps}, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	deadline := time.Now().Add(crashBudget())
	kills := 0
	for time.Now().Before(deadline) {
		cmd := exec.Command(bin, "run", "--config", cfg, "--log-level", "error")
		// Kill at a random moment: before, during or after a passage's audit write.
		killAfter(t, cmd, time.Duration(150+rng.IntN(600))*time.Millisecond)
		kills++
		seen := pulses.count()
		if out := gatecheckCmd(t, "audit", "verify", "--config", cfg); !strings.Contains(out, "verifies") {
			t.Fatalf("kill %d: %s", kills, out)
		}
		if gates := auditGatesOrZero(t, cfg); gates < seen {
			t.Fatalf("kill %d: %d gate openings seen, %d audited", kills, seen, gates)
		}
	}
	t.Logf("device passages: %d SIGKILLs, %d gate openings, every one audited; the log verified after each", kills, pulses.count())
	if kills < 5 || pulses.count() == 0 {
		t.Fatalf("the loop did too little: %d kills, %d openings", kills, pulses.count())
	}
	reportCrash(t, "device_passages_kills", kills)
}

func auditGatesOrZero(t *testing.T, cfg string) int {
	t.Helper()
	out := gatecheckCmd(t, "audit", "list", "--config", cfg, "--n", "1000000")
	return strings.Count(out, "GATE")
}

// The central server killed with SIGKILL during imports, and the device during syncs and
// audit uploads, at random moments: after every round both open, every import the central
// acknowledged is held, the device reconciles with the central (count and digest at the same
// cursor), and every audit entry the central acknowledged is stored there once.
func TestCrashLoopCentralAndSync(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binaries")
	}
	bin, cbin := gatecheckBinary(t), centralBinary(t)
	dir := t.TempDir()
	now := time.Now()
	if _, err := demo.Setup(dir, now); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cdata := filepath.Join(dir, "central-data")
	cargs := []string{"--data", cdata, "--key", filepath.Join(dir, demo.KeyFile), "--hash-key", filepath.Join(dir, demo.HashKeyFile)}
	var central *exec.Cmd
	startCentral := func() {
		t.Helper()
		central = exec.Command(cbin, append([]string{"serve", "--listen", addr}, cargs...)...)
		var logs bytes.Buffer
		central.Stdout, central.Stderr = &logs, &logs
		if err := central.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ { // bounded: wait for the admin socket
			if _, err := exec.Command(cbin, append([]string{"state"}, cargs...)...).Output(); err == nil {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("central did not start:\n%s", logs.String())
	}
	stopCentral := func(kill bool) {
		if central == nil {
			return
		}
		if kill {
			central.Process.Signal(syscall.SIGKILL)
		} else {
			central.Process.Signal(syscall.SIGTERM)
		}
		central.Wait()
		central = nil
	}
	t.Cleanup(func() { stopCentral(true) })
	ccmd := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cbin, append(args, cargs...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gatecheck-central %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	startCentral()
	ccmd("publish", filepath.Join(dir, demo.NovSnapshot))
	ccmd("devices", "add", "--id", "crash-lane", "--pubkey", filepath.Join(dir, demo.SyncedKey+".pub"))
	cfg := filepath.Join(dir, "lane.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`device_id: crash-lane
kind: railway-gate
data_dir: lane-data
audit_dir: lane-audit
device_key_file: %s
control_socket: lane.sock
hash_key_file: %s
trusted_keys: [%s]
sync: {url: "http://%s"}
display: none
`, demo.SyncedKey, demo.HashKeyFile, demo.PubFile, addr)), 0o644)

	rng := rand.New(rand.NewPCG(9, 9))
	var acked []string // ID numbers in imports the central acknowledged
	ackedSet := map[string]bool{}
	deadline := time.Now().Add(crashBudget())
	rounds, centralKills, deviceKills := 0, 0, 0
	for next := 0; time.Now().Before(deadline); rounds++ {
		// A chunk of new people; the central is killed at a random moment of its import.
		var lines strings.Builder
		var ids []string
		for i := 0; i < 2000; i++ {
			// Unique: a birth date per thousand people, a sequence within it.
			id := demo.ResidentID("110105", time.Date(1950, 1, 1+next/1000, 12, 0, 0, 0, time.UTC), next%1000)
			next++
			ids = append(ids, id)
			fmt.Fprintf(&lines, `{"id":"%s","tests":[{"sampled":"%s","reported":"%s","result":"negative"}]}`+"\n",
				id, now.Add(-20*time.Hour).Format(time.RFC3339), now.Add(-10*time.Hour).Format(time.RFC3339))
		}
		chunk := filepath.Join(dir, "chunk.jsonl")
		os.WriteFile(chunk, []byte(lines.String()), 0o644)
		imp := exec.Command(cbin, append([]string{"import", chunk}, cargs...)...)
		killCentral := rng.IntN(2) == 0
		var done chan struct{}
		if killCentral {
			done = make(chan struct{})
			go func(d time.Duration) {
				defer close(done)
				time.Sleep(d)
				central.Process.Signal(syscall.SIGKILL)
			}(time.Duration(rng.IntN(150)) * time.Millisecond)
		}
		ok, _ := killAfter(t, imp, 30*time.Second)
		if killCentral {
			<-done
			central.Wait()
			central = nil
			centralKills++
			startCentral()
		}
		if ok {
			for _, id := range ids {
				if !ackedSet[id] {
					ackedSet[id] = true
					acked = append(acked, id)
				}
			}
		}
		// An audited manual entry, then a sync killed at a random moment.
		gatecheckCmd(t, "check", "--config", cfg, "--id", ids[0])
		if ok, _ := killAfter(t, exec.Command(bin, "sync", "--once", "--config", cfg), time.Duration(rng.IntN(400))*time.Millisecond); !ok {
			deviceKills++
		}
		// A clean sync: the device reconciles with the central.
		out := gatecheckCmd(t, "sync", "--once", "--config", cfg)
		if !strings.Contains(out, "reconciled true") {
			t.Fatalf("round %d: sync did not reconcile:\n%s", rounds, out)
		}
	}
	// Every acknowledged import is held centrally and on the device.
	var st struct{ Count uint64 }
	json.Unmarshal([]byte(ccmd("state")), &st)
	if st.Count < uint64(len(acked)) {
		t.Fatalf("the central holds %d records, %d were acknowledged", st.Count, len(acked))
	}
	for _, i := range []int{0, len(acked) / 2, len(acked) - 1} {
		if len(acked) == 0 {
			break
		}
		if out := gatecheckCmd(t, "check", "--config", cfg, "--id", acked[i], "--json", "--at", now.Format(time.RFC3339)); strings.Contains(out, "unknown-person") {
			t.Fatalf("acknowledged record %d missing on the device: %s", i, out)
		}
	}
	// Every audit entry is stored centrally, once.
	var devs []struct {
		ID    string `json:"id"`
		Acked uint64 `json:"audit_acked"`
	}
	json.Unmarshal([]byte(ccmd("devices", "list")), &devs)
	verify := gatecheckCmd(t, "audit", "verify", "--config", cfg)
	if len(devs) != 1 || !strings.Contains(verify, fmt.Sprintf("verifies: %d entries", devs[0].Acked)) {
		t.Fatalf("central acknowledged %+v; device: %s", devs, verify)
	}
	stopCentral(false)
	t.Logf("central + sync: %d rounds, %d central SIGKILLs during imports, %d device SIGKILLs during syncs, %d records acknowledged and held, %d audit entries stored centrally once",
		rounds, centralKills, deviceKills, len(acked), devs[0].Acked)
	if rounds < 3 {
		t.Fatalf("only %d rounds", rounds)
	}
	reportCrash(t, "central_sync_rounds", rounds)
	reportCrash(t, "central_kills", centralKills)
	reportCrash(t, "device_sync_kills", deviceKills)
}

// reportCrash appends a figure to GATECHECK_CRASH_REPORT (JSON lines), when set.
func reportCrash(t *testing.T, name string, v int) {
	p := os.Getenv("GATECHECK_CRASH_REPORT")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "{\"%s\": %d}\n", name, v)
}
