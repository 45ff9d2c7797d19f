package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestProfile takes CPU profiles of the plugin process (the profiling build of
// bench/cmd/pprof-plugin, same backend) and of Vault (sys/pprof) while the cached-read and
// cold-mint loads run, and writes them to $BENCH_PPROF (a directory). Skipped unless BENCH_PPROF
// is set:
//
//	VAULT_BIN=$(scripts/vault.sh) BENCH_PPROF=$PWD/bin/bench/pprof go test -run TestProfile -v ./bench/
//	go tool pprof -top bin/bench/pprof/plugin-cold-8.pprof
//
// BENCH_PLUGIN_ENV="GOGC=50" (or GOMEMLIMIT=…) registers the plugin with that environment, as an
// operator would with `vault plugin register -env`, to measure what it trades (docs/PROFILES.md).
func TestProfile(t *testing.T) {
	dir := os.Getenv("BENCH_PPROF")
	if dir == "" {
		t.Skip("BENCH_PPROF is not set: no profiles taken")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := Setup(t, SmokePlan())
	o := e.ops()
	const seconds = 5
	for _, x := range []struct {
		name    string
		clients int
		op      Op
	}{
		{"cached-1", 1, o["shared"]},
		{"info-1", 1, o[OpInfo]},
		{"cached-64", 64, o["shared"]},
		{"info-64", 64, o[OpInfo]},
		{"kv-64", 64, o[OpKV]},
		{"cold-1", 1, o["leased"]},
		{"cold-8", 8, o["leased"]},
	} {
		var wg sync.WaitGroup
		var w Window
		wg.Add(1)
		go func() { defer wg.Done(); w = Load(x.clients, time.Second, (seconds+1)*time.Second, x.op, nil) }()
		time.Sleep(1500 * time.Millisecond)
		var pw sync.WaitGroup
		for _, p := range []struct{ who, url string }{
			{"plugin", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", e.PprofAddr, seconds)},
			{"vault", fmt.Sprintf("%s/v1/sys/pprof/profile?seconds=%d", e.S.Addr, seconds)},
		} {
			pw.Add(1)
			go func() {
				defer pw.Done()
				path := filepath.Join(dir, p.who+"-"+x.name+".pprof")
				if err := fetch(p.url, e.S.Token, path); err != nil {
					t.Errorf("%s profile: %v", p.who, err)
				}
			}()
		}
		pw.Wait()
		wg.Wait()
		s := Summarize(w)
		t.Logf("%s: %d requests, %d failed, p50 %s, %.0f/s", x.name, s.N, s.Errors, Dur(s.P50), s.Throughput)
		for _, who := range []string{"plugin", "vault"} {
			path := filepath.Join(dir, who+"-"+x.name+".pprof")
			out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", path).CombinedOutput()
			if err != nil {
				t.Logf("pprof %s: %v", path, err)
			}
			_ = os.WriteFile(path+".top.txt", out, 0o644)
			out2, _ := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=60", path).CombinedOutput()
			_ = os.WriteFile(path+".cum.txt", out2, 0o644)
		}
	}

	// Memory at scale: the scale measurement, then the plugin's heap profile and goroutine count.
	e.Plan.ScaleConns, e.Plan.ScaleRoles, e.Plan.SeedWorkers, e.Plan.KeyVersions = 1000, 10000, 16, 1
	sr := e.Scale(t)
	t.Logf("scale: RSS before %s, seeded %s, a token per role %s", Bytes(float64(sr.RSSBefore)), Bytes(float64(sr.RSSSeeded)), Bytes(float64(sr.RSSMinted)))
	heap := filepath.Join(dir, "plugin-scale-heap.pprof")
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", e.PprofAddr), "", heap); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-sample_index=inuse_space", "-top", "-nodecount=30"}, {"-sample_index=inuse_space", "-top", "-cum", "-nodecount=60"}} {
		out, _ := exec.Command("go", append(append([]string{"tool", "pprof"}, args...), heap)...).CombinedOutput()
		_ = os.WriteFile(heap+"."+args[len(args)-2]+".txt", out, 0o644)
	}
	// Where the RSS is: the heap's own accounting (runtime.MemStats at the end of heap?debug=1)
	// beside the kernel's split of resident pages into anonymous and file-backed (the binary).
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/heap?debug=1", e.PprofAddr), "", filepath.Join(dir, "plugin-scale-memstats.txt")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", e.S.PluginPID(t))); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "plugin-scale-smaps.txt"), b, 0o644)
	}
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/goroutine?debug=1", e.PprofAddr), "", filepath.Join(dir, "plugin-scale-goroutines.txt")); err != nil {
		t.Fatal(err)
	}
	t.Logf("profiles in %s", dir)
}

func fetch(url, token, path string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
