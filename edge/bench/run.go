package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Config configures a bench run.
type Config struct {
	Dir       string // Badger directory; required, should be empty
	Records   int    // synthetic people to load
	Decisions int    // decisions to time
	Profile   string // store profile
	// MemoryLimitMiB is reported (the caller applies it).
	MemoryLimitMiB int
	// MemProfile, if set, receives a heap profile taken at the end of the deciding phase.
	MemProfile string
	// Progress receives progress lines; nil discards them.
	Progress func(string)
}

// Result is what `gatecheck bench` prints.
type Result struct {
	Records              int        `json:"records"`
	Profile              string     `json:"profile"`
	GoMaxProcs           int        `json:"gomaxprocs"`
	IngestSeconds        float64    `json:"ingest_seconds"`
	IngestRecordsPerSec  float64    `json:"ingest_records_per_s"`
	MemoryLimitMiB       int        `json:"memory_limit_mib"`
	DiskBytes            int64      `json:"disk_bytes"`
	PeakRSSAnonIngestMiB float64    `json:"peak_rss_anon_ingest_mib"`
	Decisions            *Decisions `json:"decisions"`
}

// Decisions are the timed decisions: random people, 10% of them unknown to the device;
// decision = ID parse + keyed hash + Badger lookup + CBOR decode + rules.
type Decisions struct {
	N              int            `json:"n"`
	P50Micros      float64        `json:"p50_us"`
	P99Micros      float64        `json:"p99_us"`
	P999Micros     float64        `json:"p999_us"`
	PerSec1Core    float64        `json:"per_s_1core"`
	PerSec2Cores   float64        `json:"per_s_2cores"`
	PeakRSSAnonMiB float64        `json:"peak_rss_anon_mib"`
	Outcomes       map[string]int `json:"outcomes"`
}

// NewDevice opens a device in dir with the shipped November 2021 policy installed (signed with a
// throwaway key) at Now.
func NewDevice(dir, profile string) (*edge.Device, error) {
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: dir, HashKey: benchHashKey(), Profile: store.Profile(profile)}, TrustedKeys: policyRing})
	if err != nil {
		return nil, err
	}
	if err := installBenchPolicy(d); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// The bench's throwaway policy authority.
var policyPub, policyPriv, _ = wire.GenerateKey(rand.Reader)
var policyRing = func() wire.KeyRing { r := wire.KeyRing{}; r.Add(policyPub); return r }()

// installBenchPolicy installs the shipped November 2021 policy, signed by the bench's key.
func installBenchPolicy(d *edge.Device) error {
	snap, err := source.Load(policies.FS, policies.November2021, source.Overrides{})
	if err != nil {
		return err
	}
	signed, err := wire.SignSnapshot(snap, policyPriv)
	if err != nil {
		return err
	}
	if _, err := d.InstallSnapshot(signed, Now); err != nil {
		return err
	}
	return nil
}

// Load writes people [0, n) into the device's store through the bulk writer.
func Load(ctx context.Context, d *edge.Device, n int, progress func(int)) error {
	st := d.Store()
	w := st.NewWriter(Now)
	for i := 0; i < n; i++ {
		if i%65536 == 0 {
			if err := ctx.Err(); err != nil {
				w.Cancel()
				return err
			}
			if progress != nil && i > 0 {
				progress(i)
			}
		}
		id := ID(i)
		if err := w.Put(store.Person{Key: st.Key(engine.IDNumber(id)), Facts: Facts(i, Now)}); err != nil {
			w.Cancel()
			return fmt.Errorf("load person %d: %w", i, err)
		}
	}
	return w.Flush()
}

// Run loads cfg.Records people and times cfg.Decisions decisions.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	say := cfg.Progress
	if say == nil {
		say = func(string) {}
	}
	d, err := NewDevice(cfg.Dir, cfg.Profile)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	res := &Result{Records: cfg.Records, Profile: cfg.Profile, GoMaxProcs: runtime.GOMAXPROCS(0), MemoryLimitMiB: cfg.MemoryLimitMiB}

	mem := newRSSAnonSampler()
	say(fmt.Sprintf("loading %d synthetic people into %s ...", cfg.Records, cfg.Dir))
	start := time.Now()
	if err := Load(ctx, d, cfg.Records, func(i int) {
		if i%(1<<20) == 0 {
			say(fmt.Sprintf("  %d loaded (%.0f/s)", i, float64(i)/time.Since(start).Seconds()))
		}
	}); err != nil {
		mem.stop()
		return nil, err
	}
	res.IngestSeconds = time.Since(start).Seconds()
	res.IngestRecordsPerSec = float64(cfg.Records) / res.IngestSeconds
	res.PeakRSSAnonIngestMiB = mem.stop()
	res.DiskBytes = store.DiskUsage(cfg.Dir)

	res.Decisions, err = TimeDecisions(d, cfg.Records, cfg.Decisions)
	if err != nil {
		return nil, err
	}
	if cfg.MemProfile != "" {
		f, err := os.Create(cfg.MemProfile)
		if err != nil {
			return nil, fmt.Errorf("memory profile: %w", err)
		}
		runtime.GC()
		err = pprof.WriteHeapProfile(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("memory profile: %w", err)
		}
	}
	return res, nil
}

// TimeDecisions times n decisions for random people of a population of records (10% of them
// unknown to the device): one at a time on one core (latencies), then on all cores.
func TimeDecisions(d *edge.Device, records, n int) (*Decisions, error) {
	res := &Decisions{N: n, Outcomes: map[string]int{}}
	rng := mrand.New(mrand.NewPCG(1, 2))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = ID(rng.IntN(records + records/9))
	}
	// Return earlier phases' garbage to the OS, so this phase's figure is its own.
	runtime.GC()
	debug.FreeOSMemory()
	mem := newRSSAnonSampler()
	// Warm up the caches a little, as a device that has been running would be.
	for _, id := range ids[:min(len(ids), 10000)] {
		d.Check(edge.CheckRequest{Number: id}, Now)
	}
	prev := runtime.GOMAXPROCS(1)
	lat := make([]time.Duration, len(ids))
	start := time.Now()
	for i, id := range ids {
		t0 := time.Now()
		dec := d.Check(edge.CheckRequest{Number: id}, Now)
		lat[i] = time.Since(t0)
		res.Outcomes[dec.Outcome.String()]++
	}
	res.PerSec1Core = float64(len(ids)) / time.Since(start).Seconds()
	runtime.GOMAXPROCS(prev)
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[int(math.Min(float64(len(lat)-1), p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	res.P50Micros, res.P99Micros, res.P999Micros = q(0.50), q(0.99), q(0.999)
	workers := max(2, runtime.GOMAXPROCS(0))
	var next atomic.Int64
	var wg sync.WaitGroup
	start = time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if int(i) >= len(ids) {
					return
				}
				d.Check(edge.CheckRequest{Number: ids[i]}, Now)
			}
		}()
	}
	wg.Wait()
	res.PerSec2Cores = float64(len(ids)) / time.Since(start).Seconds()
	res.PeakRSSAnonMiB = mem.stop()
	if res.Outcomes["MANUAL"] > n/2 {
		return res, fmt.Errorf("bench: %d of %d decisions MANUAL: the device does not hold the population", res.Outcomes["MANUAL"], n)
	}
	return res, nil
}

// RSSAnon returns the process's anonymous resident memory (RssAnon of /proc/self/status) in
// bytes, or 0 where it is not available. Mmapped table files are not anonymous and not counted.
func RSSAnon() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("RssAnon:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

type rssSampler struct {
	done chan struct{}
	peak atomic.Int64
	wg   sync.WaitGroup
}

func newRSSAnonSampler() *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	s.peak.Store(RSSAnon())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				if v := RSSAnon(); v > s.peak.Load() {
					s.peak.Store(v)
				}
			}
		}
	}()
	return s
}

// stop ends sampling and returns the peak in MiB.
func (s *rssSampler) stop() float64 {
	close(s.done)
	s.wg.Wait()
	if v := RSSAnon(); v > s.peak.Load() {
		s.peak.Store(v)
	}
	return float64(s.peak.Load()) / (1 << 20)
}
