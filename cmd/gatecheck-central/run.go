package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/sync/central"
	"github.com/gatecheck/gatecheck/sync/wire"
)

const usage = `usage: gatecheck-central <command> [flags]

commands:
  keygen   --out FILE [--hash-key-out FILE]   the central signing key (FILE, FILE.pub), and a region hash key if asked
  serve    --data DIR --listen ADDR           serve devices over HTTP; the admin socket for the commands below
  import   FILE|-                             import authoritative records (JSON Lines)
  publish  FILE                               publish a signed rule snapshot
  devices  add --id ID --pubkey FILE | revoke --id ID | list
  registrations  list [--status pending] | approve ID | reject ID --reason TEXT
  state                                       cursor, record count, published snapshot
  version                                     the build's version and commit

Every command takes --data DIR (default ./central-data). Keys default to files beside it:
central.key (signing), id-hash.key (region hash key); the admin socket is central-admin.sock.
The operator commands need 'serve' running (they use its admin socket).
`

type paths struct {
	data, key, hashKey, policyKeys, socket *string
}

func addPaths(fs *flag.FlagSet) paths {
	return paths{
		data:       fs.String("data", "central-data", "Badger data directory"),
		key:        fs.String("key", "", "central signing key (PEM); default central.key beside --data"),
		hashKey:    fs.String("hash-key", "", "region ID hash key (64 hex); default id-hash.key beside --data"),
		policyKeys: fs.String("policy-keys", "", "comma-separated policy authority public keys; snapshots must verify with one (default: the central key)"),
		socket:     fs.String("admin-socket", "", "admin socket; default central-admin.sock beside --data"),
	}
}

func (p paths) resolve() {
	dir := filepath.Dir(filepath.Clean(*p.data))
	if *p.key == "" {
		*p.key = filepath.Join(dir, "central.key")
	}
	if *p.hashKey == "" {
		*p.hashKey = filepath.Join(dir, "id-hash.key")
	}
	if *p.socket == "" {
		*p.socket = filepath.Join(dir, "central-admin.sock")
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.Usagef("no command")
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "import", "publish", "devices", "registrations", "state":
		return admin(args[0], args[1:], stdout, stderr)
	case "version":
		return cli.PrintVersion(stdout, "gatecheck-central")
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return cli.Usagef("unknown command %q", args[0])
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-central keygen", stderr)
	out := fs.String("out", "", "central signing key file (required)")
	hashOut := fs.String("hash-key-out", "", "also write a new region hash key here")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("keygen", pos); err != nil {
		return err
	}
	if *out == "" {
		return cli.Usagef("keygen: --out is required")
	}
	priv, err := wire.WriteKeyPair(*out, *out+".pub")
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "central key %s (key id %s); devices trust %s.pub\n", *out, wire.KeyID(priv.Public().(ed25519.PublicKey)), *out)
	if *hashOut != "" {
		k := make([]byte, 32)
		rand.Read(k)
		if err := writeNew(*hashOut, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "region hash key %s (the same file goes to every device)\n", *hashOut)
	}
	return nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; refusing to overwrite a key", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func loadKeys(p paths) (ed25519.PrivateKey, []byte, wire.KeyRing, error) {
	kb, err := os.ReadFile(*p.key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("central key: %w (make one with gatecheck-central keygen)", err)
	}
	priv, err := wire.ParsePrivateKey(kb)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("central key %s: %w", *p.key, err)
	}
	hb, err := os.ReadFile(*p.hashKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("hash key: %w", err)
	}
	hk, err := hex.DecodeString(strings.TrimSpace(string(hb)))
	if err != nil || len(hk) != 32 {
		return nil, nil, nil, fmt.Errorf("hash key %s: want 64 hex characters", *p.hashKey)
	}
	var ring wire.KeyRing
	if *p.policyKeys != "" {
		ring = wire.KeyRing{}
		for _, f := range strings.Split(*p.policyKeys, ",") {
			b, err := os.ReadFile(strings.TrimSpace(f))
			if err != nil {
				return nil, nil, nil, err
			}
			pub, err := wire.ParsePublicKey(b)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%s: %w", f, err)
			}
			ring.Add(pub)
		}
	}
	return priv, hk, ring, nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-central serve", stderr)
	p := addPaths(fs)
	listen := fs.String("listen", "127.0.0.1:8470", "HTTP address for devices")
	maxBatch := fs.Int("max-batch", 10000, "changes per delta batch")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("serve", pos); err != nil {
		return err
	}
	p.resolve()
	priv, hk, ring, err := loadKeys(p)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := central.Open(central.Config{Dir: *p.data, HashKey: hk, SigningKey: priv, PolicyKeys: ring, MaxBatch: *maxBatch, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	os.Remove(*p.socket)
	old := syscall.Umask(0o177)
	aln, err := net.Listen("unix", *p.socket)
	syscall.Umask(old)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	defer os.Remove(*p.socket)
	public := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	adm := &http.Server{Handler: srv.AdminHandler(filepath.Dir(*p.data))}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); public.Serve(ln) }()
	go func() { defer wg.Done(); adm.Serve(aln) }()
	st, _ := srv.State()
	fmt.Fprintf(stdout, "gatecheck-central serving devices on http://%s (cursor %d, %d records, snapshot %d); admin socket %s\n",
		ln.Addr(), st.Cursor, st.Count, st.Snapshot, *p.socket)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	public.Shutdown(sctx)
	adm.Shutdown(sctx)
	wg.Wait()
	return srv.Sync()
}

// adminClient talks to a running server's admin socket.
func adminClient(socket string) *http.Client {
	return &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
}

func adminCall(c *http.Client, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, "http://central"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket (is 'gatecheck-central serve' running?): %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(b, &e)
		return errors.New(e.Error)
	}
	return json.Unmarshal(b, out)
}

func admin(cmd string, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if (cmd == "devices" || cmd == "registrations") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := cli.NewFlags("gatecheck-central "+cmd, stderr)
	p := addPaths(fs)
	id := fs.String("id", "", "device id")
	pubkey := fs.String("pubkey", "", "device public key (PEM)")
	status := fs.String("status", "", "registration status to list: pending, approved, rejected")
	reason := fs.String("reason", "", "why a registration is rejected")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	p.resolve()
	c := adminClient(*p.socket)
	show := func(v any) error {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	var out any
	switch {
	case cmd == "import" && len(pos) == 1:
		var r io.Reader = os.Stdin
		if pos[0] != "-" {
			f, err := os.Open(pos[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		var st central.ImportStats
		if err := adminCall(c, "POST", "/admin/import", r, &st); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %d records; cursor now %d\n", st.Records, st.Cursor)
		return nil
	case cmd == "publish" && len(pos) == 1:
		b, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		var v map[string]uint64
		if err := adminCall(c, "POST", "/admin/publish", bytes.NewReader(b), &v); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "published snapshot %d\n", v["version"])
		return nil
	case cmd == "state":
		err = adminCall(c, "GET", "/admin/state", nil, &out)
	case cmd == "devices" && sub == "add":
		if *id == "" || *pubkey == "" {
			return cli.Usagef("devices add: --id and --pubkey are required")
		}
		pb, err := os.ReadFile(*pubkey)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]string{"id": *id, "pubkey_pem": string(pb)})
		err = adminCall(c, "POST", "/admin/devices", bytes.NewReader(b), &out)
		if err != nil {
			return err
		}
	case cmd == "devices" && sub == "revoke" && *id == "":
		return cli.Usagef("devices revoke: --id is required")
	case cmd == "devices" && sub == "revoke":
		b, _ := json.Marshal(map[string]string{"id": *id})
		err = adminCall(c, "POST", "/admin/devices/revoke", bytes.NewReader(b), &out)
	case cmd == "devices" && sub == "list":
		err = adminCall(c, "GET", "/admin/devices", nil, &out)
	case cmd == "registrations" && sub == "list":
		if *status != "" && *status != "pending" && *status != "approved" && *status != "rejected" {
			return cli.Usagef("registrations list: --status %q: want pending, approved or rejected", *status)
		}
		err = adminCall(c, "GET", "/admin/registrations?status="+*status, nil, &out)
	case cmd == "registrations" && sub == "reject" && *reason == "":
		return cli.Usagef("registrations reject: --reason is required")
	case cmd == "registrations" && (sub == "approve" || sub == "reject") && len(pos) == 1:
		b, _ := json.Marshal(map[string]string{"id": pos[0], "reason": *reason})
		if sub == "approve" {
			b, _ = json.Marshal(map[string]string{"id": pos[0]})
		}
		err = adminCall(c, "POST", "/admin/registrations/"+sub, bytes.NewReader(b), &out)
	default:
		fmt.Fprint(stderr, usage)
		return cli.Usagef("%s: see usage", strings.TrimSpace(cmd+" "+sub))
	}
	if err != nil {
		return err
	}
	return show(out)
}
