package edge

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/gossip"
)

// RulePassback is the rule of a decision made MANUAL because the same card was just used at
// another lane of the checkpoint.
const RulePassback = "system.anti-passback"

// Passback remembers, for a window, which lane last decided each card (from gossip events and
// this device's own decisions), so the same card at a second lane is flagged.
type Passback struct {
	Window time.Duration
	Device string
	// Now is the local clock (nil: time.Now); peers' times are never trusted beyond it.
	Now func() time.Time

	mu   sync.Mutex
	seen map[[16]byte]passRecord
}

type passRecord struct {
	device, lane string
	at           time.Time
}

// Record notes that a card was decided at a lane.
func (p *Passback) Record(device, lane string, person []byte, at time.Time) {
	if len(person) != 16 || p == nil {
		return
	}
	var k [16]byte
	copy(k[:], person)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[[16]byte]passRecord{}
	}
	if old, ok := p.seen[k]; ok && (old.at.After(at) || (old.device != device && device == p.Device && at.Sub(old.at) <= p.Window)) {
		// Keep a newer record, and keep another lane's record within the window over this
		// device's own (a second tap here must still be flagged).
		return
	}
	p.seen[k] = passRecord{device: device, lane: lane, at: at}
	// Bounded: forget what is past the window now and then.
	if len(p.seen) > 100000 {
		for key, r := range p.seen {
			if at.Sub(r.at) > p.Window {
				delete(p.seen, key)
			}
		}
	}
}

// OnEvent records a peer's decision event. A peer's time later than the local clock is taken
// as now: a peer with a fast clock must not switch anti-passback off.
func (p *Passback) OnEvent(e gossip.Event) {
	if e.Kind != gossip.EventDecision || e.Device == p.Device {
		return
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	at := time.UnixMilli(e.TimeMs)
	if at.After(now) {
		at = now
	}
	p.Record(e.Device, e.Lane, e.Person, at)
}

// Check returns the MANUAL decision for a card used at another lane within the window, or
// false.
func (p *Passback) Check(person []byte, now time.Time, version uint64) (engine.Decision, bool) {
	if p == nil || len(person) != 16 {
		return engine.Decision{}, false
	}
	var k [16]byte
	copy(k[:], person)
	p.mu.Lock()
	r, ok := p.seen[k]
	p.mu.Unlock()
	if !ok || r.device == p.Device || now.Sub(r.at) > p.Window || now.Before(r.at.Add(-p.Window)) {
		return engine.Decision{}, false
	}
	hhmm := r.at.In(engine.Beijing).Format("15:04")
	return engine.Decision{Outcome: engine.Manual, Rule: RulePassback, SnapshotVersion: version, At: now,
		ReasonZH: fmt.Sprintf("此证件刚于%s在%s通道使用，请人工核验", hhmm, r.lane),
		ReasonEN: fmt.Sprintf("card used at lane %s at %s: check by hand", r.lane, hhmm)}, true
}

// Relay forwards a peer's sync requests to the central server while this device has a link.
// It holds nothing and is trusted with nothing: the requests are signed by the peer's own key
// and every answer is signed by the central.
type Relay struct {
	proxy *httputil.ReverseProxy
	// Up reports whether this device currently reaches the central.
	Up func() bool
}

// NewRelay forwards to the central URL.
func NewRelay(central string, up func() bool) (*Relay, error) {
	u, err := url.Parse(central)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("relay: central url %q", central)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{ResponseHeaderTimeout: 30 * time.Second, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 4}
	return &Relay{proxy: proxy, Up: up}, nil
}

// MaxRelayBody bounds a request a peer sends through the relay (audit uploads are the largest).
const MaxRelayBody = 16 << 20

// ServeHTTP forwards /v1/ requests.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !strings.HasPrefix(req.URL.Path, "/v1/") {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req.Body = http.MaxBytesReader(w, req.Body, MaxRelayBody)
	if r.Up != nil && !r.Up() {
		http.Error(w, errors.New("this peer has no central link now").Error(), http.StatusServiceUnavailable)
		return
	}
	r.proxy.ServeHTTP(w, req)
}
