package edge_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/bench"
	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
	"github.com/gatecheck/gatecheck/sync/central"
	"github.com/gatecheck/gatecheck/sync/client"
	"github.com/gatecheck/gatecheck/sync/gossip"
	"github.com/gatecheck/gatecheck/sync/wire"
	"github.com/hashicorp/memberlist"
)

// blockingTransport wraps memberlist's transport to cut a node off from named peers
// (partitions without touching the network).
type blockingTransport struct {
	*memberlist.NetTransport
	mu      sync.Mutex
	blocked map[string]bool // host:port of peers this node cannot reach or hear
	packets chan *memberlist.Packet
	streams chan net.Conn
	bytes   int64
}

func newBlockingTransport(t testing.TB) *blockingTransport {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	b := &blockingTransport{NetTransport: nt, blocked: map[string]bool{}, packets: make(chan *memberlist.Packet, 256), streams: make(chan net.Conn, 16)}
	go func() {
		for p := range nt.PacketCh() {
			if !b.isBlocked(p.From.String()) {
				b.packets <- p
			}
		}
	}()
	go func() {
		for c := range nt.StreamCh() {
			if b.isBlocked(c.RemoteAddr().String()) {
				c.Close()
				continue
			}
			b.streams <- c
		}
	}()
	return b
}

func (b *blockingTransport) isBlocked(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.blocked[addr] || b.blocked[host+":*"]
}

func (b *blockingTransport) block(all bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if all {
		b.blocked["127.0.0.1:*"] = true
	} else {
		b.blocked = map[string]bool{}
	}
}

func (b *blockingTransport) WriteTo(p []byte, addr string) (time.Time, error) {
	if b.isBlocked(addr) {
		return time.Now(), nil // dropped on the floor, like a cut cable
	}
	b.mu.Lock()
	b.bytes += int64(len(p))
	b.mu.Unlock()
	return b.NetTransport.WriteTo(p, addr)
}

func (b *blockingTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if b.isBlocked(addr) {
		return nil, fmt.Errorf("partitioned from %s", addr)
	}
	return b.NetTransport.DialTimeout(addr, d)
}

// WriteToAddress and DialAddressTimeout shadow the NodeAwareTransport methods NetTransport
// would otherwise serve directly, bypassing the block.
func (b *blockingTransport) WriteToAddress(p []byte, a memberlist.Address) (time.Time, error) {
	return b.WriteTo(p, a.Addr)
}

func (b *blockingTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return b.DialTimeout(a.Addr, d)
}

func (b *blockingTransport) PacketCh() <-chan *memberlist.Packet { return b.packets }
func (b *blockingTransport) StreamCh() <-chan net.Conn           { return b.streams }

func (b *blockingTransport) sent() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// peer is one device of the checkpoint.
type peer struct {
	name   string
	dev    *edge.Device
	audit  *audit.Log
	syncer *edge.Syncer
	cli    *client.Client
	node   *gossip.Node
	tr     *blockingTransport
	relay  *http.Server
	rurl   string
	key    ed25519.PrivateKey
}

var gossipKey = []byte("0123456789abcdef0123456789abcdef")

func (w *syncWorld) startPeer(t testing.TB, name string, linked bool, seeds []string, dir string) *peer {
	t.Helper()
	p := &peer{name: name}
	if dir == "" {
		dir = t.TempDir()
	}
	d, err := edge.Open(edge.Config{Store: store.Config{Dir: dir + "/store", HashKey: w.hashKey}, TrustedKeys: w.keys})
	if err != nil {
		t.Fatal(err)
	}
	p.dev = d
	priv, created, err := edge.LoadOrCreateKey(dir + "/device.key")
	if err != nil {
		t.Fatal(err)
	}
	p.key = priv
	if created {
		if err := w.central.AddDevice(name, priv.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
	}
	if p.audit, err = audit.OpenDir(dir+"/audit", name, priv, nil); err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:1" // nothing listens: no central link
	if linked {
		url = w.url
	}
	p.syncer = &edge.Syncer{Device: d, Audit: p.audit, Clock: w.clock, Central: url}
	relay, err := edge.NewRelay(w.url, p.syncer.Linked)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.relay = &http.Server{Handler: relay}
	go p.relay.Serve(ln)
	p.rurl = ln.Addr().String()
	p.tr = newBlockingTransport(t)
	p.node, err = gossip.Start(gossip.Config{Name: name, Checkpoint: "G4-lane-test", Keys: [][]byte{gossipKey}, Seeds: seeds, Local: true,
		Now: w.clock.Now, Transport: p.tr, Meta: func() gossip.Meta {
			st, _ := d.Store().SyncState()
			return gossip.Meta{Snapshot: highest(d), Cursor: st.Cursor, Link: p.syncer.Linked(), Relay: p.rurl, Lane: name}
		}})
	if err != nil {
		t.Fatal(err)
	}
	p.cli, err = client.New(client.Config{URL: url, DeviceID: name, Key: priv, Keys: w.keys, HTTP: &http.Client{Timeout: 5 * time.Second},
		Relays: func() []string {
			if p.tr.isBlocked("127.0.0.1:0") {
				return nil // partitioned: the peers' relays are out of reach too
			}
			var out []string
			for _, m := range p.node.Members() {
				if m.Meta.Link && m.Meta.Relay != "" {
					out = append(out, "http://"+m.Meta.Relay)
				}
			}
			return out
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop() })
	return p
}

func highest(d *edge.Device) uint64 {
	var v uint64
	for _, p := range d.Policies() {
		v = max(v, p.Version())
	}
	return v
}

func (p *peer) stop() {
	if p.node == nil {
		return
	}
	p.node.Close()
	p.tr.Shutdown()
	p.relay.Close()
	p.audit.Close()
	p.dev.Close()
	p.node = nil
}

func (p *peer) syncRound() error {
	rep, err := p.cli.SyncOnce(context.Background(), p.syncer)
	p.syncer.Record(rep, err)
	p.node.UpdateMeta()
	return err
}

// converge runs bounded sync rounds until every running peer holds the central's cursor and
// snapshot.
func (w *syncWorld) converge(t testing.TB, peers []*peer, rounds int) int {
	t.Helper()
	cs, _ := w.central.State()
	for r := 0; r < rounds; r++ {
		done := true
		for _, p := range peers {
			if p.node == nil {
				continue
			}
			p.syncRound()
			st, _ := p.dev.Store().SyncState()
			if st.Cursor != cs.Cursor || highest(p.dev) != cs.Snapshot || !st.Digest.Equal(cs.Digest) {
				done = false
			}
		}
		if done {
			return r + 1
		}
		time.Sleep(100 * time.Millisecond) // gossip needs a moment to spread the new metadata
	}
	var states []string
	for _, p := range peers {
		if p.node != nil {
			st, _ := p.dev.Store().SyncState()
			states = append(states, fmt.Sprintf("%s@%d/%d", p.name, st.Cursor, highest(p.dev)))
		}
	}
	t.Fatalf("not converged after %d rounds to cursor %d snapshot %d: %v", rounds, cs.Cursor, cs.Snapshot, states)
	return 0
}

func TestCheckpointGossip(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult, `"tests":[{"sampled":"2021-11-16T20:00:00+08:00","reported":"2021-11-17T06:00:00+08:00","result":"negative"}]`, `"declarations":["2021-11-16"]`) + rec(elder))

	// Five devices at one checkpoint; only lane-0 reaches the central.
	peers := []*peer{w.startPeer(t, "lane-0", true, nil, "")}
	seed := peers[0].node.Addr()
	dirs := make([]string, 5)
	for i := 1; i < 5; i++ {
		dirs[i] = t.TempDir()
		peers = append(peers, w.startPeer(t, fmt.Sprintf("lane-%d", i), false, []string{seed}, dirs[i]))
	}
	w.converge(t, peers, 60)
	for _, p := range peers[1:] {
		if p.syncer.Linked() {
			t.Fatalf("%s claims a central link it does not have", p.name)
		}
	}

	t.Run("a new policy published centrally reaches every device", func(t *testing.T) {
		w.publish(policies.November2021, source.Overrides{Version: 2021111800, EffectiveFrom: w.clock.Now().Add(-time.Minute)})
		w.importCentral(rec(elder, `"popups":[{"n":4,"since":"2021-11-17T07:00:00+08:00"}]`))
		w.converge(t, peers, 60)
		for _, p := range peers {
			if d := p.dev.Check(edge.CheckRequest{Number: elder}, w.clock.Now()); d.Outcome != engine.DenyPopup4 || d.SnapshotVersion != 2021111800 {
				t.Fatalf("%s: %+v", p.name, d)
			}
		}
	})

	t.Run("a node that was down rejoins and catches up", func(t *testing.T) {
		peers[3].stop()
		w.importCentral(rec(adult, `"inbound":"2021-11-10"`))
		peers[3] = w.startPeer(t, "lane-3", false, []string{seed}, dirs[3])
		w.converge(t, peers, 60)
	})

	t.Run("audit of an unlinked device is carried upstream once", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			peers[2].audit.Append(audit.Entry{Kind: audit.KindDecision, TimeMs: int64(i), Outcome: "PASS"})
		}
		if err := peers[2].syncRound(); err != nil {
			t.Fatal(err)
		}
		peers[2].syncRound() // again: nothing duplicated
		if n, _ := w.central.AuditCount("lane-2"); n != 3 {
			t.Fatalf("central holds %d entries of lane-2, want 3", n)
		}
	})

	t.Run("a peer serving forged data is refused and the others still converge", func(t *testing.T) {
		_, evil, _ := wire.GenerateKey(rand.Reader)
		rogue := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/v1/nonce"):
				rw.Write([]byte(`{"nonce":"00"}`))
			case strings.HasPrefix(r.URL.Path, "/v1/snapshots"):
				b, _ := wire.Marshal([][]byte{})
				rw.Write(b)
			default:
				forged, _ := wire.SignBatch(&wire.Batch{From: 0, To: 999, Digest: make([]byte, 32)}, evil)
				rw.Write(forged)
			}
		})}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go rogue.Serve(ln)
		defer rogue.Close()
		// lane-4 tries the rogue relay first.
		bad := "http://" + ln.Addr().String()
		c, err := client.New(client.Config{URL: "http://127.0.0.1:1", DeviceID: "lane-4", Key: peers[4].key, Keys: w.keys,
			HTTP:   &http.Client{Timeout: 5 * time.Second},
			Relays: func() []string { return []string{bad, "http://" + peers[0].rurl} }})
		if err != nil {
			t.Fatal(err)
		}
		peers[4].cli = c
		w.importCentral(rec(adult, `"inbound":"2021-11-12"`))
		w.converge(t, peers, 60)
	})

	t.Run("a partition heals", func(t *testing.T) {
		p := peers[1]
		p.tr.block(true)
		sees := func() bool {
			for _, m := range peers[0].node.Members() {
				if m.Name == p.name {
					return true
				}
			}
			return false
		}
		for i := 0; i < 300 && sees(); i++ { // bounded: failure detection takes seconds
			time.Sleep(100 * time.Millisecond)
		}
		if sees() {
			t.Fatal("the cluster still sees the partitioned node")
		}
		w.importCentral(rec(elder, `"inbound":"2021-11-13"`))
		if err := p.syncRound(); err == nil {
			t.Fatal("a partitioned node without a link synced")
		}
		p.tr.block(false)
		if err := p.node.Join(seed); err != nil {
			t.Fatal(err)
		}
		w.converge(t, peers, 100)
	})

	t.Run("gossip without the key is refused", func(t *testing.T) {
		n, err := gossip.Start(gossip.Config{Name: "intruder", Checkpoint: "G4-lane-test", BindAddr: "127.0.0.1", Local: true,
			Keys: [][]byte{[]byte("another key of thirty-two bytes!")}})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		if err := n.Join(seed); err == nil {
			t.Fatal("a node with another gossip key joined")
		}
		for _, m := range peers[0].node.Members() {
			if m.Name == "intruder" {
				t.Fatal("the intruder became a member")
			}
		}
	})
}

// The same card at two lanes within the window: the second decision is MANUAL, naming the
// first lane and time.
func TestAntiPassback(t *testing.T) {
	w := newSyncWorld(t)
	w.publish(policies.November2021, source.Overrides{})
	w.importCentral(rec(adult, `"tests":[{"sampled":"2021-11-16T20:00:00+08:00","reported":"2021-11-17T06:00:00+08:00","result":"negative"}]`, `"declarations":["2021-11-16"]`))
	a := w.startPeer(t, "lane-1", true, nil, "")
	b := w.startPeer(t, "lane-2", true, []string{a.node.Addr()}, "")
	for _, p := range []*peer{a, b} {
		if err := p.syncRound(); err != nil {
			t.Fatal(err)
		}
	}
	daemon := func(p *peer) (*edge.Daemon, *edge.Passback) {
		pb := &edge.Passback{Window: 2 * time.Minute, Device: p.name}
		dm, err := edge.NewDaemon(edge.DaemonConfig{Device: p.dev, Audit: p.audit, Clock: w.clock, Passback: pb, Events: p.node, DeviceID: p.name, Lane: p.name})
		if err != nil {
			t.Fatal(err)
		}
		return dm, pb
	}
	da, _ := daemon(a)
	db, pbB := daemon(b)
	// Peers' events reach the other lane's passback table through gossip.
	stopB := make(chan struct{})
	defer close(stopB)
	events := make(chan gossip.Event, 16)
	b.node.Close() // restart lane-2's node with an event handler
	var err error
	b.node, err = gossip.Start(gossip.Config{Name: "lane-2", Checkpoint: "G4-lane-test", BindAddr: "127.0.0.1", Local: true,
		Keys: [][]byte{gossipKey}, Seeds: []string{a.node.Addr()}, Now: w.clock.Now, OnEvent: func(e gossip.Event) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && len(a.node.Members()) == 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	p, err := da.PresentManual(context.Background(), adult, false, "")
	if err != nil || p.Decision.Outcome != engine.Pass {
		t.Fatalf("lane-1: %+v %v", p, err)
	}
	select {
	case e := <-events:
		pbB.OnEvent(e)
	case <-time.After(10 * time.Second):
		t.Fatal("the decision event did not reach lane-2")
	}
	w.clock.Add(time.Minute)
	p, err = db.PresentManual(context.Background(), adult, false, "")
	if err != nil || p.Decision.Outcome != engine.Manual || p.Decision.Rule != edge.RulePassback || !strings.Contains(p.Decision.ReasonEN, "lane-1") {
		t.Fatalf("lane-2 within the window: %+v %v", p.Decision, err)
	}
	w.clock.Add(2 * time.Minute)
	if p, _ = db.PresentManual(context.Background(), adult, false, ""); p.Decision.Outcome != engine.Pass {
		t.Fatalf("lane-2 after the window: %+v", p.Decision)
	}
}

// BenchmarkCheckpointConverge: five devices, one linked; the central receives 100,000
// fact-level updates; time until every device holds them (reported as converge_s), then the
// gossip traffic per node at rest (gossip_bytes_per_s_per_node).
func BenchmarkCheckpointConverge(b *testing.B) {
	w := newSyncWorld(b)
	w.publish(policies.November2021, source.Overrides{})
	peers := []*peer{w.startPeer(b, "lane-0", true, nil, "")}
	seed := peers[0].node.Addr()
	for i := 1; i < 5; i++ {
		peers = append(peers, w.startPeer(b, fmt.Sprintf("lane-%d", i), false, []string{seed}, ""))
	}
	w.converge(b, peers, 60)
	const updates = 100_000
	var chunk []central.Person
	for i := 0; i < updates; i++ {
		f := bench.Facts(i, bench.Now)
		chunk = append(chunk, central.Person{Key: w.central.Key(engine.IDNumber(bench.ID(i))), Facts: f})
		if len(chunk) == 1000 {
			if _, err := w.central.Put(chunk); err != nil {
				b.Fatal(err)
			}
			chunk = chunk[:0]
		}
	}
	b.ResetTimer()
	start := time.Now()
	w.converge(b, peers, 200)
	b.ReportMetric(time.Since(start).Seconds(), "converge_s")
	b.StopTimer()
	before := make([]int64, len(peers))
	for i, p := range peers {
		before[i] = p.tr.sent()
	}
	time.Sleep(5 * time.Second) // a measurement window, not a wait for an event
	var total int64
	for i, p := range peers {
		total += p.tr.sent() - before[i]
	}
	b.ReportMetric(float64(total)/5/float64(len(peers)), "gossip_bytes_per_s_per_node")
}

func TestPassbackTable(t *testing.T) {
	now := time.Date(2021, 11, 20, 8, 0, 0, 0, engine.Beijing)
	pb := &edge.Passback{Window: 2 * time.Minute, Device: "lane-2", Now: func() time.Time { return now }}
	card := make([]byte, 16)
	card[0] = 7
	pb.OnEvent(gossip.Event{Kind: gossip.EventDecision, Device: "lane-1", Lane: "1", Person: card, TimeMs: now.Add(-time.Minute).UnixMilli()})
	if _, used := pb.Check(card, now, 1); !used {
		t.Fatal("a card used at lane 1 a minute ago was not flagged")
	}
	// This lane's own (flagged) passage must not hide lane 1's record: a second tap here is
	// flagged too.
	pb.Record("lane-2", "2", card, now)
	if _, used := pb.Check(card, now.Add(10*time.Second), 1); !used {
		t.Fatal("a second tap at this lane within the window passed")
	}
	// A peer with a fast clock: its event counts as now, not as a future that never arrives.
	other := make([]byte, 16)
	other[0] = 8
	pb.OnEvent(gossip.Event{Kind: gossip.EventDecision, Device: "lane-3", Lane: "3", Person: other, TimeMs: now.Add(3 * time.Hour).UnixMilli()})
	if _, used := pb.Check(other, now.Add(30*time.Second), 1); !used {
		t.Fatal("an event from a fast-clock peer switched anti-passback off")
	}
	// Our own events never flag our own lane; past the window nothing is flagged.
	pb.OnEvent(gossip.Event{Kind: gossip.EventDecision, Device: "lane-2", Person: make([]byte, 16), TimeMs: now.UnixMilli()})
	if _, used := pb.Check(make([]byte, 16), now, 1); used {
		t.Fatal("own event flagged")
	}
	if _, used := pb.Check(card, now.Add(5*time.Minute), 1); used {
		t.Fatal("flagged after the window")
	}
}
