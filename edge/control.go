package edge

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/client"
	"github.com/gatecheck/gatecheck/sync/wire"
)

// Control is the running daemon's local control API, served on a unix socket: the commands
// gatecheck check, import, policy, audit and override use while the daemon owns the store.
//
//	POST /v1/check           {"id","test_only","at"}  a manual entry (audited; the gate opens for a
//	                                                   pass), or with "at" a what-if (not audited)
//	POST /v1/import          JSON Lines body           import person records
//	POST /v1/policy          signed snapshot body      install a snapshot
//	GET  /v1/policy                                    the snapshots held
//	POST /v1/override        {"ref","officer","reason","outcome"}
//	POST /v1/register        Registration                a commuter registration (audited)
//	GET  /v1/audit?from=&n=                            audit entries
//	GET  /v1/audit/verify                              verify the audit log
//	GET  /v1/status                                    device status
//
// Errors are {"error": "..."} with a 4xx or 5xx status.
type Control struct {
	Daemon    *Daemon
	Device    *Device
	Audit     *audit.Log
	DeviceID  string
	DeviceKey ed25519.PublicKey
	// TempDir receives imports spooled from the socket; empty means the system's.
	TempDir string
	// Syncer and Client, when the device syncs, serve POST /v1/sync and the sync status.
	Syncer  *Syncer
	Client  *client.Client
	Logger  *slog.Logger
	started time.Time
}

// MaxImportBody bounds an import sent over the socket (spooled to disk before it is read
// twice); larger populations come by sync or by `gatecheck import` with the daemon stopped.
const MaxImportBody = 512 << 20

// Handler returns the API's routes.
func (c *Control) Handler() http.Handler {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.started = time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/check", c.check)
	mux.HandleFunc("POST /v1/import", c.importRecords)
	mux.HandleFunc("POST /v1/policy", c.install)
	mux.HandleFunc("GET /v1/policy", c.policies)
	mux.HandleFunc("POST /v1/override", c.override)
	mux.HandleFunc("POST /v1/register", c.register)
	mux.HandleFunc("GET /v1/audit", c.entries)
	mux.HandleFunc("GET /v1/audit/verify", c.verify)
	mux.HandleFunc("GET /v1/status", c.status)
	mux.HandleFunc("POST /v1/sync", c.syncNow)
	return mux
}

// WriteJSON answers v as JSON with status code (the control socket's and the page's API).
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError answers {"error": "..."} with status code.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}

// DecodeJSON decodes a request body of at most limit bytes into v, refusing unknown fields.
func DecodeJSON(r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// maxControlBody bounds a control-socket request body (imports are spooled separately).
const maxControlBody = 64 << 10

// CheckBody is the body of POST /v1/check.
type CheckBody struct {
	ID       string `json:"id"`
	TestOnly bool   `json:"test_only,omitempty"`
	At       string `json:"at,omitempty"`
	// Officer who typed the number in, recorded in the audit entry; optional.
	Officer string `json:"officer,omitempty"`
}

func (c *Control) check(w http.ResponseWriter, r *http.Request) {
	var b CheckBody
	if err := DecodeJSON(r, &b, maxControlBody); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	if b.At != "" {
		at, err := time.Parse(time.RFC3339, b.At)
		if err != nil {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("at: %w", err))
			return
		}
		WriteJSON(w, http.StatusOK, Passage{Decision: c.Device.Check(CheckRequest{Number: b.ID, TestOnly: b.TestOnly, WhatIf: true}, at)})
		return
	}
	p, err := c.Daemon.PresentManual(r.Context(), b.ID, b.TestOnly, b.Officer)
	if err != nil {
		c.Logger.Error("manual entry", logKeyErr, err)
	}
	WriteJSON(w, http.StatusOK, p) // the passage says what happened, MANUAL included
}

func (c *Control) importRecords(w http.ResponseWriter, r *http.Request) {
	tmp, err := os.CreateTemp(c.TempDir, "gatecheck-import-*.jsonl")
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(r.Body, MaxImportBody+1))
	if err != nil {
		WriteError(w, http.StatusInternalServerError, fmt.Errorf("spool import: %w", err))
		return
	}
	if n > MaxImportBody {
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("import over %d bytes", int64(MaxImportBody)))
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	st, err := c.Device.Import(r.Context(), tmp, c.Daemon.cfg.Clock.Now(), nil)
	var ie *ImportError
	switch {
	case errors.As(err, &ie):
		WriteError(w, http.StatusUnprocessableEntity, err)
	case err != nil:
		WriteError(w, http.StatusInternalServerError, err)
	default:
		WriteJSON(w, http.StatusOK, st)
	}
}

func (c *Control) install(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, wire.MaxSignedSize+1))
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	if len(b) > wire.MaxSignedSize {
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("snapshot over %d bytes", wire.MaxSignedSize))
		return
	}
	v, err := c.Device.InstallSnapshot(b, c.Daemon.cfg.Clock.Now())
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, err)
		return
	}
	WriteJSON(w, http.StatusOK, PolicyInfo{Version: v.Snapshot.Version, Name: v.Snapshot.Name, KeyID: v.KeyID,
		EffectiveFrom: v.Snapshot.Effective(), ExpiresAt: v.Snapshot.Expires()})
}

// PolicyInfo describes a held snapshot.
type PolicyInfo struct {
	Version       uint64    `json:"version"`
	Name          string    `json:"name"`
	KeyID         string    `json:"key_id,omitempty"`
	EffectiveFrom time.Time `json:"effective_from"`
	ExpiresAt     time.Time `json:"expires_at"`
	State         string    `json:"state,omitempty"`
}

// PolicyList describes every held snapshot at now.
func (d *Device) PolicyList(now time.Time) []PolicyInfo {
	cur := d.InForce(now)
	var out []PolicyInfo
	for _, p := range d.Policies() {
		s := p.Snapshot()
		state := "later"
		switch {
		case cur != nil && p.Version() == cur.Version() && engine.UnixOf(now) >= s.ExpiresAt:
			state = "EXPIRED (decisions are MANUAL)"
		case cur != nil && p.Version() == cur.Version():
			state = "in force"
		case cur != nil && p.Version() < cur.Version():
			state = "superseded"
		}
		out = append(out, PolicyInfo{Version: p.Version(), Name: s.Name, EffectiveFrom: s.Effective(), ExpiresAt: s.Expires(), State: state})
	}
	return out
}

func (c *Control) policies(w http.ResponseWriter, r *http.Request) {
	var refused []string
	for _, e := range c.Device.Refused() {
		refused = append(refused, e.Error())
	}
	WriteJSON(w, http.StatusOK, map[string]any{"policies": c.Device.PolicyList(c.Daemon.cfg.Clock.Now()), "refused": refused})
}

// OverrideBody is the body of POST /v1/override.
type OverrideBody struct {
	Ref     uint64 `json:"ref"`
	Officer string `json:"officer"`
	Reason  string `json:"reason"`
	Outcome string `json:"outcome"`
}

func (c *Control) override(w http.ResponseWriter, r *http.Request) {
	var b OverrideBody
	if err := DecodeJSON(r, &b, maxControlBody); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	o, err := engine.ParseOutcome(b.Outcome)
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	p, err := c.Daemon.Override(r.Context(), b.Ref, b.Officer, b.Reason, o)
	switch {
	case errors.Is(err, ErrNoEntry):
		WriteError(w, http.StatusNotFound, err)
		return
	case errors.Is(err, ErrBadOverride):
		WriteError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	WriteJSON(w, http.StatusOK, p)
}

func (c *Control) register(w http.ResponseWriter, r *http.Request) {
	var b Registration
	if err := DecodeJSON(r, &b, maxControlBody); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	seq, err := c.Daemon.Register(b)
	switch {
	case errors.Is(err, ErrNoRegistrations):
		WriteError(w, http.StatusForbidden, err)
	case errors.Is(err, ErrBadRegistration):
		WriteError(w, http.StatusBadRequest, err)
	case err != nil:
		WriteError(w, http.StatusInternalServerError, err)
	default:
		WriteJSON(w, http.StatusOK, map[string]uint64{"audit_seq": seq})
	}
}

func (c *Control) entries(w http.ResponseWriter, r *http.Request) {
	from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 || n > 10000 {
		n = 100
	}
	list, err := c.Audit.Entries(from, n)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	WriteJSON(w, http.StatusOK, list)
}

func (c *Control) verify(w http.ResponseWriter, r *http.Request) {
	rep, err := c.Audit.Verify(c.DeviceKey)
	if err != nil {
		WriteJSON(w, http.StatusOK, map[string]any{"ok": false, "error": err.Error(), "report": rep})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "report": rep})
}

func (c *Control) syncNow(w http.ResponseWriter, r *http.Request) {
	if c.Client == nil {
		WriteError(w, http.StatusConflict, errors.New("this device has no sync section in its config"))
		return
	}
	rep, err := c.Client.SyncOnce(r.Context(), c.Syncer)
	c.Syncer.Record(rep, err)
	if err != nil {
		WriteError(w, http.StatusBadGateway, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

// Status is GET /v1/status.
type Status struct {
	DeviceID     string    `json:"device_id"`
	Now          time.Time `json:"now"`
	Uptime       string    `json:"uptime"`
	ReaderUp     bool      `json:"reader_up"`
	Decisions    int64     `json:"decisions"`
	GateOpens    int64     `json:"gate_opens"`
	ReaderErrors int64     `json:"reader_errors"`
	AuditSeq     uint64    `json:"audit_seq"`
	Snapshot     uint64    `json:"snapshot_in_force"`
	LastRefresh  time.Time `json:"last_refresh"`
	SyncCursor   uint64    `json:"sync_cursor"`
	SyncError    string    `json:"sync_error,omitempty"`
	SyncAt       time.Time `json:"sync_attempt,omitempty"`
	AuditAcked   uint64    `json:"audit_acked"`
}

func (c *Control) status(w http.ResponseWriter, r *http.Request) {
	now := c.Daemon.cfg.Clock.Now()
	st := Status{DeviceID: c.DeviceID, Now: now, Uptime: time.Since(c.started).Round(time.Second).String(),
		ReaderUp: c.Daemon.ReaderUp(), Decisions: c.Daemon.Decisions.Load(), GateOpens: c.Daemon.GateOpens.Load(),
		ReaderErrors: c.Daemon.ReaderErrors.Load(), AuditSeq: c.Audit.Seq(), LastRefresh: c.Device.Store().LastRefresh()}
	if p := c.Device.InForce(now); p != nil {
		st.Snapshot = p.Version()
	}
	if ss, err := c.Device.Store().SyncState(); err == nil {
		st.SyncCursor = ss.Cursor
	}
	st.AuditAcked, _ = c.Audit.Acked()
	if c.Syncer != nil {
		_, err, at := c.Syncer.Last()
		st.SyncAt = at
		if err != nil {
			st.SyncError = err.Error()
		}
	}
	WriteJSON(w, http.StatusOK, st)
}

// ServeControl serves h on a unix socket at path (mode 0660) until ctx ends. A stale socket
// left by a crash is removed; a live one (another daemon) is an error.
func ServeControl(ctx context.Context, path string, h http.Handler, log *slog.Logger) error {
	if c, err := net.DialTimeout("unix", path, 500*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another daemon is answering on it", path)
	}
	_ = os.Remove(path)
	// Create the socket with its final mode: no moment with the process umask's.
	old := syscall.Umask(0o117)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	// Handlers finish before ServeControl returns, so the caller may then close the store.
	var inflight sync.WaitGroup
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: counted, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			srv.Close()
		}
		inflight.Wait()
		os.Remove(path)
		return err
	case err := <-errc:
		inflight.Wait()
		os.Remove(path)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("control socket: %w", err)
	}
}
