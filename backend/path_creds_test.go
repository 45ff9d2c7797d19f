package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

func TestCredsSharedReturnsWorkingTokenWithoutLease(t *testing.T) {
	e := newAppEnv(t)
	resp := mustOK(t, e.read("creds/app"))
	if resp.Secret != nil {
		t.Fatal("shared mode must not create a lease")
	}
	tok := resp.Data["access_token"].(string)
	if !e.emu.TokenActive(tok) {
		t.Fatal("the emulator does not know the token")
	}
	if !strings.HasPrefix(tok, e.seed.Org.ID[:15]+"!") {
		t.Errorf("token %q does not look like a Salesforce token", tok[:20])
	}
	for _, k := range []string{"instance_url", "id", "token_type", "scope", "username", "issued_at", "expires_at", "ttl", "key_version"} {
		if _, ok := resp.Data[k]; !ok {
			t.Errorf("creds response lacks %s", k)
		}
	}
	if resp.Data["ttl"].(int64) != int64((2 * time.Hour).Seconds()) {
		t.Errorf("ttl = %v, want the session timeout", resp.Data["ttl"])
	}
	if resp.Data["key_version"] != 1 || resp.Data["username"] != e.seed.User.Username {
		t.Errorf("key_version/username: %v %v", resp.Data["key_version"], resp.Data["username"])
	}
}

func TestCredsSharedReusesTokenUntilTTLLeft(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"ttl": "15m", "session_timeout": "1h"})
	first := e.read("creds/app").Data["access_token"]
	e.clock.Advance(40 * time.Minute) // 20 minutes left: still more than ttl
	if got := e.read("creds/app").Data["access_token"]; got != first {
		t.Fatal("a token with more than ttl left was replaced")
	}
	e.clock.Advance(10 * time.Minute) // 10 minutes left: less than ttl
	resp := e.read("creds/app")
	if resp.Data["access_token"] == first {
		t.Fatal("a token with less than ttl left was handed out")
	}
	if resp.Data["ttl"].(int64) < int64((15 * time.Minute).Seconds()) {
		t.Errorf("reader got ttl %v, less than the role's ttl", resp.Data["ttl"])
	}
	if c := e.emu.Counters(); c.TokensIssued != 2 {
		t.Errorf("tokens issued = %d, want 2", c.TokensIssued)
	}
}

func TestCredsStampedeMakesOneTokenRequest(t *testing.T) {
	e := newTestEnv(t, func(c *emulator.Config) {}) // no latency: the race is tightest
	e.createConnection("prod", nil)
	e.createRole("app", "prod", nil)
	e.emu.ResetCounters()
	e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultLatency, Latency: 200 * time.Millisecond})
	const readers = 100
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Go(func() {
			resp, err := e.do(logical.ReadOperation, "creds/app", nil)
			if err == nil && resp.IsError() {
				err = resp.Error()
			}
			if err == nil {
				tokens[i] = resp.Data["access_token"].(string)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reader %d failed: %v", i, err)
		}
		if tokens[i] != tokens[0] {
			t.Fatalf("reader %d got a different token", i)
		}
	}
	if c := e.emu.Counters(); c.TokenRequests != 1 {
		t.Fatalf("%d concurrent cold readers caused %d token requests, want 1", readers, c.TokenRequests)
	}
}

func TestCredsPerLeaseMintsAndRevokes(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease", "ttl": "10m", "max_ttl": "30m", "session_timeout": "20m"})
	a := mustOK(t, e.read("creds/app"))
	b := mustOK(t, e.read("creds/app"))
	if a.Data["access_token"] == b.Data["access_token"] {
		t.Fatal("per_lease must mint a fresh token per read")
	}
	if a.Secret == nil || a.Secret.TTL != 10*time.Minute || a.Secret.MaxTTL != 20*time.Minute {
		t.Fatalf("lease: %+v (want TTL 10m, MaxTTL capped at session_timeout 20m)", a.Secret)
	}
	tok := a.Data["access_token"].(string)
	revoke := func() (*logical.Response, error) {
		return e.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.RevokeOperation, Storage: e.storage, Secret: a.Secret, Data: a.Data,
		})
	}
	if _, err := revoke(); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if e.emu.TokenActive(tok) {
		t.Fatal("the token is still active at Salesforce after lease revocation")
	}
	if _, err := revoke(); err != nil {
		t.Fatalf("revoking an already revoked token must succeed (idempotent): %v", err)
	}
	if !e.emu.TokenActive(b.Data["access_token"].(string)) {
		t.Fatal("revoking one lease revoked another reader's token")
	}
}

func TestCredsPerLeaseRenewNeverPastSession(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease", "ttl": "15m", "session_timeout": "20m"})
	a := mustOK(t, e.read("creds/app"))
	e.clock.Advance(10 * time.Minute)
	renew := func() (*logical.Response, error) {
		return e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.storage, Secret: a.Secret, Data: a.Data})
	}
	resp, err := renew()
	if err != nil || resp.IsError() {
		t.Fatalf("renew: %v %v", err, resp)
	}
	if resp.Secret.TTL != 10*time.Minute {
		t.Errorf("renewed TTL = %v, want the 10m left of the session", resp.Secret.TTL)
	}
	e.clock.Advance(11 * time.Minute)
	if resp, _ := renew(); resp == nil || !resp.IsError() {
		t.Error("renewing past the session timeout must fail")
	}
}

func TestRevokeDoesNotBlockUnmount(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease"})
	a := mustOK(t, e.read("creds/app"))
	e.emu.AddFault(emulator.Fault{Endpoint: "revoke", Kind: emulator.FaultStatus, Status: 503})
	req := &logical.Request{Operation: logical.RevokeOperation, Storage: e.storage, Secret: a.Secret, Data: a.Data}
	if _, err := e.b.HandleRequest(context.Background(), req); err == nil {
		t.Fatal("a failed revoke must be reported so Vault retries it")
	}
	e.sys.TaintedVal = true // the mount is being disabled
	if _, err := e.b.HandleRequest(context.Background(), req); err != nil {
		t.Fatalf("a failed revoke during unmount must let the lease go: %v", err)
	}
}

func TestCredsSalesforceRefusalsAre400WithHints(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *testEnv)
		want  []string
	}{
		{"not pre-authorised", func(e *testEnv) {
			e.emu.AddUser(emulator.User{OrgID: e.seed.Org.ID, Username: "other@example.com"})
			e.createRole("app", "prod", map[string]any{"username": "other@example.com"})
		}, []string{"invalid_app_access", "permission set"}},
		{"unknown user", func(e *testEnv) {
			e.createRole("app", "prod", map[string]any{"username": "ghost@example.com"})
		}, []string{"invalid_grant", "user hasn't approved this consumer", "pre-authorised"}},
		{"wrong certificate", func(e *testEnv) {
			_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, "")
			e.createRole("app", "prod", nil)
		}, []string{"invalid assertion", "Use digital signatures"}},
		{"unknown consumer key", func(e *testEnv) {
			mustOK(e.t, e.write("connections/prod", map[string]any{"consumer_key": "3MVGunknown"}))
			e.createRole("app", "prod", nil)
		}, []string{"invalid_client_id", "consumer_key"}},
		{"wrong audience", func(e *testEnv) {
			// Set at create: a change of audience on an existing connection is a re-key.
			mustOK(e.t, e.del("connections/prod"))
			e.createConnection("prod", map[string]any{"audience": "https://test.salesforce.com"})
			e.createRole("app", "prod", nil)
		}, []string{"audience is invalid", "audience"}},
		{"inactive user", seedUserWith(func(u *emulator.User) { u.Inactive = true }), []string{"inactive_user"}},
		{"locked org", func(e *testEnv) {
			o := e.seed.Org
			o.Locked = true
			e.emu.AddOrg(o)
			e.createRole("app", "prod", nil)
		}, []string{"inactive_org"}},
		{"ip restricted", seedUserWith(func(u *emulator.User) { u.IPRestricted = true }), []string{"ip restricted", "IP"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.createConnection("prod", nil)
			tc.setup(e)
			resp, err := e.do(logical.ReadOperation, "creds/app", nil)
			if err != nil {
				t.Fatalf("a Salesforce refusal must be a 400, got error %v", err)
			}
			mustErr(t, resp, tc.want...)
			if last := e.read("roles/app").Data["last_error"].(string); last == "" {
				t.Error("role usage did not record last_error")
			}
		})
	}
}

// seedUserWith is a setup that changes the seed user (re-added to the emulator) and creates
// role app for it.
func seedUserWith(change func(u *emulator.User)) func(e *testEnv) {
	return func(e *testEnv) {
		u := e.seed.User
		change(&u)
		e.emu.AddUser(u)
		e.createRole("app", "prod", nil)
	}
}

func TestCredsRateLimitedLoginIs400(t *testing.T) {
	e := newTestEnv(t, func(c *emulator.Config) { c.LoginRateLimit = 1 })
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease"})
	mustOK(t, e.read("creds/app"))
	resp, err := e.do(logical.ReadOperation, "creds/app", nil)
	if err != nil {
		t.Fatal(err)
	}
	mustErr(t, resp, "rate_limit_exceeded", "token_mode=shared")
}

func TestCredsOutagesAre502AfterRetries(t *testing.T) {
	cases := []struct {
		name     string
		fault    emulator.Fault
		attempts int
	}{
		{"503", emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 503}, 3},
		{"500", emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 500}, 3},
		{"429", emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 429}, 3},
		{"reset", emulator.Fault{Endpoint: "token", Kind: emulator.FaultReset}, 3},
		{"malformed", emulator.Fault{Endpoint: "token", Kind: emulator.FaultMalformed}, 3},
		// Not retried: Salesforce issued a session; it is revoked instead of left behind.
		{"wrong instance_url", emulator.Fault{Endpoint: "token", Kind: emulator.FaultWrongInstanceURL}, 1},
		{"hang", emulator.Fault{Endpoint: "token", Kind: emulator.FaultHang, Latency: 10 * time.Second}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newAppEnv(t)
			e.emu.AddFault(tc.fault)
			start := time.Now()
			_, err := e.do(logical.ReadOperation, "creds/app", nil)
			elapsed := time.Since(start)
			coded, ok := err.(logical.HTTPCodedError)
			if !ok || coded.Code() != http.StatusBadGateway {
				t.Fatalf("want a 502, got %v", err)
			}
			if elapsed > e.b.retry.Budget+time.Second {
				t.Errorf("a cold read took %v, beyond the retry budget %v", elapsed, e.b.retry.Budget)
			}
			if tc.attempts > 0 && e.emu.Counters().TokenRequests != tc.attempts {
				t.Errorf("token requests = %d, want %d", e.emu.Counters().TokenRequests, tc.attempts)
			}
			if c := e.emu.Counters(); c.TokensIssued != c.Revocations {
				t.Errorf("%d sessions issued but %d revoked: a token the plugin could not hand out was left alive", c.TokensIssued, c.Revocations)
			}
		})
	}
}

func TestCredsCachedTokenSurvivesOutage(t *testing.T) {
	e := newAppEnv(t)
	tok := mustOK(t, e.read("creds/app")).Data["access_token"]
	e.emu.AddFault(emulator.Fault{Endpoint: "*", Kind: emulator.FaultStatus, Status: 503})
	for i := 0; i < 5; i++ {
		if got := mustOK(t, e.read("creds/app")).Data["access_token"]; got != tok {
			t.Fatal("cached token not served during an outage")
		}
	}
}

func TestCredsTransientFailureRecovers(t *testing.T) {
	e := newAppEnv(t)
	e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 503, Count: 2})
	mustOK(t, e.read("creds/app"))
	if n := e.emu.Counters().TokenRequests; n != 3 {
		t.Errorf("token requests = %d, want 3 (two 503s retried)", n)
	}
}

func TestCredsUnknownRoleAndBoundCIDRs(t *testing.T) {
	e := newTestEnv(t)
	mustErr(t, e.read("creds/nope"), "unknown role")
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"bound_cidrs": "10.0.0.0/8"})
	_, err := e.do(logical.ReadOperation, "creds/app", nil) // from 127.0.0.1
	if !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("want permission denied from outside bound_cidrs, got %v", err)
	}
	mustOK(t, e.write("roles/app", map[string]any{"bound_cidrs": "127.0.0.0/8"}))
	mustOK(t, e.read("creds/app"))
}

func TestRoleResetRevokesSharedToken(t *testing.T) {
	e := newAppEnv(t)
	tok := mustOK(t, e.read("creds/app")).Data["access_token"].(string)
	resp := mustOK(t, e.write("roles/app/reset", nil))
	if resp.Data["revoked"] != true || e.emu.TokenActive(tok) {
		t.Fatal("reset did not revoke the shared token")
	}
	if got := mustOK(t, e.read("creds/app")).Data["access_token"]; got == tok {
		t.Fatal("the next read after reset returned the revoked token")
	}
}

func TestConsumerKeyChangeKeepsCachedToken(t *testing.T) {
	e := newAppEnv(t)
	tok := mustOK(t, e.read("creds/app")).Data["access_token"]
	mustOK(t, e.write("connections/prod", map[string]any{"consumer_key": "3MVGrotatedkey"}))
	if got := mustOK(t, e.read("creds/app")).Data["access_token"]; got != tok {
		t.Fatal("changing the consumer key dropped the cached token")
	}
}
