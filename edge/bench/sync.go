package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
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

// SyncResult is what `gatecheck bench --sync` prints.
type SyncResult struct {
	Records                 int     `json:"records"`
	CentralLoadSeconds      float64 `json:"central_load_seconds"`
	BootstrapSeconds        float64 `json:"bootstrap_seconds"`
	BootstrapRecordsPerSec  float64 `json:"bootstrap_records_per_s"`
	BootstrapWireBytes      int64   `json:"bootstrap_wire_bytes"`
	Updates                 int     `json:"updates"`
	DeltaSyncSeconds        float64 `json:"delta_sync_seconds"`
	DeltaApplyRecordsPerSec float64 `json:"delta_apply_records_per_s"`
	DeltaWireBytes          int64   `json:"delta_wire_bytes"`
	WireBytesPerUpdate      float64 `json:"wire_bytes_per_update"`
	PeakRSSAnonMiB          float64 `json:"peak_rss_anon_mib"`
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

// Sync measures sync over loopback: a central server holding records people, a new device
// bootstrapping from it, then updates fact-level changes (a new negative test each for random
// people) pulled as deltas.
func Sync(ctx context.Context, dir string, records, updates int, say func(string)) (*SyncResult, error) {
	res := &SyncResult{Records: records, Updates: updates}
	_, cpriv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	keys := wire.KeyRing{}
	keys.Add(cpriv.Public().(ed25519.PublicKey))
	hk := make([]byte, 32)
	copy(hk, "gatecheck bench hash key .......")
	c, err := central.Open(central.Config{Dir: filepath.Join(dir, "central"), HashKey: hk, SigningKey: cpriv})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	say(fmt.Sprintf("loading %d people into the central server ...", records))
	start := time.Now()
	chunk := make([]central.Person, 0, 1000)
	for i := 0; i < records; i++ {
		chunk = append(chunk, central.Person{Key: c.Key(engine.IDNumber(ID(i))), Facts: Facts(i, Now)})
		if len(chunk) == cap(chunk) || i == records-1 {
			if _, err := c.Put(chunk); err != nil {
				return nil, err
			}
			chunk = chunk[:0]
		}
		if i%100000 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	res.CentralLoadSeconds = time.Since(start).Seconds()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: c.Handler()}
	go srv.Serve(ln)
	defer srv.Close()

	dpub, dpriv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := c.AddDevice("bench", dpub); err != nil {
		return nil, err
	}
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: filepath.Join(dir, "device"), HashKey: hk}, TrustedKeys: keys})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ct := &countingTransport{}
	cl, err := client.New(client.Config{URL: "http://" + ln.Addr().String(), DeviceID: "bench", Key: dpriv, Keys: keys,
		HTTP: &http.Client{Transport: ct, Timeout: 30 * time.Minute}})
	if err != nil {
		return nil, err
	}
	syncer := &edge.Syncer{Device: d}
	runtime.GC()
	debug.FreeOSMemory()
	mem := newRSSAnonSampler()
	say("bootstrapping the device over loopback ...")
	start = time.Now()
	if _, err := cl.SyncOnce(ctx, syncer); err != nil {
		mem.stop()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	res.BootstrapSeconds = time.Since(start).Seconds()
	res.BootstrapRecordsPerSec = float64(records) / res.BootstrapSeconds
	res.BootstrapWireBytes = ct.n.Load()

	say(fmt.Sprintf("%d fact-level updates centrally, then a delta sync ...", updates))
	for i := 0; i < updates; i += 1000 {
		chunk = chunk[:0]
		for j := i; j < min(i+1000, updates); j++ {
			k := (j * 7919) % records
			f := Facts(k, Now)
			s := engine.UnixOf(Now) + engine.Unix(j%3600)
			f.Tests = append(f.Tests, engine.Test{Sampled: s, Reported: s + 7200, Result: engine.ResultNegative})
			chunk = append(chunk, central.Person{Key: c.Key(engine.IDNumber(ID(k))), Facts: f})
		}
		if _, err := c.Put(chunk); err != nil {
			mem.stop()
			return nil, err
		}
	}
	before := ct.n.Load()
	start = time.Now()
	rep, err := cl.SyncOnce(ctx, syncer)
	if err != nil {
		mem.stop()
		return nil, fmt.Errorf("delta sync: %w", err)
	}
	res.DeltaSyncSeconds = time.Since(start).Seconds()
	res.DeltaApplyRecordsPerSec = float64(rep.Changes) / res.DeltaSyncSeconds
	res.DeltaWireBytes = ct.n.Load() - before
	if rep.Changes > 0 {
		res.WireBytesPerUpdate = float64(res.DeltaWireBytes) / float64(rep.Changes)
	}
	res.PeakRSSAnonMiB = mem.stop()
	return res, nil
}
