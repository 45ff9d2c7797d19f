package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// relSoakDuration is how long the soak's load runs: 60 s by default (it is part of make e2e),
// 10 minutes with SOAK=1, or SOAK_DURATION (a Go duration) when set.
func relSoakDuration(t testing.TB) time.Duration {
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SOAK_DURATION=%q: %v", s, err)
		}
		return d
	}
	if os.Getenv("SOAK") == "1" {
		return 10 * time.Minute
	}
	return 60 * time.Second
}

// relSample is one measurement of the processes during the soak.
type relSample struct {
	at                  time.Duration
	pluginRSS, vaultRSS int64 // kB
	pluginFDs, threads  int
	vaultGoroutines     int64
}

// TestReliabilitySoak runs mixed load against one connection for relSoakDuration: shared
// reads, per_lease reads each revoked at once, role resets, and key rotations (rotate, the new
// certificate registered on the app, promote: reads that the old key fails fall back to the
// new one meanwhile). Every 2 s it samples the plugin process (RSS, open files, threads; it has
// no pprof) and Vault (RSS, goroutines from sys/metrics). It asserts no read failed, the
// plugin never restarted, storage is consistent (no key lost), and after a warm-up the plugin's
// RSS and open files and Vault's goroutines stay flat: the end within a bound of the baseline,
// and no upward trend.
func TestReliabilitySoak(t *testing.T) {
	t.Parallel()
	dur := relSoakDuration(t)
	e := newRelEnv(t, relEnvOptions{emuFlags: []string{"-quiet"}})
	v := e.Vault
	uuid := relMountUUID(t, v)
	e.CreateConnection(t, v, "soak", map[string]any{"keep_archived_keys": 3})
	e.TrustConnection(t, v, "soak")
	e.CreateRole(t, v, "shared-a", "soak", nil)
	e.CreateRole(t, v, "shared-b", "soak", nil)
	e.CreateRole(t, v, "leased", "soak", map[string]any{"token_mode": "per_lease"})
	for _, r := range []string{"shared-a", "shared-b", "leased"} {
		ReadCreds(t, v.Client, r)
	}
	pid := v.PluginPID(t)
	t.Logf("soak for %s (SOAK=1 for 10 minutes, or SOAK_DURATION); plugin pid %d", dur, pid)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, leases, resets, rotations, promotedByRead atomic.Int64
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 30 {
			failures = append(failures, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
		} else {
			failures = append(failures[:30], "…")
		}
	}
	loop := func(pause time.Duration, f func(c *api.Client)) {
		c := v.NewClient(t, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f(c)
				select {
				case <-stop:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		role := []string{"shared-a", "shared-b"}[i%2]
		loop(20*time.Millisecond, func(c *api.Client) {
			if _, _, err := relRead(c, role); err != nil {
				fail("creds/%s: %s", role, oneLine(err))
				return
			}
			reads.Add(1)
		})
	}
	for i := 0; i < 2; i++ {
		loop(100*time.Millisecond, func(c *api.Client) {
			s, _, err := relRead(c, "leased")
			if err != nil {
				fail("creds/leased: %s", oneLine(err))
				return
			}
			reads.Add(1)
			if err := c.Sys().Revoke(s.LeaseID); err != nil {
				fail("lease revoke: %s", oneLine(err))
				return
			}
			leases.Add(1)
		})
	}
	loop(2*time.Second, func(c *api.Client) {
		if _, err := c.Logical().Write(Mount+"/roles/shared-a/reset", nil); err != nil {
			fail("reset: %s", oneLine(err))
			return
		}
		resets.Add(1)
	})
	loop(6*time.Second, func(c *api.Client) {
		r, err := c.Logical().Write(Mount+"/connections/soak/rotate", nil)
		if err != nil {
			fail("rotate: %s", oneLine(err))
			return
		}
		cert, _ := r.Data["pending_certificate"].(string)
		if cert == "" {
			fail("rotate: no pending_certificate")
			return
		}
		// An operator uploads the certificate seconds after rotate at the earliest. (A swap
		// within milliseconds can fail a read already minting: BUG-7, shown by
		// TestReliabilityTokenFaults/rotation_during_mint.)
		select {
		case <-stop:
			return
		case <-time.After(time.Second):
		}
		e.Emu.RegisterCertificate(t, e.Emu.ConsumerKey, cert)
		if _, err := c.Logical().Write(Mount+"/connections/soak/promote", nil); err != nil {
			if !strings.Contains(err.Error(), "no pending key") {
				fail("promote: %s", oneLine(err))
				return
			}
			promotedByRead.Add(1) // a per_lease read the old key failed promoted it first
		}
		rotations.Add(1)
	})

	// Sample every 2 s until the end.
	var samples []relSample
	start := time.Now()
	tick := time.NewTicker(2 * time.Second)
	for time.Since(start) < dur {
		<-tick.C
		s := relSample{at: time.Since(start)}
		var err error
		if s.pluginRSS, err = ProcStatusKB(pid, "VmRSS"); err != nil {
			fail("plugin process %d: %v (did it die?)", pid, err)
			break
		}
		s.vaultRSS, _ = ProcStatusKB(v.PID(), "VmRSS")
		s.pluginFDs, _ = relProcCount(pid, "fd")
		s.threads, _ = relProcCount(pid, "task")
		s.vaultGoroutines = relVaultGoroutines(v)
		samples = append(samples, s)
	}
	tick.Stop()
	close(stop)
	wg.Wait()

	if got := v.PluginPID(t); got != pid {
		t.Errorf("the plugin process changed during the soak (%d -> %d)", pid, got)
	}
	if len(failures) > 0 {
		t.Errorf("%d operations failed during the soak:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	relRequireStorage(t, v, uuid, "soak")
	ring := relMustRing(t, v, "soak")
	active := 0
	for _, k := range ring {
		if k.Status == "active" {
			active++
		}
	}
	keysLost := 0
	if active != 1 {
		keysLost++
		t.Errorf("key ring %s: %d active versions, want 1", relRingString(ring), active)
	}
	e.Emu.RequireTokenAccepted(t, ReadCreds(t, v.Client, "leased").Data["access_token"].(string))
	if rotations.Load() == 0 || resets.Load() == 0 || leases.Load() == 0 {
		t.Errorf("the load did not run: %d rotations, %d resets, %d leases", rotations.Load(), resets.Load(), leases.Load())
	}

	// Flatness: baseline = median of the samples after the first quarter (warm-up) up to the
	// half; end = median of the last quarter; trend = least-squares slope after the warm-up.
	if len(samples) < 8 {
		t.Fatalf("only %d samples", len(samples))
	}
	q := len(samples) / 4
	base, end, tail := samples[q:2*q], samples[len(samples)-q:], samples[q:]
	med := func(ss []relSample, f func(relSample) float64) float64 {
		var xs []float64
		for _, s := range ss {
			xs = append(xs, f(s))
		}
		sort.Float64s(xs)
		return xs[len(xs)/2]
	}
	slope := func(ss []relSample, f func(relSample) float64) float64 { // per minute
		var n, sx, sy, sxx, sxy float64
		for _, s := range ss {
			x, y := s.at.Minutes(), f(s)
			n, sx, sy, sxx, sxy = n+1, sx+x, sy+y, sxx+x*x, sxy+x*y
		}
		den := n*sxx - sx*sx
		if den == 0 {
			return 0
		}
		return (n*sxy - sx*sy) / den
	}
	window := (tail[len(tail)-1].at - tail[0].at).Minutes()
	type metric struct {
		name       string
		f          func(relSample) float64
		absSlack   float64 // allowed growth of the end over the baseline, absolute
		relSlack   float64 // and relative
		trendSlack float64 // allowed growth projected by the slope over the window
	}
	metrics := []metric{
		{"plugin_rss_mb", func(s relSample) float64 { return float64(s.pluginRSS) / 1024 }, 24, 0.5, 24},
		{"plugin_fds", func(s relSample) float64 { return float64(s.pluginFDs) }, 24, 0, 24},
		{"plugin_threads", func(s relSample) float64 { return float64(s.threads) }, 8, 0, 8},
		{"vault_goroutines", func(s relSample) float64 { return float64(s.vaultGoroutines) }, 150, 0.25, 150},
		{"vault_rss_mb", func(s relSample) float64 { return float64(s.vaultRSS) / 1024 }, 96, 0.5, 96},
	}
	var kv []any
	for _, m := range metrics {
		b, en, sl := med(base, m.f), med(end, m.f), slope(tail, m.f)
		kv = append(kv, m.name+"_start", math.Round(b), m.name+"_end", math.Round(en), m.name+"_per_min", math.Round(sl*10)/10)
		if en > b*(1+m.relSlack)+m.absSlack {
			t.Errorf("%s grew from %.0f to %.0f during the soak (bound %.0f)", m.name, b, en, b*(1+m.relSlack)+m.absSlack)
		}
		if sl*window > m.trendSlack+m.relSlack*b {
			t.Errorf("%s trends up: %.1f per minute over %.1f minutes", m.name, sl, window)
		}
	}
	t.Logf("samples (s: plugin RSS kB, fds, threads; vault goroutines, RSS kB):")
	for _, s := range samples {
		t.Logf("  %5.0f: %7d %4d %3d | %6d %8d", s.at.Seconds(), s.pluginRSS, s.pluginFDs, s.threads, s.vaultGoroutines, s.vaultRSS)
	}
	relReport(t, "soak", "mixed_load", append([]any{"duration", dur.Round(time.Second), "reads", reads.Load(), "leases_revoked", leases.Load(),
		"resets", resets.Load(), "rotations", rotations.Load(), "promoted_by_read", promotedByRead.Load(), "failed", len(failures),
		"keys_lost", keysLost, "key_ring", strings.ReplaceAll(relRingString(ring), " ", ",")}, kv...)...)
}

// relVaultGoroutines reads runtime.num_goroutines from Vault's sys/metrics (0 if unavailable).
func relVaultGoroutines(v *Vault) int64 {
	resp, err := v.Client.Logical().ReadRaw("sys/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var m struct {
		Gauges []struct {
			Name  string  `json:"Name"`
			Value float64 `json:"Value"`
		} `json:"Gauges"`
	}
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return 0
	}
	for _, g := range m.Gauges {
		if strings.HasSuffix(g.Name, "runtime.num_goroutines") {
			return int64(g.Value)
		}
	}
	return 0
}
