package edge

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/devices/display"
	"github.com/gatecheck/gatecheck/devices/ga467"
	"github.com/gatecheck/gatecheck/devices/relay"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/config"
	"github.com/gatecheck/gatecheck/edge/diskspace"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/client"
	"github.com/gatecheck/gatecheck/sync/gossip"
)

// OpenConfig opens the device a config file describes (store, trusted keys).
func OpenConfig(cfg *config.Config, log *slog.Logger) (*Device, error) {
	hk, err := cfg.HashKey()
	if err != nil {
		return nil, err
	}
	ring, err := cfg.KeyRing()
	if err != nil {
		return nil, err
	}
	d, err := Open(Config{
		Store: store.Config{Dir: cfg.DataDir, HashKey: hk, Profile: store.Profile(cfg.StoreProfile),
			MinFree: int64(cfg.MinFreeMiB) << 20},
		TrustedKeys: ring,
		Logger:      log,
	})
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("data directory %s is in use by another process - a 'gatecheck run' already running? (its control socket is %s)", cfg.DataDir, cfg.ControlSocket)
		}
		return nil, err
	}
	return d, nil
}

// RunOptions adjust a running device for tests and the demo.
type RunOptions struct {
	// Clock; nil means the system clock.
	Clock Clock
	// Screen receives the console display; nil means os.Stdout.
	Screen io.Writer
	// Ready, if set, is called once the control socket is listening.
	Ready func(*Daemon)
	// Observer, if set, is told of each decision and reader error (the page's metrics).
	Observer Observer
	// Page, if set, runs beside the daemon until ctx ends (the officer's web page); its error
	// is logged and the device goes on deciding.
	Page func(ctx context.Context, rt Running) error
}

// Running is what a running device hands to its page.
type Running struct {
	Config *config.Config
	Daemon *Daemon
	Device *Device
	Audit  *audit.Log
	Syncer *Syncer                // nil without sync
	Client *client.Client         // nil without sync
	Peers  func() []gossip.Member // nil without gossip
}

// Run is `gatecheck run`: it opens everything the config names - store, device key, audit
// log, card reader, gate, display, control socket - runs the card loop until ctx ends, and
// shuts down in order (loop, then socket, then gate and reader, then the store), losing
// nothing: every audit entry is synced before its gate opens.
func Run(ctx context.Context, cfg *config.Config, opts RunOptions, log *slog.Logger) error {
	ApplyMemoryLimit(cfg.MemoryLimitMiB, log)
	d, err := OpenConfig(cfg, log)
	if err != nil {
		return err
	}
	defer d.Close()
	priv, created, err := LoadOrCreateKey(cfg.DeviceKeyFile)
	if err != nil {
		return err
	}
	if created {
		log.Info("device key created", "path", cfg.DeviceKeyFile)
	}
	alog, err := audit.OpenDir(cfg.AuditDir, cfg.DeviceID, priv, log)
	if err != nil {
		return err
	}
	defer alog.Close()
	alog.SetFloor(diskspace.Floor{Dir: filepath.Dir(cfg.AuditDir), Min: AuditFloor(cfg.MinFreeMiB)})
	dc := DaemonConfig{Device: d, Audit: alog, Clock: opts.Clock, Logger: log,
		CompanionWindow: time.Duration(cfg.CompanionWindow), Observer: opts.Observer,
		Registrations: cfg.Kind == config.KindHighway}
	if cfg.Display == "console" {
		w := opts.Screen
		if w == nil {
			w = os.Stdout
		}
		dc.Display = display.NewConsole(w, w == os.Stdout && isTerminal(os.Stdout))
	}
	if r := cfg.Reader; r != nil {
		dc.PollInterval = time.Duration(r.PollInterval)
		reader, err := ga467.Open(ga467.Config{Path: r.Port, Baud: r.Baud, Logger: log})
		if err != nil {
			// A reader that is not plugged in yet is not fatal: the loop keeps trying.
			log.Warn("card reader not available at start; will keep trying", logKeyErr, err)
			reader, err = ga467.OpenLater(ga467.Config{Path: r.Port, Baud: r.Baud, Logger: log})
			if err != nil {
				return err
			}
		}
		defer reader.Close()
		dc.Reader = reader
	}
	if g := cfg.Gate; g != nil {
		switch g.Kind {
		case "log":
			dc.Gate = &LogGate{Display: dc.Display, Clock: dc.Clock, Logger: log}
		default:
			gate, err := relay.Open(relay.Config{Path: g.Port, Baud: g.Baud, Pulse: time.Duration(g.Pulse)})
			if err != nil {
				return fmt.Errorf("gate: %w", err)
			}
			defer gate.Close()
			dc.Gate = gate
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	var syncer *Syncer
	if cfg.Sync != nil {
		syncer = &Syncer{Device: d, Audit: alog, Clock: dc.Clock, Central: cfg.Sync.URL}
	}
	var node *gossip.Node
	if g := cfg.Gossip; g != nil {
		var err error
		if node, err = startGossip(ctx, cfg, d, syncer, &dc, &wg, log); err != nil {
			return err
		}
		defer node.Close()
	}
	dm, err := NewDaemon(dc)
	if err != nil {
		return err
	}
	ctl := &Control{Daemon: dm, Device: d, Audit: alog, DeviceID: cfg.DeviceID, DeviceKey: priv.Public().(ed25519.PublicKey),
		TempDir: filepath.Dir(cfg.DataDir), Logger: log}
	if sc := cfg.Sync; sc != nil {
		ring, err := cfg.KeyRing()
		if err != nil {
			return err
		}
		ccfg := client.Config{URL: sc.URL, DeviceID: cfg.DeviceID, Key: priv, Keys: ring, Logger: log, Lock: &syncer.Running}
		if node != nil {
			ccfg.Relays = func() []string { return linkedRelays(node) }
		}
		cl, err := client.New(ccfg)
		if err != nil {
			return err
		}
		ctl.Syncer, ctl.Client = syncer, cl
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.Run(ctx, syncer, time.Duration(sc.Interval), func(rep client.Report, err error) {
				syncer.Record(rep, err)
				if node != nil {
					node.UpdateMeta()
				}
				if err == nil && (rep.Changes > 0 || len(rep.Snapshots) > 0 || rep.AuditUploaded > 0) {
					log.Info("synced", "cursor", rep.Cursor, "changes", rep.Changes, "snapshots", rep.Snapshots, "audit_acked", rep.AuditAcked, "bootstrap", rep.Bootstrapped, "via", rep.Via)
				}
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ServeControl(ctx, cfg.ControlSocket, ctl.Handler(), log); err != nil {
			errc <- err
			cancel()
		}
	}()
	if opts.Page != nil {
		rt := Running{Config: cfg, Daemon: dm, Device: d, Audit: alog, Syncer: syncer, Client: ctl.Client}
		if node != nil {
			rt.Peers = node.Members
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The gate keeps working without its page: the error is logged, not fatal.
			if err := opts.Page(ctx, rt); err != nil {
				log.Error("officer page not available; the device goes on deciding", logKeyErr, err)
			}
		}()
	}
	if opts.Ready != nil {
		waitForSocket(ctx, cfg.ControlSocket)
		opts.Ready(dm)
	}
	log.Info("gatecheck running", logKeyDevice, cfg.DeviceID, "kind", cfg.Kind, "socket", cfg.ControlSocket, "audit_seq", alog.Seq())
	if err := dm.Run(ctx); err != nil {
		errc <- err
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		return err
	}
	log.Info("gatecheck stopped", "audit_seq", alog.Seq())
	return nil
}

// AuditFloor is the audit log's free-space floor for a store floor of storeMiB: a quarter,
// at least 32 MiB.
func AuditFloor(storeMiB int) uint64 { return uint64(max(32, storeMiB/4)) << 20 }

// ApplyMemoryLimit sets the Go runtime's soft memory limit to mib MiB unless GOMEMLIMIT is
// set (or mib is 0).
func ApplyMemoryLimit(mib int, log *slog.Logger) {
	if mib <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(mib) << 20)
	log.Debug("memory limit", "mib", mib)
}

// startGossip joins the checkpoint: the memberlist node (advertising snapshot, cursor, link
// and relay), anti-passback from peers' events, and the relay that forwards peers' sync
// requests while this device has a link.
func startGossip(ctx context.Context, cfg *config.Config, d *Device, syncer *Syncer, dc *DaemonConfig, wg *sync.WaitGroup, log *slog.Logger) (*gossip.Node, error) {
	g := cfg.Gossip
	keys, err := cfg.GossipKeys()
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(g.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip.bind: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("gossip.bind: %w", err)
	}
	pb := &Passback{Window: time.Duration(g.PassbackWindow), Device: cfg.DeviceID}
	var clock Clock = SystemClock{}
	if dc.Clock != nil {
		clock = dc.Clock
	}
	if dc.Clock != nil {
		pb.Now = dc.Clock.Now
	}
	relayAddr := ""
	if syncer != nil {
		relay, err := NewRelay(cfg.Sync.URL, syncer.Linked)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", g.Relay)
		if err != nil {
			return nil, fmt.Errorf("gossip.relay: %w", err)
		}
		relayAddr = ln.Addr().String()
		srv := &http.Server{Handler: relay, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
			WriteTimeout: 10 * time.Minute, IdleTimeout: 2 * time.Minute}
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(ln) }()
		go func() { <-ctx.Done(); srv.Close() }()
	}
	node, err := gossip.Start(gossip.Config{Name: cfg.DeviceID, Checkpoint: g.Checkpoint, BindAddr: host, BindPort: p,
		Seeds: g.Seeds, Keys: keys, Logger: log, OnEvent: pb.OnEvent, Now: clock.Now,
		Meta: func() gossip.Meta {
			m := gossip.Meta{Lane: g.Lane, Relay: relayAddr}
			if st, err := d.Store().SyncState(); err == nil {
				m.Cursor = st.Cursor
			}
			d.mu.RLock()
			m.Snapshot = d.set.Highest()
			d.mu.RUnlock()
			if syncer != nil {
				m.Link = syncer.Linked()
			}
			return m
		}})
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(relayAddr, "0.0.0.0:") || strings.HasPrefix(relayAddr, "[::]:") {
		// Advertise the address peers reach memberlist on, with the relay's port.
		_, rp, _ := net.SplitHostPort(relayAddr)
		h, _, _ := net.SplitHostPort(node.Addr())
		relayAddr = net.JoinHostPort(h, rp)
		node.UpdateMeta()
	}
	dc.Passback, dc.Events, dc.DeviceID, dc.Lane = pb, node, cfg.DeviceID, g.Lane
	log.Info("gossip joined", "checkpoint", g.Checkpoint, "addr", node.Addr(), "peers", len(node.Members()), "relay", relayAddr)
	return node, nil
}

// linkedRelays lists the relays of peers that currently reach the central.
func linkedRelays(n *gossip.Node) []string {
	var out []string
	for _, m := range n.Members() {
		if m.Meta.Link && m.Meta.Relay != "" {
			out = append(out, "http://"+m.Meta.Relay)
		}
	}
	return out
}

// LogGate is a gate without hardware: each opening is shown and logged.
type LogGate struct {
	Display Display
	Clock   Clock
	Logger  *slog.Logger
}

// Pulse shows and logs one opening.
func (g *LogGate) Pulse(context.Context) error {
	now := time.Now()
	if g.Clock != nil {
		now = g.Clock.Now()
	}
	g.Logger.Info("gate opened (log gate)")
	if g.Display != nil {
		return g.Display.Status(now.In(engine.Beijing), "闸机开启 gate opened (simulated)")
	}
	return nil
}

func waitForSocket(ctx context.Context, path string) {
	for i := 0; i < 200 && ctx.Err() == nil; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
