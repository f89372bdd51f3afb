package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatecheck/gatecheck/devices/display"
	"github.com/gatecheck/gatecheck/devices/ga467"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/diskspace"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/gossip"
)

// CardReader is the ID-card reader the daemon polls. Poll runs find -> select -> read once and
// returns (nil, nil) when no card is on the reader, or an error wrapping
// ga467.ErrDisconnected when the reader went away, after which the daemon calls Reconnect,
// which blocks until the reader is back or ctx ends. *ga467.Reader implements it.
type CardReader interface {
	Poll() (*ga467.Card, error)
	Reconnect(ctx context.Context) error
}

// Gate lets one traveller through. Pulse returns once the gate has been commanded; it must
// stop early when ctx ends. *relay.Relay implements it.
type Gate interface {
	Pulse(ctx context.Context) error
}

// Display shows decisions and device status to the officer. It must not block for long.
// *display.Console implements it.
type Display interface {
	Show(display.Shown) error
	Status(t time.Time, msg string) error
}

// Clock gives the time decisions are made at.
type Clock interface {
	Now() time.Time
}

// SystemClock is the machine's clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

var (
	_ CardReader = (*ga467.Reader)(nil)
	_ Display    = (*display.Console)(nil)
)

// Rule ids of the daemon's own decisions.
const (
	RuleCompanionPass = "companion.adult-test-valid"
	RuleCompanionTest = "companion.adult-test-missing"
	RuleCardMismatch  = "system.card-inconsistent"
	RuleOverride      = "officer.override"
)

// Errors of officer overrides.
var (
	ErrNoEntry     = errors.New("no such audit entry")
	ErrBadOverride = errors.New("bad override")
)

// CompanionDefinition is the policy definition the companion rule asks of the accompanying
// adult: a valid 48-hour test. A snapshot without it makes infants' passages MANUAL.
const CompanionDefinition = "valid_test"

// DaemonConfig configures a Daemon.
type DaemonConfig struct {
	// Device decides. Required.
	Device *Device
	// Audit records every decision before a gate opens. Required.
	Audit *audit.Log
	// Reader is polled by Run; nil means manual entry only.
	Reader CardReader
	// Gate opens for PASS and PASS_COMMUTER; nil means no gate.
	Gate Gate
	// Display shows decisions; nil means none.
	Display Display
	// Clock; nil means SystemClock.
	Clock Clock
	// PollInterval is the pause between polls of the reader; zero means 300ms.
	PollInterval time.Duration
	// CompanionWindow: after a COMPANION decision, the next card within this window is the
	// accompanying adult. Zero means 2 minutes.
	CompanionWindow time.Duration
	// Logger; nil discards logs.
	Logger *slog.Logger
	// Passback, if set, flags a card just used at another lane of the checkpoint (MANUAL).
	Passback *Passback
	// Events, if set, receives this device's decisions for the checkpoint's peers.
	Events Broadcaster
	// Device and Lane name this device in the events it broadcasts.
	DeviceID, Lane string
	// Observer, if set, is told of each decision and reader error (metrics).
	Observer Observer
	// Registrations: this device takes commuter registrations (a highway checkpoint, seed 004).
	Registrations bool
}

// Broadcaster sends a local event to the checkpoint's peers without blocking.
// *gossip.Node implements it.
type Broadcaster interface {
	Broadcast(gossip.Event) error
}

// Validate fills defaults and checks the config.
func (c *DaemonConfig) Validate() error {
	if c.Device == nil || c.Audit == nil {
		return errors.New("daemon: a device and an audit log are required")
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.PollInterval == 0 {
		c.PollInterval = 300 * time.Millisecond
	}
	if c.CompanionWindow == 0 {
		c.CompanionWindow = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Daemon is the card -> decide -> audit -> gate loop of a running device.
type Daemon struct {
	cfg DaemonConfig
	log *slog.Logger

	mu        sync.Mutex // one passage at a time; guards companion
	companion *companion

	// Feed holds the recent passages for the officer's page.
	Feed *Feed

	// Counters for status.
	Decisions    atomic.Int64
	ReaderErrors atomic.Int64
	GateOpens    atomic.Int64
	readerUp     atomic.Bool
}

type companion struct {
	at  time.Time
	key []byte
	seq uint64
}

// Passage is the outcome of one presentation: the decision, its audit entry, whether the gate
// opened, and - when the card was an infant's accompanying adult - the infant's passage.
type Passage struct {
	Decision   engine.Decision `json:"decision"`
	Seq        uint64          `json:"audit_seq"`
	GateOpened bool            `json:"gate_opened"`
	Infant     *Passage        `json:"infant,omitempty"`
}

// NewDaemon checks the config.
func NewDaemon(cfg DaemonConfig) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, log: cfg.Logger, Feed: NewFeed()}, nil
}

// ReaderUp reports whether the card reader is connected.
func (d *Daemon) ReaderUp() bool { return d.readerUp.Load() }

// Run polls the reader until ctx ends, deciding once per card presented: a card left on the
// reader is not decided again until it has been taken away. Reader errors are logged and
// counted and the loop goes on; a disconnected reader is reopened. Run returns nil when ctx
// ends; a passage in progress completes first.
func (d *Daemon) Run(ctx context.Context) error {
	if d.cfg.Reader == nil {
		<-ctx.Done()
		return nil
	}
	up := true
	if c, ok := d.cfg.Reader.(interface{ Connected() bool }); ok {
		up = c.Connected()
	}
	d.readerUp.Store(up)
	everUp := up
	var last string // the card on the reader, "" when none
	empty := 0      // consecutive polls without a card
	for ctx.Err() == nil {
		card, err := d.cfg.Reader.Poll()
		switch {
		case errors.Is(err, ga467.ErrDisconnected):
			d.readerError(err)
			if d.readerUp.Swap(false) {
				d.log.Warn("card reader disconnected; reopening", logKeyErr, err)
				d.status("读卡器断开 card reader disconnected")
			} else {
				d.log.Warn("waiting for the card reader", logKeyErr, err)
				d.status("等待读卡器 waiting for the card reader")
			}
			if err := d.cfg.Reader.Reconnect(ctx); err != nil {
				return nil // ctx ended
			}
			d.readerUp.Store(true)
			if everUp {
				d.status("读卡器已重新连接 card reader reconnected")
			} else {
				d.status("读卡器已连接 card reader connected")
			}
			everUp = true
			// last is kept: a card still on the reader after a glitch is not decided twice.
		case err != nil:
			d.readerError(err)
			var se *ga467.StatusError
			if errors.As(err, &se) && se.SAMFault() {
				d.log.Error("card reader SAM fault: the reader needs service", logKeyErr, err)
				d.status("读卡器安全模块故障 reader SAM fault: " + err.Error())
			} else {
				d.log.Warn("card read failed", logKeyErr, err)
				// Most readers do not find a card again until it is put back.
				d.status("读卡失败，请重新放卡 card read failed - present the card again")
			}
		case card == nil:
			// Two empty polls in a row: the card was taken away.
			if empty++; empty >= 2 {
				last = ""
			}
		case card.Number == last:
			// The same card still on a reader that finds it again: one card, one decision.
			empty = 0
		default:
			last, empty = card.Number, 0
			if _, err := d.PresentCard(ctx, card); err != nil {
				d.log.Error("passage not completed", logKeyErr, err)
			}
		}
		t := time.NewTimer(d.cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

func (d *Daemon) readerError(err error) {
	d.ReaderErrors.Add(1)
	if d.cfg.Observer != nil {
		d.cfg.Observer.ReaderError(ReaderErrorKind(err))
	}
}

func (d *Daemon) status(msg string) {
	if d.cfg.Display != nil {
		if err := d.cfg.Display.Status(d.cfg.Clock.Now().In(engine.Beijing), msg); err != nil {
			d.log.Warn("display failed", logKeyErr, err)
		}
	}
}

// PresentCard decides for a card read from the reader.
func (d *Daemon) PresentCard(ctx context.Context, c *ga467.Card) (Passage, error) {
	id, err := engine.ParseID(c.Number)
	if err == nil && len(c.Birth) == 8 {
		birth, perr := time.ParseInLocation("20060102", c.Birth, engine.Beijing)
		switch {
		case perr != nil:
			err = fmt.Errorf("card birth date %q is not a date", c.Birth)
		case id.Type == engine.DocForeign2017:
			id.Birth = birth // the 15-character number has only two digits of the year
		case !birth.Equal(id.Birth):
			return d.present(ctx, engine.IDNumber(c.Number), nil, source{kind: "card"}, false, &engine.Decision{Outcome: engine.Manual,
				Rule: RuleCardMismatch, ReasonZH: "证件信息不一致，请人工核验", ReasonEN: "the card's birth date does not match its number: check the card by hand"})
		}
	}
	if err != nil {
		dec := engine.ManualInvalidID(err, 0, d.cfg.Clock.Now())
		return d.present(ctx, engine.IDNumber(c.Number), nil, source{kind: "card"}, false, &dec)
	}
	return d.present(ctx, id.Number, &id, source{kind: "card"}, false, nil)
}

// PresentManual decides for a number an officer typed in (a card that cannot be read); the
// officer (name or badge number, may be empty when unknown) is recorded in the audit entry.
func (d *Daemon) PresentManual(ctx context.Context, number string, testOnly bool, officer string) (Passage, error) {
	id, err := engine.ParseID(number)
	if err != nil {
		dec := engine.ManualInvalidID(err, 0, d.cfg.Clock.Now())
		return d.present(ctx, engine.IDNumber(number), nil, source{kind: "manual", officer: officer}, testOnly, &dec)
	}
	return d.present(ctx, id.Number, &id, source{kind: "manual", officer: officer}, testOnly, nil)
}

// source is where a passage came from: card, manual (with the officer), companion.
type source struct {
	kind    string
	officer string
}

// present runs one passage: decide (unless fixed is given), append to the audit log durably,
// show, and only then open the gate. If the decision cannot be recorded it becomes MANUAL and
// the gate stays shut.
func (d *Daemon) present(ctx context.Context, number engine.IDNumber, id *engine.Identity, src source, testOnly bool, fixed *engine.Decision) (Passage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	start := time.Now() // for the latency metric only; decisions take the clock's now
	now := d.cfg.Clock.Now()
	key := d.cfg.Device.Store().Key(number)
	var dec engine.Decision
	if fixed != nil {
		dec = *fixed
		dec.At = now
	} else {
		dec = d.cfg.Device.DecideKey(*id, key, CheckRequest{TestOnly: testOnly}, now)
		if pb, used := d.cfg.Passback.Check(key[:], now, dec.SnapshotVersion); used && dec.Outcome != engine.Manual {
			pb.Popups = dec.Popups
			dec = pb
		}
	}
	pending := d.companion
	if pending != nil && now.Sub(pending.at) > d.cfg.CompanionWindow {
		pending, d.companion = nil, nil // no adult within the window: the officer handles it
	}
	p, err := d.record(ctx, dec, key[:], src, 0, number, time.Since(start))
	if err != nil {
		return p, err // the pending infant waits for a passage that was recorded
	}
	if id != nil && dec.Rule != RulePassback {
		d.cfg.Passback.Record(d.cfg.DeviceID, d.cfg.Lane, key[:], now)
		if d.cfg.Events != nil {
			if err := d.cfg.Events.Broadcast(gossip.Event{Kind: gossip.EventDecision, Device: d.cfg.DeviceID, Lane: d.cfg.Lane,
				Person: key[:], TimeMs: now.UnixMilli(), Seq: p.Seq}); err != nil {
				d.log.Warn("gossip broadcast", logKeyErr, err)
			}
		}
	}
	d.companion = nil
	switch {
	case dec.Outcome == engine.Companion:
		d.companion = &companion{at: now, key: key[:], seq: p.Seq}
	case pending != nil && id == nil:
		// The accompanying adult's card is unreadable or invalid: the infant cannot follow it.
		infant := engine.Decision{Outcome: engine.Manual, Rule: engine.RuleInvalidID, SnapshotVersion: dec.SnapshotVersion, At: now,
			ReasonZH: "同行成人证件无效，请人工核验", ReasonEN: "the accompanying adult's card is invalid: check by hand"}
		ip, err := d.record(ctx, infant, pending.key, source{kind: "companion"}, pending.seq, "", 0)
		p.Infant = &ip
		if err != nil {
			return p, err
		}
	case pending != nil:
		infant := d.infantDecision(dec, *id, testOnly, now)
		ip, err := d.record(ctx, infant, pending.key, source{kind: "companion"}, pending.seq, "", 0)
		p.Infant = &ip
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// infantDecision: an infant's passage follows the accompanying adult's 48-hour test.
func (d *Daemon) infantDecision(adult engine.Decision, id engine.Identity, testOnly bool, now time.Time) engine.Decision {
	dec := engine.Decision{SnapshotVersion: adult.SnapshotVersion, At: now}
	if adult.Outcome == engine.Manual && len(adult.Rule) > 7 && adult.Rule[:7] == "system." {
		dec.Outcome, dec.Rule, dec.ReasonZH, dec.ReasonEN = engine.Manual, adult.Rule, adult.ReasonZH, "accompanying adult: "+adult.ReasonEN
		return dec
	}
	p := d.cfg.Device.InForce(now)
	facts, err := d.cfg.Device.Store().Lookup(d.cfg.Device.Store().Key(id.Number))
	var valid bool
	if err == nil && p != nil {
		valid, err = p.Definition(CompanionDefinition, engine.Input{Identity: id, Facts: facts, TestOnly: testOnly}, now)
	}
	switch {
	case err != nil || p == nil:
		dec.Outcome, dec.Rule = engine.Manual, engine.RuleStore
		dec.ReasonZH, dec.ReasonEN = "无法核验同行人员核酸，请人工核验", "the accompanying adult's test could not be checked: check by hand"
		if err != nil {
			dec.Error = err.Error()
		}
	case valid:
		dec.Outcome, dec.Rule = engine.Pass, RuleCompanionPass
		dec.ReasonZH, dec.ReasonEN = "婴幼儿：同行人员48小时内核酸阴性，通行", "infant: the accompanying adult has a valid 48 h negative test - pass"
	default:
		dec.Outcome, dec.Rule = engine.NeedTest, RuleCompanionTest
		dec.ReasonZH, dec.ReasonEN = "婴幼儿：同行人员无48小时内核酸阴性证明", "infant: the accompanying adult has no valid 48 h negative test"
	}
	return dec
}

// record appends a decision, shows it, and opens the gate for a pass once it is durable. took,
// when not zero, is how long deciding took (for the latency metric).
func (d *Daemon) record(ctx context.Context, dec engine.Decision, key []byte, src source, ref uint64, number engine.IDNumber, took time.Duration) (Passage, error) {
	opens := dec.Outcome.Opens()
	gate := opens && d.cfg.Gate != nil // only a gate that exists opens
	e := auditEntry(dec, key, src.kind, ref, gate)
	e.Officer = src.officer
	entry, err := d.cfg.Audit.Append(e)
	if err != nil {
		// Nothing that cannot be recorded may open the gate.
		d.log.Error("audit append failed; deciding MANUAL, gate stays shut", logKeyErr, err)
		dec = engine.Decision{Outcome: engine.Manual, Rule: engine.RuleStore, SnapshotVersion: dec.SnapshotVersion, At: dec.At,
			ReasonZH: "无法记录本次核验，请人工处理", ReasonEN: "this decision could not be recorded: the officer decides by hand", Error: err.Error()}
		if errors.Is(err, diskspace.ErrLow) {
			dec.ReasonZH = "本机存储空间不足，无法记录核验，请人工处理"
			dec.ReasonEN = "the device's disk is full: decisions cannot be recorded - the officer decides by hand"
		}
		d.show(dec, label(number), src.kind, false)
		return Passage{Decision: dec}, fmt.Errorf("record decision: %w", err)
	}
	d.Decisions.Add(1)
	if d.cfg.Observer != nil {
		d.cfg.Observer.Decided(dec.Outcome.String(), took)
	}
	d.show(dec, label(number), src.kind, gate)
	p := Passage{Decision: dec, Seq: entry.Seq}
	d.Feed.Add(FeedItem{Seq: entry.Seq, Time: dec.At, Outcome: dec.Outcome.String(), Rule: dec.Rule, ReasonZH: dec.ReasonZH,
		ReasonEN: dec.ReasonEN, Commuter: dec.Commuter(), Popups: dec.Popups, Masked: label(number), Source: src.kind,
		Officer: src.officer, Gate: gate, Ref: ref, Snapshot: dec.SnapshotVersion})
	if gate {
		// The entry says the gate opens: finish the pulse even if the caller goes away.
		if err := d.cfg.Gate.Pulse(context.WithoutCancel(ctx)); err != nil {
			d.log.Error("gate did not open", "seq", entry.Seq, logKeyErr, err)
			return p, fmt.Errorf("open gate for entry %d: %w", entry.Seq, err)
		}
		d.GateOpens.Add(1)
		p.GateOpened = true
	}
	d.log.Info("passage", "seq", entry.Seq, "outcome", dec.Outcome.String(), "rule", dec.Rule, "source", src.kind, "gate", p.GateOpened)
	return p, nil
}

func auditEntry(dec engine.Decision, key []byte, source string, ref uint64, gate bool) audit.Entry {
	return audit.Entry{Kind: audit.KindDecision, TimeMs: dec.At.UnixMilli(), Person: key, Source: source,
		Outcome: dec.Outcome.String(), Rule: dec.Rule, Snapshot: dec.SnapshotVersion, Popups: dec.Popups, Gate: gate, Ref: ref}
}

// label is what the display shows for a person: the masked number, never the plain one.
func label(number engine.IDNumber) string {
	if number == "" {
		return "(accompanied infant)"
	}
	return number.Masked()
}

func (d *Daemon) show(dec engine.Decision, who, source string, opens bool) {
	if d.cfg.Display == nil {
		return
	}
	err := d.cfg.Display.Show(display.Shown{Outcome: dec.Outcome.String(), Commuter: dec.Commuter(), Opens: opens,
		ReasonZH: dec.ReasonZH, ReasonEN: dec.ReasonEN, Popups: dec.Popups, MaskedID: who, Source: source, Time: dec.At.In(engine.Beijing)})
	if err != nil {
		d.log.Warn("display failed", logKeyErr, err)
	}
}

// Override records an officer's decision over an audit entry (ref), with the officer's name
// and a reason (both required), and opens the gate when the officer lets the traveller pass.
func (d *Daemon) Override(ctx context.Context, ref uint64, officer, reason string, outcome engine.Outcome) (Passage, error) {
	if officer == "" || reason == "" {
		return Passage{}, fmt.Errorf("override: %w: the officer and a reason are required", ErrBadOverride)
	}
	if outcome != engine.Pass && outcome != engine.Manual && outcome != engine.NeedTest && !(outcome >= engine.DenyPopup1 && outcome <= engine.DenyPopup5) {
		return Passage{}, fmt.Errorf("override: %w: outcome %s: an officer records PASS, a denial, NEED_TEST or MANUAL", ErrBadOverride, outcome)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ref == 0 || ref > d.cfg.Audit.Seq() {
		return Passage{}, fmt.Errorf("override: %w: %d", ErrNoEntry, ref)
	}
	refd, err := d.cfg.Audit.Entries(ref, 1)
	if err != nil || len(refd) == 0 {
		return Passage{}, fmt.Errorf("override: read entry %d: %w", ref, err)
	}
	if refd[0].Kind != audit.KindDecision {
		return Passage{}, fmt.Errorf("override: %w: entry %d is a %s, not a decision", ErrBadOverride, ref, refd[0].Kind)
	}
	now := d.cfg.Clock.Now()
	gate := outcome.Opens() && d.cfg.Gate != nil
	entry, err := d.cfg.Audit.Append(audit.Entry{Kind: audit.KindOverride, TimeMs: now.UnixMilli(), Person: refd[0].Person,
		Source: "officer", Outcome: outcome.String(), Rule: RuleOverride, Snapshot: refd[0].Snapshot, Gate: gate,
		Officer: officer, Reason: reason, Ref: ref})
	if err != nil {
		return Passage{}, fmt.Errorf("override: %w", err)
	}
	dec := engine.Decision{Outcome: outcome, Rule: RuleOverride, SnapshotVersion: refd[0].Snapshot, At: now,
		ReasonZH: "执勤人员决定：" + reason, ReasonEN: "officer " + officer + ": " + reason}
	d.show(dec, fmt.Sprintf("override of entry %d", ref), "officer", gate)
	d.log.Info("override", "seq", entry.Seq, "ref", ref, "outcome", outcome.String(), "officer", officer, "gate", gate)
	p := Passage{Decision: dec, Seq: entry.Seq}
	d.Decisions.Add(1)
	if d.cfg.Observer != nil {
		d.cfg.Observer.Decided(outcome.String(), 0)
	}
	d.Feed.Add(FeedItem{Seq: entry.Seq, Time: now, Outcome: outcome.String(), Rule: RuleOverride, ReasonZH: dec.ReasonZH,
		ReasonEN: dec.ReasonEN, Masked: fmt.Sprintf("override of entry %d", ref), Source: "officer", Officer: officer, Gate: gate, Ref: ref,
		Snapshot: dec.SnapshotVersion})
	if gate {
		if err := d.cfg.Gate.Pulse(context.WithoutCancel(ctx)); err != nil {
			return p, fmt.Errorf("override: open gate: %w", err)
		}
		d.GateOpens.Add(1)
		p.GateOpened = true
	}
	return p, nil
}

// Registration is a commuter registration taken at a highway checkpoint (seed 004): the
// officer saw the ID card and the three proofs.
type Registration struct {
	ID        string `json:"id"`
	Officer   string `json:"officer"`
	WorkProof string `json:"work_proof"`
	Residence string `json:"residence_proof"`
	TestProof string `json:"test_proof"`
}

// Errors of commuter registrations, refused before anything is recorded.
var (
	ErrBadRegistration = errors.New("bad registration")
	ErrNoRegistrations = errors.New("commuter registrations are taken at highway checkpoints only")
)

// Register records a commuter registration in the audit log, durably; it goes upstream with
// the audit log (directly or through a peer) and is queued centrally for approval, which
// takes effect at 00:00 the next day. It returns the audit entry's sequence.
func (d *Daemon) Register(r Registration) (uint64, error) {
	if !d.cfg.Registrations {
		return 0, fmt.Errorf("register: %w", ErrNoRegistrations)
	}
	if r.Officer == "" || r.WorkProof == "" || r.Residence == "" || r.TestProof == "" {
		return 0, fmt.Errorf("register: %w: the officer and the work, residence and test proofs are required", ErrBadRegistration)
	}
	for _, f := range []string{r.Officer, r.WorkProof, r.Residence, r.TestProof} {
		if len(f) > 200 {
			return 0, fmt.Errorf("register: %w: a field is longer than 200 bytes", ErrBadRegistration)
		}
	}
	id, err := engine.ParseID(r.ID)
	if err != nil {
		return 0, fmt.Errorf("register: %w: %w", ErrBadRegistration, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Clock.Now()
	key := d.cfg.Device.Store().Key(id.Number)
	entry, err := d.cfg.Audit.Append(audit.Entry{Kind: audit.KindRegistration, TimeMs: now.UnixMilli(), Person: key[:],
		Source: "officer", Officer: r.Officer, Masked: id.Number.Masked(), WorkProof: r.WorkProof, Residence: r.Residence,
		TestProof: r.TestProof})
	if err != nil {
		return 0, fmt.Errorf("register: %w", err)
	}
	d.Feed.Add(FeedItem{Seq: entry.Seq, Time: now, Outcome: "REGISTERED", Rule: "officer.registration",
		ReasonZH: "通勤人员登记已提交，待审批（批准后次日生效）", ReasonEN: "commuter registration queued for central approval (effective the day after approval)",
		Masked: id.Number.Masked(), Source: "registration"})
	d.log.Info("commuter registration recorded", "seq", entry.Seq, "officer", r.Officer)
	return entry.Seq, nil
}
