package gossip

import (
	"github.com/gatecheck/gatecheck/sync/wire"
	"sync"
	"testing"
	"time"
)

// Events reach every node of a checkpoint larger than memberlist's own retransmits cover:
// each node passes an event on once.
func TestEventsReachEveryNode(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	const nodes, events = 7, 20
	var mu sync.Mutex
	got := make([]map[uint64]bool, nodes)
	var all []*Node
	for i := 0; i < nodes; i++ {
		i := i
		got[i] = map[uint64]bool{}
		cfg := Config{Name: "n" + string(rune('0'+i)), Checkpoint: "cp", BindAddr: "127.0.0.1", Keys: [][]byte{key}, Local: true,
			OnEvent: func(e Event) { mu.Lock(); got[i][e.Seq] = true; mu.Unlock() }}
		if i > 0 {
			cfg.Seeds = []string{all[0].Addr()}
		}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		all = append(all, n)
	}
	waitMembers(t, all)
	for s := 1; s <= events; s++ {
		if err := all[0].Broadcast(Event{Kind: EventDecision, Device: "n0", Seq: uint64(s), TimeMs: time.Now().UnixMilli(), Person: make([]byte, 16)}); err != nil {
			t.Fatal(err)
		}
	}
	complete := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < nodes; i++ {
			if len(got[i]) < events {
				return false
			}
		}
		return true
	}
	for i := 0; i < 750 && !complete(); i++ { // bounded: broadcasts, then push-pull every 2 s
		time.Sleep(20 * time.Millisecond)
	}
	if !complete() {
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < nodes; i++ {
			t.Errorf("node %d got %d of %d events", i, len(got[i]), events)
		}
	}
}

// waitMembers waits (bounded) until every node lists all the others.
func waitMembers(t *testing.T, all []*Node) {
	t.Helper()
	full := func() bool {
		for _, n := range all {
			if len(n.Members()) < len(all)-1 {
				return false
			}
		}
		return true
	}
	for i := 0; i < 500 && !full(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !full() {
		t.Fatal("the cluster did not form")
	}
}

// A lane that joins after events were broadcast still gets the recent ones, through
// push-pull (anti-entropy), so anti-passback does not depend on having been up at the time.
func TestLateNodeGetsRecentEvents(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, err := Start(Config{Name: "a", Checkpoint: "cp", BindAddr: "127.0.0.1", Keys: [][]byte{key}, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for s := 1; s <= 5; s++ {
		if err := a.Broadcast(Event{Kind: EventDecision, Device: "a", Seq: uint64(s), TimeMs: time.Now().UnixMilli(), Person: make([]byte, 16)}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan Event, 16)
	b, err := Start(Config{Name: "b", Checkpoint: "cp", BindAddr: "127.0.0.1", Keys: [][]byte{key}, Local: true,
		Seeds: []string{a.Addr()}, OnEvent: func(e Event) { got <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	seen := map[uint64]bool{}
	deadline := time.After(15 * time.Second)
	for len(seen) < 5 {
		select {
		case e := <-got:
			if e.Device != "a" {
				t.Fatalf("event from %q", e.Device)
			}
			seen[e.Seq] = true
		case <-deadline:
			t.Fatalf("late node got %d of 5 recent events", len(seen))
		}
	}
	select {
	case e := <-got:
		t.Fatalf("event %d delivered twice", e.Seq)
	case <-time.After(3 * time.Second): // one more push-pull round: nothing again
	}
}

// An event older than RecentWindow by its own time is neither handed on nor delivered: it
// cannot circulate for ever between nodes that forgot it.
func TestOldEventsAreDropped(t *testing.T) {
	now := time.Date(2021, 11, 20, 12, 0, 0, 0, time.UTC)
	got := 0
	n := &Node{cfg: Config{Name: "b", Now: func() time.Time { return now }, OnEvent: func(Event) { got++ }}, log: discard}
	for _, at := range []time.Time{now.Add(-RecentWindow - time.Second), now.Add(-time.Minute)} {
		b, err := wire.Marshal(Event{Kind: EventDecision, Device: "a", Seq: 1, TimeMs: at.UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		n.receive(b, false)
		n.receive(b, false) // a second delivery is a duplicate
	}
	if got != 1 {
		t.Fatalf("delivered %d events, want the recent one once", got)
	}
	if st := (delegate{n}).LocalState(false); len(st) == 0 {
		t.Fatal("the recent event is not offered at push-pull")
	}
	now = now.Add(RecentWindow)
	if st := (delegate{n}).LocalState(false); len(st) != 0 {
		t.Fatal("an event past the window is still offered at push-pull")
	}
}
