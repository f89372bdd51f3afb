package demo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/devices/cardsim"
	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/config"
	"github.com/gatecheck/gatecheck/edge/web"
	"github.com/gatecheck/gatecheck/sync/central"
	"github.com/gatecheck/gatecheck/sync/wire"
	"golang.org/x/crypto/bcrypt"
)

// Files of the live demo.
const (
	LiveConfig = "live-device.yaml"
	PINFile    = "officer-pin.hash"
	// DemoPIN is the officer PIN of the demo page.
	DemoPIN = "246810"
)

// LiveOptions configure the live demo.
type LiveOptions struct {
	// Dir is where everything is written. Required; Live creates it.
	Dir string
	// Listen is the officer page's address. Default 127.0.0.1:8080.
	Listen string
	// Central is the central server's address. Default 127.0.0.1:0 (any free port).
	Central string
	// Once plays the traveller queue once instead of again every Pause.
	Once bool
	// Pause between rounds of the queue. Default 20s.
	Pause time.Duration
	// Pace multiplies the reader polls between travellers; default 4 (a traveller about
	// every 3 s, to watch on the page); 1 plays the queue quickly (tests).
	Pace int
	// Ready, if set, is called once the page answers and the device has synced.
	Ready func(LiveInfo)
	// QueueDone, if set, is called when a round of the queue has been played.
	QueueDone func(round int)
}

// LiveInfo says where the live demo runs.
type LiveInfo struct {
	PageURL    string
	CentralURL string
	Config     string // the device's config file
	PIN        string
	People     []Traveller
}

// Live runs the whole system on this machine until ctx ends: a central server holding the
// demo population and both policies, a simulated GA 467 reader on a pseudo-terminal playing
// a queue of travellers that covers every outcome, and a highway-checkpoint device that
// bootstraps from the central, reads the cards, decides, audits, syncs and serves the
// officer's page. Everything stops cleanly when ctx ends.
func Live(ctx context.Context, opts LiveOptions, out io.Writer, log *slog.Logger) error {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:8080"
	}
	if opts.Central == "" {
		opts.Central = "127.0.0.1:0"
	}
	if opts.Pause == 0 {
		opts.Pause = 20 * time.Second
	}
	if opts.Pace == 0 {
		opts.Pace = 4
	}
	now := time.Now()
	dir := opts.Dir
	if _, err := Setup(dir, now); err != nil {
		return err
	}

	// The central server: the policy authority's key signs batches too in the demo.
	kb, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return err
	}
	priv, err := wire.ParsePrivateKey(kb)
	if err != nil {
		return err
	}
	hkb, err := os.ReadFile(filepath.Join(dir, HashKeyFile))
	if err != nil {
		return err
	}
	hk, err := config.ParseHashKey(hkb)
	if err != nil {
		return err
	}
	ring := wire.KeyRing{}
	ring.Add(priv.Public().(ed25519.PublicKey))
	srv, err := central.Open(central.Config{Dir: filepath.Join(dir, "central-data"), HashKey: hk, SigningKey: priv, PolicyKeys: ring, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	for _, f := range []string{AugSnapshot, NovSnapshot} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if _, err := srv.Publish(b); err != nil {
			return fmt.Errorf("demo: publish %s: %w", f, err)
		}
	}
	pf, err := os.Open(filepath.Join(dir, PeopleFile))
	if err != nil {
		return err
	}
	st, err := srv.Import(ctx, pf)
	pf.Close()
	if err != nil {
		return fmt.Errorf("demo: central import: %w", err)
	}
	devKey, err := edge.WriteNewKey(filepath.Join(dir, "live-device.key"))
	if err != nil {
		return err
	}
	if err := srv.AddDevice("demo-kiosk-live", devKey.Public().(ed25519.PublicKey)); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Central)
	if err != nil {
		return fmt.Errorf("demo: central listen: %w", err)
	}
	centralURL := "http://" + ln.Addr().String()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); hs.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		wg.Wait()
	}()
	fmt.Fprintf(out, "central server on %s: %d people, both policies published\n", centralURL, st.Records)

	// The device.
	h, err := bcrypt.GenerateFromPassword([]byte(DemoPIN), bcrypt.MinCost)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, PINFile), append(h, '\n'), 0o600); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, LiveConfig)
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `# The live demo's highway-checkpoint kiosk, written by 'gatecheck demo'.
device_id: demo-kiosk-live
kind: highway-checkpoint
data_dir: live-data
audit_dir: live-audit
device_key_file: live-device.key
control_socket: live.sock
hash_key_file: %s
trusted_keys: [%s]
reader:
  port: %s
  poll_interval: 250ms
gate:
  kind: log
display: console
sync:
  url: %s
  interval: 5s
web:
  listen: %s
  officer_pin_file: %s
`, HashKeyFile, PubFile, ReaderLink, centralURL, opts.Listen, PINFile), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type listening struct {
		addr net.Addr
		err  error
	}
	pageAddr := make(chan listening, 1)
	ropts := edge.RunOptions{Screen: out}
	if err := web.Attach(&ropts, cfg, log, func(a net.Addr, err error) { pageAddr <- listening{a, err} }); err != nil {
		return err
	}
	sim, err := startQueue(ctx, dir, now, opts, true, log)
	if err != nil {
		return fmt.Errorf("demo: simulated reader: %w", err)
	}
	defer sim.Close()
	runErr := make(chan error, 1)
	go func() { runErr <- edge.Run(ctx, cfg, ropts, log) }()
	var page string
	select {
	case l := <-pageAddr:
		if l.err != nil {
			cancel()
			<-runErr
			return fmt.Errorf("demo: the officer page: %w (another demo running? pick another --listen)", l.err)
		}
		page = "http://" + l.addr.String() + "/"
	case err := <-runErr:
		return fmt.Errorf("demo device: %w", err)
	case <-time.After(30 * time.Second):
		cancel()
		return errors.Join(errors.New("demo: the officer page did not start within 30 s"), <-runErr)
	}
	if err := waitSynced(ctx, page); err != nil {
		cancel()
		return errors.Join(err, <-runErr)
	}
	info := LiveInfo{PageURL: page, CentralURL: centralURL, Config: cfgPath, PIN: DemoPIN, People: People(now)}
	fmt.Fprintf(out, `
  Officer page:  %s   (PIN %s; 中文, English with the switch)
  Device config: %s
  The simulated reader now presents a queue of travellers covering every outcome%s.
  Try, in another terminal:
    go run ./cmd/gatecheck check --config %s --id %s
    go run ./cmd/gatecheck audit verify --config %s
  Ctrl-C stops everything.

`, page, DemoPIN, cfgPath, map[bool]string{true: "", false: fmt.Sprintf(", again every %s", opts.Pause)}[opts.Once],
		cfgPath, info.People[0].Record.ID, cfgPath)
	if opts.Ready != nil {
		opts.Ready(info)
	}
	if err := playQueue(ctx, sim, dir, now, opts, log); err != nil && ctx.Err() == nil {
		cancel()
		return errors.Join(err, <-runErr)
	}
	cancel()
	err = <-runErr
	fmt.Fprintln(out, "demo stopped")
	return err
}

// waitSynced waits (bounded) until the device's page reports a snapshot in force and a
// completed sync.
func waitSynced(ctx context.Context, page string) error {
	deadline := time.Now().Add(60 * time.Second)
	hc := &http.Client{Timeout: 5 * time.Second}
	for time.Now().Before(deadline) {
		var st web.Status
		if resp, err := hc.Get(page + "status"); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.Snapshot != nil && st.Sync.Cursor > 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("demo: the device did not sync from the central server within 60 s")
}

// startQueue plugs in the simulated reader with one round of the traveller queue. The first
// round starts before the device (so the device finds its reader at once) and waits about 6 s
// before the first card, while the device bootstraps.
func startQueue(ctx context.Context, dir string, now time.Time, opts LiveOptions, first bool, log *slog.Logger) (*cardsim.Sim, error) {
	q, err := Queue(now)
	if err != nil {
		return nil, err
	}
	script, err := cardsim.ParseScript(bytes.NewReader(q))
	if err != nil {
		return nil, err
	}
	for i := range script.Steps {
		script.Steps[i].Gap *= opts.Pace
	}
	if first && len(script.Steps) > 0 {
		script.Steps[0].Gap += int(6 * time.Second / livePoll)
	}
	return cardsim.Start(ctx, cardsim.Config{Script: script, Link: filepath.Join(dir, ReaderLink), Logger: log})
}

// livePoll is the live device's reader poll interval (its config says 250ms).
const livePoll = 250 * time.Millisecond

// playQueue plays the traveller queue through the simulated reader, once or every Pause,
// starting with the round already plugged in.
func playQueue(ctx context.Context, sim *cardsim.Sim, dir string, now time.Time, opts LiveOptions, log *slog.Logger) error {
	for round := 1; ; round++ {
		if round > 1 {
			var err error
			if sim, err = startQueue(ctx, dir, now, opts, false, log); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
		case <-sim.Finished():
			if opts.QueueDone != nil {
				opts.QueueDone(round)
			}
		}
		if opts.Once || ctx.Err() != nil {
			// Keep the reader plugged in until the end, as a real one would be.
			<-ctx.Done()
			return sim.Close()
		}
		select {
		case <-ctx.Done():
			return sim.Close()
		case <-time.After(opts.Pause):
		}
		sim.Close()
		log.Info("demo: next round of travellers", "round", round+1)
	}
}
