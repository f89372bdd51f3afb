package gossip

import (
	"testing"

	"github.com/gatecheck/gatecheck/sync/wire"
)

// FuzzNotifyMsg: whatever a peer (or anyone holding the key) sends as an event or metadata is
// decoded without panicking, and handed over only when it decodes.
func FuzzNotifyMsg(f *testing.F) {
	ev, _ := wire.Marshal(Event{Kind: EventDecision, Device: "lane-1", Lane: "1", Person: make([]byte, 16), TimeMs: 1637280000000, Seq: 7})
	meta, _ := wire.Marshal(Meta{Snapshot: 2021111700, Cursor: 42, Link: true, Relay: "10.0.0.3:7947", Lane: "3"})
	f.Add(ev)
	f.Add(meta)
	f.Add([]byte{0xa1, 0x01, 0x9f})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := 0
		n := &Node{cfg: Config{OnEvent: func(Event) { got++ }}, log: discard, members: map[string]Member{}}
		delegate{n}.NotifyMsg(b)
		delegate{n}.MergeRemoteState(b, false)
		var e Event
		if wire.Unmarshal(b, &e) != nil && got != 0 {
			t.Fatal("an undecodable message reached OnEvent")
		}
		var m Meta
		_ = wire.Unmarshal(b, &m)
	})
}
