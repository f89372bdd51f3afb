package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/central"
	"github.com/gatecheck/gatecheck/sync/client"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// SyncResult is what `gatecheck bench --sync` prints. Memory figures are the device
// process's own (the central server runs in a child process, when the caller gives one).
type SyncResult struct {
	Records                 int     `json:"records"`
	GoMaxProcs              int     `json:"gomaxprocs"`
	MemoryLimitMiB          int     `json:"memory_limit_mib"`
	CentralSeparate         bool    `json:"central_in_child_process"`
	CentralLoadSeconds      float64 `json:"central_load_seconds"`
	BootstrapSeconds        float64 `json:"bootstrap_seconds"`
	BootstrapRecordsPerSec  float64 `json:"bootstrap_records_per_s"`
	BootstrapWireBytes      int64   `json:"bootstrap_wire_bytes"`
	PeakRSSAnonBootstrapMiB float64 `json:"peak_rss_anon_bootstrap_mib"`
	DiskBytes               int64   `json:"disk_bytes"`
	Updates                 int     `json:"updates"`
	CentralUpdateSeconds    float64 `json:"central_update_seconds"`
	DeltaSyncSeconds        float64 `json:"delta_sync_seconds"`
	DeltaApplyRecordsPerSec float64 `json:"delta_apply_records_per_s"`
	DeltaWireBytes          int64   `json:"delta_wire_bytes"`
	WireBytesPerUpdate      float64 `json:"wire_bytes_per_update"`
	PeakRSSAnonDeltaMiB     float64 `json:"peak_rss_anon_delta_mib"`
	// Decisions on the bootstrapped device (after the deltas).
	Decisions *Decisions `json:"decisions,omitempty"`
}

// countingTransport counts the bytes of response bodies as they come off the wire
// (compressed).
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.n}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// SyncConfig configures a sync bench.
type SyncConfig struct {
	Dir       string
	Records   int
	Updates   int
	Decisions int // decisions to time on the bootstrapped device; 0: none
	// MemoryLimitMiB is reported (the caller applies it to this process).
	MemoryLimitMiB int
	// StartCentral, if set, starts the central server in another process (so this process's
	// memory is the device's alone); nil runs it in this process.
	StartCentral func(ctx context.Context, dir string, records int, device ed25519.PublicKey) (Central, error)
	Progress     func(string)
}

// Central is the bench's central server: where it listens, its signing key, and updates on
// demand.
type Central interface {
	URL() string
	Key() ed25519.PublicKey
	LoadSeconds() float64
	// Update applies n fact-level updates (a new negative test each, for spread-out people).
	Update(n int) error
	Close() error
}

// Sync measures sync over loopback: a central server holding records people, a new device
// bootstrapping from it, updates fact-level changes pulled as deltas, then decisions on the
// device.
func Sync(ctx context.Context, cfg SyncConfig) (*SyncResult, error) {
	say := cfg.Progress
	if say == nil {
		say = func(string) {}
	}
	res := &SyncResult{Records: cfg.Records, Updates: cfg.Updates, GoMaxProcs: runtime.GOMAXPROCS(0), MemoryLimitMiB: cfg.MemoryLimitMiB}
	dpub, dpriv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	start := cfg.StartCentral
	if start == nil {
		start = StartCentralHere
	} else {
		res.CentralSeparate = true
	}
	say(fmt.Sprintf("loading %d people into the central server ...", cfg.Records))
	c, err := start(ctx, filepath.Join(cfg.Dir, "central"), cfg.Records, dpub)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res.CentralLoadSeconds = c.LoadSeconds()
	keys := wire.KeyRing{}
	keys.Add(c.Key())
	keys.Add(policyPub) // the decisions' policy
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: filepath.Join(cfg.Dir, "device"), HashKey: benchHashKey()}, TrustedKeys: keys})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ct := &countingTransport{}
	cl, err := client.New(client.Config{URL: c.URL(), DeviceID: "bench", Key: dpriv, Keys: keys,
		HTTP: &http.Client{Transport: ct, Timeout: 30 * time.Minute}})
	if err != nil {
		return nil, err
	}
	syncer := &edge.Syncer{Device: d, Clock: benchClock{}}
	runtime.GC()
	debug.FreeOSMemory()
	mem := newRSSAnonSampler()
	say("bootstrapping the device over loopback ...")
	t0 := time.Now()
	if _, err := cl.SyncOnce(ctx, syncer); err != nil {
		mem.stop()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	res.BootstrapSeconds = time.Since(t0).Seconds()
	res.BootstrapRecordsPerSec = float64(cfg.Records) / res.BootstrapSeconds
	res.BootstrapWireBytes = ct.n.Load()
	res.PeakRSSAnonBootstrapMiB = mem.stop()
	res.DiskBytes = store.DiskUsage(filepath.Join(cfg.Dir, "device"))

	if cfg.Updates > 0 {
		say(fmt.Sprintf("%d fact-level updates centrally ...", cfg.Updates))
		t0 = time.Now()
		if err := c.Update(cfg.Updates); err != nil {
			return nil, err
		}
		res.CentralUpdateSeconds = time.Since(t0).Seconds()
		say("delta sync ...")
		runtime.GC()
		debug.FreeOSMemory()
		mem = newRSSAnonSampler()
		before := ct.n.Load()
		t0 = time.Now()
		rep, err := cl.SyncOnce(ctx, syncer)
		if err != nil {
			mem.stop()
			return nil, fmt.Errorf("delta sync: %w", err)
		}
		res.DeltaSyncSeconds = time.Since(t0).Seconds()
		res.DeltaApplyRecordsPerSec = float64(rep.Changes) / res.DeltaSyncSeconds
		res.DeltaWireBytes = ct.n.Load() - before
		if rep.Changes > 0 {
			res.WireBytesPerUpdate = float64(res.DeltaWireBytes) / float64(rep.Changes)
		}
		res.PeakRSSAnonDeltaMiB = mem.stop()
	}
	if cfg.Decisions > 0 {
		if err := installBenchPolicy(d); err != nil {
			return nil, err
		}
		say(fmt.Sprintf("timing %d decisions ...", cfg.Decisions))
		if res.Decisions, err = TimeDecisions(d, cfg.Records, cfg.Decisions); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// StartCentralHere runs the bench's central server in this process.
func StartCentralHere(ctx context.Context, dir string, records int, device ed25519.PublicKey) (Central, error) {
	return startCentral(ctx, dir, records, device, "127.0.0.1:0")
}

type localCentral struct {
	c    *central.Server
	srv  *http.Server
	url  string
	pub  ed25519.PublicKey
	load float64
	n    int
}

func (l *localCentral) URL() string            { return l.url }
func (l *localCentral) Key() ed25519.PublicKey { return l.pub }
func (l *localCentral) LoadSeconds() float64   { return l.load }
func (l *localCentral) Close() error {
	l.srv.Close()
	return l.c.Close()
}

// Update applies n updates: a new negative test each for people spread over the population.
func (l *localCentral) Update(n int) error {
	chunk := make([]central.Person, 0, 1000)
	for i := 0; i < n; i += cap(chunk) {
		chunk = chunk[:0]
		for j := i; j < min(i+cap(chunk), n); j++ {
			k := (j * 7919) % l.n
			f := Facts(k, Now)
			at := engine.UnixOf(Now) + engine.Unix(j%3600)
			f.Tests = append(f.Tests, engine.Test{Sampled: at, Reported: at + 7200, Result: engine.ResultNegative})
			chunk = append(chunk, central.Person{Key: l.c.Key(engine.IDNumber(ID(k))), Facts: f})
		}
		if _, err := l.c.Put(chunk); err != nil {
			return err
		}
	}
	return nil
}

// benchClock is the bench's fixed moment: central and device agree on it, so the device's
// clock checks pass and the decisions are the policy's.
type benchClock struct{}

func (benchClock) Now() time.Time { return Now }

func benchHashKey() []byte {
	hk := make([]byte, 32)
	copy(hk, "gatecheck bench hash key .......")
	return hk
}

// startCentral opens a central server in dir, bulk-loads records people, registers the
// device and serves on addr.
func startCentral(ctx context.Context, dir string, records int, device ed25519.PublicKey, addr string) (*localCentral, error) {
	_, cpriv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	c, err := central.Open(central.Config{Dir: dir, HashKey: benchHashKey(), SigningKey: cpriv, Clock: func() time.Time { return Now }})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	i := 0
	if _, err := c.LoadInitial(func() (central.Person, bool, error) {
		if i == records {
			return central.Person{}, false, nil
		}
		if i%100000 == 0 && ctx.Err() != nil {
			return central.Person{}, false, ctx.Err()
		}
		p := central.Person{Key: c.Key(engine.IDNumber(ID(i))), Facts: Facts(i, Now)}
		i++
		return p, true, nil
	}); err != nil {
		c.Close()
		return nil, err
	}
	load := time.Since(t0).Seconds()
	if err := c.AddDevice("bench", device); err != nil {
		c.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	srv := &http.Server{Handler: c.Handler()}
	go srv.Serve(ln)
	return &localCentral{c: c, srv: srv, url: "http://" + ln.Addr().String(), pub: cpriv.Public().(ed25519.PublicKey), load: load, n: records}, nil
}

// ServeCentral is the child-process side of a separate central: it loads the people, prints
// one JSON line ({"url","key","load_seconds"}) on out, then applies {"updates": n} commands
// read from in, answering {"ok": true} or {"error": ...}, until in ends.
func ServeCentral(ctx context.Context, dir string, records int, device ed25519.PublicKey, in io.Reader, out io.Writer) error {
	l, err := startCentral(ctx, dir, records, device, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	enc := json.NewEncoder(out)
	if err := enc.Encode(map[string]any{"url": l.url, "key": hex.EncodeToString(l.pub), "load_seconds": l.load}); err != nil {
		return err
	}
	dec := json.NewDecoder(in)
	for {
		var cmd struct {
			Updates int `json:"updates"`
		}
		if err := dec.Decode(&cmd); err != nil {
			return nil // the parent is done
		}
		if err := l.Update(cmd.Updates); err != nil {
			enc.Encode(map[string]string{"error": err.Error()})
			continue
		}
		enc.Encode(map[string]bool{"ok": true})
	}
}

// ChildCentral talks to a central server started by ServeCentral in a child process.
type ChildCentral struct {
	Cmd  interface{ Wait() error }
	In   io.WriteCloser
	Out  *json.Decoder
	url  string
	pub  ed25519.PublicKey
	load float64
}

// Ready reads the child's first line.
func (c *ChildCentral) Ready() error {
	var hello struct {
		URL         string  `json:"url"`
		Key         string  `json:"key"`
		LoadSeconds float64 `json:"load_seconds"`
	}
	if err := c.Out.Decode(&hello); err != nil {
		return fmt.Errorf("central child: %w", err)
	}
	k, err := hex.DecodeString(hello.Key)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return fmt.Errorf("central child: bad key %q", hello.Key)
	}
	c.url, c.pub, c.load = hello.URL, k, hello.LoadSeconds
	return nil
}

func (c *ChildCentral) URL() string            { return c.url }
func (c *ChildCentral) Key() ed25519.PublicKey { return c.pub }
func (c *ChildCentral) LoadSeconds() float64   { return c.load }

// Update asks the child for n updates and waits for them.
func (c *ChildCentral) Update(n int) error {
	if err := json.NewEncoder(c.In).Encode(map[string]int{"updates": n}); err != nil {
		return err
	}
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := c.Out.Decode(&r); err != nil {
		return fmt.Errorf("central child: %w", err)
	}
	if !r.OK {
		return fmt.Errorf("central child: %s", r.Error)
	}
	return nil
}

// Close ends the child (its stdin closes) and waits for it.
func (c *ChildCentral) Close() error {
	c.In.Close()
	return c.Cmd.Wait()
}
