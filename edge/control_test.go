package edge_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/edge"
	"github.com/gatecheck/gatecheck/edge/audit"
	"github.com/gatecheck/gatecheck/engine"
	"github.com/gatecheck/gatecheck/engine/policies"
	"github.com/gatecheck/gatecheck/engine/source"
)

type countingGate struct{ n int }

func (g *countingGate) Pulse(context.Context) error { g.n++; return nil }

// The control API over a real unix socket: a manual entry is audited and opens the gate for a
// pass, a what-if is not audited, imports and overrides work, bad requests get clear errors.
func TestControlSocket(t *testing.T) {
	f := newFixture(t)
	d := f.open(t)
	defer d.Close()
	if _, err := d.InstallSnapshot(f.sign(t, policies.November2021, source.Overrides{}), nov20); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	log, err := audit.Open(d.Store().DB(), "laptop-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	gate := &countingGate{}
	dm, err := edge.NewDaemon(edge.DaemonConfig{Device: d, Audit: log, Gate: gate, Clock: fixedClock{nov20}})
	if err != nil {
		t.Fatal(err)
	}
	ctl := &edge.Control{Daemon: dm, Device: d, Audit: log, DeviceID: "laptop-1", DeviceKey: pub, TempDir: t.TempDir()}
	sock := filepath.Join(t.TempDir(), "gc.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- edge.ServeControl(ctx, sock, ctl.Handler(), nil) }()
	defer func() { cancel(); <-done }()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	call := func(method, path, body string, out any) int {
		t.Helper()
		var resp *http.Response
		var err error
		for i := 0; i < 100; i++ { // bounded wait for the socket to come up
			req, _ := http.NewRequest(method, "http://gc"+path, strings.NewReader(body))
			if resp, err = client.Do(req); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
		return resp.StatusCode
	}
	var st edge.ImportStats
	if code := call("POST", "/v1/import", people, &st); code != 200 || st.Upserts != 2 {
		t.Fatalf("import: %d %+v", code, st)
	}
	var e map[string]string
	if code := call("POST", "/v1/import", "not json\n", &e); code != 422 || !strings.Contains(e["error"], "line 1") {
		t.Fatalf("bad import: %d %v", code, e)
	}
	var p edge.Passage
	if code := call("POST", "/v1/check", `{"id":"`+adult+`"}`, &p); code != 200 || p.Decision.Outcome != engine.Pass || p.Seq != 1 || !p.GateOpened || gate.n != 1 {
		t.Fatalf("manual entry: %d %+v gate %d", code, p, gate.n)
	}
	p = edge.Passage{}
	if code := call("POST", "/v1/check", `{"id":"`+adult+`","at":"2021-11-25T10:00:00+08:00"}`, &p); code != 200 || p.Decision.Outcome != engine.NeedTest || p.Seq != 0 {
		t.Fatalf("what-if: %d %+v", code, p)
	}
	if code := call("POST", "/v1/check", `{"id":1}`, &e); code != 400 {
		t.Fatalf("bad body: %d", code)
	}
	if code := call("POST", "/v1/check", `{"id":"`+elder+`"}`, &p); code != 200 || p.Decision.Outcome != engine.DenyPopup4 || p.GateOpened {
		t.Fatalf("denial: %+v", p)
	}
	if code := call("POST", "/v1/override", `{"ref":2,"officer":"0042","reason":"fever drugs for a child, test seen","outcome":"PASS"}`, &p); code != 200 || !p.GateOpened {
		t.Fatalf("override: %d %+v", code, p)
	}
	if code := call("POST", "/v1/override", `{"ref":99,"officer":"0042","reason":"x","outcome":"PASS"}`, &e); code != 404 {
		t.Fatalf("override of a missing entry: %d %v", code, e)
	}
	var v struct {
		OK     bool         `json:"ok"`
		Report audit.Report `json:"report"`
	}
	if call("GET", "/v1/audit/verify", "", &v); !v.OK || v.Report.Entries != 3 || v.Report.GateOpens != 2 {
		t.Fatalf("verify: %+v", v)
	}
	var status edge.Status
	if call("GET", "/v1/status", "", &status); status.AuditSeq != 3 || status.Snapshot != 2021111700 || status.GateOpens != 2 {
		t.Fatalf("status: %+v", status)
	}
	// A second daemon on the same socket is refused.
	if err := edge.ServeControl(context.Background(), sock, http.NotFoundHandler(), nil); err == nil {
		t.Fatal("a second server took over a live socket")
	}
}

func jsonDecode(t *testing.T, r io.ReadCloser, v any) {
	t.Helper()
	defer r.Close()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatal(err)
	}
}
