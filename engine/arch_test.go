package engine_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type goPackage struct {
	ImportPath string
	Dir        string
	Doc        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// listModule runs `go list -json` over the whole module.
func listModule(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "-deps=false", "../...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

const module = "github.com/gatecheck/gatecheck"

// TestArchitecture enforces DESIGN.md's import directions and STYLE.md's package docs:
// cmd -> edge -> {engine, devices, sync/...}, sync/... -> engine; engine and devices import no
// other project package and no I/O libraries; nothing but cmd imports edge; every package says
// what it owns in one doc comment.
func TestArchitecture(t *testing.T) {
	pkgs := listModule(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	banned := map[string][]string{
		module + "/engine":  {"github.com/dgraph-io/badger", "github.com/hashicorp/memberlist", "github.com/tarm/serial", "net/http", "os/exec"},
		module + "/devices": {"github.com/dgraph-io/badger", "github.com/hashicorp/memberlist", "github.com/google/cel-go"},
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module)
		if p.Doc == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			irel := strings.TrimPrefix(imp, module)
			switch {
			case strings.HasPrefix(irel, "/cmd") && !strings.HasPrefix(rel, "/cmd"):
				t.Errorf("%s imports %s: nothing outside cmd imports cmd", p.ImportPath, imp)
			case strings.HasPrefix(irel, "/edge") && !strings.HasPrefix(rel, "/cmd") && !strings.HasPrefix(rel, "/edge"):
				t.Errorf("%s imports %s: only cmd imports edge", p.ImportPath, imp)
			case strings.HasPrefix(rel, "/engine") && !strings.HasPrefix(irel, "/engine"):
				t.Errorf("%s imports %s: engine imports no other project package", p.ImportPath, imp)
			case strings.HasPrefix(rel, "/devices") && !strings.HasPrefix(irel, "/devices"):
				t.Errorf("%s imports %s: devices imports no other project package", p.ImportPath, imp)
			case strings.HasPrefix(rel, "/sync") && !strings.HasPrefix(irel, "/sync") && !strings.HasPrefix(irel, "/engine"):
				t.Errorf("%s imports %s: sync imports only engine and sync", p.ImportPath, imp)
			}
		}
	}
	// Deep dependency bans for the pure packages.
	for root, bans := range banned {
		out, err := exec.Command("go", "list", "-deps", "../"+strings.TrimPrefix(root, module+"/")+"/...").Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", root, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bans {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s depends on %s", root, dep)
				}
			}
		}
	}
}
