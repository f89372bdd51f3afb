package client

import (
	"bufio"
	"bytes"

	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatecheck/gatecheck/sync/wire"
	"github.com/klauspost/compress/gzip"
)

// State is what the device holds, as sync sees it.
type State struct {
	Cursor        uint64
	Count         uint64
	Digest        wire.Digest
	Snapshot      uint64 // highest snapshot version held
	AuditAcked    uint64 // last audit sequence the central acknowledged
	AuditSeq      uint64 // last audit sequence written
	NeedBootstrap bool   // the device has never synced, or holds records from local imports
}

// Applier is the device's store as sync drives it.
type Applier interface {
	// SyncState reports the device's position.
	SyncState() (State, error)
	// InstallSnapshot verifies and installs a signed snapshot (refusing rollbacks).
	InstallSnapshot(signed []byte) error
	// ApplyBatch applies a verified batch and its cursor in one durable write. A batch the
	// device already holds (To <= cursor) is a no-op; one that does not start at the cursor
	// is refused (ErrGap).
	ApplyBatch(b *wire.Batch) error
	// Bootstrap replaces every record with the stream's, chunk by chunk (next returns io.EOF
	// after the last), and checks the final count and digest before moving the cursor.
	Bootstrap(next func() (*wire.Batch, error)) error
	// AuditAfter returns up to n audit records after sequence seq.
	AuditAfter(seq uint64, n int) ([]wire.AuditRecord, error)
	// AuditAcked records that the central holds every entry up to seq.
	AuditAcked(seq uint64) error
	// Synced records a successful sync at the server's time.
	Synced(serverTime time.Time) error
}

// Errors.
var (
	// ErrGap reports a batch that does not start at the device's cursor (from the future).
	ErrGap = errors.New("sync: batch does not start at the device's cursor")
	// ErrDiverged reports a reconciliation that failed: the device re-bootstraps.
	ErrDiverged = errors.New("sync: device records differ from the server's")
	// ErrSnapshotMissing reports a batch that needs a snapshot the device does not hold.
	ErrSnapshotMissing = errors.New("sync: batch needs a newer snapshot")
	// ErrHTTP reports a refused request.
	ErrHTTP = errors.New("sync: request refused")
)

// Config configures a Client.
type Config struct {
	// URL of the central server, e.g. http://10.0.0.1:8443. Required.
	URL string
	// DeviceID and Key identify and sign for the device. Required.
	DeviceID string
	Key      ed25519.PrivateKey
	// Keys verify batches (the central key) and snapshots (policy authority). Required.
	Keys wire.KeyRing
	// HTTP; nil means a client with a 60 s timeout.
	HTTP *http.Client
	// AuditBatch bounds one audit upload; zero means 500.
	AuditBatch int
	// Lock, if set, is held for each whole sync, so a sync on demand and the background loop
	// never run at once.
	Lock sync.Locker
	// Relays, if set, lists peers' relay URLs to try, in order, when the central cannot be
	// reached directly. A relay only forwards: everything it returns is verified against the
	// central's signatures as if it came from the central.
	Relays func() []string
	// Logger; nil discards logs.
	Logger *slog.Logger
}

// Client syncs one device.
type Client struct {
	cfg  Config
	log  *slog.Logger
	base string // the URL of the current attempt: the central, or a peer's relay
}

// New checks the config.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" || cfg.DeviceID == "" || len(cfg.Key) != ed25519.PrivateKeySize || len(cfg.Keys) == 0 {
		return nil, errors.New("sync: url, device id, device key and trusted keys are required")
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.AuditBatch == 0 {
		cfg.AuditBatch = 500
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: cfg.Logger}, nil
}

// do sends one signed request and returns the (decompressed) response body reader.
func (c *Client) do(ctx context.Context, method, pathQuery string, body []byte) (io.ReadCloser, error) {
	rc, _, err := c.doNonce(ctx, method, pathQuery, body)
	return rc, err
}

// doNonce is do, also returning the nonce the request was signed over.
func (c *Client) doNonce(ctx context.Context, method, pathQuery string, body []byte) (io.ReadCloser, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/nonce", nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("sync: nonce: %w", err)
	}
	var n struct {
		Nonce string `json:"nonce"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1024)).Decode(&n)
	resp.Body.Close()
	if err != nil || n.Nonce == "" {
		return nil, "", fmt.Errorf("sync: nonce: %v (status %s)", err, resp.Status)
	}
	req, err = http.NewRequestWithContext(ctx, method, c.base+pathQuery, bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set(wire.HeaderDevice, c.cfg.DeviceID)
	req.Header.Set(wire.HeaderNonce, n.Nonce)
	req.Header.Set(wire.HeaderSignature, wire.SignRequest(c.cfg.Key, method, pathQuery, n.Nonce, body))
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("sync: %s %s: %w", method, pathQuery, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, "", &StatusError{Code: resp.StatusCode, Msg: strings.TrimSpace(string(msg)), Path: pathQuery}
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			resp.Body.Close()
			return nil, "", fmt.Errorf("sync: gzip: %w", err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, resp.Body}, n.Nonce, nil
	}
	return resp.Body, n.Nonce, nil
}

// StatusError is a request the server refused.
type StatusError struct {
	Code int
	Msg  string
	Path string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sync: %s: %d %s", e.Path, e.Code, e.Msg)
}

// Unwrap lets errors.Is(err, ErrHTTP) match.
func (e *StatusError) Unwrap() error { return ErrHTTP }

func (c *Client) get(ctx context.Context, pathQuery string, limit int64) ([]byte, error) {
	rc, err := c.do(ctx, http.MethodGet, pathQuery, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("sync: read %s: %w", pathQuery, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("sync: %s: %w", pathQuery, wire.ErrTooLarge)
	}
	return b, nil
}

// Report is what one sync did.
type Report struct {
	Snapshots     []uint64
	Refused       []error
	Batches       int
	Changes       int
	Bootstrapped  bool
	Cursor        uint64
	Reconciled    bool
	Via           string // the central's URL, or the relay the sync went through
	AuditUploaded int
	AuditAcked    uint64
	ServerTime    time.Time
}

// SyncOnce runs one full sync: snapshots, then (bootstrap if needed and) deltas until caught
// up with a reconciliation, then the audit upload.
func (c *Client) SyncOnce(ctx context.Context, a Applier) (Report, error) {
	if c.cfg.Lock != nil {
		c.cfg.Lock.Lock()
		defer c.cfg.Lock.Unlock()
	}
	c.base = c.cfg.URL
	rep, err := c.syncOnce(ctx, a)
	rep.Via = c.base
	var se *StatusError
	if err == nil || errors.As(err, &se) || c.cfg.Relays == nil {
		return rep, err // synced, or the central itself refused: no relay changes that
	}
	for _, r := range c.cfg.Relays() {
		c.log.Info("central unreachable; syncing through a peer", "relay", r, "err", err)
		c.base = strings.TrimRight(r, "/")
		var rerr error
		if rep, rerr = c.syncOnce(ctx, a); rerr == nil {
			rep.Via = c.base
			return rep, nil
		}
		c.log.Warn("sync through a peer failed", "relay", r, "err", rerr)
	}
	return rep, err
}

func (c *Client) syncOnce(ctx context.Context, a Applier) (Report, error) {
	var rep Report
	st, err := a.SyncState()
	if err != nil {
		return rep, err
	}
	rep.AuditAcked = st.AuditAcked
	if err := c.pullSnapshots(ctx, a, st.Snapshot, &rep); err != nil {
		return rep, err
	}
	if st.NeedBootstrap {
		if err := c.bootstrap(ctx, a, &rep); err != nil {
			return rep, err
		}
	}
	rebootstrapped := false
	// The next batch is fetched (and verified) while the current one is applied: catching up
	// on a slow link or a busy central, the device is not idle between batches.
	type fetched struct {
		after uint64
		b     *wire.Batch
		err   error
	}
	var ahead chan fetched
	fctx, cancelFetch := context.WithCancel(ctx)
	defer func() {
		// A fetch still in flight ends with this sync: it must not outlive it (the base URL
		// changes for the next one).
		cancelFetch()
		if ahead != nil {
			<-ahead
		}
	}()
	for {
		st, err = a.SyncState()
		if err != nil {
			return rep, err
		}
		var b *wire.Batch
		if ahead != nil {
			f := <-ahead
			ahead = nil
			if f.after == st.Cursor {
				b, err = f.b, f.err
			} else {
				b, err = c.pullBatch(ctx, st.Cursor)
			}
		} else {
			b, err = c.pullBatch(ctx, st.Cursor)
		}
		var se *StatusError
		if errors.As(err, &se) && se.Code == http.StatusConflict {
			// The device is ahead of the server (a restored server): start over.
			c.log.Warn("device cursor ahead of the server; bootstrapping", "cursor", st.Cursor)
			if err := c.bootstrap(ctx, a, &rep); err != nil {
				return rep, err
			}
			continue
		}
		if err != nil {
			return rep, err
		}
		if b.From != st.Cursor {
			return rep, fmt.Errorf("%w: batch (%d, %d], device at %d", ErrGap, b.From, b.To, st.Cursor)
		}
		if b.Snapshot > st.Snapshot {
			// Records that belong with rules the device lacks: fetch them first.
			if err := c.pullSnapshots(ctx, a, st.Snapshot, &rep); err != nil {
				return rep, err
			}
			if st2, _ := a.SyncState(); st2.Snapshot < b.Snapshot {
				return rep, fmt.Errorf("%w: records at cursor %d need snapshot %d, device holds %d", ErrSnapshotMissing, b.To, b.Snapshot, st2.Snapshot)
			}
		}
		if len(b.Digest) != 32 {
			ahead = make(chan fetched, 1) // buffered: an abandoned fetch does not leak
			go func(after uint64, out chan<- fetched) {
				nb, err := c.pullBatch(fctx, after)
				out <- fetched{after, nb, err}
			}(b.To, ahead)
		}
		if err := a.ApplyBatch(b); err != nil {
			return rep, fmt.Errorf("apply batch (%d, %d]: %w", b.From, b.To, err)
		}
		rep.Batches++
		rep.Changes += len(b.Changes)
		rep.Cursor = b.To
		rep.ServerTime = time.UnixMilli(b.ServerTime)
		if len(b.Digest) == 32 {
			// Caught up: reconcile with the server's count and digest at this cursor.
			st, err = a.SyncState()
			if err != nil {
				return rep, err
			}
			if st.Count != b.Count || !bytes.Equal(st.Digest[:], b.Digest) {
				err := fmt.Errorf("%w: at cursor %d the device holds %d records, the server %d (digests differ: %v)",
					ErrDiverged, b.To, st.Count, b.Count, !bytes.Equal(st.Digest[:], b.Digest))
				if rebootstrapped {
					return rep, err
				}
				// A silent gap: replace everything with the server's records, once.
				c.log.Error("reconciliation failed; bootstrapping", "err", err)
				rep.Refused = append(rep.Refused, err)
				rebootstrapped = true
				if err := c.bootstrap(ctx, a, &rep); err != nil {
					return rep, err
				}
				continue
			}
			rep.Reconciled = true
			break
		}
	}
	if err := c.uploadAudit(ctx, a, &rep); err != nil {
		return rep, err
	}
	// Trusted time comes from a token that answers this request's nonce, never from a batch:
	// an old batch replayed by a peer or a proxy must not set the clock back.
	t, err := c.serverTime(ctx)
	if err != nil {
		return rep, err
	}
	rep.ServerTime = t
	if err := a.Synced(t); err != nil {
		return rep, err
	}
	return rep, nil
}

// serverTime fetches a signed time token bound to the request's nonce.
func (c *Client) serverTime(ctx context.Context) (time.Time, error) {
	ch := newChallenge()
	rc, nonce, err := c.doNonce(ctx, http.MethodGet, "/v1/time?challenge="+hex.EncodeToString(ch), nil)
	if err != nil {
		return time.Time{}, err
	}
	b, err := io.ReadAll(io.LimitReader(rc, 4096))
	rc.Close()
	if err != nil {
		return time.Time{}, fmt.Errorf("sync: time token: %w", err)
	}
	v, err := wire.Verify(b, wire.ContentTimeToken, c.cfg.Keys)
	if err != nil {
		return time.Time{}, fmt.Errorf("sync: time token: %w", err)
	}
	var tok wire.TimeToken
	if err := wire.Unmarshal(v.Payload, &tok); err != nil {
		return time.Time{}, fmt.Errorf("sync: time token: %w", err)
	}
	if string(tok.Nonce) != nonce || !bytes.Equal(tok.Challenge, ch) {
		return time.Time{}, fmt.Errorf("sync: time token answers another request (replayed)")
	}
	return time.UnixMilli(tok.Time), nil
}

func newChallenge() []byte {
	b := make([]byte, 16)
	crand.Read(b)
	return b
}

func (c *Client) pullSnapshots(ctx context.Context, a Applier, after uint64, rep *Report) error {
	b, err := c.get(ctx, fmt.Sprintf("/v1/snapshots?after=%d", after), 64<<20)
	if err != nil {
		return err
	}
	var list [][]byte
	if err := wire.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("sync: snapshot list: %w", err)
	}
	for _, s := range list {
		if err := a.InstallSnapshot(s); err != nil {
			// A refused snapshot (rollback, bad signature) is reported; the device keeps
			// what it has.
			c.log.Error("snapshot refused", "err", err)
			rep.Refused = append(rep.Refused, err)
			continue
		}
		if v, err := wire.UnverifiedVersion(s); err == nil {
			rep.Snapshots = append(rep.Snapshots, v)
		}
	}
	return nil
}

func (c *Client) pullBatch(ctx context.Context, after uint64) (*wire.Batch, error) {
	b, err := c.get(ctx, fmt.Sprintf("/v1/deltas?after=%d", after), wire.MaxBatchSize)
	if err != nil {
		return nil, err
	}
	batch, _, err := wire.VerifyBatch(b, c.cfg.Keys)
	if err != nil {
		return nil, err
	}
	if batch.Bootstrap {
		return nil, fmt.Errorf("%w: a bootstrap chunk where a delta batch was due", wire.ErrMalformed)
	}
	return batch, nil
}

func (c *Client) bootstrap(ctx context.Context, a Applier, rep *Report) error {
	rc, err := c.do(ctx, http.MethodGet, "/v1/bootstrap", nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 256<<10)
	done := false
	next := func() (*wire.Batch, error) {
		if done {
			return nil, io.EOF
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("sync: bootstrap stream ended early: %w", err)
		}
		if n > wire.MaxBatchSize {
			return nil, fmt.Errorf("sync: bootstrap chunk of %d bytes: %w", n, wire.ErrTooLarge)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("sync: bootstrap stream cut: %w", err)
		}
		b, _, err := wire.VerifyBatch(buf, c.cfg.Keys)
		if err != nil {
			return nil, err
		}
		if !b.Bootstrap {
			return nil, fmt.Errorf("%w: a delta batch in the bootstrap stream", wire.ErrMalformed)
		}
		rep.Changes += len(b.Changes)
		if b.Last {
			done = true
			rep.Cursor = b.To
			rep.ServerTime = time.UnixMilli(b.ServerTime)
		}
		return b, nil
	}
	if err := a.Bootstrap(next); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	rep.Bootstrapped = true
	return nil
}

func (c *Client) uploadAudit(ctx context.Context, a Applier, rep *Report) error {
	for {
		st, err := a.SyncState()
		if err != nil {
			return err
		}
		recs, err := a.AuditAfter(st.AuditAcked, c.cfg.AuditBatch)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		body, err := wire.Marshal(struct {
			Records []wire.AuditRecord `cbor:"1,keyasint"`
		}{recs})
		if err != nil {
			return err
		}
		ch := newChallenge()
		rc, err := c.do(ctx, http.MethodPost, "/v1/audit?challenge="+hex.EncodeToString(ch), body)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(rc, 4096))
		rc.Close()
		if err != nil {
			return fmt.Errorf("sync: audit ack: %w", err)
		}
		// Only a signed ack answering this upload's challenge counts: a relay can neither
		// invent one nor replay an old one.
		v, err := wire.Verify(b, wire.ContentAuditAck, c.cfg.Keys)
		if err != nil {
			return fmt.Errorf("sync: audit ack: %w", err)
		}
		var ack wire.AuditAck
		if err := wire.Unmarshal(v.Payload, &ack); err != nil {
			return fmt.Errorf("sync: audit ack: %w", err)
		}
		if ack.Device != c.cfg.DeviceID || !bytes.Equal(ack.Challenge, ch) {
			return fmt.Errorf("sync: audit ack answers another upload")
		}
		if ack.Acked <= st.AuditAcked {
			return fmt.Errorf("sync: audit upload made no progress (acked %d)", ack.Acked)
		}
		if ack.Acked > st.AuditAcked+uint64(len(recs)) {
			return fmt.Errorf("sync: the server acknowledged %d, beyond the %d entries sent", ack.Acked, st.AuditAcked+uint64(len(recs)))
		}
		if err := a.AuditAcked(ack.Acked); err != nil {
			return err
		}
		rep.AuditUploaded += len(recs)
		rep.AuditAcked = ack.Acked
	}
}

// Run syncs every interval until ctx ends, backing off with jitter (up to 10 intervals)
// while the link is down. report, if set, receives every attempt's outcome.
func (c *Client) Run(ctx context.Context, a Applier, interval time.Duration, report func(Report, error)) {
	wait := time.Duration(0)
	failures := 0
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		rep, err := c.SyncOnce(ctx, a)
		if report != nil {
			report(rep, err)
		}
		if err == nil {
			failures, wait = 0, interval
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		backoff := min(interval*time.Duration(1<<min(failures, 4))/4, 10*interval)
		wait = backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		c.log.Warn("sync failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
	}
}

// Register submits a commuter registration taken at this checkpoint (JSON, see
// sync/central.RegistrationBody) and returns the central's answer.
func (c *Client) Register(ctx context.Context, body []byte) ([]byte, error) {
	c.base = c.cfg.URL
	rc, err := c.do(ctx, http.MethodPost, "/v1/registrations", body)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 64<<10))
}
