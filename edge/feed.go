package edge

import (
	"errors"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/devices/ga467"
)

// FeedItem is one passage as the officer's page shows it: the ID number masked, never plain.
type FeedItem struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Outcome  string    `json:"outcome"`
	Rule     string    `json:"rule"`
	ReasonZH string    `json:"reason_zh"`
	ReasonEN string    `json:"reason_en"`
	Commuter bool      `json:"commuter,omitempty"`
	Popups   []int     `json:"popups,omitempty"`
	Masked   string    `json:"masked_id"`
	Source   string    `json:"source"` // card, manual, companion, officer, registration
	Officer  string    `json:"officer,omitempty"`
	Gate     bool      `json:"opens"`         // the gate was commanded open for it
	Ref      uint64    `json:"ref,omitempty"` // an override's or infant's entry it refers to
	Snapshot uint64    `json:"snapshot,omitempty"`
}

// Feed keeps the newest passages and hands each new one to subscribers (the page's live
// stream). Sends never block the card loop: a subscriber that does not keep up misses items,
// counted by Dropped, and reloads the list.
type Feed struct {
	mu    sync.Mutex
	items []FeedItem // ring, oldest first once full
	next  int
	full  bool
	subs  map[*Subscription]struct{}
}

// Subscription receives new feed items on C.
type Subscription struct {
	C       chan FeedItem
	mu      sync.Mutex
	dropped int
}

// Dropped returns how many items did not fit in C since the last call.
func (s *Subscription) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.dropped
	s.dropped = 0
	return n
}

// FeedSize is how many recent passages a Feed keeps.
const FeedSize = 200

// NewFeed returns an empty feed.
func NewFeed() *Feed {
	return &Feed{items: make([]FeedItem, FeedSize), subs: map[*Subscription]struct{}{}}
}

// Add records an item and passes it to the subscribers.
func (f *Feed) Add(it FeedItem) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[f.next] = it
	f.next = (f.next + 1) % len(f.items)
	if f.next == 0 {
		f.full = true
	}
	for s := range f.subs {
		select {
		case s.C <- it:
		default:
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}

// Recent returns up to n items, newest first.
func (f *Feed) Recent(n int) []FeedItem {
	f.mu.Lock()
	defer f.mu.Unlock()
	size := f.next
	if f.full {
		size = len(f.items)
	}
	if n <= 0 || n > size {
		n = size
	}
	out := make([]FeedItem, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, f.items[(f.next-i+len(f.items))%len(f.items)])
	}
	return out
}

// Subscribe starts a subscription; call Unsubscribe when done.
func (f *Feed) Subscribe() *Subscription {
	s := &Subscription{C: make(chan FeedItem, 64)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s
}

// Unsubscribe ends a subscription.
func (f *Feed) Unsubscribe(s *Subscription) {
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
}

// Observer is told about each decision and reader error (the metrics). Methods must not block.
type Observer interface {
	// Decided is called once per decision recorded in the audit log (overrides and infants'
	// passages included) with its outcome and how long deciding took (lookup and rules, from
	// the card or entry to the decision), or zero when it was not timed.
	Decided(outcome string, took time.Duration)
	// ReaderError is called for each failed poll of the card reader, with its kind.
	ReaderError(kind string)
}

// ReaderErrorKind classifies a reader error for metrics: disconnected, timeout, checksum,
// length, short_data, text, sam, status, or other.
func ReaderErrorKind(err error) string {
	var se *ga467.StatusError
	switch {
	case errors.Is(err, ga467.ErrDisconnected):
		return "disconnected"
	case errors.Is(err, ga467.ErrTimeout):
		return "timeout"
	case errors.Is(err, ga467.ErrChecksum):
		return "checksum"
	case errors.Is(err, ga467.ErrLength):
		return "length"
	case errors.Is(err, ga467.ErrShortData):
		return "short_data"
	case errors.Is(err, ga467.ErrText):
		return "text"
	case errors.As(err, &se) && se.SAMFault():
		return "sam"
	case errors.As(err, &se):
		return "status"
	}
	return "other"
}
