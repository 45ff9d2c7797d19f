package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/e2e"
)

// TestMain makes a skipped run impossible to miss, as the e2e suite does.
func TestMain(m *testing.M) {
	if os.Getenv("VAULT_BIN") == "" {
		fmt.Fprintln(os.Stderr, "################################################################")
		fmt.Fprintln(os.Stderr, "# bench: VAULT_BIN is not set: SKIPPING the benchmark smoke.    #")
		fmt.Fprintln(os.Stderr, "# Run `make e2e` (smoke) or `make bench` (full) to run it.      #")
		fmt.Fprintln(os.Stderr, "################################################################")
	}
	os.Exit(m.Run())
}

// Commands are what `make bench` runs (scripts/bench.sh), for the report.
var Commands = []string{
	"make bench   # = make build emulator, then scripts/bench.sh:",
	"go test -run '^$' -bench 'SignAssertion|CredsCachedHit|CredsPerLease|Tick' -count 6 ./backend/ | tee bin/bench/backend.txt",
	"go test -run '^$' -bench 'KeyGenerate' -benchtime 5x -count 5 ./backend/ | tee bin/bench/keygen.txt",
	"VAULT_BIN=$(scripts/vault.sh) PLUGIN_DIR=bin/plugins BENCH_FULL=1 BENCH_INPROC=bin/bench/backend.txt,bin/bench/keygen.txt \\",
	"  go test -count=1 -run TestBench -v -timeout 60m ./bench/",
}

func TestBench(t *testing.T) {
	full := os.Getenv("BENCH_FULL") == "1"
	plan := SmokePlan()
	if full {
		plan = FullPlan()
	}
	rep := &Report{Plan: plan, Started: time.Now(), Machine: ReadMachine(), GoVersion: runtime.Version(), Commands: Commands}
	e := Setup(t, plan) // skips without VAULT_BIN
	rep.VaultVersion, rep.PluginVersion = e.S.Version, e.Cfg.PluginVersion+" at "+sourceCommit(t)
	rep.CredsBytes, rep.KVBytes, rep.StorageOn = e.CredsBytes, e.KVBytes, e.S.StorageOn

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"cached-read", func(t *testing.T) { rep.Cached = e.CachedRead(t) }},
		{"cold-mint", func(t *testing.T) { rep.Cold = e.ColdMint(t) }},
		{"connection-reuse", func(t *testing.T) { rep.Reuse = e.ConnectionReuse(t) }},
		{"stampede", func(t *testing.T) { rep.Stampede = e.Stampede(t) }},
		{"rotation-under-load", func(t *testing.T) { rep.Rotation = e.RotationUnderLoad(t) }},
		{"consumer-secret-rotation", func(t *testing.T) { rep.CCRotation = e.CCRotationUnderLoad(t) }},
		{"tenant-secret-rotation", func(t *testing.T) { rep.TenantRotation = e.TenantRotation(t) }},
		{"key-generation", func(t *testing.T) { rep.KeyGen = e.KeyGenUnderLoad(t) }},
		{"scale", func(t *testing.T) { rep.Scale = e.Scale(t) }},
	}
	for _, s := range steps {
		start := time.Now()
		t.Run(s.name, s.run)
		t.Logf("%s: %s", s.name, time.Since(start).Round(100*time.Millisecond))
	}

	var files []string
	if v := os.Getenv("BENCH_INPROC"); v != "" {
		files = strings.Split(v, ",")
	}
	ip, err := ReadInProc(files...)
	if err != nil {
		t.Errorf("reading the in-process results: %v", err)
	}
	if ip != nil && len(ip.Values) > 0 {
		rep.InProc = ip
	}
	rep.Elapsed = time.Since(rep.Started)
	rep.Evaluate()
	md := rep.Markdown()
	fmt.Println(md)
	for _, c := range rep.Checks {
		if c.Correctness && !c.OK {
			t.Errorf("%s: %s: got %s, want %s", c.Measurement, c.What, c.Measured, c.Target)
		}
	}
	if !full {
		t.Logf("smoke run: nothing written (BENCH_FULL=1 writes docs/BENCHMARKS.md)")
		return
	}
	// The results as JSON, so the report can be rendered again without measuring again
	// (BENCH_RENDER, below).
	js := filepath.Join(e2e.RepoRoot(t), "bin", "bench", "report.json")
	if b, err := json.MarshalIndent(rep, "", " "); err == nil && os.MkdirAll(filepath.Dir(js), 0o755) == nil {
		if err := os.WriteFile(js, b, 0o644); err == nil {
			t.Logf("wrote %s", js)
		}
	}
	writeDoc(t, md)
}

func writeDoc(t *testing.T, md string) {
	doc := os.Getenv("BENCH_DOC")
	if doc == "" {
		doc = filepath.Join(e2e.RepoRoot(t), "docs", "BENCHMARKS.md")
	}
	if err := os.WriteFile(doc, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", doc)
}

// TestRender renders docs/BENCHMARKS.md again from the JSON of a full run (BENCH_RENDER names
// it, e.g. bin/bench/report.json), after a change to the report's layout.
func TestRender(t *testing.T) {
	path := os.Getenv("BENCH_RENDER")
	if path == "" {
		t.Skip("BENCH_RENDER is not set")
	}
	if !filepath.IsAbs(path) { // as the docs write it: relative to the checkout, not to bench/
		path = filepath.Join(e2e.RepoRoot(t), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	rep.Commands = Commands
	rep.Evaluate()
	writeDoc(t, rep.Markdown())
}

// sourceCommit names the source measured: BENCH_COMMIT, else `git describe --always --dirty`.
func sourceCommit(t testing.TB) string {
	if c := os.Getenv("BENCH_COMMIT"); c != "" {
		return c
	}
	out, err := exec.Command("git", "-C", e2e.RepoRoot(t), "describe", "--always", "--dirty").Output()
	if err != nil {
		return "an unknown commit"
	}
	return "commit " + strings.TrimSpace(string(out))
}
