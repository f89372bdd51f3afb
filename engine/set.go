package engine

import (
	"fmt"
	"slices"
	"time"
)

// SnapshotSet is the set of verified, compiled snapshots a device holds: the one in force and
// any later ones waiting for their effective-from. It is not safe for concurrent mutation; edge
// guards it.
type SnapshotSet struct {
	entries []setEntry // ascending by version
}

type setEntry struct {
	p      *Policy
	digest [32]byte
}

// Add adds a compiled snapshot. digest identifies its signed bytes, so adding the same snapshot
// twice is a no-op (nil error). A version lower than the highest held is refused with
// ErrRollback, the same version with other content with ErrConflict.
func (s *SnapshotSet) Add(p *Policy, digest [32]byte) error {
	v := p.Version()
	if n := len(s.entries); n > 0 {
		top := s.entries[n-1]
		if v < top.p.Version() {
			return fmt.Errorf("%w: version %d is lower than %d, the highest held", ErrRollback, v, top.p.Version())
		}
		if v == top.p.Version() {
			if digest == top.digest {
				return nil
			}
			return fmt.Errorf("%w: version %d", ErrConflict, v)
		}
	}
	s.entries = append(s.entries, setEntry{p: p, digest: digest})
	return nil
}

// Clone returns an independent copy, to change while the original keeps deciding.
func (s *SnapshotSet) Clone() SnapshotSet {
	return SnapshotSet{entries: slices.Clone(s.entries)}
}

// Highest returns the highest version held, or 0.
func (s *SnapshotSet) Highest() uint64 {
	if len(s.entries) == 0 {
		return 0
	}
	return s.entries[len(s.entries)-1].p.Version()
}

// Policies returns the held policies, ascending by version.
func (s *SnapshotSet) Policies() []*Policy {
	out := make([]*Policy, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.p
	}
	return out
}

// InForce returns the policy in force at now: the highest version whose effective-from is not
// after now. It returns nil if none is (no snapshots, or all in the future). An expired policy
// is still returned; Decide turns it into MANUAL.
func (s *SnapshotSet) InForce(now time.Time) *Policy {
	u := UnixOf(now)
	for j := len(s.entries) - 1; j >= 0; j-- {
		if s.entries[j].p.snap.EffectiveFrom <= u {
			return s.entries[j].p
		}
	}
	return nil
}

// Prune drops snapshots superseded at now: every one older than the one in force. It returns the
// versions dropped.
func (s *SnapshotSet) Prune(now time.Time) []uint64 {
	cur := s.InForce(now)
	if cur == nil {
		return nil
	}
	var dropped []uint64
	kept := s.entries[:0]
	for _, e := range s.entries {
		if e.p.Version() < cur.Version() {
			dropped = append(dropped, e.p.Version())
			continue
		}
		kept = append(kept, e)
	}
	s.entries = kept
	return dropped
}

// Conditions are the device's state that a decision depends on besides the person.
type Conditions struct {
	// ClockUntrusted, when not empty, is why the device's clock cannot be trusted; every decision
	// is then MANUAL with this reason.
	ClockUntrusted string
	// LastSync is the last successful sync (or data refresh). Zero means never: automatic PASS
	// decisions are then not allowed.
	LastSync time.Time
}

// Decide makes the decision for one person at now with the snapshot in force, failing closed:
// no snapshot, a snapshot not yet in force or expired, or an untrusted clock give MANUAL with the
// reason; past the snapshot's max_offline since the last sync a PASS becomes MANUAL, while
// denials stand.
func (s *SnapshotSet) Decide(in Input, c Conditions, now time.Time) Decision {
	if c.ClockUntrusted != "" {
		return manual(RuleClock, 0, now, "设备时钟不可信，请人工核验", "device clock not trusted ("+c.ClockUntrusted+"): check by hand")
	}
	p := s.InForce(now)
	if p == nil {
		if len(s.entries) == 0 {
			return manual(RuleNoSnapshot, 0, now, "设备没有有效的规则，请人工核验", "no rule snapshot installed: check by hand")
		}
		first := s.entries[0].p.snap
		return manual(RuleNotYetInForce, 0, now, "规则尚未生效，请人工核验",
			fmt.Sprintf("no rule snapshot in force yet (the earliest, version %d, starts %s): check by hand",
				first.Version, first.Effective().In(Beijing).Format(time.RFC3339)))
	}
	snap := p.snap
	if UnixOf(now) >= snap.ExpiresAt {
		return manual(RuleExpired, snap.Version, now, "规则已过期，请人工核验",
			fmt.Sprintf("rule snapshot %d expired at %s: check by hand", snap.Version, snap.Expires().In(Beijing).Format(time.RFC3339)))
	}
	d := p.Decide(in, now)
	if d.Outcome.Opens() {
		if c.LastSync.IsZero() {
			return offline(d, "设备从未同步数据，请人工核验", "the device has never synced its records: check by hand")
		}
		if age := now.Sub(c.LastSync); age > snap.MaxOfflineDuration() {
			return offline(d, "设备离线时间过长，数据可能过期，请人工核验",
				fmt.Sprintf("records last synced %s ago, beyond the policy's %s offline limit: check by hand",
					age.Round(time.Minute), snap.MaxOfflineDuration()))
		}
	}
	return d
}

func offline(d Decision, zh, en string) Decision {
	d.Outcome, d.Rule, d.ReasonZH, d.ReasonEN, d.Flags = Manual, RuleMaxOffline, zh, en, nil
	return d
}
