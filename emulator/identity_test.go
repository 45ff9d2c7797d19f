package emulator

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

func TestUserInfo(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)

	r := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["sub"] != f.e.URL()+"/id/"+f.org.ID+"/"+f.user.ID || m["user_id"] != f.user.ID ||
		m["organization_id"] != f.org.ID || m["preferred_username"] != f.user.Username ||
		m["user_type"] != "STANDARD" || m["active"] != true || m["email"] != f.user.Email {
		t.Errorf("userinfo %v", m)
	}
	// oauth_token parameter, by POST form.
	r = f.request(t, "POST", "/services/oauth2/userinfo", "application/x-www-form-urlencoded", url.Values{"oauth_token": {tok}}.Encode(), "")
	if r.status != 200 {
		t.Errorf("oauth_token param: %d", r.status)
	}
	for name, token := range map[string]string{"garbage": "00Dxx!nope", "none": ""} {
		r = f.request(t, "GET", "/services/oauth2/userinfo", "", "", token)
		if r.status != 403 || string(r.body) != "Bad_OAuth_Token" || r.header.Get("Content-Type") != "text/plain;charset=UTF-8" {
			t.Errorf("%s token: %d %q %s", name, r.status, r.body, r.header.Get("Content-Type"))
		}
	}
	if c := f.e.Counters(); c.UserInfo != 4 {
		t.Errorf("UserInfo counter %d", c.UserInfo)
	}
}

func TestIdleTimeoutRestartsOnUse(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	// Each call within the 2h idle timeout keeps the session alive well past
	// 2h after issue.
	for i := 0; i < 3; i++ {
		f.clock.Advance(time.Hour + 59*time.Minute)
		if r := f.request(t, "GET", "/services/data/v60.0/limits", "", "", tok); r.status != 200 {
			t.Fatalf("call %d: %d %s", i, r.status, r.body)
		}
	}
	// TokenActive is not a use.
	f.clock.Advance(time.Hour + 59*time.Minute)
	if !f.e.TokenActive(tok) {
		t.Fatal("should still be active")
	}
	f.clock.Advance(time.Minute)
	if f.e.TokenActive(tok) {
		t.Fatal("should be idle-expired exactly at 2h")
	}
	r := f.request(t, "GET", "/services/data/v60.0/limits", "", "", tok)
	if r.status != 401 || string(r.body) != `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]` {
		t.Errorf("expired token on limits: %d %s", r.status, r.body)
	}
	if r := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok); r.status != 403 {
		t.Errorf("expired token on userinfo: %d", r.status)
	}
}

func TestAppSessionTimeout(t *testing.T) {
	f := newFixture(t, Config{})
	a := f.app
	a.SessionTimeout = 15 * time.Minute
	f.e.AddApp(a)
	tok := f.login(t, f.user.Username)
	f.clock.Advance(15 * time.Minute)
	if f.e.TokenActive(tok) {
		t.Error("app session timeout not applied")
	}
}

func TestDeactivationEndsSession(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	u := f.user
	u.Inactive = true
	f.e.AddUser(u)
	if f.e.TokenActive(tok) {
		t.Error("token of a deactivated user still active")
	}
}

func TestIdentityURL(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	idPath := "/id/" + f.org.ID + "/" + f.user.ID

	r := f.request(t, "GET", idPath+"?version=60.0", "", "", tok)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	urls, _ := m["urls"].(map[string]any)
	if m["id"] != f.e.URL()+idPath || m["asserted_user"] != true || m["username"] != f.user.Username ||
		m["organization_id"] != f.org.ID || m["user_id"] != f.user.ID || m["display_name"] != "Integration" ||
		urls["rest"] != f.e.URL()+"/services/data/v60.0/" || urls["metadata"] != f.e.URL()+"/services/Soap/m/60.0/"+f.org.ID[:15] {
		t.Errorf("identity %v", m)
	}
	// Without version= the placeholder stays.
	m = f.request(t, "GET", idPath, "", "", tok).json(t)
	if m["urls"].(map[string]any)["rest"] != f.e.URL()+"/services/data/v{version}/" {
		t.Errorf("urls.rest %v", m["urls"].(map[string]any)["rest"])
	}
	// 15-character IDs in the path work; another user of the org is not the asserted user.
	m = f.request(t, "GET", "/id/"+f.org.ID[:15]+"/"+f.deployer.ID[:15], "", "", tok).json(t)
	if m["asserted_user"] != false || m["username"] != f.deployer.Username {
		t.Errorf("other user %v", m)
	}
	other := f.e.AddOrg(Org{Name: "Other"})
	for name, c := range map[string]struct {
		path, token string
		status      int
		body        string
	}{
		"bad token":    {idPath, "nope", 403, "Bad_OAuth_Token"},
		"wrong org":    {"/id/" + other.ID + "/" + f.user.ID, tok, 403, "Wrong_Org"},
		"unknown user": {"/id/" + f.org.ID + "/005000000000000AAA", tok, 404, "Bad_Id"},
	} {
		r := f.request(t, "GET", c.path, "", "", c.token)
		if r.status != c.status || string(r.body) != c.body {
			t.Errorf("%s: %d %q", name, r.status, r.body)
		}
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	var before, after struct{ DailyApiRequests struct{ Max, Remaining int } }
	r := f.request(t, "GET", "/services/data/v60.0/limits", "", "", tok)
	if r.status != 200 || json.Unmarshal(r.body, &before) != nil || before.DailyApiRequests.Max != 15000 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r = f.request(t, "GET", "/services/data/v60.0/limits/", "", "", tok)
	if r.status != 200 || json.Unmarshal(r.body, &after) != nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if after.DailyApiRequests.Remaining != before.DailyApiRequests.Remaining-1 {
		t.Errorf("Remaining %d then %d", before.DailyApiRequests.Remaining, after.DailyApiRequests.Remaining)
	}
	if r := f.request(t, "GET", "/services/data/v60.0/limits", "", "", "bad"); r.status != 401 {
		t.Errorf("bad token %d", r.status)
	}
	if r := f.request(t, "GET", "/services/data/latest/limits", "", "", tok); r.status != 404 {
		t.Errorf("bad version %d", r.status)
	}
	if r := f.request(t, "GET", "/services/data/v60.0/", "", "", tok); r.status != 200 {
		t.Errorf("data root %d", r.status)
	}
	if r := f.request(t, "GET", "/services/data/", "", "", ""); r.status != 200 {
		t.Errorf("versions need no auth: %d", r.status)
	}
	if c := f.e.Counters(); c.Limits != 4 {
		t.Errorf("Limits counter %d", c.Limits)
	}
}
