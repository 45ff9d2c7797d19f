package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs   int
	Model  string
	Memory string
	Kernel string
	Load   string // /proc/loadavg at the start: other work on the machine
}

// ReadMachine reads /proc.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.IndexByte(l, ':'); i > 0 {
					m.Model = strings.TrimSpace(l[i+1:])
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb)
				m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	return m
}

// Check is one target or correctness property with its verdict.
type Check struct {
	Measurement string
	What        string
	Target      string
	Measured    string
	OK          bool
	// Correctness checks (one token request per stampede, no failed read) fail the test, in the
	// smoke too; timing targets never do: they are reported with ✅/❌.
	Correctness bool
}

func mark(ok bool) string {
	if ok {
		return "✅"
	}
	return "❌"
}

// Report is one run of the benchmark.
type Report struct {
	Plan          Plan
	Started       time.Time
	Elapsed       time.Duration
	Machine       Machine
	VaultVersion  string
	PluginVersion string
	GoVersion     string
	Commands      []string
	CredsBytes    int
	KVBytes       int
	StorageOn     string

	Cached   *Comparison
	Cold     *Comparison
	Reuse    []ReuseRound
	Stampede []StampedeRound
	Rotation *RotationResult
	// The rotations of the other secrets, under the same kind of load.
	CCRotation     *CCRotationResult
	TenantRotation *TenantRotationResult
	KeyGen         *KeyGenResult
	Scale          *ScaleResult
	InProc         *InProc

	Checks []Check
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func p50(s Summary) float64 { return float64(s.P50) }
func p99(s Summary) float64 { return float64(s.P99) }

// Evaluate computes the checks from the results.
func (r *Report) Evaluate() {
	r.Checks = nil
	add := func(c Check) { r.Checks = append(r.Checks, c) }
	if c := r.Cached; c != nil {
		for _, n := range c.Clients {
			pr := PerRound(c.By[n][OpCreds], c.By[n][OpKV], func(a, b Summary) float64 { return ratio(p50(a), p50(b)) })
			add(Check{Measurement: "cached read", What: fmt.Sprintf("p50 vs KV-v2 read, %s", clientsLabel(n)), Target: "≤ 1.30×",
				Measured: fmt.Sprintf("%.2f×", pr), OK: pr <= 1.3})
		}
		n := c.Clients[len(c.Clients)-1]
		tr := PerRound(c.By[n][OpCreds], c.By[n][OpKV], func(a, b Summary) float64 { return ratio(a.Throughput, b.Throughput) })
		add(Check{Measurement: "cached read", What: fmt.Sprintf("throughput vs KV-v2 read, %s", clientsLabel(n)), Target: "≥ 0.75×",
			Measured: fmt.Sprintf("%.2f×", tr), OK: tr >= 0.75})
		// The hop floor (issue 15): info against KV-v2 is what the external-plugin hop costs; the
		// cached read against info is what the plugin adds to it.
		n0 := c.Clients[0]
		hop := PerRound(c.By[n0][OpInfo], c.By[n0][OpKV], func(a, b Summary) float64 { return ratio(p50(a), p50(b)) })
		add(Check{Measurement: "hop", What: "plugin info p50 vs KV-v2 read, " + clientsLabel(n0), Target: "≤ 2.00×",
			Measured: fmt.Sprintf("%.2f×", hop), OK: hop <= 2.0})
		for _, n := range c.Clients {
			pr := PerRound(c.By[n][OpCreds], c.By[n][OpInfo], func(a, b Summary) float64 { return ratio(p50(a), p50(b)) })
			add(Check{Measurement: "cached read", What: fmt.Sprintf("p50 vs plugin info (hop floor), %s", clientsLabel(n)), Target: "≤ 1.05×",
				Measured: fmt.Sprintf("%.2f×", pr), OK: pr <= 1.05})
		}
		add(Check{Measurement: "cached read", What: "failed requests", Target: "0", Measured: fmt.Sprint(len(c.Errors)), OK: len(c.Errors) == 0, Correctness: true})
	}
	if c := r.Cold; c != nil {
		n := c.Clients[0]
		pr := PerRound(c.By[n][OpCreds], pairBudget(c.By[n][OpRaw], c.By[n][OpKV]), func(a, b Summary) float64 { return ratio(p50(a), p50(b)) })
		add(Check{Measurement: "cold mint", What: fmt.Sprintf("p50 vs 1.2×(raw sign+POST) + KV-v2 read, %s", clientsLabel(n)), Target: "≤ 1.00×",
			Measured: fmt.Sprintf("%.2f×", pr), OK: pr <= 1.0})
		for _, n := range c.Clients {
			fl := leaseFloor(c.By[n][OpRaw], c.By[n][OpInfo], c.By[n][OpLease])
			pr := PerRound(c.By[n][OpCreds], fl, func(a, b Summary) float64 { return ratio(p50(a), p50(b)) })
			add(Check{Measurement: "cold mint", What: fmt.Sprintf("p50 vs raw sign+POST + hop floor + token create, %s", clientsLabel(n)), Target: "≤ 1.05×",
				Measured: fmt.Sprintf("%.2f×", pr), OK: pr <= 1.05})
		}
		add(Check{Measurement: "cold mint", What: "failed requests", Target: "0", Measured: fmt.Sprint(len(c.Errors)), OK: len(c.Errors) == 0, Correctness: true})
	}
	if len(r.Reuse) > 0 {
		per := make([]float64, 0, len(r.Reuse))
		errs := 0
		for _, u := range r.Reuse {
			per = append(per, u.PerMint())
			errs += u.Summary.Errors
		}
		m := Median(per)
		add(Check{Measurement: "connection reuse", What: fmt.Sprintf("new Salesforce connections per per_lease mint after warm-up, %s (median of %d windows)", clientsLabel(r.Reuse[0].Clients), len(r.Reuse)),
			Target: "0", Measured: fmt.Sprintf("%.3f", m), OK: m == 0})
		add(Check{Measurement: "connection reuse", What: "failed requests", Target: "0", Measured: fmt.Sprint(errs), OK: errs == 0, Correctness: true})
	}
	if len(r.Stampede) > 0 {
		worst, distinct, errs := int64(0), 0, 0
		ok := true
		for _, s := range r.Stampede {
			worst, distinct = max(worst, s.TokenRequests), max(distinct, s.Distinct)
			errs += s.Summary.Errors
			ok = ok && s.TokenRequests == 1 && s.Distinct == 1 && s.Summary.Errors == 0
		}
		add(Check{Measurement: "stampede", What: fmt.Sprintf("token requests per burst of %d reads of a cold role (worst of %d)", r.Stampede[0].Clients, len(r.Stampede)),
			Target: "1", Measured: fmt.Sprintf("%d (distinct tokens %d, failed reads %d)", worst, distinct, errs), OK: ok, Correctness: true})
	}
	if rot := r.Rotation; rot != nil {
		add(Check{Measurement: "rotation under load", What: "failed reads", Target: "0", Measured: fmt.Sprint(rot.Failed), OK: rot.Failed == 0, Correctness: true})
		add(Check{Measurement: "rotation under load", What: "rotations completed (metadata_api, under load)", Target: "≥ 1, none stuck",
			Measured: fmt.Sprintf("%d, key version %d → %d", rot.Rotations, rot.VersionBefore, rot.VersionAfter),
			OK:       rot.Rotations >= 1 && len(rot.Errors) == 0 && rot.VersionAfter > rot.VersionBefore, Correctness: true})
	}
	if cc := r.CCRotation; cc != nil {
		add(Check{Measurement: "consumer-secret rotation", What: "failed reads", Target: "0", Measured: fmt.Sprint(cc.Failed), OK: cc.Failed == 0, Correctness: true})
		add(Check{Measurement: "consumer-secret rotation", What: "rotations completed (client_credentials, under load, to idle)", Target: "≥ 1, none stuck",
			Measured: fmt.Sprintf("%d, consumer credential version %d → %d", cc.Rotations, cc.VersionBefore, cc.VersionAfter),
			OK:       cc.Rotations >= 1 && len(cc.Errors) == 0, Correctness: true})
	}
	if ts := r.TenantRotation; ts != nil {
		want := 2 * r.Plan.TSRounds * r.Plan.TSRotations // alone, then under load
		add(Check{Measurement: "tenant-secret rotation", What: "failed reads (alone and during the rotations)", Target: "0", Measured: fmt.Sprint(ts.Failed), OK: ts.Failed == 0, Correctness: true})
		add(Check{Measurement: "tenant-secret rotation", What: "rotations completed (data, each a new active version)", Target: fmt.Sprint(want),
			Measured: fmt.Sprintf("%d, active version %d → %d", ts.Rotations, ts.VersionBefore, ts.VersionAfter),
			OK:       ts.Rotations == want && ts.VersionAfter-ts.VersionBefore == int64(want) && len(ts.Errors) == 0, Correctness: true})
	}
	if k := r.KeyGen; k != nil {
		stalled := false
		var worst float64
		for i := range k.KeyGen {
			if i >= len(k.DuringCached) {
				break
			}
			m := max(k.DuringCached[i].Max, k.DuringCold[i].Max)
			f := float64(m) / float64(k.KeyGen[i])
			worst = max(worst, f)
			if f >= 0.25 {
				stalled = true
			}
		}
		add(Check{Measurement: "key generation", What: fmt.Sprintf("slowest read started during a %s rotate, as a share of the key generation", k.KeyType),
			Target: "< 0.25 (no read waits for the key)", Measured: fmt.Sprintf("%.2f", worst), OK: !stalled && len(k.KeyGen) > 0})
		add(Check{Measurement: "key generation", What: "failed reads", Target: "0", Measured: fmt.Sprint(k.Failed), OK: k.Failed == 0 && len(k.Errors) == 0, Correctness: true})
	}
	if ip := r.InProc; ip != nil {
		if ns, n := ip.Median("BenchmarkTick10kConnectionsNothingDue", "ns/op"); n > 0 {
			add(Check{Measurement: "scale", What: "periodic tick, 10,000 connections, nothing due (in process)", Target: "≤ 5 ms",
				Measured: Dur(time.Duration(ns)), OK: ns <= 5e6})
		}
		if calls, n := ip.Median("BenchmarkTickStorageCalls10k", "storage-calls/op"); n > 0 {
			add(Check{Measurement: "scale", What: "storage calls per tick with nothing due (in process)", Target: "0",
				Measured: fmt.Sprintf("%g", calls), OK: calls == 0, Correctness: true})
		}
	}
	if s := r.Scale; s != nil {
		add(Check{Measurement: "scale", What: fmt.Sprintf("plugin RSS, %d roles on %d connections, a token cached per role", s.Roles, s.Conns),
			Target: "≤ 64 MiB", Measured: Bytes(float64(s.RSSMinted)), OK: s.RSSMinted <= 64<<20})
		add(Check{Measurement: "scale", What: "seeding and listing", Target: "no error", Measured: fmt.Sprint(len(s.Errors)), OK: len(s.Errors) == 0, Correctness: true})
	}
}

// pairBudget is, per round, the cold-mint budget 1.2×raw + KV-v2 (on the p50).
func pairBudget(raw, kv Rounds) Rounds {
	n := min(len(raw), len(kv))
	out := make(Rounds, n)
	for i := 0; i < n; i++ {
		out[i] = Summary{P50: time.Duration(1.2*float64(raw[i].P50)) + kv[i].P50}
	}
	return out
}

// leaseFloor is, per round, what a per_lease read cannot go below even with nothing of the
// plugin's own: the raw mint, the external-plugin hop and a lease of Vault's (p50s added).
func leaseFloor(raw, hop, lease Rounds) Rounds {
	n := min(len(raw), len(hop), len(lease))
	out := make(Rounds, n)
	for i := 0; i < n; i++ {
		out[i] = Summary{P50: raw[i].P50 + hop[i].P50 + lease[i].P50}
	}
	return out
}

// Markdown renders the report as docs/BENCHMARKS.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Benchmarks\n\n")
	w("Generated by `make bench` (%s plan) on %s, in %s. Every number is a median over rounds measured in this\n",
		r.Plan.Name, r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second))
	w("run; every ratio is taken per round between measurements made back to back (same background load), then\n")
	w("the median of the ratios is shown. The machine is shared and noisy: read the ratios, not the absolute\n")
	w("timings, and never use either as a pass/fail test (CI runs only the smoke, which asserts correctness).\n\n")

	w("## Machine and versions\n\n| | |\n|---|---|\n")
	w("| CPUs | %d × %s |\n| Memory | %s |\n| Kernel | Linux %s |\n| Load average at start | %s |\n", r.Machine.CPUs, r.Machine.Model, r.Machine.Memory, r.Machine.Kernel, r.Machine.Load)
	w("| Vault | %s, single node, `storage \"file\"` on %s, log level info, plugin registered with sha256 and version |\n", r.VaultVersion, r.StorageOn)
	w("| Plugin | %s (built by `make build`) |\n| Go | %s |\n", r.PluginVersion, r.GoVersion)
	w("| Emulator | Salesforce emulator process, login rate limit off, request log off, certificate propagation delay %s (overlap \"old\") |\n", r.Plan.PropagationDelay)
	w("| Load client | Go, one keep-alive `http.Client` for every path, closed loop (a client sends its next request when the last is answered), %s warm-up + %s window per measurement, %d rounds |\n\n", r.Plan.Warm, r.Plan.Window, r.Plan.Rounds)

	w("## Commands\n\n```sh\n%s\n```\n\n", strings.Join(r.Commands, "\n"))
	w("Other ways in:\n\n")
	w("- Smoke (CI, the second step of `make e2e`): `go test -race ./bench/...` with `VAULT_BIN` set runs every\n")
	w("  measurement once with tiny counts and asserts correctness only (one token request per stampede, no failed read,\n")
	w("  rotations that complete, no storage call in an idle tick). Without `VAULT_BIN` it skips, saying so.\n")
	w("- Profiles of the plugin inside Vault: `BENCH_PPROF=$PWD/bin/bench/pprof make bench`, or only\n")
	w("  `VAULT_BIN=$(scripts/vault.sh) BENCH_PPROF=$PWD/bin/bench/pprof go test -run TestProfile -v ./bench/`, registers\n")
	w("  `bench/cmd/pprof-plugin` (the same backend plus net/http/pprof on loopback) and writes CPU profiles of the plugin\n")
	w("  and of Vault (`sys/pprof`) under cached-read and cold-mint load: `go tool pprof -top bin/bench/pprof/plugin-cold-8.pprof`.\n")
	w("- In process: `go test -run '^$' -bench 'CredsPerLease/plugin' -cpuprofile cpu.out ./backend/`, then `go tool pprof -top cpu.out`.\n")
	w("- Re-render this file from the last full run without measuring again: `BENCH_RENDER=bin/bench/report.json go test -run TestRender ./bench/`.\n\n")

	w("## Targets\n\n| measurement | what | target | measured | |\n|---|---|---|---|---|\n")
	for _, c := range r.Checks {
		w("| %s | %s | %s | %s | %s |\n", c.Measurement, c.What, c.Target, c.Measured, mark(c.OK))
	}
	w("\n")

	r.analysis(&b)

	if c := r.Cached; c != nil {
		w("## 1. Cached read\n\n`GET salesforce/creds/shared` (token_mode shared, warm cache: no Salesforce call) against `GET kv/data/creds-copy`\n")
		w("(KV-v2 holding the same fields: %d bytes of response vs %d for creds) and `POST auth/token/create` with ttl 30m\n", r.KVBytes, r.CredsBytes)
		w("(a lease of Vault's own: the leased-read floor). `GET salesforce/info` answers from constants: it is the floor of any\n")
		w("read served by an external plugin (Vault's gRPC call to the plugin process, and the SDK framework's\n")
		w("`ReplicationState` call back to Vault that it makes on every request), which KV-v2, built into Vault, does not pay.\n\n")
		w("| clients | operation | p50 | p99 | throughput (req/s) | p50 ratio vs KV | p99 ratio vs KV | throughput ratio vs KV | p50 ratio vs hop floor |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, n := range c.Clients {
			for _, op := range c.Ops {
				rs := c.By[n][op]
				w("| %d | %s | %s | %s | %.0f | %s | %s | %s | %s |\n", n, op, Dur(rs.P50()), Dur(rs.P99()), rs.Throughput(),
					ratioCell(rs, c.By[n][OpKV], p50), ratioCell(rs, c.By[n][OpKV], p99),
					fmt.Sprintf("%.2f×", PerRound(rs, c.By[n][OpKV], func(a, b Summary) float64 { return ratio(a.Throughput, b.Throughput) })),
					ratioCell(rs, c.By[n][OpInfo], p50))
			}
		}
		w("\n")
		ccVsJWT(&b, c, OpCCShared)
		writeErrors(&b, c.Errors)
	}

	if c := r.Cold; c != nil {
		w("## 2. Cold mint\n\n`GET salesforce/creds/leased` (token_mode per_lease: a token request to the emulator and a lease on every read)\n")
		w("against the raw work without Vault — sign the same assertion with the same key (imported into the connection) and\n")
		w("POST it to the same emulator with a `salesforce.Client` built the same way — plus a KV-v2 read and a token create.\n")
		w("Budget = 1.2 × raw p50 + KV-v2 p50, per round.\n\n")
		w("| clients | operation | p50 | p99 | throughput (req/s) | p50 ratio vs raw |\n|---|---|---|---|---|---|\n")
		for _, n := range c.Clients {
			for _, op := range c.Ops {
				rs := c.By[n][op]
				w("| %d | %s | %s | %s | %.0f | %s |\n", n, op, Dur(rs.P50()), Dur(rs.P99()), rs.Throughput(), ratioCell(rs, c.By[n][OpRaw], p50))
			}
			bud := pairBudget(c.By[n][OpRaw], c.By[n][OpKV])
			w("| %d | budget 1.2×raw + KV | %s | | | plugin/budget %.2f× |\n", n, Dur(bud.P50()),
				PerRound(c.By[n][OpCreds], bud, func(a, b Summary) float64 { return ratio(p50(a), p50(b)) }))
			fl := leaseFloor(c.By[n][OpRaw], c.By[n][OpInfo], c.By[n][OpLease])
			w("| %d | floor with a lease: raw + hop floor + token create | %s | | | plugin/floor %.2f× |\n", n, Dur(fl.P50()),
				PerRound(c.By[n][OpCreds], fl, func(a, b Summary) float64 { return ratio(p50(a), p50(b)) }))
		}
		w("\n")
		ccVsJWT(&b, c, OpCC)
		writeErrors(&b, c.Errors)
	}

	if len(r.Reuse) > 0 {
		w("### Connection reuse\n\n%s of `GET salesforce/creds/leased` (a token request on every read): after a warm-up, the\n", clientsLabel(r.Reuse[0].Clients))
		w("emulator counts the TCP connections it accepts and the token requests it answers in each window; only the plugin\n")
		w("talks to it then. A client that keeps enough idle connections per host opens none.\n\n")
		w("| window | token requests | new connections | per mint | p50 | failed |\n|---|---|---|---|---|---|\n")
		for i, u := range r.Reuse {
			w("| %d | %d | %d | %.3f | %s | %d |\n", i+1, u.Mints, u.Connections, u.PerMint(), Dur(u.Summary.P50), u.Summary.Errors)
		}
		w("\n")
	}

	if len(r.Stampede) > 0 {
		w("## 3. Stampede\n\n%d clients read one cold shared role at the same instant (a barrier releases them together); a new role per round.\n\n", r.Stampede[0].Clients)
		w("| round | token requests seen by the emulator | distinct tokens | failed reads | p50 | max |\n|---|---|---|---|---|---|\n")
		for i, s := range r.Stampede {
			w("| %d | %d | %d | %d | %s | %s |\n", i+1, s.TokenRequests, s.Distinct, s.Summary.Errors, Dur(s.Summary.P50), Dur(s.Summary.Max))
		}
		w("\n")
	}

	if rot := r.Rotation; rot != nil {
		w("## 4. Rotation under load\n\nConnection `rot` with `deploy=metadata_api`: `connections/rot/rotate`, then `connections/rot/rotation` polled until\n")
		w("idle, again and again for a %s window, while %d clients read a shared role and %d a per_lease role of the connection;\n", r.Plan.RotWindow, r.Plan.RotCached, r.Plan.RotCold)
		w("against the same readers in a window with no rotation (order alternating per round). With the emulator's \"old\"\n")
		w("overlap the old certificate keeps working for %s after the deploy; then the first cold read that the active key fails\n", r.Plan.PropagationDelay)
		w("proves and promotes the pending one.\n\n")
		w("| readers | p50 no rotation | p50 rotating | p99 no rotation | p99 rotating | throughput no rotation | throughput rotating | ratio |\n|---|---|---|---|---|---|---|---|\n")
		for _, x := range []struct {
			name      string
			base, rot Rounds
		}{{"cached (shared)", rot.BaseCached, rot.RotCached}, {"cold (per_lease)", rot.BaseCold, rot.RotCold}} {
			w("| %s | %s | %s | %s | %s | %.0f/s | %.0f/s | %.2f× |\n", x.name, Dur(x.base.P50()), Dur(x.rot.P50()), Dur(x.base.P99()), Dur(x.rot.P99()),
				x.base.Throughput(), x.rot.Throughput(), PerRound(x.rot, x.base, func(a, b Summary) float64 { return ratio(a.Throughput, b.Throughput) }))
		}
		w("\nRotations completed inside the windows: %d (median %s from rotate to idle); active key version %d → %d; failed reads: %d.\n\n",
			rot.Rotations, Dur(MedianDur(rot.Durations)), rot.VersionBefore, rot.VersionAfter, rot.Failed)
		writeErrors(&b, append(append([]string{}, rot.FailMsgs...), rot.Errors...))
	}

	r.secretRotations(&b)

	if s := r.Scale; s != nil {
		w("## 5. Scale\n\nA fresh plugin mount `scale/` seeded through Vault's API with %d connections (each imports one key with its\n", s.Conns)
		w("certificate, so no key generation) and %d roles (%d per connection), %d parallel writers.\n\n", s.Roles, s.Roles/max(1, s.Conns), r.Plan.SeedWorkers)
		w("| what | value |\n|---|---|\n")
		w("| seed %d connections | %s (%.0f/s) |\n", s.Conns, Dur(s.ConnSeed), float64(s.Conns)/s.ConnSeed.Seconds())
		w("| seed %d roles | %s (%.0f/s) |\n", s.Roles, Dur(s.RoleSeed), float64(s.Roles)/s.RoleSeed.Seconds())
		w("| `LIST scale/roles` (%d keys) | %s |\n", s.Roles, Dur(MedianDur(s.RoleList)))
		w("| `LIST kv/metadata/list/` (%d keys, floor) | %s |\n", s.Roles, Dur(MedianDur(s.KVList)))
		w("| role list ratio vs KV-v2 list | %.2f× |\n", ratio(float64(MedianDur(s.RoleList)), float64(MedianDur(s.KVList))))
		w("| one creds read per role (every role cold, 8 clients) | %s (%.0f mints/s) |\n", Dur(s.MintAll), float64(s.Roles)/s.MintAll.Seconds())
		w("| plugin RSS before seeding (after sections 1–4) | %s |\n", Bytes(float64(s.RSSBefore)))
		w("| plugin RSS after seeding | %s |\n", Bytes(float64(s.RSSSeeded)))
		w("| plugin RSS with a token cached per role | %s |\n", Bytes(float64(s.RSSMinted)))
		w("| … of which file-backed (the plugin binary's pages) | %s |\n", Bytes(float64(s.RSSFileMinted)))
		w("| plugin peak RSS (VmHWM, whole run) | %s |\n", Bytes(float64(s.HWM)))
		if r.InProc != nil {
			for _, x := range []struct{ name, label string }{
				{"BenchmarkTick10kConnectionsNothingDue", "periodic tick, 10,000 connections, nothing due (in process)"},
				{"BenchmarkTickBaselineFrameworkOnly", "rollback request on a framework backend with no periodic func (baseline)"},
			} {
				if ns, n := r.InProc.Median(x.name, "ns/op"); n > 0 {
					w("| %s | %s |\n", x.label, Dur(time.Duration(ns)))
				}
			}
			if c, n := r.InProc.Median("BenchmarkTickStorageCalls10k", "storage-calls/op"); n > 0 {
				w("| storage calls per tick with nothing due (in process, counting storage) | %g |\n", c)
			}
		}
		w("\nStorage, measured as the growth of the mount's directory `logical/<uuid>/` on the file backend. Apparent bytes are the\n")
		w("files' sizes (the file backend stores each entry as JSON holding the base64 of the barrier-encrypted value, about\n")
		w("1.4× the plugin's own bytes); allocated bytes count whole filesystem blocks.\n\n")
		w("| per | entries each | apparent bytes | allocated bytes |\n|---|---|---|---|\n")
		for _, x := range []struct {
			name string
			g    StorageGrowth
		}{
			{"connection (entry + key ring + key material v1)", s.PerConnection},
			{"role (definition)", s.PerRole},
			{"used role (its usage entry, written by the first mint)", s.PerUsage},
			{"key version (material + its key ring record)", s.PerKeyVersion},
		} {
			a, al := x.g.Per()
			w("| %s | %.2f | %s | %s |\n", x.name, float64(x.g.Entries)/float64(max(1, x.g.Count)), Bytes(a), Bytes(al))
		}
		w("\nThe tick cannot be timed inside Vault (Vault does not expose its rollback manager's timings), so it is measured\n")
		w("in process by the backend benchmarks below on `logical.InmemStorage` with 10,000 seeded connections;\n")
		w("`BenchmarkTickStorageCalls10k` (and the unit test `TestTickWithNothingDueTouchesNoStorage`) count the storage calls.\n\n")
		writeErrors(&b, s.Errors)
	}

	if k := r.KeyGen; k != nil {
		w("## 6. Key generation\n\n")
		if ip := r.InProc; ip != nil {
			w("In process (`BenchmarkKeyGenerate`, `keyutil.Generate`; RSA prime search varies a lot per key, so these are medians of\n")
			w("per-run means):\n\n| key type | generation time |\n|---|---|\n")
			for _, kt := range []string{"rsa-2048", "rsa-3072", "rsa-4096"} {
				if ns, n := ip.Median("BenchmarkKeyGenerate/"+kt, "ns/op"); n > 0 {
					w("| %s | %s |\n", kt, Dur(time.Duration(ns)))
				}
			}
			w("\n")
		}
		w("In Vault: `connections/big/rotate` on a connection with `key_type=%s` generates the pending key inside the\n", k.KeyType)
		w("request, holding the connection's lock, while %d clients read a shared role and %d a per_lease role of that same\n", r.Plan.KeyCached, r.Plan.KeyCold)
		w("connection. Reads that started while the rotate call ran, against a window without rotation:\n\n")
		w("| | rotate call (key generation) | cached p50 | cached p99 | cached max | cold p50 | cold p99 | cold max |\n|---|---|---|---|---|---|---|---|\n")
		w("| no rotation | | %s | %s | %s | %s | %s | %s |\n", Dur(k.BaseCached.P50()), Dur(k.BaseCached.P99()), Dur(k.BaseCached.Max()), Dur(k.BaseCold.P50()), Dur(k.BaseCold.P99()), Dur(k.BaseCold.Max()))
		w("| during key generation | %s | %s | %s | %s | %s | %s | %s |\n", Dur(MedianDur(k.KeyGen)), Dur(k.DuringCached.P50()), Dur(k.DuringCached.P99()), Dur(k.DuringCached.Max()), Dur(k.DuringCold.P50()), Dur(k.DuringCold.P99()), Dur(k.DuringCold.Max()))
		w("| ratio (p99) | | | %.2f× | | | %.2f× | |\n\n",
			PerRound(k.DuringCached, k.BaseCached, func(a, b Summary) float64 { return ratio(p99(a), p99(b)) }),
			PerRound(k.DuringCold, k.BaseCold, func(a, b Summary) float64 { return ratio(p99(a), p99(b)) }))
		w("%d cached and %d cold reads started during key generation, none failed. A read blocked behind the generation\n", k.DuringCachedN, k.DuringColdN)
		w("would take about as long as the rotate call; the slowest took a small fraction of it (see Targets). What\n")
		w("slows reads at all is CPU: the generation keeps one of the two cores busy.\n\n")
		writeErrors(&b, k.Errors)
	}

	if ip := r.InProc; ip != nil && len(ip.Values) > 0 {
		var names []string
		for _, f := range ip.Files {
			names = append(names, "`bin/bench/"+filepath.Base(f)+"`")
		}
		w("## In-process benchmarks (`go test -bench`, benchstat format)\n\nFiles: %s (compare two runs with `benchstat old.txt new.txt`). Medians of the `-count` runs:\n\n", strings.Join(names, ", "))
		w("| benchmark | plugin | baseline | ratio | plugin storage calls/op |\n|---|---|---|---|---|\n")
		for _, x := range []struct{ label, plugin, base string }{
			{"sign one assertion, RSA-2048 (JWT vs bare RSA of the same digest)", "BenchmarkSignAssertion/plugin=salesforce.SignAssertion", "BenchmarkSignAssertion/baseline=rsa.SignPKCS1v15"},
			{"creds read, warm cache (vs a framework path reading one storage entry)", "BenchmarkCredsCachedHit/plugin=creds-shared-warm", "BenchmarkCredsCachedHit/baseline=framework-storage-read"},
			{"same, GOMAXPROCS goroutines in parallel", "BenchmarkCredsCachedHit/plugin=creds-shared-warm/parallel", "BenchmarkCredsCachedHit/baseline=framework-storage-read/parallel"},
			{"cold mint per_lease in process (vs raw sign + POST to the in-process emulator)", "BenchmarkCredsPerLease/plugin=creds-per_lease", "BenchmarkCredsPerLease/baseline=sign+POST"},
			{"periodic tick, 10,000 connections, nothing due (vs framework only)", "BenchmarkTick10kConnectionsNothingDue", "BenchmarkTickBaselineFrameworkOnly"},
		} {
			a, na := ip.Median(x.plugin, "ns/op")
			c, nc := ip.Median(x.base, "ns/op")
			if na == 0 || nc == 0 {
				continue
			}
			calls := ""
			if sc, n := ip.Median(x.plugin, "storage-calls/op"); n > 0 {
				calls = fmt.Sprintf("%g", sc)
			}
			w("| %s | %s | %s | %.2f× | %s |\n", x.label, Dur(time.Duration(a)), Dur(time.Duration(c)), a/c, calls)
		}
		w("\n")
	}
	return b.String()
}

func ratioCell(a, b Rounds, f func(Summary) float64) string {
	if len(b) == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", PerRound(a, b, func(x, y Summary) float64 { return ratio(f(x), f(y)) }))
}

func writeErrors(b *strings.Builder, errs []string) {
	if len(errs) == 0 {
		return
	}
	fmt.Fprintf(b, "Errors:\n\n")
	for i, e := range errs {
		if i == 10 {
			fmt.Fprintf(b, "- … and %d more\n", len(errs)-10)
			break
		}
		fmt.Fprintf(b, "- `%s`\n", strings.ReplaceAll(e, "`", "'"))
	}
	fmt.Fprintf(b, "\n")
}

func (r *Report) failed(measurement string) bool {
	for _, c := range r.Checks {
		if c.Measurement == measurement && !c.OK {
			return true
		}
	}
	return false
}

// analysis explains what bounds each missed target, from this run's numbers, the in-process
// benchmarks and the profiles (bench.TestProfile).
func (r *Report) analysis(b *strings.Builder) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	var items []func()
	ip := r.InProc
	inproc := func(plugin, base string) (float64, float64, float64, bool) {
		a, na := ip.Median(plugin, "ns/op")
		c, nc := ip.Median(base, "ns/op")
		sc, _ := ip.Median(plugin, "storage-calls/op")
		return a, c, sc, na > 0 && nc > 0
	}
	if c := r.Cached; c != nil && (r.failed("cached read") || r.failed("hop")) {
		items = append(items, func() {
			lo, hi := c.Clients[0], c.Clients[len(c.Clients)-1]
			p50r := func(n int, a, b string) float64 {
				return PerRound(c.By[n][a], c.By[n][b], func(x, y Summary) float64 { return ratio(p50(x), p50(y)) })
			}
			thr := func(n int, a, b string) float64 {
				return PerRound(c.By[n][a], c.By[n][b], func(x, y Summary) float64 { return ratio(x.Throughput, y.Throughput) })
			}
			w("**Cached read and the hop.** Split the cached read into the hop and the plugin's own part:\n\n")
			w("- The hop: `salesforce/info`, which does nothing, is %.2f× the KV-v2 read at p50 with %s and has %.2f× its\n", p50r(lo, OpInfo, OpKV), clientsLabel(lo), thr(hi, OpInfo, OpKV))
			w("  throughput at %d clients (%.2f× at p50). KV-v2 is built into Vault; any external plugin pays Vault's gRPC call to\n", hi, p50r(hi, OpInfo, OpKV))
			w("  the plugin process (mTLS, protobuf, the response as JSON inside it) on every request. The one round trip the\n")
			w("  plugin could remove, the SDK router's `System().ReplicationState()` call back to Vault on every request to a\n")
			w("  path with `Operations` (about 12%% of the plugin's CPU in a cached-read profile before), is answered from memory\n")
			w("  (backend/sysview.go, bounded to 1 s; a node's role changes only by a backend teardown). What is left of the hop is\n")
			w("  Vault's side of the plugin client, which `go tool pprof` on Vault's profile (bench.TestProfile, `vault-cached-*.pprof`) shows.\n")
			w("- The plugin's part: the cached creds read is %.2f× `info` at p50 with %s, %.2f× at %d clients.\n", p50r(lo, OpCreds, OpInfo), clientsLabel(lo), p50r(hi, OpCreds, OpInfo), hi)
			if a, base, sc, ok := inproc("BenchmarkCredsCachedHit/plugin=creds-shared-warm", "BenchmarkCredsCachedHit/baseline=framework-storage-read"); ok {
				w("  In process the warm-cache read takes %s against %s for a framework path that reads one storage entry\n", Dur(time.Duration(a)), Dur(time.Duration(base)))
				w("  (%.2f×), with %g storage calls: no lock is contended, nothing is decoded. The rest is the response: `creds`\n", a/base, sc)
				w("  answers %d bytes of JSON against `info`'s few hundred, encoded by the plugin and again by Vault.\n", r.CredsBytes)
			}
			w("- With 64 clients the 2 shared cores are saturated (Vault, plugin, emulator and load client): throughput and\n")
			w("  latency follow CPU per request, most of it Vault's and gRPC's.\n\n")
		})
	}
	if c := r.Cold; c != nil && r.failed("cold mint") {
		items = append(items, func() {
			n := c.Clients[0]
			fl := leaseFloor(c.By[n][OpRaw], c.By[n][OpInfo], c.By[n][OpLease])
			w("**Cold mint.** A per_lease read does more than the budget (1.2 × raw + one KV-v2 read) counts:\n\n")
			w("- It creates a lease: Vault registers it with its expiration manager and writes it to storage. Vault's own\n")
			w("  leased floor, a token create, takes %s at p50 with %d client, and the external-plugin hop (`salesforce/info`) %s.\n",
				Dur(c.By[n][OpLease].P50()), n, Dur(c.By[n][OpInfo].P50()))
			w("  Against raw + hop + token create (%s) the per_lease read is %.2f×.\n", Dur(fl.P50()),
				PerRound(c.By[n][OpCreds], fl, func(x, y Summary) float64 { return ratio(p50(x), p50(y)) }))
			if a, base, sc, ok := inproc("BenchmarkCredsPerLease/plugin=creds-per_lease", "BenchmarkCredsPerLease/baseline=sign+POST"); ok {
				w("- In process (in-memory storage, no gRPC) the same mint costs %s against %s for the raw sign + POST (%.2f×);\n", Dur(time.Duration(a)), Dur(time.Duration(base)), a/base)
				w("  a CPU profile of `BenchmarkCredsPerLease/plugin` is mostly RSA signing. It makes %.2f storage calls per mint:\n", sc)
				w("  the connection and the key versions to sign with are cached (dropped by every write), the parsed key too, and\n")
				w("  role usage is written by a background flusher at most once a second per role. Until fe2d23a a mint made 4\n")
				w("  (Get connection, Get key ring, Get and Put of the usage entry, the last two under the role's lock), each a\n")
				w("  gRPC round trip inside Vault; the cold-mint ratio was 2.53× then.\n")
			}
			w("- What is left is Vault's: the lease (registered with the expiration manager and written to storage) and the\n")
			w("  external-plugin hop. The plugin cannot remove either; a per_lease read exists to get a lease.\n\n")
		})
	}
	if s := r.Scale; s != nil && r.failed("scale") {
		items = append(items, func() {
			w("**Scale.** Plugin RSS is %s once each of the %d roles has minted a token through its connection, against %s\n",
				Bytes(float64(s.RSSMinted)), s.Roles, Bytes(float64(s.RSSSeeded)))
			w("with the %d roles and %d connections merely written (%s before seeding). Connections with the same `ca_cert` and\n",
				s.Roles, s.Conns, Bytes(float64(s.RSSBefore)))
			w("host rule share one transport (one root pool, one idle pool; snapshot.go `transportPool`), so what grows per\n")
			w("connection is its snapshot (entry, parsed signer) and per role its cached token. A heap profile of the plugin at\n")
			w("this point: `BENCH_PPROF=… go test -run TestProfile ./bench/` writes `plugin-scale-heap.pprof`. Of the RSS, %s are\n",
				Bytes(float64(s.RSSFileMinted)))
			w("file-backed: the plugin binary's code and data, which no setting of the plugin's changes. The rest is Go's heap,\n")
			w("which the GC lets grow to twice the live heap (GOGC=100) before it collects. docs/PROFILES.md breaks both down from\n")
			w("a profile and measures what `vault plugin register -env=GOGC=…` or `-env=GOMEMLIMIT=…` trades for less.\n\n")
		})
	}
	if len(items) == 0 {
		return
	}
	w("## What bounds the missed targets\n\n")
	for _, f := range items {
		f()
	}
}

func clientsLabel(n int) string {
	if n == 1 {
		return "1 client"
	}
	return fmt.Sprintf("%d clients", n)
}

// ccVsJWT writes the client-credentials read against the JWT-bearer one of the same comparison
// (p50 ratio per round, then the median), at each client count: the same mint without a
// signature, for the app's run-as user.
func ccVsJWT(b *strings.Builder, c *Comparison, ccOp string) {
	var cells []string
	for _, n := range c.Clients {
		if cc, ok := c.By[n][ccOp]; ok && len(cc) > 0 {
			cells = append(cells, fmt.Sprintf("%d client(s) %s", n, ratioCell(cc, c.By[n][OpCreds], p50)))
		}
	}
	if len(cells) > 0 {
		fmt.Fprintf(b, "Client credentials against JWT bearer (`%s` / `%s`, p50): %s.\n\n", ccOp, OpCreds, strings.Join(cells, ", "))
	}
}
