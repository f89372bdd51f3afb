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
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// PINError, if set, says why the configured PIN file could not be used (shown as an alert).
	PINError error
	// Stale is when sync data is shown as stale. Zero means 10 minutes.
	Stale time.Duration
	// Clock; nil means the system clock.
	Clock edge.Clock
	// Logger; nil discards logs.
	Logger *slog.Logger
	// StatusEvery is how often the live stream sends status. Zero means 2 seconds.
	StatusEvery time.Duration
	// Wall is the machine's clock for sessions and lockouts (not the decision clock); nil
	// means time.Now.
	Wall func() time.Time
	// Hosts are the host names (besides IP literals and localhost) the page answers to; a
	// request naming another host is refused (DNS rebinding).
	Hosts []string
}

// Validate fills defaults and checks the config.
func (c *Config) Validate() error {
	if c.Daemon == nil || c.Device == nil || c.Audit == nil {
		return errors.New("web: a daemon, a device and an audit log are required")
	}
	if len(c.PINHash) > 0 {
		if _, err := bcrypt.Cost(c.PINHash); err != nil {
			return fmt.Errorf("web: officer PIN hash: %w", err)
		}
	}
	if c.Clock == nil {
		c.Clock = edge.SystemClock{}
	}
	if c.Wall == nil {
		c.Wall = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stale == 0 {
		c.Stale = 10 * time.Minute
	}
	if c.StatusEvery == 0 {
		c.StatusEvery = 2 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	return nil
}

// Session limits.
const (
	SessionTTL  = 12 * time.Hour // one shift
	MaxFailures = 5              // wrong PINs in a row before a lockout
	Lockout     = time.Minute
	MaxStreams  = 16 // open event streams (officers' tablets, a wall screen)
	maxBody     = 16 << 10
)

// Server is the page's HTTP handler.
type Server struct {
	cfg Config
	log *slog.Logger

	loginMu sync.Mutex // one PIN check at a time: a burst cannot outrun the lockout
	streams atomic.Int32

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
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sessions: map[string]session{}}
	cfg.Metrics.gauges(s.cachedStatus)
	return s, nil
}

// cachedStatus is the status computed at most twice a second: a metrics scrape's gauges and
// the open event streams share it.
func (s *Server) cachedStatus() Status {
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
		edge.WriteJSON(w, http.StatusOK, s.cachedStatus())
	})
	mux.HandleFunc("GET /decisions", s.decisions)
	mux.HandleFunc("GET /events", s.events)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /api/login", s.login)
	mux.HandleFunc("POST /api/logout", s.officer(s.logout))
	mux.HandleFunc("POST /api/check", s.officer(s.check))
	mux.HandleFunc("POST /api/override", s.officer(s.override))
	mux.HandleFunc("POST /api/register", s.officer(s.register))
	return s.guard(mux)
}

// guard: the page loads only its own files and is never framed; it answers only to the host
// names it knows (a DNS-rebinding page names its own); a POST must be JSON from the page's own
// origin (a cross-site form cannot send it without a preflight the page never grants).
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if !s.knownHost(r.Host) {
			edge.WriteError(w, http.StatusMisdirectedRequest, fmt.Errorf("this page does not answer to host %q (web.hosts)", r.Host))
			return
		}
		if r.Method == http.MethodPost {
			if mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(mt) != "application/json" {
				edge.WriteError(w, http.StatusUnsupportedMediaType, errors.New("want Content-Type: application/json"))
				return
			}
			if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
				edge.WriteError(w, http.StatusForbidden, fmt.Errorf("cross-origin request from %q refused", o))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// knownHost accepts IP literals, localhost and the configured names.
func (s *Server) knownHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	for _, h := range s.cfg.Hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func (s *Server) decisions(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 {
		n = 50
	}
	n = min(n, edge.FeedSize)
	edge.WriteJSON(w, http.StatusOK, s.cfg.Daemon.Feed.Recent(n))
}

// events streams server-sent events until the client goes away: "status" at once and every
// StatusEvery, "decision" for each new passage, "reload" when the client fell behind.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		edge.WriteError(w, http.StatusInternalServerError, errors.New("streaming is not supported"))
		return
	}
	if s.streams.Add(1) > MaxStreams {
		s.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		edge.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("more than %d live pages open", MaxStreams))
		return
	}
	defer s.streams.Add(-1)
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
	if send("status", s.cachedStatus()) != nil {
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
				err = send("status", s.cachedStatus())
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
		edge.WriteError(w, http.StatusForbidden, errors.New("officer actions are not configured on this device (web.officer_pin_file)"))
		return
	}
	var b LoginBody
	if err := edge.DecodeJSON(r, &b, maxBody); err != nil {
		edge.WriteError(w, http.StatusBadRequest, err)
		return
	}
	b.Officer = strings.TrimSpace(b.Officer)
	if b.Officer == "" || len(b.Officer) > 64 {
		edge.WriteError(w, http.StatusBadRequest, errors.New("the officer's name or number is required (at most 64 bytes)"))
		return
	}
	// Lockouts and sessions run on the machine's clock, not the decision clock. One PIN check
	// at a time: requests in parallel wait here, and those after the fifth failure are refused
	// without a check.
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	now := s.cfg.Wall()
	s.mu.Lock()
	locked := s.lockedTil
	s.mu.Unlock()
	if now.Before(locked) {
		left := locked.Sub(now).Round(time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(int(left.Seconds())+1))
		edge.WriteError(w, http.StatusTooManyRequests, fmt.Errorf("too many wrong PINs: try again in %s", left))
		return
	}
	err := bcrypt.CompareHashAndPassword(s.cfg.PINHash, []byte(b.PIN))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures++
		if s.failures >= MaxFailures {
			s.failures, s.lockedTil = 0, now.Add(Lockout)
		}
		s.log.Warn("officer login refused", logKeyOfficer, b.Officer, logKeyRemote, r.RemoteAddr)
		edge.WriteError(w, http.StatusUnauthorized, errors.New("wrong PIN"))
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
	s.log.Info("officer logged in", logKeyOfficer, b.Officer, logKeyRemote, r.RemoteAddr)
	edge.WriteJSON(w, http.StatusOK, map[string]any{"token": t, "officer": b.Officer, "expires": now.Add(SessionTTL)})
}

// officer wraps a handler that needs a logged-in officer; it receives the officer's name.
func (s *Server) officer(h func(w http.ResponseWriter, r *http.Request, officer string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			edge.WriteError(w, http.StatusUnauthorized, errors.New("officer login required"))
			return
		}
		s.mu.Lock()
		var found *session
		for k, v := range s.sessions {
			if subtle.ConstantTimeCompare([]byte(k), []byte(tok)) == 1 {
				found = &v
				if s.cfg.Wall().After(v.expires) {
					delete(s.sessions, k)
					found = nil
				}
				break
			}
		}
		s.mu.Unlock()
		if found == nil {
			edge.WriteError(w, http.StatusUnauthorized, errors.New("officer session expired or unknown: log in again"))
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
	edge.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// CheckBody is the body of POST /api/check.
type CheckBody struct {
	ID       string `json:"id"`
	TestOnly bool   `json:"test_only,omitempty"`
}

func (s *Server) check(w http.ResponseWriter, r *http.Request, officer string) {
	var b CheckBody
	if err := edge.DecodeJSON(r, &b, maxBody); err != nil {
		edge.WriteError(w, http.StatusBadRequest, err)
		return
	}
	b.ID = strings.ToUpper(strings.TrimSpace(b.ID))
	if b.ID == "" {
		edge.WriteError(w, http.StatusBadRequest, errors.New("an ID number is required"))
		return
	}
	// An invalid number is decided too (MANUAL, audited): the officer sees why.
	p, err := s.cfg.Daemon.PresentManual(r.Context(), b.ID, b.TestOnly, officer)
	if err != nil {
		edge.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("manual entry from the page", logKeyOfficer, officer, "seq", p.Seq, "outcome", p.Decision.Outcome.String())
	edge.WriteJSON(w, http.StatusOK, p)
}

// OverrideBody is the body of POST /api/override.
type OverrideBody struct {
	Ref     uint64 `json:"ref"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

func (s *Server) override(w http.ResponseWriter, r *http.Request, officer string) {
	var b OverrideBody
	if err := edge.DecodeJSON(r, &b, maxBody); err != nil {
		edge.WriteError(w, http.StatusBadRequest, err)
		return
	}
	b.Reason = strings.TrimSpace(b.Reason)
	if len(b.Reason) > 500 {
		edge.WriteError(w, http.StatusBadRequest, errors.New("the reason is longer than 500 bytes"))
		return
	}
	o, err := engine.ParseOutcome(b.Outcome)
	if err != nil {
		edge.WriteError(w, http.StatusBadRequest, err)
		return
	}
	p, err := s.cfg.Daemon.Override(r.Context(), b.Ref, officer, b.Reason, o)
	switch {
	case errors.Is(err, edge.ErrNoEntry):
		edge.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, edge.ErrBadOverride):
		edge.WriteError(w, http.StatusBadRequest, err)
	case err != nil:
		edge.WriteError(w, http.StatusInternalServerError, err)
	default:
		edge.WriteJSON(w, http.StatusOK, p)
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
	var b RegisterBody
	if err := edge.DecodeJSON(r, &b, maxBody); err != nil {
		edge.WriteError(w, http.StatusBadRequest, err)
		return
	}
	seq, err := s.cfg.Daemon.Register(edge.Registration{ID: strings.ToUpper(strings.TrimSpace(b.ID)), Officer: officer,
		WorkProof: strings.TrimSpace(b.WorkProof), Residence: strings.TrimSpace(b.Residence), TestProof: strings.TrimSpace(b.TestProof)})
	switch {
	case errors.Is(err, edge.ErrNoRegistrations):
		edge.WriteError(w, http.StatusForbidden, err)
	case errors.Is(err, edge.ErrBadRegistration):
		edge.WriteError(w, http.StatusBadRequest, err)
	case err != nil:
		edge.WriteError(w, http.StatusInternalServerError, err)
	default:
		edge.WriteJSON(w, http.StatusOK, map[string]any{"audit_seq": seq, "status": "queued",
			"note": "queued for central approval; once approved the commuter mark takes effect at 00:00 the next day"})
	}
}

// TLS names a certificate and key for HTTPS; empty serves plain HTTP.
type TLS struct{ Cert, Key string }

// Serve serves h on addr until ctx ends, then shuts down (open event streams are cut) and
// waits for every handler, so the caller may close the store after it returns. ready, if set,
// is called once: with the bound address, or with the error that stopped it from listening.
func Serve(ctx context.Context, addr string, tlsFiles TLS, h http.Handler, log *slog.Logger, ready func(net.Addr, error)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		err = fmt.Errorf("web: listen %s: %w", addr, err)
		if ready != nil {
			ready(nil, err)
		}
		return err
	}
	var inflight sync.WaitGroup
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: counted, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, BaseContext: func(net.Listener) context.Context { return ctx }}
	scheme := "http"
	if tlsFiles.Cert != "" {
		scheme = "https"
	}
	log.Info("officer page", "url", scheme+"://"+ln.Addr().String()+"/")
	if ready != nil {
		ready(ln.Addr(), nil)
	}
	errc := make(chan error, 1)
	go func() {
		if tlsFiles.Cert != "" {
			errc <- srv.ServeTLS(ln, tlsFiles.Cert, tlsFiles.Key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		inflight.Wait()
		return nil
	case err := <-errc:
		inflight.Wait()
		return fmt.Errorf("web: %w", err)
	}
}

// Attach makes a running device serve its page when its config has a web section: the
// metrics observe the daemon, and the page runs beside it. ready, if set, gets the bound
// address or the error that kept the page from listening.
func Attach(opts *edge.RunOptions, cfg *config.Config, log *slog.Logger, ready func(net.Addr, error)) error {
	if cfg.Web == nil {
		return nil
	}
	// The gate does not depend on the page: an unreadable PIN file makes the page read-only
	// and says so loudly, it does not stop the device.
	pin, pinErr := cfg.OfficerPINHash()
	switch {
	case pinErr != nil:
		log.Error("officer PIN file unreadable: the page is read-only until it is fixed and the device restarted", logKeyErr, pinErr)
	case pin == nil:
		log.Warn("no web.officer_pin_file: the officer page is read-only")
	}
	m := NewMetrics()
	opts.Observer = m
	opts.Page = func(ctx context.Context, rt edge.Running) error {
		c := Config{Daemon: rt.Daemon, Device: rt.Device, Audit: rt.Audit, Metrics: m, Syncer: rt.Syncer, Members: rt.Peers,
			DeviceID: cfg.DeviceID, Kind: cfg.Kind, HasReader: cfg.Reader != nil, HasGate: cfg.Gate != nil,
			PINHash: pin, PINError: pinErr, Stale: time.Duration(cfg.Web.Stale), Clock: opts.Clock, Logger: log, Hosts: cfg.Web.Hosts}
		if cfg.Gossip != nil {
			c.Lane = cfg.Gossip.Lane
		}
		s, err := New(c)
		if err != nil {
			return err
		}
		// A port taken at start (another program, a previous instance still closing) is
		// tried again every 10 s rather than leaving the device without its page.
		for {
			err := Serve(ctx, cfg.Web.Listen, TLS{Cert: cfg.Web.TLSCert, Key: cfg.Web.TLSKey}, s.Handler(), log, ready)
			if err == nil || ctx.Err() != nil {
				return nil
			}
			ready = nil // told once
			log.Error("officer page not available; retrying in 10 s", logKeyErr, err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Second):
			}
		}
	}
	return nil
}
