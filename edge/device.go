package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/edge/store"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Config configures a Device.
type Config struct {
	// Store configures the Badger store. Required.
	Store store.Config
	// TrustedKeys verify rule snapshots. Required.
	TrustedKeys wire.KeyRing
	// Logger; nil discards logs.
	Logger *slog.Logger
}

// Validate checks the config (the store checks its own part when it opens).
func (c *Config) Validate() error {
	if len(c.TrustedKeys) == 0 {
		return errors.New("device: no trusted keys: snapshots could never be verified")
	}
	return c.Store.Validate()
}

// Device decides offline from its store and its verified snapshots. Safe for concurrent use.
type Device struct {
	store *store.Store
	keys  wire.KeyRing
	log   *slog.Logger

	installMu sync.Mutex // serialises installs
	mu        sync.RWMutex
	set       engine.SnapshotSet
	// refused lists stored snapshots that failed verification at start, for status.
	refused []error

	// Trusted time: the server's time at the last sync and the local clock reading (with its
	// monotonic part) taken at that moment.
	timeMu              sync.Mutex
	trustedAt, anchorAt time.Time
}

// ClockJumpLimit is how far the wall clock may move beyond what the monotonic clock explains
// since the last trusted time before decisions become MANUAL (the Swiss verifier's 2 hours).
const ClockJumpLimit = 2 * time.Hour

// SetTrustedTime anchors trusted time: the server said serverTime when the local clock read
// local.
func (d *Device) SetTrustedTime(serverTime, local time.Time) error {
	d.timeMu.Lock()
	defer d.timeMu.Unlock()
	if serverTime.Before(d.trustedAt) {
		return fmt.Errorf("server time %s is earlier than the trusted time %s: refused", serverTime.Format(time.RFC3339), d.trustedAt.Format(time.RFC3339))
	}
	d.trustedAt, d.anchorAt = serverTime, local
	return nil
}

// clockCheck returns why the wall clock cannot be trusted, or "". offset is how far the local
// clock read ahead of the server's at the last sync; elapsed the monotonic time since then;
// wall the wall-clock time since then. The wall clock may differ from trusted time (the
// server's time plus the monotonic elapsed time) by at most ClockJumpLimit.
func clockCheck(trustedAt time.Time, offset, elapsed, wall time.Duration) string {
	if diff := offset + wall - elapsed; diff > ClockJumpLimit || diff < -ClockJumpLimit {
		return fmt.Sprintf("the device clock is %s off the trusted time (server time at the last sync, %s, plus the monotonic clock)",
			diff.Round(time.Second), trustedAt.In(engine.Beijing).Format(time.RFC3339))
	}
	return ""
}

// Open opens the store and loads every stored snapshot, verifying each again (signature and
// compile) before use. A stored snapshot that no longer verifies is reported, not used, and
// kept on disk for inspection.
func Open(cfg Config) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Store.Logger = log
	st, err := store.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	d := &Device{store: st, keys: cfg.TrustedKeys, log: log}
	stored, err := st.Snapshots()
	if err != nil {
		st.Close()
		return nil, err
	}
	for _, s := range stored {
		v, err := wire.VerifySnapshot(s.Signed, d.keys)
		if err == nil && v.Snapshot.Version != s.Version {
			err = fmt.Errorf("stored under version %d but holds %d", s.Version, v.Snapshot.Version)
		}
		if err == nil {
			err = d.set.Add(v.Policy, v.Digest)
		}
		if err != nil {
			err = fmt.Errorf("stored snapshot %d refused: %w", s.Version, err)
			d.refused = append(d.refused, err)
			log.Error("stored snapshot does not verify; not used", logKeySnapshot, s.Version, logKeyErr, err)
			continue
		}
		log.Debug("snapshot loaded", logKeySnapshot, s.Version)
	}
	return d, nil
}

// Close closes the store.
func (d *Device) Close() error { return d.store.Close() }

// Store returns the device's store.
func (d *Device) Store() *store.Store { return d.store }

// Refused returns the stored snapshots that failed verification when the device opened.
func (d *Device) Refused() []error { return append([]error(nil), d.refused...) }

// InstallSnapshot verifies a signed snapshot and, if it is acceptable at now, stores its signed
// bytes and adds it. Refused: a bad signature or unknown key, a rule that does not compile, a
// version lower than the highest held (rollback), and a snapshot already expired at now. A
// refusal changes nothing. Installing the same snapshot twice is a no-op.
func (d *Device) InstallSnapshot(signed []byte, now time.Time) (*wire.VerifiedSnapshot, error) {
	v, err := wire.VerifySnapshot(signed, d.keys)
	if err != nil {
		return nil, err
	}
	if engine.UnixOf(now) >= v.Snapshot.ExpiresAt {
		return nil, fmt.Errorf("snapshot %d: %w at %s", v.Snapshot.Version, engine.ErrExpired,
			v.Snapshot.Expires().In(engine.Beijing).Format(time.RFC3339))
	}
	d.installMu.Lock()
	defer d.installMu.Unlock()
	// Change a copy, and write it durably, while decisions go on from the current set; swap
	// only once stored, so a failed write leaves the set as it was.
	d.mu.RLock()
	next := d.set.Clone()
	d.mu.RUnlock()
	if err := next.Add(v.Policy, v.Digest); err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", v.Snapshot.Version, err)
	}
	if err := d.store.PutSnapshot(v.Snapshot.Version, signed); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.set = next
	d.mu.Unlock()
	d.log.Info("snapshot installed", logKeySnapshot, v.Snapshot.Version, "key", v.KeyID,
		"effective_from", v.Snapshot.Effective(), "expires_at", v.Snapshot.Expires())
	return v, nil
}

// Policies returns the held policies, ascending by version.
func (d *Device) Policies() []*engine.Policy {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.set.Policies()
}

// InForce returns the policy in force at now, or nil.
func (d *Device) InForce(now time.Time) *engine.Policy {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.set.InForce(now)
}

// CheckRequest is one decision request: a number read from a card or typed in.
type CheckRequest struct {
	Number string
	// TestOnly is the officer's input: disability or no smartphone (POLICY.md rule 3).
	TestOnly bool
	// WhatIf marks a question about another moment (`check --at`): the device's own clock
	// checks do not apply to it. Never set for a live decision.
	WhatIf bool
}

// ClockSkew is how far before the last data refresh the clock may read before decisions
// become MANUAL: a clock that went backwards past data the device already holds is not trusted.
const ClockSkew = 5 * time.Minute

// Check decides for a number at now. It never fails: an invalid number, a missing or
// unreadable record, no snapshot, an expired one - each is a MANUAL decision with its reason.
func (d *Device) Check(req CheckRequest, now time.Time) engine.Decision {
	id, err := engine.ParseID(req.Number)
	if err != nil {
		var version uint64
		if p := d.InForce(now); p != nil {
			version = p.Version()
		}
		return engine.ManualInvalidID(err, version, now)
	}
	return d.Decide(id, req, now)
}

// Explain returns the value of every definition of the policy in force for the person at now.
func (d *Device) Explain(req CheckRequest, now time.Time) (map[string]string, error) {
	id, err := engine.ParseID(req.Number)
	if err != nil {
		return nil, err
	}
	p := d.InForce(now)
	if p == nil {
		return nil, errors.New("no snapshot in force")
	}
	facts, err := d.store.Lookup(d.store.Key(id.Number))
	if err != nil {
		return nil, err
	}
	return p.Explain(engine.Input{Identity: id, Facts: facts, TestOnly: req.TestOnly}, now), nil
}

// ClockProblem says why the clock reading now cannot be trusted for a live decision, or "":
// it is before the last data refresh (less ClockSkew), or it moved away from trusted time
// (the server's time at the last sync plus the monotonic clock) by more than ClockJumpLimit.
func (d *Device) ClockProblem(now time.Time) string {
	last := d.store.LastRefresh()
	if !last.IsZero() && now.Before(last.Add(-ClockSkew)) {
		return fmt.Sprintf("the clock reads %s, before the last data refresh at %s",
			now.In(engine.Beijing).Format(time.RFC3339), last.In(engine.Beijing).Format(time.RFC3339))
	}
	d.timeMu.Lock()
	trustedAt, anchor := d.trustedAt, d.anchorAt
	d.timeMu.Unlock()
	if anchor.IsZero() {
		return ""
	}
	// now.Sub(anchor) uses the monotonic readings when both carry one; the wall difference
	// strips them.
	return clockCheck(trustedAt, anchor.Round(0).Sub(trustedAt), now.Sub(anchor), now.Round(0).Sub(anchor.Round(0)))
}

// Decide decides for a parsed identity at now (req.Number is not read again).
func (d *Device) Decide(id engine.Identity, req CheckRequest, now time.Time) engine.Decision {
	return d.DecideKey(id, d.store.Key(id.Number), req, now)
}

// DecideKey is Decide for a caller that already holds the person's stored key (the card loop
// needs it for the audit entry too: the ID number is hashed once per passage).
func (d *Device) DecideKey(id engine.Identity, key store.PersonKey, req CheckRequest, now time.Time) engine.Decision {
	facts, err := d.store.Lookup(key)
	if err != nil {
		d.log.Error("record lookup failed; deciding MANUAL", logKeyID, id.Number, logKeyErr, err)
		return engine.Decision{Outcome: engine.Manual, Rule: engine.RuleStore, At: now,
			ReasonZH: "本机记录无法读取，请人工核验", ReasonEN: "the device could not read this person's record: check by hand"}
	}
	cond := engine.Conditions{LastSync: d.store.LastRefresh()}
	if !req.WhatIf {
		cond.ClockUntrusted = d.ClockProblem(now)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	dec := d.set.Decide(engine.Input{Identity: id, Facts: facts, TestOnly: req.TestOnly}, cond, now)
	if dec.Rule == engine.RuleNoSnapshot && len(d.refused) > 0 {
		dec.ReasonZH = "本机规则校验失败，请人工核验"
		dec.ReasonEN = fmt.Sprintf("no usable rule snapshot: %d stored snapshot(s) failed verification at start (see 'gatecheck policy list'): check by hand", len(d.refused))
	}
	return dec
}
