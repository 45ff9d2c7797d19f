package backend

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

const usagePath = "connections/prod/usage"

// newUsageEnv is connection prod logging in as the demo deployer, who holds Manage Users (so
// it reads the integration user's login history), and role app for the integration user, who
// has logged in once to mint.
func newUsageEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername, emulator.PermManageUsers); err != nil {
		t.Fatal(err)
	}
	e.createConnection("prod", map[string]any{"deploy_username": emulator.DemoDeployUsername})
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease"})
	mustOK(t, e.read("creds/app"))
	return e
}

func TestUsageFiguresMatchSalesforce(t *testing.T) {
	e := newUsageEnv(t)
	resp := mustOK(t, e.read(usagePath))
	d := resp.Data
	api := d["daily_api_requests"].(map[string]any)
	used := e.emu.APIRequestsUsed("")
	if api["max"] != 15000 || api["used"] != used || api["remaining"] != 15000-used || used == 0 {
		t.Fatalf("daily_api_requests %v, the emulator counts %d used of 15000", api, used)
	}
	if d["cached"] != false || d["fetched_at"] != formatTime(e.clock.Now()) || d["connection"] != "prod" {
		t.Fatalf("answer %v", d)
	}
	if u := d["users"].([]string); len(u) != 1 || u[0] != e.seed.User.Username {
		t.Fatalf("users %v, want the role's username", u)
	}
	byUser := map[string]int{}
	for _, row := range d["login_history"].([]map[string]any) {
		byUser[row["username"].(string)]++
		if row["status"] != "Success" || row["source_ip"] != "127.0.0.1" || row["application"] == "" ||
			!strings.HasPrefix(row["tls_protocol"].(string), "TLS 1.") || row["login_time"] == "" || row["user_id"] == "" {
			t.Fatalf("login row %v", row)
		}
	}
	// The integration user's mint, and the usage login itself (the connection's own user).
	if byUser[e.seed.User.Username] != 1 || byUser[emulator.DemoDeployUsername] != 1 || len(byUser) != 2 {
		t.Fatalf("login history by user %v", byUser)
	}
	sessions := e.emu.SessionTokens(emulator.DemoDeployUsername)
	if len(sessions) != 1 {
		t.Fatalf("%d usage logins, want 1", len(sessions))
	}
	for tok, revoked := range sessions {
		if !revoked {
			t.Fatal("the usage login's session was left active")
		}
		scrape := e.scrapeText()
		e.mu.Lock()
		out := strings.Join(e.responses, "\n") + e.logs.String() + scrape
		e.mu.Unlock()
		if strings.Contains(out, tok) || strings.Contains(out, tok[16:]) {
			t.Fatal("the usage login's session token appears in a response, the log or the metrics")
		}
	}
}

func TestUsageIsCachedForAMinute(t *testing.T) {
	e := newUsageEnv(t)
	cases := []struct {
		name    string
		advance time.Duration
		cached  bool
	}{
		{"first read fetches", 0, false},
		{"30 s later: from memory", 30 * time.Second, true},
		{"59 s after the fetch: from memory", 29 * time.Second, true},
		{"61 s after the fetch: fetches again", 2 * time.Second, false},
		{"at once again: from memory", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.clock.Advance(c.advance)
			before := e.emu.Counters()
			d := mustOK(t, e.read(usagePath)).Data
			after := e.emu.Counters()
			calls := map[string]int{"token": after.TokenRequests - before.TokenRequests,
				"limits": after.Limits - before.Limits, "queries": after.Queries - before.Queries}
			want := map[string]int{"token": 1, "limits": 1, "queries": 2}
			if c.cached {
				want = map[string]int{"token": 0, "limits": 0, "queries": 0}
			}
			for k, n := range want {
				if calls[k] != n {
					t.Fatalf("Salesforce calls %v, want %v", calls, want)
				}
			}
			if d["cached"] != c.cached {
				t.Fatalf("cached=%v, want %v", d["cached"], c.cached)
			}
		})
	}
}

// TestUsageIsDroppedByAConnectionWrite: a connection written (re-pointed, say) never answers
// with figures fetched before the write, even inside the minute.
func TestUsageIsDroppedByAConnectionWrite(t *testing.T) {
	e := newUsageEnv(t)
	mustOK(t, e.read(usagePath))
	mustOK(t, e.write("connections/prod", map[string]any{"allowed_roles": []string{"app"}}))
	before := e.emu.Counters()
	d := mustOK(t, e.read(usagePath)).Data
	if d["cached"] != false || e.emu.Counters().Limits != before.Limits+1 {
		t.Fatalf("after a connection write: cached=%v, %d limits calls", d["cached"], e.emu.Counters().Limits-before.Limits)
	}
	// A fetch that began before a write is served to its readers but not kept.
	gen := e.b.orgUsage.generation("prod")
	e.b.orgUsage.forget("prod")
	if e.b.orgUsage.put("prod", gen, &orgUsage{fetchedAt: e.clock.Now()}) || e.b.orgUsage.get("prod") != nil {
		t.Fatal("an answer fetched before the connection's write was kept")
	}
}

func TestUsageConcurrentReadersShareOneFetch(t *testing.T) {
	e := newUsageEnv(t)
	// Slow /limits so every reader arrives while the first fetch is in flight.
	e.emu.AddFault(emulator.Fault{Endpoint: "limits", Kind: emulator.FaultLatency, Latency: 300 * time.Millisecond})
	before := e.emu.Counters()
	var wg sync.WaitGroup
	answers := make([]*logical.Response, 8)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], _ = e.do(logical.ReadOperation, usagePath, nil)
		}()
	}
	wg.Wait()
	after := e.emu.Counters()
	if n := after.Limits - before.Limits; n != 1 || after.TokenRequests-before.TokenRequests != 1 {
		t.Fatalf("8 concurrent readers made %d limits reads and %d logins, want 1 each", n, after.TokenRequests-before.TokenRequests)
	}
	for i, r := range answers {
		if r == nil || r.IsError() || r.Data["fetched_at"] != answers[0].Data["fetched_at"] {
			t.Fatalf("reader %d: %v", i, r)
		}
	}
}

func TestUsageMetrics(t *testing.T) {
	e := newUsageEnv(t)
	if _, n := find(parseMetrics(t, e.scrapeText()), "vault_salesforce_daily_api_requests_max", map[string]string{"connection": "prod"}); n != 0 {
		t.Fatal("a gauge before any usage read")
	}
	api := mustOK(t, e.read(usagePath)).Data["daily_api_requests"].(map[string]any)
	before := e.emu.Counters()
	fams := parseMetrics(t, e.scrapeText())
	if e.emu.Counters().Limits != before.Limits || e.emu.Counters().TokenRequests != before.TokenRequests {
		t.Fatal("a scrape called Salesforce")
	}
	for name, want := range map[string]int{"vault_salesforce_daily_api_requests_max": api["max"].(int),
		"vault_salesforce_daily_api_requests_remaining": api["remaining"].(int)} {
		if got := sample(t, fams, name, map[string]string{"connection": "prod"}); got != float64(want) {
			t.Fatalf("%s = %v, want %d", name, got, want)
		}
	}
	mustOK(t, e.del("roles/app"))
	mustOK(t, e.del("connections/prod"))
	if _, n := find(parseMetrics(t, e.scrapeText()), "vault_salesforce_daily_api_requests_max", map[string]string{"connection": "prod"}); n != 0 {
		t.Fatal("the gauge outlived its connection")
	}
}

func TestUsageFailures(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *testEnv)
		want   []string
		status int // 400 or 502
	}{
		{"no View Setup and Configuration", func(e *testEnv) {
			if err := e.emu.DenyViewSetup(emulator.DemoDeployUsername); err != nil {
				t.Fatal(err)
			}
		}, []string{"INSUFFICIENT_ACCESS", "View Setup and Configuration"}, 400},
		{"login refused", func(e *testEnv) {
			e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 400, Username: emulator.DemoDeployUsername})
		}, []string{"invalid_request"}, 400},
		{"no user to log in as", func(e *testEnv) {
			mustOK(t, e.write("connections/prod", map[string]any{"deploy_username": ""}))
		}, []string{"deploy_username (or verify_username)"}, 400},
		{"Salesforce unreachable", func(e *testEnv) {
			e.emu.AddFault(emulator.Fault{Endpoint: "limits", Kind: emulator.FaultStatus, Status: 503})
		}, []string{"503"}, http.StatusBadGateway},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newUsageEnv(t)
			c.setup(e)
			resp, err := e.do(logical.ReadOperation, usagePath, nil)
			if c.status == http.StatusBadGateway {
				wantBadGateway(t, resp, err, c.want...)
			} else {
				if err != nil {
					t.Fatalf("a refusal must be a 400: %v", err)
				}
				mustErr(t, resp, c.want...)
			}
			// A failure is rate-limited like an answer: no second call set within the minute.
			before := e.emu.Counters()
			_, _ = e.do(logical.ReadOperation, usagePath, nil)
			if after := e.emu.Counters(); after.TokenRequests != before.TokenRequests || after.Limits != before.Limits {
				t.Fatal("a second read within the minute called Salesforce again")
			}
			e.mu.Lock()
			out := strings.Join(e.responses, "\n") + e.logs.String()
			e.mu.Unlock()
			for tok := range e.emu.SessionTokens(emulator.DemoDeployUsername) {
				if strings.Contains(out, tok[16:]) {
					t.Fatal("a session token appears in a response or the log")
				}
			}
		})
	}
}

// On a client-credentials connection the login is the app's run-as user: its own rows show.
func TestUsageClientCredentials(t *testing.T) {
	e := newTestEnv(t)
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": e.seed.CCApp.ConsumerKey, "consumer_secret": e.seed.CCApp.ConsumerSecret})))
	mustOK(t, e.write("roles/cc", map[string]any{"connection": "cc", "token_mode": "per_lease"}))
	mustOK(t, e.read("creds/cc"))
	d := mustOK(t, e.read("connections/cc/usage")).Data
	rows := d["login_history"].([]map[string]any)
	if len(rows) != 2 {
		t.Fatalf("login history %v, want the mint and the usage login", rows)
	}
	for _, row := range rows {
		if id := row["user_id"].(string); id[:15] != emulator.DemoRunAsID || row["username"] != emulator.DemoRunAsUsername || row["status"] != "Success" || row["application"] != emulator.DemoCCAppName {
			t.Fatalf("row %v, want the run-as user's successful login to %s", row, emulator.DemoCCAppName)
		}
	}
	if api := d["daily_api_requests"].(map[string]any); api["used"] != e.emu.APIRequestsUsed("") {
		t.Fatalf("daily_api_requests %v", api)
	}
}

// wantBadGateway checks an answer is a 502 whose error says each of want.
func wantBadGateway(t *testing.T, resp *logical.Response, err error, want ...string) {
	t.Helper()
	var ce logical.HTTPCodedError
	if !errors.As(err, &ce) || ce.Code() != http.StatusBadGateway {
		t.Fatalf("want a 502, got %v %v", resp, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%q does not say %q", err, w)
		}
	}
}
