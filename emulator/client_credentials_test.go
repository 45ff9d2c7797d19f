package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ccFixture adds to the fixture an API Only run-as user and an
// admin-approved External Client App with the client credentials flow, the
// run-as user pre-authorised on it. The app also holds certA, so its keys
// work as a JWT iss.
type ccFixture struct {
	*fixture
	runAs User
	cc    App
}

func newCCFixture(t *testing.T, cfg Config) *ccFixture {
	t.Helper()
	f := newFixture(t, cfg)
	runAs := f.e.AddUser(User{Username: "runas@example.com", APIOnly: true, DisplayName: "Run As"})
	cc := f.e.AddApp(App{
		Name: "Vault_CC", Type: appTypeECA, CertificatePEM: certA,
		AdminApproved: true, PreAuthorizedUsers: []string{runAs.Username}, Scopes: []string{"Api"},
		ClientCredentialsEnabled: true, RunAsUsername: runAs.Username,
	})
	return &ccFixture{fixture: f, runAs: runAs, cc: cc}
}

func ccForm(key, secret string) url.Values {
	return url.Values{"grant_type": {grantTypeClientCredentials}, "client_id": {key}, "client_secret": {secret}}
}

// postCC sends a client credentials token request; edit, if set, adjusts it
// (Host header, Basic authentication) before it goes.
func (f *fixture) postCC(t *testing.T, form url.Values, edit func(*http.Request)) result {
	t.Helper()
	req, err := http.NewRequest("POST", f.e.URL()+"/services/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if edit != nil {
		edit(req)
	}
	return f.do(t, req)
}

// ccToken gets a token with a key and secret, failing the test otherwise.
func (f *fixture) ccToken(t *testing.T, key, secret string) string {
	t.Helper()
	r := f.postCC(t, ccForm(key, secret), nil)
	if r.status != 200 {
		t.Fatalf("client credentials with %s…: %d %s", key[:12], r.status, r.body)
	}
	return r.json(t)["access_token"].(string)
}

func withHost(h string) func(*http.Request) { return func(r *http.Request) { r.Host = h } }

func TestClientCredentialsSuccess(t *testing.T) {
	f := newCCFixture(t, Config{})
	basic := func(r *http.Request) { r.SetBasicAuth(f.cc.ConsumerKey, f.cc.ConsumerSecret) }
	for name, send := range map[string]func() result{
		"form":  func() result { return f.postCC(t, ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret), nil) },
		"basic": func() result { return f.postCC(t, url.Values{"grant_type": {"client_credentials"}}, basic) },
	} {
		t.Run(name, func(t *testing.T) {
			f.e.ResetCounters()
			r := send()
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json;charset=UTF-8" || !strings.Contains(r.header.Get("Cache-Control"), "no-store") {
				t.Errorf("headers %v", r.header)
			}
			m := r.json(t)
			tok, _ := m["access_token"].(string)
			wantID := f.e.URL() + "/id/" + f.org.ID + "/" + f.runAs.ID
			if !strings.HasPrefix(tok, f.org.ID[:15]+"!") || m["id"] != wantID || m["instance_url"] != f.e.URL() ||
				m["token_type"] != "Bearer" || m["scope"] != "api" {
				t.Errorf("response %v", m)
			}
			for _, absent := range []string{"expires_in", "refresh_token"} {
				if _, ok := m[absent]; ok {
					t.Errorf("%s must not be returned", absent)
				}
			}
			// issued_at and signature are always there for this flow; the
			// signature is keyed with the consumer secret the client sent.
			ms, err := strconv.ParseInt(m["issued_at"].(string), 10, 64)
			if err != nil || ms != f.clock.Now().UnixMilli() {
				t.Errorf("issued_at %v", m["issued_at"])
			}
			mac := hmac.New(sha256.New, []byte(f.cc.ConsumerSecret))
			mac.Write([]byte(wantID + m["issued_at"].(string)))
			if m["signature"] != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
				t.Errorf("signature %v", m["signature"])
			}
			// The token is the run-as user's: userinfo, identity and revoke take it.
			if u := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok); u.status != 200 || u.json(t)["preferred_username"] != f.runAs.Username {
				t.Errorf("userinfo %d %s", u.status, u.body)
			}
			if id := f.request(t, "GET", "/id/"+f.org.ID+"/"+f.runAs.ID, "", "", tok); id.status != 200 || id.json(t)["asserted_user"] != true {
				t.Errorf("identity %d %s", id.status, id.body)
			}
			if rv := f.request(t, "POST", "/services/oauth2/revoke", "application/x-www-form-urlencoded", "token="+url.QueryEscape(tok), ""); rv.status != 200 || f.e.TokenActive(tok) {
				t.Errorf("revoke %d %s", rv.status, rv.body)
			}
			c := f.e.Counters()
			if c.TokenRequests != 1 || c.ClientCredentialsRequests != 1 || c.TokensIssued != 1 ||
				c.TokenRequestsByUser[f.runAs.Username] != 1 || len(c.TokenErrors) != 0 {
				t.Errorf("counters %+v", c)
			}
		})
	}
	// JWT requests are not client credentials requests.
	f.e.ResetCounters()
	f.login(t, f.user.Username)
	if c := f.e.Counters(); c.ClientCredentialsRequests != 0 || c.TokenRequests != 1 {
		t.Errorf("JWT login counters %+v", c)
	}
}

func TestClientCredentialsSessionTimeout(t *testing.T) {
	f := newCCFixture(t, Config{})
	a := f.cc
	a.SessionTimeout = 10 * time.Minute
	f.e.AddApp(a)
	tok := f.ccToken(t, a.ConsumerKey, a.ConsumerSecret)
	f.clock.Advance(10 * time.Minute)
	if f.e.TokenActive(tok) {
		t.Error("the app's session timeout does not apply")
	}
}

func TestClientCredentialsErrors(t *testing.T) {
	type tc struct {
		name       string
		cfg        Config
		setup      func(f *ccFixture)
		form       func(f *ccFixture) url.Values // default: the app's key and secret
		edit       func(f *ccFixture, r *http.Request)
		code, desc string
	}
	set := func(change func(a *App)) func(f *ccFixture) {
		return func(f *ccFixture) {
			a := f.cc
			change(&a)
			f.e.AddApp(a)
		}
	}
	setRunAs := func(change func(u *User)) func(f *ccFixture) {
		return func(f *ccFixture) {
			u := f.runAs
			change(&u)
			f.e.AddUser(u)
		}
	}
	host := func(h string) func(f *ccFixture, r *http.Request) {
		return func(_ *ccFixture, r *http.Request) { r.Host = h }
	}
	const (
		domain = "request not supported on this domain"
		noUser = "no client credentials user enabled"
	)
	cases := []tc{
		{name: "login.salesforce.com", edit: host("login.salesforce.com"), code: "invalid_grant", desc: domain},
		{name: "test.salesforce.com with port", edit: host("test.salesforce.com:443"), code: "invalid_grant", desc: domain},
		{name: "login host in upper case", edit: host("LOGIN.Salesforce.COM"), code: "invalid_grant", desc: domain},
		{name: "configured login host", cfg: Config{LoginHosts: []string{"login.localhost"}}, edit: host("login.localhost:8443"),
			code: "invalid_grant", desc: domain},
		{name: "login host checked before the client", edit: host("login.salesforce.com"),
			form: func(f *ccFixture) url.Values { return ccForm("3MVG9unknown", "x") }, code: "invalid_grant", desc: domain},
		{name: "no client_id", form: func(f *ccFixture) url.Values { return url.Values{"grant_type": {"client_credentials"}} },
			code: "invalid_client_id", desc: "client identifier invalid"},
		{name: "unknown key", form: func(f *ccFixture) url.Values { return ccForm("3MVG9unknown", f.cc.ConsumerSecret) },
			code: "invalid_client_id", desc: "client identifier invalid"},
		{name: "malformed Basic header", form: func(f *ccFixture) url.Values { return url.Values{"grant_type": {"client_credentials"}} },
			edit: func(_ *ccFixture, r *http.Request) { r.Header.Set("Authorization", "Basic !!!") },
			code: "invalid_client_id", desc: "client identifier invalid"},
		{name: "app of an unknown org", setup: set(func(a *App) { a.OrgID = "00D000000000001AAA" }),
			code: "invalid_client_id", desc: "client identifier invalid"},
		{name: "ECA not installed", setup: set(func(a *App) { a.NotInstalled = true }),
			code: "invalid_client_id", desc: "External client app is not installed in this org"},
		{name: "wrong secret", form: func(f *ccFixture) url.Values { return ccForm(f.cc.ConsumerKey, "WRONG") },
			code: "invalid_client", desc: "invalid client credentials"},
		{name: "missing secret", form: func(f *ccFixture) url.Values { return ccForm(f.cc.ConsumerKey, "") },
			code: "invalid_client", desc: "invalid client credentials"},
		{name: "another app's secret", form: func(f *ccFixture) url.Values {
			other := f.e.AddApp(App{Name: "Other"})
			return ccForm(f.cc.ConsumerKey, other.ConsumerSecret)
		}, code: "invalid_client", desc: "invalid client credentials"},
		{name: "wrong secret in Basic header", form: func(f *ccFixture) url.Values { return url.Values{"grant_type": {"client_credentials"}} },
			edit: func(f *ccFixture, r *http.Request) { r.SetBasicAuth(f.cc.ConsumerKey, "WRONG") },
			code: "invalid_client", desc: "invalid client credentials"},
		{name: "flow not enabled", setup: set(func(a *App) { a.ClientCredentialsEnabled = false }), code: "invalid_grant", desc: noUser},
		{name: "no run-as user", setup: set(func(a *App) { a.RunAsUsername = "" }), code: "invalid_grant", desc: noUser},
		{name: "run-as user unknown", setup: set(func(a *App) { a.RunAsUsername = "ghost@example.com" }), code: "invalid_grant", desc: noUser},
		{name: "run-as user of another org", setup: func(f *ccFixture) {
			u := f.e.AddUser(User{OrgID: f.e.AddOrg(Org{Name: "Other"}).ID, Username: "elsewhere@example.com", APIOnly: true})
			set(func(a *App) { a.RunAsUsername, a.PreAuthorizedUsers = u.Username, []string{u.Username} })(f)
		}, code: "invalid_grant", desc: noUser},
		{name: "run-as user not API Only", setup: setRunAs(func(u *User) { u.APIOnly = false }), code: "invalid_grant", desc: noUser},
		{name: "run-as user inactive", setup: setRunAs(func(u *User) { u.Inactive = true }), code: "inactive_user", desc: "user is inactive"},
		{name: "org locked", setup: func(f *ccFixture) {
			o := f.org
			o.Locked = true
			f.e.AddOrg(o)
		}, code: "inactive_org", desc: "org is locked, closed, or suspended"},
		{name: "run-as user IP restricted", setup: setRunAs(func(u *User) { u.IPRestricted = true }),
			code: "invalid_grant", desc: "ip restricted or invalid login hours"},
		{name: "run-as user not pre-authorised", setup: set(func(a *App) { a.PreAuthorizedUsers = []string{"integration@example.com"} }),
			code: "invalid_app_access", desc: "user is not admin approved to access this app"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCCFixture(t, c.cfg)
			if c.setup != nil {
				c.setup(f)
			}
			form := ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret)
			if c.form != nil {
				form = c.form(f)
			}
			var edit func(*http.Request)
			if c.edit != nil {
				edit = func(r *http.Request) { c.edit(f, r) }
			}
			wantOAuthError(t, f.postCC(t, form, edit), c.code, c.desc)
			if got := f.e.Counters(); got.TokenErrors[c.code] != 1 || got.TokensIssued != 0 || got.ClientCredentialsRequests != 1 {
				t.Errorf("counters %+v", got)
			}
		})
	}
}

func TestClientCredentialsAccepted(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		setup func(f *ccFixture)
		send  func(t *testing.T, f *ccFixture) result
	}{
		{name: "self-authorize app, no pre-authorisation", setup: func(f *ccFixture) {
			a := f.cc
			a.AdminApproved, a.PreAuthorizedUsers = false, nil
			f.e.AddApp(a)
		}},
		{name: "connected app", setup: func(f *ccFixture) {
			a := f.cc
			a.Type = appTypeConnected
			f.e.AddApp(a)
		}},
		{name: "My Domain host", send: func(t *testing.T, f *ccFixture) result {
			return f.postCC(t, ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret), withHost("acme.my.salesforce.com"))
		}},
		{name: "a login host whose name only starts like one", send: func(t *testing.T, f *ccFixture) result {
			return f.postCC(t, ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret), withHost("login.salesforce.com.example.com"))
		}},
		{name: "no login hosts configured", cfg: Config{LoginHosts: []string{}}, send: func(t *testing.T, f *ccFixture) result {
			return f.postCC(t, ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret), withHost("login.salesforce.com"))
		}},
		{name: "Basic header wins over form client_id", send: func(t *testing.T, f *ccFixture) result {
			return f.postCC(t, ccForm("3MVG9unknown", "x"), func(r *http.Request) { r.SetBasicAuth(f.cc.ConsumerKey, f.cc.ConsumerSecret) })
		}},
		{name: "parameters in the query string", send: func(t *testing.T, f *ccFixture) result {
			return f.request(t, "POST", "/services/oauth2/token?"+ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret).Encode(), "", "", "")
		}},
		{name: "run-as username in other case", setup: func(f *ccFixture) {
			a := f.cc
			a.RunAsUsername = "RunAs@Example.com"
			f.e.AddApp(a)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCCFixture(t, c.cfg)
			if c.setup != nil {
				c.setup(f)
			}
			var r result
			if c.send != nil {
				r = c.send(t, f)
			} else {
				r = f.postCC(t, ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret), nil)
			}
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
}

// A client credentials token request is a login of the run-as user.
func TestClientCredentialsLoginRateLimit(t *testing.T) {
	f := newCCFixture(t, Config{LoginRateLimit: 2})
	for i := 0; i < 2; i++ {
		f.ccToken(t, f.cc.ConsumerKey, f.cc.ConsumerSecret)
	}
	wantOAuthError(t, f.postCC(t, ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret), nil), "rate_limit_exceeded", "number of logins exceeded")
	// JWT logins of the run-as user share the budget; other users have their own.
	c := f.claims()
	c["iss"], c["sub"] = f.cc.ConsumerKey, f.runAs.Username
	wantOAuthError(t, f.postToken(t, jwtForm(sign(t, keyA, c))), "rate_limit_exceeded", "number of logins exceeded")
	f.login(t, f.user.Username)
	f.clock.Advance(time.Hour)
	f.ccToken(t, f.cc.ConsumerKey, f.cc.ConsumerSecret)
}

func TestClientCredentialsFaults(t *testing.T) {
	f := newCCFixture(t, Config{})
	form := ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret)

	// A fault for the run-as user hits client credentials requests only.
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultStatus, Status: 500, Username: f.runAs.Username, Count: 1})
	f.login(t, f.user.Username)
	if r := f.postCC(t, form, nil); r.status != 500 || !strings.Contains(string(r.body), "unknown_error") {
		t.Errorf("targeted fault: %d %s", r.status, r.body)
	}
	// A fault for a JWT subject does not hit them.
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultStatus, Status: 500, Username: f.user.Username})
	f.ccToken(t, f.cc.ConsumerKey, f.cc.ConsumerSecret)
	f.e.ClearFaults()

	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultWrongInstanceURL, Count: 1})
	if m := f.postCC(t, form, nil).json(t); !strings.HasPrefix(m["instance_url"].(string), "http://") {
		t.Errorf("wrong_instance_url: %v", m)
	}
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultMalformed, Count: 1})
	if r := f.postCC(t, form, nil); r.status != 200 || strings.HasSuffix(string(r.body), "}") {
		t.Errorf("malformed: %d %s", r.status, r.body)
	}
	// A faulted request is counted but issues nothing.
	if c := f.e.Counters(); c.ClientCredentialsRequests != 4 || c.TokensIssued != 3 || c.TokenRequestsByUser[f.runAs.Username] != 4 {
		t.Errorf("counters %+v", c)
	}
}

func TestClientCredentialsGoAPI(t *testing.T) {
	f := newCCFixture(t, Config{})
	// Enable the flow on the JWT connected app, as an admin would in Setup.
	a, err := f.e.SetClientCredentials(f.app.ConsumerKey, true, "INTEGRATION@example.com")
	if err != nil || !a.ClientCredentialsEnabled || a.RunAsUsername != f.user.Username {
		t.Fatalf("SetClientCredentials: %+v %v", a, err)
	}
	// The integration user is not API Only yet.
	wantOAuthError(t, f.postCC(t, ccForm(a.ConsumerKey, a.ConsumerSecret), nil), "invalid_grant", "no client credentials user enabled")
	u := f.user
	u.APIOnly = true
	f.e.AddUser(u)
	f.ccToken(t, a.ConsumerKey, a.ConsumerSecret)

	other := f.e.AddUser(User{OrgID: f.e.AddOrg(Org{Name: "Other"}).ID, Username: "other@example.com", APIOnly: true})
	for name, call := range map[string]func() error{
		"unknown key":           func() error { _, err := f.e.SetClientCredentials("3MVG9nope", true, ""); return err },
		"run-as in another org": func() error { _, err := f.e.SetClientCredentials(f.cc.ConsumerKey, true, other.Username); return err },
		"unknown run-as": func() error {
			_, err := f.e.SetClientCredentials(f.cc.ConsumerKey, true, "ghost@example.com")
			return err
		},
		"unknown org":           func() error { _, err := f.e.SetAllowECAConsumerSecretREST("00D000000000000AAA", true); return err },
		"permissions of no-one": func() error { _, err := f.e.SetUserPermissions("ghost@example.com", PermViewClientSecret); return err },
	} {
		if call() == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if keys := f.e.AcceptedConsumerKeys("3MVG9nope"); keys != nil {
		t.Errorf("AcceptedConsumerKeys of an unknown key: %v", keys)
	}
	// Switching the flow off refuses the next request.
	if _, err := f.e.SetClientCredentials(f.cc.ConsumerKey, false, f.runAs.Username); err != nil {
		t.Fatal(err)
	}
	wantOAuthError(t, f.postCC(t, ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret), nil), "invalid_grant", "no client credentials user enabled")
}
