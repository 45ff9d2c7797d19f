package emulator

import (
	"net/url"
	"testing"
)

func TestRevoke(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)

	r := f.request(t, "POST", "/services/oauth2/revoke", "application/x-www-form-urlencoded", url.Values{"token": {tok}}.Encode(), "")
	if r.status != 200 || len(r.body) != 0 {
		t.Fatalf("revoke: %d %q", r.status, r.body)
	}
	if f.e.TokenActive(tok) {
		t.Fatal("token still active after revoke")
	}
	if u := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok); u.status != 403 {
		t.Errorf("userinfo with revoked token: %d", u.status)
	}

	// Already revoked: 400 invalid_token, form-encoded by default.
	r = f.request(t, "POST", "/services/oauth2/revoke", "application/x-www-form-urlencoded", url.Values{"token": {tok}}.Encode(), "")
	if r.status != 400 || r.header.Get("Content-Type") != "application/x-www-form-urlencoded;charset=UTF-8" {
		t.Fatalf("second revoke: %d %s", r.status, r.header.Get("Content-Type"))
	}
	v, err := url.ParseQuery(string(r.body))
	if err != nil || v.Get("error") != "invalid_token" || v.Get("error_description") == "" {
		t.Errorf("body %q", r.body)
	}

	// GET ?token= works too.
	tok2 := f.login(t, f.user.Username)
	if r := f.request(t, "GET", "/services/oauth2/revoke?token="+url.QueryEscape(tok2), "", "", ""); r.status != 200 {
		t.Errorf("GET revoke: %d %s", r.status, r.body)
	}
	if f.e.TokenActive(tok2) {
		t.Error("GET revoke did not revoke")
	}

	// Unknown token.
	r = f.request(t, "POST", "/services/oauth2/revoke", "application/x-www-form-urlencoded", "token=unknown", "")
	if r.status != 400 {
		t.Errorf("unknown token: %d", r.status)
	}
	c := f.e.Counters()
	if c.Revocations != 2 || c.RevokeRequests != 4 {
		t.Errorf("counters revocations=%d requests=%d", c.Revocations, c.RevokeRequests)
	}
}

func TestRevokeJSONErrorOnRequest(t *testing.T) {
	f := newFixture(t, Config{})
	req, _ := newReq("POST", f.e.URL()+"/services/oauth2/revoke", "token=nope")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	r := f.do(t, req)
	if r.status != 400 || r.json(t)["error"] != "invalid_token" {
		t.Errorf("%d %s", r.status, r.body)
	}
}
