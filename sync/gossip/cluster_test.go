package gossip

import (
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
	for i := 0; i < 200 && len(all[0].Members()) < nodes-1; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	for s := 1; s <= events; s++ {
		if err := all[0].Broadcast(Event{Kind: EventDecision, Device: "n0", Seq: uint64(s), TimeMs: int64(s), Person: make([]byte, 16)}); err != nil {
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
	for i := 0; i < 300 && !complete(); i++ { // bounded
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
