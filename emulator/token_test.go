package emulator

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenSuccessShape(t *testing.T) {
	f := newFixture(t, Config{})
	r := f.postToken(t, jwtForm(sign(t, keyA, f.claims())))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type %q", ct)
	}
	m := r.json(t)
	tok, _ := m["access_token"].(string)
	if !strings.HasPrefix(tok, f.org.ID[:15]+"!") || len(tok) < 60 {
		t.Errorf("access_token %q is not <org15>!<opaque>", tok)
	}
	wantID := f.e.URL() + "/id/" + f.org.ID + "/" + f.user.ID
	if m["id"] != wantID || m["instance_url"] != f.e.URL() || m["token_type"] != "Bearer" {
		t.Errorf("id/instance_url/token_type: %v", m)
	}
	if m["scope"] != "api refresh_token" {
		t.Errorf("scope %q", m["scope"])
	}
	for _, absent := range []string{"expires_in", "refresh_token", "issued_at", "signature"} {
		if _, ok := m[absent]; ok {
			t.Errorf("%s must not be returned", absent)
		}
	}
	if len(f.org.ID) != 18 || len(f.user.ID) != 18 || !strings.HasPrefix(f.org.ID, "00D") || !strings.HasPrefix(f.user.ID, "005") {
		t.Errorf("ids %s %s", f.org.ID, f.user.ID)
	}
	if !f.e.TokenActive(tok) {
		t.Error("issued token not active")
	}
	// Every login mints a new token.
	r2 := f.postToken(t, jwtForm(sign(t, keyA, f.claims())))
	if r2.json(t)["access_token"] == tok {
		t.Error("second login returned the same token")
	}
	c := f.e.Counters()
	if c.TokenRequests != 2 || c.TokensIssued != 2 || c.TokenRequestsByUser[f.user.Username] != 2 {
		t.Errorf("counters %+v", c)
	}
}

func TestTokenIssuedAtAndSignature(t *testing.T) {
	f := newFixture(t, Config{IncludeIssuedAtAndSignature: true})
	m := f.postToken(t, jwtForm(sign(t, keyA, f.claims()))).json(t)
	ms, err := strconv.ParseInt(m["issued_at"].(string), 10, 64)
	if err != nil || ms != f.clock.Now().UnixMilli() {
		t.Errorf("issued_at %v, want %d", m["issued_at"], f.clock.Now().UnixMilli())
	}
	if sig, _ := m["signature"].(string); len(sig) != 44 {
		t.Errorf("signature %q is not base64 HMAC-SHA256", sig)
	}
}

func TestTokenErrors(t *testing.T) {
	type tc struct {
		name       string
		setup      func(f *fixture)
		claims     func(f *fixture, c jwt.MapClaims)
		assertion  func(t *testing.T, f *fixture) string // overrides signing
		send       func(t *testing.T, f *fixture, assertion string) result
		code, desc string
	}
	cases := []tc{
		{name: "wrong grant_type",
			send: func(t *testing.T, f *fixture, a string) result {
				return f.postToken(t, url.Values{"grant_type": {"password"}, "assertion": {a}})
			},
			code: "unsupported_grant_type", desc: "grant type not supported"},
		{name: "JSON body",
			send: func(t *testing.T, f *fixture, a string) result {
				b, _ := json.Marshal(map[string]string{"grant_type": grantTypeJWTBearer, "assertion": a})
				return f.request(t, "POST", "/services/oauth2/token", "application/json", string(b), "")
			},
			code: "unsupported_grant_type", desc: "grant type not supported"},
		{name: "GET", send: func(t *testing.T, f *fixture, a string) result {
			return f.request(t, "GET", "/services/oauth2/token?"+jwtForm(a).Encode(), "", "", "")
		}, code: "invalid_request", desc: "must use HTTP POST"},
		{name: "missing assertion",
			send: func(t *testing.T, f *fixture, a string) result {
				return f.postToken(t, url.Values{"grant_type": {grantTypeJWTBearer}})
			},
			code: "invalid_grant", desc: "invalid assertion"},
		{name: "not a JWT", assertion: func(t *testing.T, f *fixture) string { return "not.a-jwt" },
			code: "invalid_grant", desc: "invalid assertion"},
		{name: "HS256", assertion: func(t *testing.T, f *fixture) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims()).SignedString([]byte("secret"))
			return s
		}, code: "invalid_grant", desc: "invalid assertion"},
		{name: "alg none", assertion: func(t *testing.T, f *fixture) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, f.claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}, code: "invalid_grant", desc: "invalid assertion"},
		{name: "unknown iss", claims: func(f *fixture, c jwt.MapClaims) { c["iss"] = "3MVG9unknown" },
			code: "invalid_client_id", desc: "client identifier invalid"},
		{name: "missing iss", claims: func(f *fixture, c jwt.MapClaims) { delete(c, "iss") },
			code: "invalid_client_id", desc: "client identifier invalid"},
		{name: "ECA not installed", setup: func(f *fixture) {
			a := f.app
			a.Type, a.NotInstalled = appTypeECA, true
			f.e.AddApp(a)
		}, code: "invalid_client_id", desc: "External client app is not installed in this org"},
		{name: "wrong key", assertion: func(t *testing.T, f *fixture) string { return sign(t, keyB, f.claims()) },
			code: "invalid_grant", desc: "invalid assertion"},
		{name: "tampered payload", assertion: func(t *testing.T, f *fixture) string {
			parts := strings.Split(sign(t, keyA, f.claims()), ".")
			c := f.claims()
			c["sub"] = f.deployer.Username
			other := strings.Split(sign(t, keyB, c), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}, code: "invalid_grant", desc: "invalid assertion"},
		{name: "app without certificate", setup: func(f *fixture) {
			a := f.app
			a.CertificatePEM = ""
			f.e.AddApp(a)
		}, code: "invalid_grant", desc: "invalid assertion"},
		{name: "foreign audience", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "https://evil.force.com" },
			code: "invalid_grant", desc: "audience is invalid"},
		{name: "test audience on production", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "https://test.salesforce.com" },
			code: "invalid_grant", desc: "audience is invalid"},
		{name: "login audience on sandbox", setup: func(f *fixture) {
			o := f.org
			o.Sandbox = true
			f.e.AddOrg(o)
		}, code: "invalid_grant", desc: "audience is invalid"},
		{name: "missing audience", claims: func(f *fixture, c jwt.MapClaims) { delete(c, "aud") },
			code: "invalid_grant", desc: "audience is invalid"},
		{name: "two audiences", claims: func(f *fixture, c jwt.MapClaims) {
			c["aud"] = []string{"https://login.salesforce.com", "https://test.salesforce.com"}
		}, code: "invalid_grant", desc: "audience is invalid"},
		{name: "http audience", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "http://login.salesforce.com" },
			code: "invalid_grant", desc: "audience is invalid"},
		{name: "missing exp", claims: func(f *fixture, c jwt.MapClaims) { delete(c, "exp") },
			code: "invalid_grant", desc: "invalid assertion"},
		{name: "non-numeric exp", claims: func(f *fixture, c jwt.MapClaims) { c["exp"] = "soon" },
			code: "invalid_grant", desc: "invalid assertion"},
		{name: "expired exp", claims: func(f *fixture, c jwt.MapClaims) { c["exp"] = f.clock.Now().Add(-10 * time.Minute).Unix() },
			code: "invalid_grant", desc: "expired authorization code"},
		{name: "exp exactly at skew edge", claims: func(f *fixture, c jwt.MapClaims) { c["exp"] = f.clock.Now().Add(-3 * time.Minute).Unix() },
			code: "invalid_grant", desc: "expired authorization code"},
		{name: "unknown sub", claims: func(f *fixture, c jwt.MapClaims) { c["sub"] = "nobody@example.com" },
			code: "invalid_grant", desc: "user hasn't approved this consumer"},
		{name: "missing sub", claims: func(f *fixture, c jwt.MapClaims) { delete(c, "sub") },
			code: "invalid_grant", desc: "user hasn't approved this consumer"},
		{name: "user of another org", setup: func(f *fixture) {
			o := f.e.AddOrg(Org{Name: "Other"})
			f.e.AddUser(User{OrgID: o.ID, Username: "stranger@example.com"})
		}, claims: func(f *fixture, c jwt.MapClaims) { c["sub"] = "stranger@example.com" },
			code: "invalid_grant", desc: "user hasn't approved this consumer"},
		{name: "inactive user", setup: func(f *fixture) {
			u := f.user
			u.Inactive = true
			f.e.AddUser(u)
		}, code: "inactive_user", desc: "user is inactive"},
		{name: "locked org", setup: func(f *fixture) {
			o := f.org
			o.Locked = true
			f.e.AddOrg(o)
		}, code: "inactive_org", desc: "org is locked, closed, or suspended"},
		{name: "IP restricted", setup: func(f *fixture) {
			u := f.user
			u.IPRestricted = true
			f.e.AddUser(u)
		}, code: "invalid_grant", desc: "ip restricted or invalid login hours"},
		{name: "not pre-authorised", setup: func(f *fixture) {
			a := f.app
			a.PreAuthorizedUsers = []string{f.deployer.Username}
			f.e.AddApp(a)
		}, code: "invalid_app_access", desc: "user is not admin approved to access this app"},
		{name: "self-authorize app, user never approved", setup: func(f *fixture) {
			a := f.app
			a.AdminApproved, a.SelfAuthorizedUsers = false, []string{f.deployer.Username}
			f.e.AddApp(a)
		}, code: "invalid_grant", desc: "user hasn't approved this consumer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			if c.setup != nil {
				c.setup(f)
			}
			var assertion string
			if c.assertion != nil {
				assertion = c.assertion(t, f)
			} else {
				cl := f.claims()
				if c.claims != nil {
					c.claims(f, cl)
				}
				assertion = sign(t, keyA, cl)
			}
			var r result
			if c.send != nil {
				r = c.send(t, f, assertion)
			} else {
				r = f.postToken(t, jwtForm(assertion))
			}
			wantOAuthError(t, r, c.code, c.desc)
			if got := f.e.Counters(); got.TokenErrors[c.code] != 1 || got.TokensIssued != 0 {
				t.Errorf("counters %+v", got)
			}
		})
	}
}

func TestTokenAccepted(t *testing.T) {
	type tc struct {
		name   string
		setup  func(f *fixture)
		claims func(f *fixture, c jwt.MapClaims)
		form   func(f *fixture, v url.Values)
	}
	cases := []tc{
		{name: "login audience with trailing slash", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "https://login.salesforce.com/" }},
		{name: "audience upper case", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "HTTPS://Login.Salesforce.com" }},
		{name: "audience as one-element array", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = []string{"https://login.salesforce.com"} }},
		{name: "bare host audience", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "login.salesforce.com" }},
		{name: "emulator's own URL", claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = f.e.URL() + "/" }},
		{name: "org My Domain", setup: func(f *fixture) {
			o := f.org
			o.MyDomainURL = "https://Acme.my.salesforce.com/"
			f.e.AddOrg(o)
		}, claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "https://acme.my.salesforce.com" }},
		{name: "sandbox with test audience", setup: func(f *fixture) {
			o := f.org
			o.Sandbox = true
			f.e.AddOrg(o)
		}, claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "https://test.salesforce.com/" }},
		{name: "sandbox My Domain", setup: func(f *fixture) {
			o := f.org
			o.Sandbox, o.MyDomainURL = true, "https://acme--uat.sandbox.my.salesforce.com"
			f.e.AddOrg(o)
		}, claims: func(f *fixture, c jwt.MapClaims) { c["aud"] = "https://acme--uat.sandbox.my.salesforce.com" }},
		{name: "exp as numeric string", claims: func(f *fixture, c jwt.MapClaims) {
			c["exp"] = strconv.FormatInt(f.clock.Now().Add(time.Minute).Unix(), 10)
		}},
		{name: "exp in milliseconds (sfdx-core)", claims: func(f *fixture, c jwt.MapClaims) {
			c["exp"] = f.clock.Now().UnixMilli() + 300
		}},
		{name: "exp far future", claims: func(f *fixture, c jwt.MapClaims) { c["exp"] = f.clock.Now().Add(33 * time.Hour).Unix() }},
		{name: "exp just past but within skew", claims: func(f *fixture, c jwt.MapClaims) {
			c["exp"] = f.clock.Now().Add(-2*time.Minute - 59*time.Second).Unix()
		}},
		{name: "legacy prn", claims: func(f *fixture, c jwt.MapClaims) { c["prn"] = c["sub"]; delete(c, "sub") }},
		{name: "iat nbf jti tolerated", claims: func(f *fixture, c jwt.MapClaims) {
			c["iat"], c["nbf"], c["jti"] = f.clock.Now().Unix(), f.clock.Now().Unix(), "abc"
		}},
		{name: "username case-insensitive", claims: func(f *fixture, c jwt.MapClaims) { c["sub"] = "Integration@Example.com" }},
		{name: "client_id ignored", form: func(f *fixture, v url.Values) { v.Set("client_id", "something-else") }},
		{name: "self-authorized user", setup: func(f *fixture) {
			a := f.app
			a.AdminApproved, a.SelfAuthorizedUsers = false, []string{f.user.Username}
			f.e.AddApp(a)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			if c.setup != nil {
				c.setup(f)
			}
			cl := f.claims()
			if c.claims != nil {
				c.claims(f, cl)
			}
			form := jwtForm(sign(t, keyA, cl))
			if c.form != nil {
				c.form(f, form)
			}
			r := f.postToken(t, form)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
}

func TestTokenKidAndTypHeaders(t *testing.T) {
	f := newFixture(t, Config{})
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, f.claims())
	tok.Header["kid"] = "whatever"
	s, err := tok.SignedString(keyA)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.postToken(t, jwtForm(s)); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestTokenParamsInQueryString(t *testing.T) {
	f := newFixture(t, Config{})
	q := jwtForm(sign(t, keyA, f.claims())).Encode()
	r := f.request(t, "POST", "/services/oauth2/token?"+q, "", "", "")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestTokenStrictMaxLifetime(t *testing.T) {
	f := newFixture(t, Config{MaxAssertionLifetime: 5 * time.Minute})
	c := f.claims()
	c["exp"] = f.clock.Now().Add(time.Hour).Unix()
	wantOAuthError(t, f.postToken(t, jwtForm(sign(t, keyA, c))), "invalid_grant", "invalid assertion")
	c["exp"] = f.clock.Now().Add(4 * time.Minute).Unix()
	if r := f.postToken(t, jwtForm(sign(t, keyA, c))); r.status != 200 {
		t.Fatalf("within max lifetime: %d %s", r.status, r.body)
	}
}

func TestTokenCustomSkew(t *testing.T) {
	f := newFixture(t, Config{ExpSkew: -1})
	c := f.claims()
	c["exp"] = f.clock.Now().Add(-time.Second).Unix()
	wantOAuthError(t, f.postToken(t, jwtForm(sign(t, keyA, c))), "invalid_grant", "expired authorization code")
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, Config{LoginRateLimit: 3})
	for i := 0; i < 3; i++ {
		f.login(t, f.user.Username)
		f.clock.Advance(time.Minute)
	}
	send := func(sub string) result {
		c := f.claims()
		c["sub"] = sub
		return f.postToken(t, jwtForm(sign(t, keyA, c)))
	}
	wantOAuthError(t, send(f.user.Username), "rate_limit_exceeded", "number of logins exceeded")
	// Another user has its own budget.
	if r := send(f.deployer.Username); r.status != 200 {
		t.Fatalf("other user limited: %d %s", r.status, r.body)
	}
	// Rolling hour: once the first login is an hour old, one slot frees up.
	f.clock.Advance(57*time.Minute + time.Second)
	if r := send(f.user.Username); r.status != 200 {
		t.Fatalf("after the window: %d %s", r.status, r.body)
	}
	wantOAuthError(t, send(f.user.Username), "rate_limit_exceeded", "number of logins exceeded")
}

func TestScopeString(t *testing.T) {
	cases := map[string][]string{
		"api refresh_token":       {"Api", "RefreshToken"},
		"web openid id full":      {"Web", "OpenID", "Basic", "Full"},
		"api":                     {"Api", "api"},
		"cdp_query_api":           {"CdpQueryApi"},
		"":                        nil,
		"chatter_api visualforce": {"Chatter", "CustomApplications"},
	}
	for want, in := range cases {
		if got := scopeString(in); got != want {
			t.Errorf("scopeString(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestIDChecksum(t *testing.T) {
	// Known pair from Salesforce documentation examples.
	if got := to18("001A0000006Vm9r"); got != "001A0000006Vm9rIAC" {
		t.Errorf("to18 = %s", got)
	}
	if !regexp.MustCompile(`^005[0-9A-Za-z]{15}$`).MatchString(newID("005")) {
		t.Error("newID shape")
	}
	if !sameID("001A0000006Vm9r", "001A0000006Vm9rIAC") || sameID("001A0000006Vm9r", "001A0000006Vm9R") {
		t.Error("sameID")
	}
}
