package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// TestMetricsAndEvents: the metrics path, scraped from a real Vault the way a Prometheus job
// does (GET /v1/<mount>/metrics with a Vault token), shows a mint and a manual rotation, parsed
// with Prometheus's own text parser. A token whose policy does not grant the path gets 403;
// the bootstrap metrics policy reads it and nothing else. Events: Vault Community Edition
// takes plugin events and delivers them nowhere (subscribing is Enterprise-only), so the
// rotation succeeds, no error is returned, and the plugin's debug line about each event is in
// the log.
func TestMetricsAndEvents(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	v := e.Vault
	e.Ready(t, v, "prod", "app", nil)
	ReadCreds(t, v.Client, "app")
	ReadCreds(t, v.Client, "app") // from the cache

	v.Write(t, Mount+"/connections/prod/rotate", nil) // deploy=manual: waits for the upload
	f := scrapeMetrics(t, v.Client)
	requireSample(t, f, "vault_salesforce_tokens_minted_total", map[string]string{"connection": "prod", "role": "app", "result": "success", "error_code": ""}, 1)
	requireSample(t, f, "vault_salesforce_token_cache_requests_total", map[string]string{"role": "app", "result": "hit"}, 1)
	requireSample(t, f, "vault_salesforce_rotation_state", map[string]string{"kind": "key", "connection": "prod", "state": "verifying"}, 1)
	if got := metricValue(t, f, "vault_salesforce_logins_last_hour", map[string]string{"connection": "prod", "username": e.Emu.Username}); got < 1 {
		t.Errorf("logins of %s in the last hour: %v, want at least the mint", e.Emu.Username, got)
	}
	if got := metricValue(t, f, "vault_salesforce_certificate_expiry_seconds", map[string]string{"connection": "prod"}); got < 24*3600 {
		t.Errorf("certificate expiry in %v s: the new connection's certificate should have a long life", got)
	}

	v.Write(t, Mount+"/connections/prod/promote", map[string]any{"force": true})
	f = scrapeMetrics(t, v.Client)
	requireSample(t, f, "vault_salesforce_rotation_state", map[string]string{"kind": "key", "connection": "prod", "state": "idle"}, 1)

	// Events: the rotation above succeeded; the plugin logged each event it handed to Vault
	// (or, on a Vault without event support, the one line saying it sends none).
	v.WaitForLog(t, 30*time.Second, "sent event", "salesforce/rotation-started")
	v.WaitForLog(t, 30*time.Second, "sent event", "salesforce/rotation-completed")
	requireEventsUnsubscribable(t, v)

	// ACL: the app's policy has no metrics rule (403); the metrics policy reads metrics only.
	for _, name := range []string{"app", "metrics"} {
		b, err := os.ReadFile(filepath.Join(RepoRoot(t), "bootstrap", "policies", name+".hcl"))
		if err != nil {
			t.Fatal(err)
		}
		v.Write(t, "sys/policies/acl/salesforce-"+name, map[string]any{"policy": string(b)})
	}
	app := v.NewClient(t, createToken(t, v, "salesforce-app"))
	if _, err := app.Logical().ReadRawWithContext(context.Background(), Mount+"/metrics"); StatusCode(err) != http.StatusForbidden {
		t.Fatalf("the app policy reading metrics: %v, want 403", err)
	}
	scraper := v.NewClient(t, createToken(t, v, "salesforce-metrics"))
	scrapeMetrics(t, scraper)
	if _, err := scraper.Logical().Read(Mount + "/creds/app"); StatusCode(err) != http.StatusForbidden {
		t.Fatalf("the metrics policy reading creds: %v, want 403", err)
	}
	if _, err := scraper.Logical().Read(Mount + "/connections/prod"); StatusCode(err) != http.StatusForbidden {
		t.Fatalf("the metrics policy reading a connection: %v, want 403", err)
	}
	if rss, err := ProcStatusKB(v.PluginPID(t), "VmRSS"); err == nil {
		t.Logf("plugin RSS after mints, a rotation and scrapes: %d kB", rss)
	}
}

func createToken(t *testing.T, v *Vault, policy string) string {
	t.Helper()
	s, err := v.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}, NoDefaultPolicy: true, TTL: "1h"})
	if err != nil || s == nil || s.Auth == nil {
		t.Fatalf("creating a token with policy %s: %v", policy, err)
	}
	return s.Auth.ClientToken
}

// scrapeMetrics GETs the metrics path as Prometheus does and parses the body with
// Prometheus's text parser.
func scrapeMetrics(t *testing.T, c *api.Client) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Logical().ReadRawWithContext(context.Background(), Mount+"/metrics")
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", Mount, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("metrics Content-Type %q, want Prometheus text 0.0.4", ct)
	}
	var p expfmt.TextParser
	f, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse as Prometheus text: %v", err)
	}
	return f
}

// metricValue is the value of the one series of name whose labels include want.
func metricValue(t *testing.T, f map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	var found []float64
	if fam := f[name]; fam != nil {
	next:
		for _, m := range fam.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			for k, w := range want {
				if got[k] != w {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				found = append(found, m.Counter.GetValue())
			case m.Gauge != nil:
				found = append(found, m.Gauge.GetValue())
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series match, want 1", name, want, len(found))
	}
	return found[0]
}

func requireSample(t *testing.T, f map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	if got := metricValue(t, f, name, labels); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// requireEventsUnsubscribable checks that this Vault (Community Edition) offers no event
// subscription: its subscribe endpoint is a stub, so an event can be received only on Vault
// Enterprise (vault events subscribe).
func requireEventsUnsubscribable(t *testing.T, v *Vault) {
	t.Helper()
	req := v.Client.NewRequest(http.MethodGet, "/v1/sys/events/subscribe/salesforce/*")
	req.Params.Set("json", "true")
	resp, err := v.Client.RawRequestWithContext(context.Background(), req) //nolint:staticcheck // the raw status is the point
	if resp != nil {
		defer resp.Body.Close()
	}
	status := StatusCode(err)
	if resp != nil && err == nil {
		status = resp.StatusCode
	}
	t.Logf("GET sys/events/subscribe on this Vault: %d", status)
	if status == http.StatusSwitchingProtocols || status == http.StatusOK {
		t.Fatalf("this Vault answers event subscriptions (%d): the test's premise (Community Edition) is wrong; receive the events instead", status)
	}
}
