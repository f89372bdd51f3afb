package gossip

import (
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatecheck/gatecheck/sync/wire"
	"github.com/hashicorp/memberlist"
)

// Meta is what a node advertises (memberlist node metadata, kept under 512 bytes).
type Meta struct {
	Snapshot uint64 `cbor:"1,keyasint,omitempty"`
	Cursor   uint64 `cbor:"2,keyasint,omitempty"`
	Link     bool   `cbor:"3,keyasint,omitempty"` // the node's last sync with the central succeeded
	Relay    string `cbor:"4,keyasint,omitempty"` // host:port of the node's sync relay
	Lane     string `cbor:"5,keyasint,omitempty"`
}

// Event kinds.
const (
	EventDecision     = 1 // a card decided at a lane (anti-passback)
	EventOverride     = 2
	EventRegistration = 3
)

const (
	maxEvent = 1024 // bytes of one encoded event
	// RecentWindow is how old (by its own time) an event may be to be passed on, offered at
	// push-pull or handed to OnEvent; anti-passback windows are minutes.
	RecentWindow = 10 * time.Minute
	maxRecent    = 256   // events kept for push-pull: the newest
	maxSeen      = 20000 // events remembered as seen, pruned by age every minute
)

type recentEvent struct {
	timeMs int64 // the event's own time
	b      []byte
}

// Event is a local event broadcast to the checkpoint.
type Event struct {
	Kind   uint8  `cbor:"1,keyasint"`
	Device string `cbor:"2,keyasint"`
	Lane   string `cbor:"3,keyasint,omitempty"`
	Person []byte `cbor:"4,keyasint,omitempty"` // the person's hashed key (16 bytes), never the number
	TimeMs int64  `cbor:"5,keyasint"`
	Seq    uint64 `cbor:"6,keyasint,omitempty"`
	Info   string `cbor:"7,keyasint,omitempty"`
}

// Member is a peer as seen in the cluster.
type Member struct {
	Name string
	Addr string
	Meta Meta
}

// Config configures a Node.
type Config struct {
	// Name is the node's unique name (the device id). Required.
	Name string
	// Checkpoint labels the cluster: nodes of another checkpoint are refused. Required.
	Checkpoint string
	// BindAddr and BindPort: where memberlist listens (TCP and UDP); port 0 picks one.
	BindAddr string
	BindPort int
	// Seeds are peers to join (host:port).
	Seeds []string
	// Keys is the gossip keyring: the first encrypts, all decrypt (rotation: add the new key
	// on every node, make it primary everywhere, then remove the old one). At least one
	// 16, 24 or 32-byte key is required.
	Keys [][]byte
	// Meta returns the node's current metadata; called when memberlist needs it.
	Meta func() Meta
	// OnEvent receives events from peers. It must not block.
	OnEvent func(Event)
	// Transport, if set, replaces memberlist's network transport (tests wrap it to cut
	// partitions).
	Transport memberlist.Transport
	// Local selects timings for one machine (tests): faster probes, generous timeouts so a
	// loaded -race run does not mark healthy nodes suspect.
	Local bool
	// Now is the clock events are judged by (an event older than RecentWindow is dropped);
	// nil means time.Now. A device passes its decision clock.
	Now func() time.Time
	// Logger; nil discards logs.
	Logger *slog.Logger
}

// Node is a running member.
type Node struct {
	cfg   Config
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	log   *slog.Logger
	once  sync.Once

	// members is this node's own copy of the membership, kept by the event delegate:
	// memberlist's Members() hands out pointers into its table that it keeps updating.
	mu      sync.Mutex
	members map[string]Member
	seen    map[string]int64 // events already handled (device/seq/time) -> event time, for once-only
	pruned  time.Time        // when seen was last pruned
	recent  []recentEvent    // the newest events, offered to peers at push-pull

	stop chan struct{}
	done chan struct{}
	mlp  atomic.Pointer[memberlist.Memberlist] // for the queue, which exists before ml
}

// events keeps Node.members; memberlist calls it with the node still locked, so copying here
// is safe.
type events struct{ n *Node }

func (e events) NotifyJoin(m *memberlist.Node)   { e.n.setMember(m) }
func (e events) NotifyUpdate(m *memberlist.Node) { e.n.setMember(m) }
func (e events) NotifyLeave(m *memberlist.Node) {
	e.n.mu.Lock()
	delete(e.n.members, m.Name)
	e.n.mu.Unlock()
}

func (n *Node) setMember(m *memberlist.Node) {
	if m.Name == n.cfg.Name {
		return
	}
	var meta Meta
	_ = wire.Unmarshal(m.Meta, &meta) // a peer with bad metadata is listed without it
	mem := Member{Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), Meta: meta}
	n.mu.Lock()
	n.members[m.Name] = mem
	n.mu.Unlock()
}

type delegate struct{ n *Node }

func (d delegate) NodeMeta(limit int) []byte {
	if d.n.cfg.Meta == nil {
		return nil
	}
	b, err := wire.Marshal(d.n.cfg.Meta())
	if err != nil || len(b) > limit {
		return nil
	}
	return b
}

func (d delegate) NotifyMsg(b []byte) { d.n.receive(b, true) }

// receive handles one event from a peer, once: it is handed to OnEvent and kept for push-pull;
// with pass set it is also passed on once (memberlist retransmits a broadcast only a few times
// in all, which does not reach every node of a larger checkpoint).
func (n *Node) receive(b []byte, pass bool) {
	if len(b) > maxEvent {
		return
	}
	var e Event
	if err := wire.Unmarshal(b, &e); err != nil { // b is memberlist's buffer: decoding copies
		n.log.Warn("gossip: undecodable event", "err", err)
		return
	}
	if !n.remember(e, b) || e.Device == n.cfg.Name {
		return
	}
	if pass && n.queue != nil {
		n.queue.QueueBroadcast(broadcast(append([]byte(nil), b...)))
	}
	if n.cfg.OnEvent != nil {
		n.cfg.OnEvent(e)
	}
}

// remember records an event as seen and keeps its bytes among the recent ones; it reports
// false for an event already seen or older than RecentWindow (by its own time, so an event
// does not live longer for having travelled).
func (n *Node) remember(e Event, b []byte) bool {
	now := n.now()
	oldest := now.Add(-RecentWindow).UnixMilli()
	if e.TimeMs < oldest {
		return false
	}
	id := fmt.Sprintf("%s/%d/%d", e.Device, e.Seq, e.TimeMs)
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, dup := n.seen[id]; dup {
		return false
	}
	if n.seen == nil {
		n.seen = map[string]int64{}
	}
	if len(n.seen) >= maxSeen || now.Sub(n.pruned) > time.Minute {
		// Forget what is past the window (it would be dropped by its time anyway); a flood
		// beyond maxSeen within the window forgets everything: OnEvent is idempotent.
		for k, t := range n.seen {
			if t < oldest {
				delete(n.seen, k)
			}
		}
		if len(n.seen) >= maxSeen {
			clear(n.seen)
		}
		n.pruned = now
	}
	n.seen[id] = e.TimeMs
	n.recent = append(n.recent, recentEvent{timeMs: e.TimeMs, b: append([]byte(nil), b...)})
	if len(n.recent) > maxRecent {
		n.recent = slices.Delete(n.recent, 0, len(n.recent)-maxRecent)
	}
	return true
}

func (n *Node) now() time.Time {
	if n.cfg.Now != nil {
		return n.cfg.Now()
	}
	return time.Now()
}

// LocalState hands the recent events (the newest maxRecent within RecentWindow) to a peer's
// push-pull: anti-entropy, so an event whose broadcasts missed a node still reaches it at the
// next push-pull.
func (d delegate) LocalState(bool) []byte {
	n := d.n
	oldest := n.now().Add(-RecentWindow).UnixMilli()
	n.mu.Lock()
	var out [][]byte
	for _, r := range n.recent {
		if r.timeMs >= oldest {
			out = append(out, r.b)
		}
	}
	n.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	b, err := wire.Marshal(out)
	if err != nil {
		return nil
	}
	return b
}

// MergeRemoteState takes a peer's recent events; ones already seen are skipped.
func (d delegate) MergeRemoteState(b []byte, _ bool) {
	if len(b) == 0 || len(b) > maxRecent*(maxEvent+8) {
		return
	}
	var evs [][]byte
	if err := wire.Unmarshal(b, &evs); err != nil || len(evs) > maxRecent {
		d.n.log.Warn("gossip: undecodable push-pull state", "err", err)
		return
	}
	for _, e := range evs {
		d.n.receive(e, false)
	}
}

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.queue.GetBroadcasts(overhead, limit)
}

type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// Start creates the node and joins the seeds (a seed that does not answer is not fatal: the
// node waits to be joined).
func Start(cfg Config) (*Node, error) {
	if cfg.Name == "" || cfg.Checkpoint == "" || len(cfg.Keys) == 0 {
		return nil, errors.New("gossip: name, checkpoint and a gossip key are required")
	}
	n := &Node{cfg: cfg, log: cfg.Logger, members: map[string]Member{}}
	n.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int {
		if ml := n.mlp.Load(); ml != nil {
			return ml.NumMembers()
		}
		return 1
	}, RetransmitMult: 3}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	mc := memberlist.DefaultLANConfig()
	if cfg.Local {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 500 * time.Millisecond
		mc.ProbeTimeout = 2 * time.Second // generous: -race on 2 cores is slow
		mc.SuspicionMult = 6
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.TCPTimeout = 5 * time.Second
	}
	mc.Name = cfg.Name
	mc.Label = "gatecheck/" + cfg.Checkpoint
	mc.BindAddr, mc.BindPort = cfg.BindAddr, cfg.BindPort
	if mc.BindAddr == "" {
		mc.BindAddr = "0.0.0.0"
	}
	mc.AdvertisePort = 0
	kr, err := memberlist.NewKeyring(cfg.Keys[1:], cfg.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	mc.Keyring = kr
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = delegate{n}
	mc.Events = events{n}
	mc.Logger = log.New(io.Discard, "", 0)
	mc.DeadNodeReclaimTime = 10 * time.Second
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	n.ml = ml
	n.mlp.Store(ml)
	n.stop, n.done = make(chan struct{}), make(chan struct{})
	go n.rejoin()
	return n, nil
}

// rejoin joins the seeds at start and again whenever the node finds itself alone (a seed
// that started later, a healed partition), until Close.
func (n *Node) rejoin() {
	defer close(n.done)
	if len(n.cfg.Seeds) == 0 {
		return
	}
	wait := time.Duration(0)
	for {
		select {
		case <-n.stop:
			return
		case <-time.After(wait):
		}
		wait = 5 * time.Second
		if n.ml.NumMembers() > 1 {
			continue
		}
		if _, err := n.ml.Join(n.cfg.Seeds); err != nil {
			n.log.Warn("gossip: no seed answered yet; retrying", "seeds", n.cfg.Seeds, "err", err)
		}
	}
}

// Addr is the node's memberlist address (host:port).
func (n *Node) Addr() string {
	a := n.ml.LocalNode()
	return net.JoinHostPort(a.Addr.String(), strconv.Itoa(int(a.Port)))
}

// Join joins more peers.
func (n *Node) Join(addrs ...string) error {
	_, err := n.ml.Join(addrs)
	return err
}

// UpdateMeta re-advertises the node's metadata (after a sync, a snapshot).
func (n *Node) UpdateMeta() error { return n.ml.UpdateNode(5 * time.Second) }

// Broadcast queues an event for the checkpoint (best effort, retransmitted a few times).
func (n *Node) Broadcast(e Event) error {
	b, err := wire.Marshal(e)
	if err != nil {
		return err
	}
	if len(b) > maxEvent {
		return fmt.Errorf("gossip: event of %d bytes", len(b))
	}
	n.remember(e, b)
	n.queue.QueueBroadcast(broadcast(b))
	n.queue.Prune(256) // alone for a while: keep the newest events only
	return nil
}

// Members lists the live members other than this node, sorted by name.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Close leaves the cluster and shuts the node down; safe to call more than once.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		close(n.stop)
		_ = n.ml.Leave(2 * time.Second)
		err = n.ml.Shutdown() // also ends a join in progress in rejoin
		<-n.done
	})
	return err
}

var discard = slog.New(slog.DiscardHandler)
