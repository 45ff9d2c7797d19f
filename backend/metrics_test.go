package backend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// scrape reads the metrics path as Vault would serve it and parses it with Prometheus's own
// text parser: what a Prometheus server would ingest.
func (e *testEnv) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	return parseMetrics(e.t, e.scrapeText())
}

func (e *testEnv) scrapeText() string {
	e.t.Helper()
	resp := mustOK(e.t, e.read("metrics"))
	if resp.Data[logical.HTTPStatusCode] != http.StatusOK {
		e.t.Fatalf("metrics status %v", resp.Data[logical.HTTPStatusCode])
	}
	if ct := resp.Data[logical.HTTPContentType].(string); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		e.t.Fatalf("metrics content type %q", ct)
	}
	return string(resp.Data[logical.HTTPRawBody].([]byte))
}

func parseMetrics(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the metrics do not parse as Prometheus text: %v\n%s", err, text)
	}
	return fams
}

// sample is the value of the one series of family name whose labels include want; it fails
// the test when there is none or more than one. ok=false (with fatal=false) reports absence.
func sample(t testing.TB, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, n := find(fams, name, want)
	if n != 1 {
		t.Fatalf("%s%v: %d series match, want 1", name, want, n)
	}
	return v
}

func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
	var v float64
	n := 0
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if got[k] != w {
				continue next
			}
		}
		n++
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Histogram != nil:
			v = float64(m.Histogram.GetSampleCount())
		}
	}
	return v, n
}

func TestMetricsReportMintsCacheAndLogins(t *testing.T) {
	e := newAppEnv(t)
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease"})
	e.createRole("stranger", "prod", map[string]any{"username": "nobody@example.com"})
	user := e.seed.User.Username

	mustOK(t, e.read("creds/app"))    // a miss: one mint
	mustOK(t, e.read("creds/app"))    // a hit
	mustOK(t, e.read("creds/app"))    // a hit
	mustOK(t, e.read("creds/leased")) // per lease: a mint, no cache
	mustErr(t, e.read("creds/stranger"))
	e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 503})
	if _, err := e.do(logical.ReadOperation, "creds/leased", nil); err == nil {
		t.Fatal("a mint against a failing Salesforce succeeded")
	}
	e.emu.ClearFaults()

	f := e.scrape()
	minted := "vault_salesforce_tokens_minted_total"
	for _, c := range []struct {
		role, result, code string
		want               float64
	}{
		{"app", "success", "", 1},
		{"leased", "success", "", 1},
		{"leased", "unavailable", "unreachable", 1},
	} {
		if got := sample(t, f, minted, map[string]string{"connection": "prod", "role": c.role, "result": c.result, "error_code": c.code}); got != c.want {
			t.Errorf("%s{role=%s,result=%s}: %v, want %v", minted, c.role, c.result, got, c.want)
		}
	}
	// The stranger's refusal is Salesforce's, with its OAuth code (which one depends on what
	// the emulator answers for an unknown user): refused, and a known code.
	fs := f[minted]
	var refusedCode string
	for _, m := range fs.Metric {
		l := labelMap(m)
		if l["role"] == "stranger" {
			if l["result"] != "refused" {
				t.Errorf("the unknown user's mint is %q, want refused", l["result"])
			}
			refusedCode = l["error_code"]
		}
	}
	if !knownOAuthCodes[refusedCode] {
		t.Errorf("the unknown user's refusal has error_code %q, not a known OAuth code", refusedCode)
	}
	cache := "vault_salesforce_token_cache_requests_total"
	if hit, miss := sample(t, f, cache, map[string]string{"role": "app", "result": "hit"}), sample(t, f, cache, map[string]string{"role": "app", "result": "miss"}); hit != 2 || miss != 1 {
		t.Errorf("cache: %v hits, %v misses; want 2 and 1", hit, miss)
	}
	if _, n := find(f, cache, map[string]string{"role": "leased"}); n != 0 {
		t.Error("a per_lease role is reported as a cache user")
	}
	// Four mints on prod with the JWT bearer flow, each timed.
	if got := sample(t, f, "vault_salesforce_mint_duration_seconds", map[string]string{"connection": "prod", "flow": "jwt_bearer"}); got != 4 {
		t.Errorf("mint latency histogram holds %v observations, want 4", got)
	}
	// Logins: every token request for the user (the 503'd one too: Salesforce may have seen it).
	if got := sample(t, f, "vault_salesforce_logins_last_hour", map[string]string{"connection": "prod", "username": user}); got != 3 {
		t.Errorf("logins of %s in the last hour: %v, want 3", user, got)
	}
	if got := sample(t, f, "vault_salesforce_login_limit_per_hour", nil); got != 3600 {
		t.Errorf("login limit %v", got)
	}
	// An hour later the window has emptied and the user's series is gone.
	e.clock.Advance(61 * time.Minute)
	if _, n := find(e.scrape(), "vault_salesforce_logins_last_hour", map[string]string{"username": user}); n != 0 {
		t.Error("logins older than an hour are still counted")
	}
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestMetricsReportKeyRotation(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", map[string]any{"key_rotation_period": "720h", "certificate_ttl": "8760h"})
	e.createRole("app", "prod", nil)
	f := e.scrape()
	key := map[string]string{"kind": "key", "connection": "prod"}
	if got := sample(t, f, "vault_salesforce_rotation_state", map[string]string{"kind": "key", "connection": "prod", "state": "idle"}); got != 1 {
		t.Fatalf("rotation state idle: %v", got)
	}
	exp := sample(t, f, "vault_salesforce_certificate_expiry_seconds", map[string]string{"connection": "prod"})
	if want := (8760 * time.Hour).Seconds(); math.Abs(exp-want) > 5 {
		t.Errorf("certificate expiry in %v s, want about %v", exp, want)
	}
	next := sample(t, f, "vault_salesforce_next_rotation_timestamp_seconds", key)
	if want := float64(e.clock.Now().Add(720 * time.Hour).Unix()); math.Abs(next-want) > 5 {
		t.Errorf("next rotation at %v, want about %v", next, want)
	}

	mustOK(t, e.write("connections/prod/rotate", nil)) // deploy=manual: waits for the upload
	e.b.wg.Wait()
	f = e.scrape()
	if got := sample(t, f, "vault_salesforce_rotation_state", key); got != 1 {
		t.Fatalf("want one rotation state series, got %v", got)
	}
	if _, n := find(f, "vault_salesforce_rotation_state", map[string]string{"connection": "prod", "state": "verifying"}); n != 1 {
		t.Errorf("a manual rotation is not reported verifying: %v", f["vault_salesforce_rotation_state"])
	}
	// Nobody uploads the certificate: past propagation_timeout the rotation fails.
	for i := 0; i < 40 && e.rotation("prod")["state"] != "failed"; i++ {
		e.clock.Advance(probeInterval)
		e.tick()
	}
	f = e.scrape()
	if _, n := find(f, "vault_salesforce_rotation_state", map[string]string{"connection": "prod", "state": "failed"}); n != 1 {
		t.Fatalf("a failed rotation is not reported failed: %v", f["vault_salesforce_rotation_state"])
	}
	if got := sample(t, f, "vault_salesforce_rotation_failures_total", key); got != 1 {
		t.Errorf("rotation failures %v, want 1", got)
	}
	// A fresh backend on the same storage reports the state from storage at once.
	b2 := newBackend()
	b2.now = e.clock.Now
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	if err := b2.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	if err := b2.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	defer b2.Cleanup(context.Background())
	body, err := b2.metrics.render()
	if err != nil {
		t.Fatal(err)
	}
	if _, n := find(parseMetrics(t, string(body)), "vault_salesforce_rotation_state", map[string]string{"connection": "prod", "state": "failed"}); n != 1 {
		t.Error("a restarted backend does not report the stored rotation state")
	}
}

func TestMetricsForgetDeletedRolesAndConnections(t *testing.T) {
	e := newAppEnv(t)
	mustOK(t, e.read("creds/app"))
	if _, n := find(e.scrape(), "vault_salesforce_tokens_minted_total", map[string]string{"role": "app"}); n != 1 {
		t.Fatal("setup: no mint series")
	}
	mustOK(t, e.del("roles/app"))
	f := e.scrape()
	for _, name := range []string{"vault_salesforce_tokens_minted_total", "vault_salesforce_token_cache_requests_total"} {
		if _, n := find(f, name, map[string]string{"role": "app"}); n != 0 {
			t.Errorf("%s still reports the deleted role", name)
		}
	}
	mustOK(t, e.del("connections/prod"))
	f = e.scrape()
	for name := range f {
		if _, n := find(f, name, map[string]string{"connection": "prod"}); n != 0 {
			t.Errorf("%s still reports the deleted connection", name)
		}
	}
	// A role created anew counts from zero.
	e.createConnection("prod", nil)
	e.createRole("app", "prod", nil)
	mustOK(t, e.read("creds/app"))
	mustOK(t, e.read("creds/app"))
	if got := sample(t, e.scrape(), "vault_salesforce_token_cache_requests_total", map[string]string{"role": "app", "result": "hit"}); got != 1 {
		t.Errorf("a re-created role's hits: %v, want 1", got)
	}
}

// TestMetricsArePerMount: two mounts in one process (multiplexing) each report their own.
func TestMetricsArePerMount(t *testing.T) {
	a, b := newAppEnv(t), newAppEnv(t)
	mustOK(t, a.read("creds/app"))
	if _, n := find(b.scrape(), "vault_salesforce_tokens_minted_total", nil); n != 0 {
		t.Fatal("a mint on one mount shows in another mount's metrics")
	}
	if _, n := find(a.scrape(), "vault_salesforce_tokens_minted_total", nil); n != 1 {
		t.Fatal("the mount that minted does not report it")
	}
}

// TestMetricsNeverHoldSecrets scans the metrics text for every token minted, the consumer
// secret and the private keys, after mints of both flows, refusals and a rotation.
func TestMetricsNeverHoldSecrets(t *testing.T) {
	e := newAppEnv(t)
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease"})
	tokens := []string{
		mustOK(t, e.read("creds/app")).Data["access_token"].(string),
		mustOK(t, e.read("creds/leased")).Data["access_token"].(string),
	}
	secret := e.seed.CCApp.ConsumerSecret
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": e.seed.CCApp.ConsumerKey, "consumer_secret": secret})))
	mustOK(t, e.write("roles/cc", map[string]any{"connection": "cc", "token_mode": "per_lease"}))
	tokens = append(tokens, mustOK(t, e.read("creds/cc")).Data["access_token"].(string))
	mustOK(t, e.write("connections/cc", map[string]any{"consumer_secret": "wrong-secret-value"}))
	e.read("creds/cc")
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()

	text := e.scrapeText()
	f := parseMetrics(t, text)
	if _, n := find(f, "vault_salesforce_logins_last_hour", map[string]string{"connection": "cc", "username": e.seed.RunAs.Username}); n != 1 {
		t.Errorf("the client-credentials run-as user's login is not reported:\n%s", text)
	}
	needles := append([]string{secret, secret[8:40], "wrong-secret-value", "PRIVATE KEY"}, tokens...)
	for _, tok := range tokens {
		needles = append(needles, tok[16:]) // a token's tail: the part that is not its org id
	}
	for _, n := range needles {
		if strings.Contains(text, n) {
			t.Fatalf("the metrics hold a secret or token fragment %q", n)
		}
	}
	keys := storedKeys(t, e, "prod")
	if len(keys) < 2 {
		t.Fatalf("setup: %d keys in the ring, want 2", len(keys))
	}
	for i, k := range keys {
		for _, n := range keyNeedles(t, k) {
			if strings.Contains(text, n) {
				t.Fatalf("key %d leaked into the metrics", i)
			}
		}
	}
	// Every label value is a name or a fixed code: nothing longer than a username.
	for _, fam := range f {
		for _, m := range fam.Metric {
			for _, l := range m.Label {
				if len(l.GetValue()) > 80 {
					t.Errorf("%s label %s is %d characters long", fam.GetName(), l.GetName(), len(l.GetValue()))
				}
			}
		}
	}
}

func TestMintOutcome(t *testing.T) {
	for _, c := range []struct {
		err          error
		result, code string
	}{
		{nil, resultSuccess, ""},
		{&salesforce.OAuthError{Code: "invalid_grant", Description: "invalid assertion"}, resultRefused, "invalid_grant"},
		{fmt.Errorf("wrapped: %w", &salesforce.OAuthError{Code: "inactive_user"}), resultRefused, "inactive_user"},
		{&salesforce.OAuthError{Code: "made_up\nsecret=abc"}, resultRefused, "other"},
		{&salesforce.APIError{Code: "INVALID_SESSION_ID", Message: "x"}, resultRefused, "api_refused"},
		{&mintRefused{"role may not mint"}, resultRefused, "configuration"},
		{&salesforce.UpstreamError{Op: "token request", Attempts: 3, Cause: "503"}, resultUnavailable, "unreachable"},
		{context.Canceled, resultError, "canceled"},
		{errors.New("storage failed"), resultError, "internal"},
	} {
		r, code := mintOutcome(c.err)
		if r != c.result || code != c.code {
			t.Errorf("mintOutcome(%v) = %s, %q; want %s, %q", c.err, r, code, c.result, c.code)
		}
	}
}

func TestLoginWindow(t *testing.T) {
	const m0 = 29_000_000 // a Unix minute in 2025
	cases := []struct {
		name  string
		adds  []int64 // minutes, relative to m0
		at    int64
		count uint64
	}{
		{"none", nil, 0, 0},
		{"one minute", []int64{0, 0, 0}, 0, 3},
		{"spread over the hour", []int64{0, 10, 59}, 59, 3},
		{"the first minute leaves the window", []int64{0, 10, 59}, 60, 2},
		{"a slot reused an hour later counts afresh", []int64{0, 0, 60}, 60, 1},
		{"all gone after an idle hour", []int64{0, 30}, 120, 0},
		{"a late add from the past is dropped", []int64{60, 0}, 60, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w loginWindow
			for _, a := range c.adds {
				w.add(m0 + a)
			}
			if got := w.sum(m0 + c.at); got != c.count {
				t.Errorf("sum = %d, want %d", got, c.count)
			}
		})
	}
}

// TestLoginWindowConcurrentAddsAllCount: the compare-and-swap loses no login.
func TestLoginWindowConcurrentAddsAllCount(t *testing.T) {
	var w loginWindow
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 1000; i++ {
				w.add(100 + int64(i%3))
			}
			done <- struct{}{}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	if got := w.sum(102); got != 8000 {
		t.Fatalf("sum = %d, want 8000", got)
	}
}

// BenchmarkMetricsScrape1k: a scrape of a mount with 1,000 connections, each with a rotation
// status, a role that mints and hits the cache, and a user's logins. The scrape reads memory
// only; this is its whole cost.
func BenchmarkMetricsScrape1k(b *testing.B) {
	now := time.Now()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := newMetrics(func() time.Time { return now })
	for i := 0; i < 1000; i++ {
		conn := fmt.Sprintf("conn-%04d", i)
		role := fmt.Sprintf("role-%04d", i)
		m.rotation(keyRotation(conn), stateIdle)
		m.rotationScheduled(keyRotation(conn), now.Add(time.Duration(i)*time.Hour))
		m.updateRotation(keyRotation(conn), func(s *rotationStatus) { s.expiresAt = now.Add(365 * 24 * time.Hour) })
		m.mintDone(conn, role, authFlowJWTBearer, 80*time.Millisecond, nil)
		m.cacheCounters(conn, role).hit.Inc()
		m.cacheCounters(conn, role).miss.Inc()
		m.login(conn, fmt.Sprintf("user-%04d@example.com", i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := float64(after.HeapAlloc) - float64(before.HeapAlloc) // what the metrics of 1,000 connections hold
	var size int
	b.ReportAllocs()
	for b.Loop() {
		body, err := m.render()
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	b.ReportMetric(float64(size), "bytes/scrape")
	b.ReportMetric(held, "heap-bytes-held")
	runtime.KeepAlive(m)
	f := parseMetrics(b, string(mustRender(b, m)))
	if _, n := find(f, "vault_salesforce_rotation_state", nil); n != 1000 {
		b.Fatalf("%d rotation states, want 1000", n)
	}
}

func mustRender(t testing.TB, m *metrics) []byte {
	t.Helper()
	body, err := m.render()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// BenchmarkMetricsRecord: what recording adds to a mint and to a cache hit.
func BenchmarkMetricsRecord(b *testing.B) {
	m := newMetrics(time.Now)
	b.Run("cache-hit", func(b *testing.B) {
		hits := &m.cacheCounters("prod", "app").hit // as a cached token holds it
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				hits.Inc()
			}
		})
	})
	b.Run("mint", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.mintDone("prod", "app", authFlowJWTBearer, 80*time.Millisecond, nil)
				m.login("prod", "integration@example.com")
			}
		})
	})
}

// TestMetricsScrapeReadsNoStorage: the gauges come from memory, so a scrape costs no storage
// call (each is a gRPC round trip to Vault), however many connections the mount has.
func TestMetricsScrapeReadsNoStorage(t *testing.T) {
	e := newAppEnv(t)
	mustOK(t, e.read("creds/app"))
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	cs := &countingStorage{Storage: e.storage}
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "metrics", Storage: cs})
	if err != nil || resp.IsError() {
		t.Fatalf("metrics: %v %v", err, resp)
	}
	if n := cs.ops.Load(); n != 0 {
		t.Fatalf("a scrape made %d storage calls, want 0", n)
	}
	if _, n := find(parseMetrics(t, string(resp.Data[logical.HTTPRawBody].([]byte))), "vault_salesforce_rotation_state", map[string]string{"state": "verifying"}); n != 1 {
		t.Fatal("the scrape does not show the rotation in flight")
	}
}

// BenchmarkMetricsHeapPerRole: the heap the metrics hold per role that has minted and been
// read from the cache (make bench's 10,000-role RSS check is the end-to-end figure). With a
// prometheus CounterVec child per series it was about 2,300 bytes a role.
func BenchmarkMetricsHeapPerRole(b *testing.B) {
	const roles = 10000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := newMetrics(time.Now)
		for i := range roles {
			c, r := fmt.Sprintf("conn-%04d", i/10), fmt.Sprintf("role-%05d", i)
			m.mintDone(c, r, authFlowJWTBearer, time.Millisecond, nil)
			m.cacheCounters(c, r).miss.Inc()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(m)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/roles, "heap-bytes/role")
	}
}
