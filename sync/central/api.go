package central

import (
	"bytes"

	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/gatecheck/gatecheck/sync/wire"
	"github.com/klauspost/compress/gzip"
)

// MaxRequestBody bounds a device's request body (audit uploads, registrations).
const MaxRequestBody = 8 << 20

// Handler returns the HTTP API:
//
//	GET  /v1/nonce                      a single-use nonce (unauthenticated)
//	GET  /v1/time                       a signed time token answering the request's nonce
//	GET  /v1/snapshots?after=V          signed snapshots newer than V (CBOR array)
//	GET  /v1/deltas?after=C             a signed batch of changes after cursor C
//	GET  /v1/bootstrap                  a stream of signed bootstrap chunks (uvarint-framed)
//	POST /v1/audit                      audit records (CBOR array); answers the acked sequence
//	POST /v1/registrations              a commuter registration taken at a checkpoint (JSON)
//
// Every route but /v1/nonce needs the Gatecheck-Device, -Nonce and -Signature headers
// (wire.SignRequest). Bodies are CBOR, gzip-compressed when the client accepts it.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nonce", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.NewNonce()
		if err != nil {
			httpErr(w, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"nonce": n})
	})
	mux.HandleFunc("GET /v1/time", s.auth(s.timeToken))
	mux.HandleFunc("GET /v1/snapshots", s.auth(s.snapshots))
	mux.HandleFunc("GET /v1/deltas", s.auth(s.deltas))
	mux.HandleFunc("GET /v1/bootstrap", s.auth(s.bootstrap))
	mux.HandleFunc("POST /v1/audit", s.auth(s.audit))
	mux.HandleFunc("POST /v1/registrations", s.auth(s.register))
	return mux
}

func httpErr(w http.ResponseWriter, code int, err error) {
	http.Error(w, err.Error(), code)
}

type authedHandler func(w http.ResponseWriter, r *http.Request, d *Device, nonce string, body []byte)

func (s *Server) auth(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
		if err != nil {
			httpErr(w, http.StatusBadRequest, err)
			return
		}
		if len(body) > MaxRequestBody {
			httpErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", MaxRequestBody))
			return
		}
		id, nonce, sig := r.Header.Get(wire.HeaderDevice), r.Header.Get(wire.HeaderNonce), r.Header.Get(wire.HeaderSignature)
		d, err := s.authenticate(id, nonce, sig, r.Method, r.URL.RequestURI(), body)
		switch {
		case errors.Is(err, ErrRevoked):
			httpErr(w, http.StatusForbidden, err)
			return
		case errors.Is(err, ErrUnknownDevice), errors.Is(err, ErrNonce), errors.Is(err, wire.ErrBadSignature):
			s.log.Warn("request refused", "device", id, "path", r.URL.Path, "err", err)
			httpErr(w, http.StatusUnauthorized, err)
			return
		case err != nil:
			httpErr(w, http.StatusInternalServerError, err)
			return
		}
		h(w, r, d, nonce, body)
	}
}

// writeCBOR writes a body, gzip-compressed when the client accepts it.
func writeCBOR(w http.ResponseWriter, r *http.Request, b []byte) {
	w.Header().Set("Content-Type", "application/cbor")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		zw.Write(b)
		zw.Close()
		return
	}
	w.Write(b)
}

func challenge(r *http.Request) []byte {
	c, err := hex.DecodeString(r.URL.Query().Get("challenge"))
	if err != nil || len(c) > 64 {
		return nil
	}
	return c
}

func (s *Server) timeToken(w http.ResponseWriter, r *http.Request, d *Device, nonce string, _ []byte) {
	b, err := wire.Marshal(wire.TimeToken{Time: s.cfg.Clock().UnixMilli(), Nonce: []byte(nonce), Challenge: challenge(r)})
	if err == nil {
		b, err = wire.Sign(b, wire.ContentTimeToken, s.cfg.SigningKey)
	}
	if err != nil {
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	writeCBOR(w, r, b)
}

func (s *Server) snapshots(w http.ResponseWriter, r *http.Request, d *Device, _ string, _ []byte) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	var out [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixSnap, PrefetchValues: true})
		defer it.Close()
		for it.Seek(append(append([]byte(nil), prefixSnap...), be(after+1)...)); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	b, err := wire.Marshal(out)
	if err != nil {
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	writeCBOR(w, r, b)
}

// Batch builds the signed batch of changes after cursor `after` (at most MaxBatch). A batch
// that reaches the server's cursor carries the count and digest for reconciliation.
func (s *Server) Batch(after uint64) ([]byte, *wire.Batch, error) {
	var b *wire.Batch
	err := s.db.View(func(txn *badger.Txn) error {
		st, err := readState(txn)
		if err != nil {
			return err
		}
		if after > st.Cursor {
			return fmt.Errorf("%w: %d > %d", ErrAhead, after, st.Cursor)
		}
		if ls, err := get(txn, keyLogStart); err != nil {
			return err
		} else if len(ls) == 8 && after < u64(ls) {
			// The change log does not reach back there: only a bootstrap brings it up to date.
			return fmt.Errorf("%w: the change log starts after cursor %d, the device is at %d: bootstrap", ErrAhead, u64(ls), after)
		}
		b = &wire.Batch{From: after, To: after, Snapshot: st.Snapshot, ServerTime: s.cfg.Clock().UnixMilli()}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixChg, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		size := 0
		for it.Seek(append(append([]byte(nil), prefixChg...), be(after+1)...)); it.Valid() && len(b.Changes) < s.cfg.MaxBatch && size < MaxBatchBytes; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			size += len(v)
			var c wire.Change
			if err := wire.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("change log: %w", err)
			}
			b.Changes = append(b.Changes, c)
			b.To = c.Cursor
		}
		if !it.Valid() {
			// The log is exhausted: cursors without a logged change (an initial bulk load)
			// changed nothing a device has to apply.
			b.To = st.Cursor
		}
		if b.To == st.Cursor {
			b.Count, b.Digest = st.Count, append([]byte(nil), st.Digest[:]...)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	signed, err := wire.SignBatch(b, s.cfg.SigningKey)
	return signed, b, err
}

func (s *Server) deltas(w http.ResponseWriter, r *http.Request, d *Device, _ string, _ []byte) {
	after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if err != nil {
		httpErr(w, http.StatusBadRequest, fmt.Errorf("after: %w", err))
		return
	}
	signed, _, err := s.Batch(after)
	switch {
	case errors.Is(err, ErrAhead):
		httpErr(w, http.StatusConflict, err)
		return
	case err != nil:
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	_ = s.updateDevice(d.ID, false, func(dv *Device) error { dv.Cursor = after; return nil })
	writeCBOR(w, r, signed)
}

// BootstrapChunk is the largest number of records in one bootstrap chunk.
const BootstrapChunk = 5000

// MaxBatchBytes bounds the encoded changes of one batch or bootstrap chunk, well under what a
// device accepts (wire.MaxBatchSize).
const MaxBatchBytes = 3 << 20

// WriteBootstrap streams the whole population at one consistent cursor as signed chunks of
// replace changes in key order, each framed by its uvarint length; the last carries the
// cursor, count and digest.
func (s *Server) WriteBootstrap(w io.Writer) error {
	return s.db.View(func(txn *badger.Txn) error {
		st, err := readState(txn)
		if err != nil {
			return err
		}
		chunk := &wire.Batch{From: 0, To: st.Cursor, Snapshot: st.Snapshot, Bootstrap: true}
		emit := func(last bool) error {
			chunk.ServerTime, chunk.Last = s.cfg.Clock().UnixMilli(), last
			if last {
				chunk.Count, chunk.Digest = st.Count, append([]byte(nil), st.Digest[:]...)
			}
			signed, err := wire.SignBatch(chunk, s.cfg.SigningKey)
			if err != nil {
				return err
			}
			if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(signed)))); err != nil {
				return err
			}
			_, err = w.Write(signed)
			chunk.Changes = chunk.Changes[:0]
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixP, PrefetchValues: true, PrefetchSize: 512})
		defer it.Close()
		size := 0
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			size += len(v) + 24
			key := append([]byte(nil), it.Item().Key()[len(prefixP):]...)
			// The stored bytes as they are: no decode and re-encode per record.
			chunk.Changes = append(chunk.Changes, wire.Change{Key: key, Op: wire.OpReplace, Record: v})
			if len(chunk.Changes) == BootstrapChunk || size >= MaxBatchBytes {
				if err := emit(false); err != nil {
					return err
				}
				size = 0
			}
		}
		return emit(true)
	})
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request, d *Device, _ string, _ []byte) {
	w.Header().Set("Content-Type", "application/vnd.gatecheck.bootstrap")
	var out io.Writer = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		defer zw.Close()
		out = zw
	}
	if err := s.WriteBootstrap(out); err != nil {
		s.log.Error("bootstrap stream", "device", d.ID, "err", err)
	}
}

// AuditUpload is the body of POST /v1/audit.
type AuditUpload struct {
	Records []wire.AuditRecord `cbor:"1,keyasint"`
}

// auditKey stores an entry under its device and the device key that signed it: new hardware
// under an old id starts a new chain without overwriting the old one.
func auditKey(dev string, pub []byte, seq uint64) []byte {
	k := append(append([]byte(nil), prefixAudit...), dev...)
	k = append(append(k, '/'), wire.KeyID(ed25519.PublicKey(pub))...)
	k = append(k, '/')
	return append(k, be(seq)...)
}

// StoreAudit verifies uploaded records against the device's key and chain and stores the new
// ones; records already stored are skipped, so retries are harmless. The ack is returned
// only after the store is synced.
func (s *Server) StoreAudit(d *Device, recs []wire.AuditRecord) (uint64, error) {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	var acked uint64
	err := s.db.Update(func(txn *badger.Txn) error {
		dev, err := readDevice(txn, d.ID)
		if err != nil {
			return err
		}
		var prev [32]byte
		copy(prev[:], dev.AuditHash)
		v := wire.ResumeAuditVerifier(dev.ID, ed25519.PublicKey(dev.PubKey), dev.AuditSeq, prev)
		for _, r := range recs {
			var e wire.AuditEntry
			if err := wire.Unmarshal(r.Entry, &e); err != nil {
				return fmt.Errorf("%w: %w", wire.ErrAuditMalformed, err)
			}
			if e.Seq < v.Next() {
				// Already stored: a retry must carry the same record.
				stored, err := get(txn, auditKey(dev.ID, dev.PubKey, e.Seq))
				if err != nil {
					return err
				}
				again, err := wire.Marshal(r)
				if err != nil {
					return err
				}
				if !bytes.Equal(stored, again) {
					return fmt.Errorf("%w: entry %d differs from the one already stored", wire.ErrAuditChain, e.Seq)
				}
				continue
			}
			if _, err := v.Add(r); err != nil {
				return err
			}
			b, err := wire.Marshal(r)
			if err != nil {
				return err
			}
			if err := txn.Set(auditKey(dev.ID, dev.PubKey, e.Seq), b); err != nil {
				return err
			}
			if e.Kind == wire.AuditRegistration {
				if err := s.queueRegistration(txn, dev, &e); err != nil {
					return err
				}
			}
		}
		dev.AuditSeq = v.Next() - 1
		h := v.Prev()
		dev.AuditHash = h[:]
		acked = dev.AuditSeq
		b, err := wire.Marshal(dev)
		if err != nil {
			return err
		}
		return txn.Set(devKey(dev.ID), b)
	})
	if err != nil {
		return 0, err
	}
	return acked, s.db.Sync()
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, d *Device, _ string, body []byte) {
	var up AuditUpload
	if err := wire.Unmarshal(body, &up); err != nil {
		httpErr(w, http.StatusBadRequest, fmt.Errorf("audit upload: %w", err))
		return
	}
	acked, err := s.StoreAudit(d, up.Records)
	switch {
	case errors.Is(err, wire.ErrAuditGap), errors.Is(err, wire.ErrAuditChain), errors.Is(err, wire.ErrAuditSignature), errors.Is(err, wire.ErrAuditMalformed):
		httpErr(w, http.StatusUnprocessableEntity, err)
		return
	case err != nil:
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	b, err := wire.Marshal(wire.AuditAck{Device: d.ID, Acked: acked, Challenge: challenge(r)})
	if err == nil {
		b, err = wire.Sign(b, wire.ContentAuditAck, s.cfg.SigningKey)
	}
	if err != nil {
		httpErr(w, http.StatusInternalServerError, err)
		return
	}
	writeCBOR(w, r, b)
}

// AuditCount returns how many audit entries of a device are stored centrally.
func (s *Server) AuditCount(device string) (int, error) {
	n := 0
	prefix := append(append(append([]byte(nil), prefixAudit...), device...), '/')
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
