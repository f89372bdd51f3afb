package web

import (
	"time"

	"github.com/gatecheck/gatecheck/edge/config"
)

// Status is what GET /status answers and the page shows.
type Status struct {
	Device   string          `json:"device"`
	Kind     string          `json:"kind"`
	Lane     string          `json:"lane,omitempty"`
	Now      time.Time       `json:"now"`
	Snapshot *SnapshotStatus `json:"snapshot"` // null when none is in force
	Sync     SyncStatus      `json:"sync"`
	Audit    AuditStatus     `json:"audit"`
	Reader   DeviceState     `json:"reader"`
	Gate     DeviceState     `json:"gate"`
	Peers    []Peer          `json:"peers"`
	// Decisions recorded since start.
	Decisions int64 `json:"decisions"`
	// Officer is true when officer actions are configured (a PIN).
	Officer bool `json:"officer_actions"`
	// Registration is true on a highway checkpoint: commuter registration is offered.
	Registration bool `json:"registration"`
	// Alerts are the conditions an officer must see at once (stale data, no snapshot...).
	Alerts []Alert `json:"alerts"`
}

// SnapshotStatus is the snapshot in force.
type SnapshotStatus struct {
	Version       uint64    `json:"version"`
	Name          string    `json:"name"`
	EffectiveFrom time.Time `json:"effective_from"`
	ExpiresAt     time.Time `json:"expires_at"`
	AgeSeconds    int64     `json:"age_seconds"`
	ExpiresInSec  int64     `json:"expires_in_seconds"`
	MaxOffline    string    `json:"max_offline,omitempty"`
}

// SyncStatus is the device's sync state.
type SyncStatus struct {
	Configured bool   `json:"configured"`
	Central    string `json:"central,omitempty"`
	Cursor     uint64 `json:"cursor"`
	// LastRefresh is the last successful sync or import; LagSeconds the time since (-1: never).
	LastRefresh time.Time `json:"last_refresh"`
	LagSeconds  int64     `json:"lag_seconds"`
	LastAttempt time.Time `json:"last_attempt,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	Via         string    `json:"via,omitempty"`
	// BehindPeers: how many changes the most current peer holds beyond this device's cursor.
	BehindPeers uint64 `json:"behind_peers"`
	Stale       bool   `json:"stale"`
}

// AuditStatus is the audit log's upload state.
type AuditStatus struct {
	Seq     uint64 `json:"seq"`
	Acked   uint64 `json:"acked"`
	Pending uint64 `json:"pending"`
}

// DeviceState is a reader's or gate's state.
type DeviceState struct {
	Configured bool  `json:"configured"`
	Up         bool  `json:"up"`
	Errors     int64 `json:"errors,omitempty"`
	Opens      int64 `json:"opens,omitempty"`
}

// Peer is a device of the same checkpoint.
type Peer struct {
	Name     string `json:"name"`
	Lane     string `json:"lane,omitempty"`
	Snapshot uint64 `json:"snapshot"`
	Cursor   uint64 `json:"cursor"`
	Link     bool   `json:"link"`
}

// Alert is a condition shown loudly, in Chinese and English.
type Alert struct {
	Level string `json:"level"` // error or warning
	ZH    string `json:"zh"`
	EN    string `json:"en"`
}

// status builds the device's status at now.
func (s *Server) status(now time.Time) Status {
	c := s.cfg
	st := Status{Device: c.DeviceID, Kind: c.Kind, Lane: c.Lane, Now: now, Peers: []Peer{}, Alerts: []Alert{},
		Decisions: c.Daemon.Decisions.Load(), Officer: len(c.PINHash) > 0, Registration: c.Kind == config.KindHighway}
	alert := func(level, zh, en string) { st.Alerts = append(st.Alerts, Alert{level, zh, en}) }

	if p := c.Device.InForce(now); p != nil {
		sn := p.Snapshot()
		st.Snapshot = &SnapshotStatus{Version: sn.Version, Name: sn.Name, EffectiveFrom: sn.Effective(), ExpiresAt: sn.Expires(),
			AgeSeconds: int64(now.Sub(sn.Effective()).Seconds()), ExpiresInSec: int64(sn.Expires().Sub(now).Seconds())}
		if mo := sn.MaxOfflineDuration(); mo > 0 {
			st.Snapshot.MaxOffline = mo.String()
		}
		switch left := sn.Expires().Sub(now); {
		case left <= 0:
			alert("error", "规则已过期：所有核验转人工", "the rule snapshot has expired: every decision is MANUAL")
		case left < 24*time.Hour:
			alert("warning", "规则将在24小时内过期", "the rule snapshot expires within 24 hours")
		}
	} else {
		alert("error", "无有效规则：所有核验转人工", "no rule snapshot in force: every decision is MANUAL")
	}
	if err := c.Device.Store().SpaceProblem(); err != nil {
		alert("error", "存储空间不足：同步与导入已暂停", "disk nearly full: syncs and imports stopped - "+err.Error())
	}
	if c.PINError != nil {
		alert("warning", "执勤PIN文件无法读取：页面只读", "the officer PIN file cannot be used: the page is read-only - "+c.PINError.Error())
	}
	if why := c.Device.ClockProblem(now); why != "" {
		alert("error", "本机时钟不可信：核验转人工", "the device clock is not trusted: decisions are MANUAL - "+why)
	}

	st.Sync.LastRefresh = c.Device.Store().LastRefresh()
	st.Sync.LagSeconds = -1
	if !st.Sync.LastRefresh.IsZero() {
		st.Sync.LagSeconds = int64(now.Sub(st.Sync.LastRefresh).Seconds())
	}
	if ss, err := c.Device.Store().SyncState(); err == nil {
		st.Sync.Cursor = ss.Cursor
	} else {
		alert("error", "本机数据无法读取", "the device store cannot be read: "+err.Error())
	}
	if c.Syncer != nil {
		st.Sync.Configured, st.Sync.Central = true, c.Syncer.Central
		rep, err, at := c.Syncer.Last()
		st.Sync.LastAttempt, st.Sync.Via = at, rep.Via
		if err != nil {
			st.Sync.LastError = err.Error()
		}
	}
	if st.Sync.Configured && (st.Sync.LagSeconds < 0 || time.Duration(st.Sync.LagSeconds)*time.Second > c.Stale) {
		st.Sync.Stale = true
		since := "从未同步"
		sinceEN := "never synced"
		if st.Sync.LagSeconds >= 0 {
			d := (time.Duration(st.Sync.LagSeconds) * time.Second).String()
			since, sinceEN = "已 "+d+" 未同步", "no sync for "+d
		}
		alert("warning", "数据可能过时："+since, "data may be stale: "+sinceEN)
	}
	if p := c.Device.InForce(now); p != nil && !st.Sync.LastRefresh.IsZero() {
		if mo := p.Snapshot().MaxOfflineDuration(); mo > 0 && now.Sub(st.Sync.LastRefresh) > mo {
			alert("error", "离线时间超过上限：通行需人工确认", "offline longer than the policy allows: passes become MANUAL")
		}
	}

	st.Audit.Seq = c.Audit.Seq()
	st.Audit.Acked, _ = c.Audit.Acked()
	if st.Audit.Seq > st.Audit.Acked {
		st.Audit.Pending = st.Audit.Seq - st.Audit.Acked
	}

	st.Reader = DeviceState{Configured: c.HasReader, Up: c.Daemon.ReaderUp(), Errors: c.Daemon.ReaderErrors.Load()}
	if c.HasReader && !st.Reader.Up {
		alert("error", "读卡器未连接", "the card reader is not connected")
	}
	st.Gate = DeviceState{Configured: c.HasGate, Up: c.HasGate, Opens: c.Daemon.GateOpens.Load()}

	if c.Members != nil {
		for _, m := range c.Members() {
			st.Peers = append(st.Peers, Peer{Name: m.Name, Lane: m.Meta.Lane, Snapshot: m.Meta.Snapshot, Cursor: m.Meta.Cursor, Link: m.Meta.Link})
			if m.Meta.Cursor > st.Sync.Cursor+st.Sync.BehindPeers {
				st.Sync.BehindPeers = m.Meta.Cursor - st.Sync.Cursor
			}
		}
	}
	return st
}
