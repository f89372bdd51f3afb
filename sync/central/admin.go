package central

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gatecheck/gatecheck/sync/wire"
)

// AdminHandler is the operator's API, served only on a local unix socket by
// `gatecheck-central serve`; the CLI's import, publish, devices and registrations commands use
// it while the server runs.
//
//	POST /admin/import                  JSON Lines body
//	POST /admin/publish                 signed snapshot body
//	POST /admin/devices                 {"id", "pubkey_pem"}
//	POST /admin/devices/revoke          {"id"}
//	GET  /admin/devices
//	GET  /admin/registrations?status=
//	POST /admin/registrations/approve   {"id"}
//	POST /admin/registrations/reject    {"id", "reason"}
//	GET  /admin/state
func (s *Server) AdminHandler(tempDir string) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	body := func(r *http.Request, v any) error {
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	mux.HandleFunc("POST /admin/import", func(w http.ResponseWriter, r *http.Request) {
		tmp, err := os.CreateTemp(tempDir, "central-import-*.jsonl")
		if err != nil {
			reply(w, nil, err)
			return
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, r.Body); err != nil {
			reply(w, nil, err)
			return
		}
		tmp.Seek(0, io.SeekStart)
		st, err := s.Import(r.Context(), tmp)
		reply(w, st, err)
	})
	mux.HandleFunc("POST /admin/publish", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err != nil {
			reply(w, nil, err)
			return
		}
		v, err := s.Publish(b)
		reply(w, map[string]uint64{"version": v}, err)
	})
	mux.HandleFunc("POST /admin/devices", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ID     string `json:"id"`
			PubKey string `json:"pubkey_pem"`
		}
		if err := body(r, &b); err != nil {
			reply(w, nil, err)
			return
		}
		pub, err := parsePub([]byte(b.PubKey))
		if err == nil {
			err = s.AddDevice(b.ID, pub)
		}
		reply(w, map[string]string{"added": b.ID}, err)
	})
	mux.HandleFunc("POST /admin/devices/revoke", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ID string `json:"id"`
		}
		if err := body(r, &b); err != nil {
			reply(w, nil, err)
			return
		}
		reply(w, map[string]string{"revoked": b.ID}, s.RevokeDevice(b.ID))
	})
	mux.HandleFunc("GET /admin/devices", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.Devices()
		reply(w, d, err)
	})
	mux.HandleFunc("GET /admin/registrations", func(w http.ResponseWriter, r *http.Request) {
		regs, err := s.Registrations(r.URL.Query().Get("status"))
		reply(w, regs, err)
	})
	mux.HandleFunc("POST /admin/registrations/approve", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ID string `json:"id"`
		}
		if err := body(r, &b); err != nil {
			reply(w, nil, err)
			return
		}
		reg, err := s.Approve(b.ID, s.cfg.Clock())
		reply(w, reg, err)
	})
	mux.HandleFunc("POST /admin/registrations/reject", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		}
		if err := body(r, &b); err != nil {
			reply(w, nil, err)
			return
		}
		reg, err := s.Reject(b.ID, b.Reason, s.cfg.Clock())
		reply(w, reg, err)
	})
	mux.HandleFunc("GET /admin/state", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.State()
		reply(w, map[string]any{"cursor": st.Cursor, "count": st.Count, "snapshot": st.Snapshot, "time": time.Now()}, err)
	})
	return mux
}

func parsePub(b []byte) (ed25519.PublicKey, error) { return wire.ParsePublicKey(b) }
