// Package web serves the officer's page of a running device: the live stream of decisions,
// the snapshot, sync, reader, gate and peer state, officer actions behind a PIN (manual
// entry, override, commuter registration), JSON endpoints and Prometheus metrics.
package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/edge/config"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/sync/gossip"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/bcrypt"
)

//go:embed static
var static embed.FS

// Config configures a Server.
type Config struct {
	Daemon *edge.Daemon // required
	Device *edge.Device // required
	Audit  *audit.Log   // required
	// Metrics are the daemon's observer; nil makes new ones (then decisions are not counted).
	Metrics *Metrics
	// Syncer is the device's sync state; nil when the device does not sync.
	Syncer *edge.Syncer
	// Members lists the checkpoint's peers; nil when the device does not gossip.
	Members func() []gossip.Member
	// DeviceID, Kind (highway-checkpoint offers commuter registration) and Lane.
	DeviceID, Kind, Lane string
	// HasReader, HasGate: what the device has.
	HasReader, HasGate bool
	// PINHash is the bcrypt hash of the officer PIN; nil makes the page read-only.
	PINHash []byte
	// Stale is when sync data is shown as stale. Zero means 10 minutes.
	Stale time.Duration
	// Clock; nil means the system clock.
	Clock edge.Clock
	// Logger; nil discards logs.
	Logger *slog.Logger
	// StatusEvery is how often the live stream sends status. Zero means 2 seconds.
	StatusEvery time.Duration
}

// Session limits.
const (
	SessionTTL  = 12 * time.Hour // one shift
	MaxFailures = 5              // wrong PINs in a row before a lockout
	Lockout     = time.Minute
	maxBody     = 16 << 10
)

// Server is the page's HTTP handler.
type Server struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	sessions  map[string]session
	failures  int
	lockedTil time.Time

	cacheMu sync.Mutex
	cached  Status
	cacheAt time.Time
}

type session struct {
	officer string
	expires time.Time
}

// New checks the config and makes a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Daemon == nil || cfg.Device == nil || cfg.Audit == nil {
		return nil, errors.New("web: a daemon, a device and an audit log are required")
	}
	if len(cfg.PINHash) > 0 {
		if _, err := bcrypt.Cost(cfg.PINHash); err != nil {
			return nil, fmt.Errorf("web: officer PIN hash: %w", err)
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = edge.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stale == 0 {
		cfg.Stale = 10 * time.Minute
	}
	if cfg.StatusEvery == 0 {
		cfg.StatusEvery = 2 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sessions: map[string]session{}}
	cfg.Metrics.gauges(s.scrapeStatus)
	return s, nil
}

// scrapeStatus is the status for one metrics scrape: the gauges share one computation.
func (s *Server) scrapeStatus() Status {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if time.Since(s.cacheAt) > 500*time.Millisecond {
		s.cached, s.cacheAt = s.status(s.cfg.Clock.Now()), time.Now()
	}
	return s.cached
}

// Handler returns the routes:
//
//	GET  /                 the page (zh-CN first, English with ?lang=en or the switch)
//	GET  /status           Status as JSON
//	GET  /decisions?n=     the newest passages (masked), newest first
//	GET  /events           server-sent events: "status" every few seconds, "decision" as they happen
//	GET  /metrics          Prometheus metrics
//	POST /api/login        {"officer","pin"} -> {"token","expires"}
//	POST /api/logout
//	POST /api/check        {"id","test_only"}                        (officer) a manual entry
//	POST /api/override     {"ref","outcome","reason"}                (officer)
//	POST /api/register     {"id","work_proof","residence_proof","test_proof"} (officer, highway)
//
// Officer calls carry "Authorization: Bearer TOKEN". Errors are {"error": "..."}.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.status(s.cfg.Clock.Now()))
	})
	mux.HandleFunc("GET /decisions", s.decisions)
	mux.HandleFunc("GET /events", s.events)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /api/login", s.login)
	mux.HandleFunc("POST /api/logout", s.officer(s.logout))
	mux.HandleFunc("POST /api/check", s.officer(s.check))
	mux.HandleFunc("POST /api/override", s.officer(s.override))
	mux.HandleFunc("POST /api/register", s.officer(s.register))
	return securityHeaders(mux)
}

// securityHeaders: the page loads only its own files and is never framed.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

func (s *Server) decisions(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 || n > edge.FeedSize {
		n = 50
	}
	writeJSON(w, http.StatusOK, s.cfg.Daemon.Feed.Recent(n))
}

// events streams server-sent events until the client goes away: "status" at once and every
// StatusEvery, "decision" for each new passage, "reload" when the client fell behind.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, http.StatusInternalServerError, errors.New("streaming is not supported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	sub := s.cfg.Daemon.Feed.Subscribe()
	defer s.cfg.Daemon.Feed.Unsubscribe(sub)
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	tick := time.NewTicker(s.cfg.StatusEvery)
	defer tick.Stop()
	if send("status", s.status(s.cfg.Clock.Now())) != nil {
		return
	}
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case it := <-sub.C:
			err = send("decision", it)
		case <-tick.C:
			if sub.Dropped() > 0 {
				err = send("reload", struct{}{})
			}
			if err == nil {
				err = send("status", s.status(s.cfg.Clock.Now()))
			}
		}
		if err != nil {
			return
		}
	}
}

// LoginBody is the body of POST /api/login.
type LoginBody struct {
	Officer string `json:"officer"`
	PIN     string `json:"pin"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.PINHash) == 0 {
		writeErr(w, http.StatusForbidden, errors.New("officer actions are not configured on this device (web.officer_pin_file)"))
		return
	}
	var b LoginBody
	if err := decode(r, &b); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	b.Officer = strings.TrimSpace(b.Officer)
	if b.Officer == "" || len(b.Officer) > 64 {
		writeErr(w, http.StatusBadRequest, errors.New("the officer's name or number is required (at most 64 bytes)"))
		return
	}
	now := time.Now() // lockouts and sessions run on the machine's clock, not the decision clock
	s.mu.Lock()
	if now.Before(s.lockedTil) {
		left := s.lockedTil.Sub(now).Round(time.Second)
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(left.Seconds())+1))
		writeErr(w, http.StatusTooManyRequests, fmt.Errorf("too many wrong PINs: try again in %s", left))
		return
	}
	s.mu.Unlock()
	err := bcrypt.CompareHashAndPassword(s.cfg.PINHash, []byte(b.PIN))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures++
		if s.failures >= MaxFailures {
			s.failures, s.lockedTil = 0, now.Add(Lockout)
		}
		s.log.Warn("officer login refused", "officer", b.Officer, "remote", r.RemoteAddr)
		writeErr(w, http.StatusUnauthorized, errors.New("wrong PIN"))
		return
	}
	s.failures = 0
	tok := make([]byte, 24)
	rand.Read(tok)
	t := hex.EncodeToString(tok)
	for k, v := range s.sessions {
		if now.After(v.expires) {
			delete(s.sessions, k)
		}
	}
	s.sessions[t] = session{officer: b.Officer, expires: now.Add(SessionTTL)}
	s.log.Info("officer logged in", "officer", b.Officer, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"token": t, "officer": b.Officer, "expires": now.Add(SessionTTL)})
}

// officer wraps a handler that needs a logged-in officer; it receives the officer's name.
func (s *Server) officer(h func(w http.ResponseWriter, r *http.Request, officer string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeErr(w, http.StatusUnauthorized, errors.New("officer login required"))
			return
		}
		s.mu.Lock()
		var found *session
		for k, v := range s.sessions {
			if subtle.ConstantTimeCompare([]byte(k), []byte(tok)) == 1 {
				found = &v
				if time.Now().After(v.expires) {
					delete(s.sessions, k)
					found = nil
				}
				break
			}
		}
		s.mu.Unlock()
		if found == nil {
			writeErr(w, http.StatusUnauthorized, errors.New("officer session expired or unknown: log in again"))
			return
		}
		h(w, r, found.officer)
	}
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ string) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	delete(s.sessions, tok)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// CheckBody is the body of POST /api/check.
type CheckBody struct {
	ID       string `json:"id"`
	TestOnly bool   `json:"test_only,omitempty"`
}

func (s *Server) check(w http.ResponseWriter, r *http.Request, officer string) {
	var b CheckBody
	if err := decode(r, &b); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	b.ID = strings.ToUpper(strings.TrimSpace(b.ID))
	if b.ID == "" {
		writeErr(w, http.StatusBadRequest, errors.New("an ID number is required"))
		return
	}
	// An invalid number is decided too (MANUAL, audited): the officer sees why.
	p, err := s.cfg.Daemon.PresentManual(r.Context(), b.ID, b.TestOnly)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("manual entry from the page", "officer", officer, "seq", p.Seq, "outcome", p.Decision.Outcome.String())
	writeJSON(w, http.StatusOK, p)
}

// OverrideBody is the body of POST /api/override.
type OverrideBody struct {
	Ref     uint64 `json:"ref"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

func (s *Server) override(w http.ResponseWriter, r *http.Request, officer string) {
	var b OverrideBody
	if err := decode(r, &b); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	b.Reason = strings.TrimSpace(b.Reason)
	if len(b.Reason) > 500 {
		writeErr(w, http.StatusBadRequest, errors.New("the reason is longer than 500 bytes"))
		return
	}
	o, err := engine.ParseOutcome(b.Outcome)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	p, err := s.cfg.Daemon.Override(r.Context(), b.Ref, officer, b.Reason, o)
	switch {
	case errors.Is(err, edge.ErrNoEntry):
		writeErr(w, http.StatusNotFound, err)
	case errors.Is(err, edge.ErrBadOverride):
		writeErr(w, http.StatusBadRequest, err)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

// RegisterBody is the body of POST /api/register.
type RegisterBody struct {
	ID        string `json:"id"`
	WorkProof string `json:"work_proof"`
	Residence string `json:"residence_proof"`
	TestProof string `json:"test_proof"`
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, officer string) {
	if s.cfg.Kind != "highway-checkpoint" {
		writeErr(w, http.StatusForbidden, errors.New("commuter registration is taken at highway checkpoints only"))
		return
	}
	var b RegisterBody
	if err := decode(r, &b); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	seq, err := s.cfg.Daemon.Register(edge.Registration{ID: strings.ToUpper(strings.TrimSpace(b.ID)), Officer: officer,
		WorkProof: strings.TrimSpace(b.WorkProof), Residence: strings.TrimSpace(b.Residence), TestProof: strings.TrimSpace(b.TestProof)})
	switch {
	case errors.Is(err, edge.ErrBadRegistration):
		writeErr(w, http.StatusBadRequest, err)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"audit_seq": seq, "status": "queued",
			"note": "queued for central approval; once approved the commuter mark takes effect at 00:00 the next day"})
	}
}

// Serve serves h on addr until ctx ends, then shuts down (open event streams are cut).
// ready, if set, is called with the bound address once it listens.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	if ready != nil {
		ready(ln.Addr())
	}
	log.Info("officer page", "url", "http://"+ln.Addr().String()+"/")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		return nil
	case err := <-errc:
		return fmt.Errorf("web: %w", err)
	}
}

// Attach makes a running device serve its page when its config has a web section: the
// metrics observe the daemon, and the page runs beside it. ready, if set, gets the bound
// address.
func Attach(opts *edge.RunOptions, cfg *config.Config, log *slog.Logger, ready func(net.Addr)) error {
	if cfg.Web == nil {
		return nil
	}
	pin, err := cfg.OfficerPINHash()
	if err != nil {
		return err
	}
	if pin == nil {
		log.Warn("no web.officer_pin_file: the officer page is read-only")
	}
	m := NewMetrics()
	opts.Observer = m
	opts.Page = func(ctx context.Context, rt edge.Running) error {
		c := Config{Daemon: rt.Daemon, Device: rt.Device, Audit: rt.Audit, Metrics: m, Syncer: rt.Syncer, Members: rt.Peers,
			DeviceID: cfg.DeviceID, Kind: cfg.Kind, HasReader: cfg.Reader != nil, HasGate: cfg.Gate != nil,
			PINHash: pin, Stale: time.Duration(cfg.Web.Stale), Clock: opts.Clock, Logger: log}
		if cfg.Gossip != nil {
			c.Lane = cfg.Gossip.Lane
		}
		s, err := New(c)
		if err != nil {
			return err
		}
		return Serve(ctx, cfg.Web.Listen, s.Handler(), log, ready)
	}
	return nil
}
