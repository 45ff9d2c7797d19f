package emulator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// sessionToken gets a browser-login session for username through the admin
// API (POST /__emulator/sessions), failing the test otherwise.
func (f *fixture) sessionToken(t *testing.T, username string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username})
	r := f.request(t, "POST", "/__emulator/sessions", "application/json", string(body), "")
	if r.status != 200 {
		t.Fatalf("session for %s: %d %s", username, r.status, r.body)
	}
	tok, _ := r.json(t)["access_token"].(string)
	if tok == "" {
		t.Fatalf("session for %s: no access_token in %s", username, r.body)
	}
	return tok
}

func TestAdminSessions(t *testing.T) {
	f := newFixture(t, Config{})
	f.e.AddUser(User{Username: "gone@example.com", Inactive: true})
	locked := f.e.AddOrg(Org{Name: "Locked", Locked: true})
	f.e.AddUser(User{Username: "frozen@example.com", OrgID: locked.ID})

	cases := []struct {
		name   string
		body   string
		user   *User  // success: whose session it is
		errHas string // refusal: part of the admin error message
	}{
		{name: "deployer", body: `{"username":"deployer@example.com"}`, user: &f.deployer},
		{name: "username is case-insensitive", body: `{"username":"INTEGRATION@Example.COM"}`, user: &f.user},
		{name: "unknown user", body: `{"username":"nobody@example.com"}`, errHas: "no user nobody@example.com"},
		{name: "inactive user", body: `{"username":"gone@example.com"}`, errHas: "inactive"},
		{name: "locked org", body: `{"username":"frozen@example.com"}`, errHas: "locked"},
		{name: "no username", body: `{}`, errHas: "no user"},
		{name: "unknown JSON field", body: `{"user":"deployer@example.com"}`, errHas: "invalid JSON body"},
		{name: "not JSON", body: `deployer@example.com`, errHas: "invalid JSON body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			issued := f.e.Counters().TokensIssued
			r := f.request(t, "POST", "/__emulator/sessions", "application/json", c.body, "")
			m := r.json(t)
			if c.user == nil {
				msg, _ := m["error"].(string)
				if r.status != 400 || !strings.Contains(msg, c.errHas) || m["access_token"] != nil {
					t.Errorf("want 400 with %q: %d %s", c.errHas, r.status, r.body)
				}
				if got := f.e.Counters().TokensIssued; got != issued {
					t.Errorf("a refused session issued a token (%d -> %d)", issued, got)
				}
				return
			}
			tok, _ := m["access_token"].(string)
			if r.status != 200 || !strings.HasPrefix(tok, f.org.ID[:15]+"!") || m["token_type"] != "Bearer" ||
				m["instance_url"] != f.e.URL() || m["id"] != f.e.URL()+"/id/"+f.org.ID+"/"+c.user.ID {
				t.Fatalf("session: %d %s", r.status, r.body)
			}
			// Not a JWT bearer login: the token endpoint's counter, which tests of the plugin
			// read as "token requests Salesforce answered", does not move.
			if got := f.e.Counters().TokensIssued; got != issued {
				t.Errorf("an admin session counted as an issued token (%d -> %d)", issued, got)
			}
			// The token is a real session: userinfo accepts it, as that user.
			ui := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok)
			if ui.status != 200 {
				t.Fatalf("userinfo refused the session: %d %s", ui.status, ui.body)
			}
			if um := ui.json(t); um["preferred_username"] != c.user.Username || um["user_id"] != c.user.ID || um["organization_id"] != f.org.ID {
				t.Errorf("userinfo %v", um)
			}
		})
	}
}

// A browser login lasts the org's default two-hour idle timeout, whatever
// the apps' session settings.
func TestLoginAsSessionTimeout(t *testing.T) {
	cases := []struct {
		idle   time.Duration
		active bool
	}{
		{0, true},
		{2*time.Hour - time.Second, true},
		{2 * time.Hour, false},
	}
	f := newFixture(t, Config{})
	app := f.app
	app.SessionTimeout = 15 * time.Minute // must not apply: no app is involved
	f.e.AddApp(app)
	for _, c := range cases {
		tok := f.sessionToken(t, f.deployer.Username)
		f.clock.Advance(c.idle)
		if got := f.e.TokenActive(tok); got != c.active {
			t.Errorf("after %s idle: active=%v, want %v", c.idle, got, c.active)
		}
		want := 401
		if c.active {
			want = 200
		}
		if r := f.request(t, "GET", "/services/data/v60.0/limits", "", "", tok); r.status != want {
			t.Errorf("after %s idle: limits %d, want %d", c.idle, r.status, want)
		}
	}
}
