package emulator

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// ecaFixture is a ccFixture whose org allows the consumer secrets REST API,
// with a user who holds both permissions it needs and a session of theirs.
type ecaFixture struct {
	*ccFixture
	rotator    User
	tok        string
	lastStaged string // ID of the pair stage last created
}

func newECAFixture(t *testing.T, cfg Config) *ecaFixture {
	t.Helper()
	f := newCCFixture(t, cfg)
	if _, err := f.e.SetAllowECAConsumerSecretREST(f.org.ID, true); err != nil {
		t.Fatal(err)
	}
	rot := f.e.AddUser(User{Username: "rotator@example.com",
		Permissions: []string{PermExternalClientAppDeveloper, PermViewClientSecret}})
	return &ecaFixture{ccFixture: f, rotator: rot, tok: f.sessionToken(t, rot.Username)}
}

const oauthBase = "/services/data/v65.0/apps/oauth/"

// api calls a resource under oauthBase (or an absolute path) as the rotator.
func (f *ecaFixture) api(t *testing.T, method, path, body string) result {
	t.Helper()
	if !strings.HasPrefix(path, "/") {
		path = oauthBase + path
	}
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return f.request(t, method, path, ct, body, f.tok)
}

// advance moves the clock on and logs the rotator in again (sessions idle out after 2 hours).
func (f *ecaFixture) advance(t *testing.T, d time.Duration) {
	t.Helper()
	f.clock.Advance(d)
	f.tok = f.sessionToken(t, f.rotator.Username)
}

func (f *ecaFixture) consumerPath() string {
	return "credentials/" + f.cc.ID + "/" + f.cc.ConsumerID
}

type stagedColl struct {
	StagedCredentials []stagedView `json:"stagedCredentials"`
	URL               string       `json:"url"`
}

func decodeStaged(t *testing.T, r result, status int) stagedColl {
	t.Helper()
	var c stagedColl
	if r.status != status || json.Unmarshal(r.body, &c) != nil || c.StagedCredentials == nil {
		t.Fatalf("staged collection: %d %s (want %d)", r.status, r.body, status)
	}
	return c
}

func decodeStagedItem(t *testing.T, r result) stagedView {
	t.Helper()
	var v stagedView
	if r.status != 200 || json.Unmarshal(r.body, &v) != nil || v.ID == "" {
		t.Fatalf("staged credentials: %d %s", r.status, r.body)
	}
	return v
}

// stage POSTs new staged credentials and returns them.
func (f *ecaFixture) stage(t *testing.T) stagedView {
	t.Helper()
	c := decodeStaged(t, f.api(t, "POST", f.consumerPath()+"/staged", ""), 201)
	if len(c.StagedCredentials) != 1 {
		t.Fatalf("POST staged: %+v", c)
	}
	f.lastStaged = c.StagedCredentials[0].ID
	return c.StagedCredentials[0]
}

func (f *ecaFixture) wantTokenRefused(t *testing.T, key, secret, code string) {
	t.Helper()
	r := f.postCC(t, ccForm(key, secret), nil)
	if r.status != 400 || r.json(t)["error"] != code {
		t.Errorf("token with %s…: %d %s, want %s", key[:12], r.status, r.body, code)
	}
}

func TestOAuthUsage(t *testing.T) {
	f := newECAFixture(t, Config{})
	second := f.e.AddApp(App{Name: "Second_ECA", Label: "Second", Type: appTypeECA})
	packaged := f.e.AddApp(App{Name: "Pkg_ECA", Type: appTypeECA, Packaged: true})
	f.e.AddApp(App{Name: "Elsewhere", Type: appTypeECA, OrgID: f.e.AddOrg(Org{Name: "Other"}).ID})

	type usage struct {
		Apps []struct {
			DeveloperName, Identifier, Label string
		}
		CurrentPageURL string `json:"currentPageUrl"`
		NextPageURL    string `json:"nextPageUrl"`
	}
	get := func(query string) usage {
		t.Helper()
		r := f.api(t, "GET", "usage"+query, "")
		var u usage
		if r.status != 200 || json.Unmarshal(r.body, &u) != nil || u.Apps == nil {
			t.Fatalf("usage%s: %d %s", query, r.status, r.body)
		}
		return u
	}
	// Only the org's ECAs (the connected app is not one), packaged ones included.
	u := get("")
	var names []string
	for _, a := range u.Apps {
		names = append(names, a.DeveloperName)
	}
	if strings.Join(names, ",") != "Vault_CC,Second_ECA,Pkg_ECA" || u.Apps[0].Identifier != f.cc.ID ||
		!strings.HasPrefix(f.cc.ID, "0xI") || len(f.cc.ID) != 18 || u.Apps[1].Label != "Second" || u.Apps[2].Identifier != packaged.ID {
		t.Errorf("usage %+v", u)
	}
	if u.CurrentPageURL != oauthBase+"usage?page=0&pageSize=100" || u.NextPageURL != oauthBase+"usage?page=1&pageSize=100" {
		t.Errorf("page URLs %q %q", u.CurrentPageURL, u.NextPageURL)
	}
	if u := get("?page=1&pageSize=1"); len(u.Apps) != 1 || u.Apps[0].Identifier != second.ID || u.NextPageURL != oauthBase+"usage?page=2&pageSize=1" {
		t.Errorf("page 1 %+v", u)
	}
	for _, q := range []string{"?page=3&pageSize=1", "?page=9223372036854775807&pageSize=2", "?page=1&pageSize=9223372036854775807"} {
		if u := get(q); len(u.Apps) != 0 {
			t.Errorf("%s after the last page: %+v", q, u)
		}
	}
	if u := get("?pageSize=2"); len(u.Apps) != 2 {
		t.Errorf("pageSize=2: %+v", u)
	}
	for _, q := range []string{"?page=x", "?page=-1", "?pageSize=0", "?pageSize=big"} {
		if r := f.api(t, "GET", "usage"+q, ""); r.status != 400 || restErrorCode(t, r) != "ILLEGAL_QUERY_PARAMETER_VALUE" {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	// The resource exists from v59.0.
	if r := f.api(t, "GET", "/services/data/v59.0/apps/oauth/usage", ""); r.status != 200 {
		t.Errorf("v59.0: %d %s", r.status, r.body)
	}
	if c := f.e.Counters(); c.OAuthUsage != 11 {
		t.Errorf("OAuthUsage counter %d", c.OAuthUsage)
	}
}

func TestOAuthCredentialsRead(t *testing.T) {
	f := newECAFixture(t, Config{})
	cp := f.consumerPath()
	r := f.api(t, "GET", "credentials/"+f.cc.ID[:15], "") // a 15-character ID works too
	var list struct {
		Consumers      []map[string]string `json:"consumers"`
		CurrentPageURL string              `json:"currentPageUrl"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &list) != nil || len(list.Consumers) != 1 {
		t.Fatalf("consumers: %d %s", r.status, r.body)
	}
	want := map[string]string{"id": f.cc.ConsumerID, "key": f.cc.ConsumerKey, "name": "Vault_CC",
		"url": oauthBase + cp, "stagedCredentialsUrl": oauthBase + cp + "/staged"}
	if !sameMap(list.Consumers[0], want) || list.CurrentPageURL != oauthBase+"credentials/"+f.cc.ID || !strings.HasPrefix(f.cc.ConsumerID, "888") {
		t.Errorf("consumers %s", r.body)
	}

	cases := []struct {
		query          string
		key, secret    bool
		stagedURL      bool
		version, wantC string
	}{
		{query: "", key: true, stagedURL: true},
		{query: "?part=key", key: true, stagedURL: true},
		{query: "?part=secret", secret: true, stagedURL: true},
		{query: "?part=keyandsecret", key: true, secret: true, stagedURL: true},
		{query: "?part=KeyAndSecret", key: true, secret: true, stagedURL: true},
		{query: "?part=keyandsecret", key: true, secret: true, version: "v60.0"}, // before v65.0: no staged URL
	}
	for _, c := range cases {
		ver := c.version
		if ver == "" {
			ver = "v65.0"
		}
		path := "/services/data/" + ver + "/apps/oauth/" + cp + c.query
		m := f.api(t, "GET", path, "").json(t)
		_, hasKey := m["key"]
		_, hasSecret := m["secret"]
		_, hasStaged := m["stagedCredentialsUrl"]
		if hasKey != c.key || hasSecret != c.secret || hasStaged != c.stagedURL || m["id"] != f.cc.ConsumerID ||
			(c.key && m["key"] != f.cc.ConsumerKey) || (c.secret && m["secret"] != f.cc.ConsumerSecret) {
			t.Errorf("%s: %v", path, m)
		}
	}
	if c := f.e.Counters(); c.OAuthCredentials != 7 {
		t.Errorf("OAuthCredentials counter %d", c.OAuthCredentials)
	}
}

func sameMap(a map[string]string, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestCredentialsAPIRefusals(t *testing.T) {
	type tc struct {
		name         string
		setup        func(t *testing.T, f *ecaFixture) // may change f.tok and f.cc
		method, path string                            // path relative to oauthBase unless absolute; "{c}" is the consumer path
		body         string
		noToken      bool
		status       int
		code         string
	}
	perms := func(p ...string) func(t *testing.T, f *ecaFixture) {
		return func(t *testing.T, f *ecaFixture) {
			if _, err := f.e.SetUserPermissions(f.rotator.Username, p...); err != nil {
				t.Fatal(err)
			}
		}
	}
	stage := func(t *testing.T, f *ecaFixture) { f.stage(t) }
	cases := []tc{
		{name: "usage without token", method: "GET", path: "usage", noToken: true, status: 401, code: "INVALID_SESSION_ID"},
		{name: "staged without token", method: "POST", path: "{c}/staged", noToken: true, status: 401, code: "INVALID_SESSION_ID"},
		{name: "bad version", method: "GET", path: "/services/data/latest/apps/oauth/usage", status: 404, code: "NOT_FOUND"},
		{name: "usage before v59.0", method: "GET", path: "/services/data/v58.0/apps/oauth/usage", status: 404, code: "NOT_FOUND"},
		{name: "credentials before v60.0", method: "GET", path: "/services/data/v59.0/apps/oauth/{c}", status: 404, code: "NOT_FOUND"},
		{name: "staged before v65.0", method: "POST", path: "/services/data/v64.0/apps/oauth/{c}/staged", status: 404, code: "NOT_FOUND"},
		{name: "staged record before v65.0", method: "DELETE", path: "/services/data/v64.0/apps/oauth/{c}/staged/x", status: 404, code: "NOT_FOUND"},
		{name: "usage POST", method: "POST", path: "usage", status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "credentials DELETE", method: "DELETE", path: "{c}", status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "staged PUT", method: "PUT", path: "{c}/staged", status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "staged record POST", method: "POST", path: "{c}/staged/x", status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "no External Client App Developer", setup: perms(PermViewClientSecret), method: "POST", path: "{c}/staged", status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "no View Client Secret", setup: perms(PermExternalClientAppDeveloper), method: "GET", path: "{c}?part=secret", status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "no permissions for usage", setup: perms(), method: "GET", path: "usage", status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "a session of another user", setup: func(t *testing.T, f *ecaFixture) { f.tok = f.login(t, f.user.Username) },
			method: "GET", path: "{c}/staged", status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "org setting off", setup: func(t *testing.T, f *ecaFixture) { _, _ = f.e.SetAllowECAConsumerSecretREST(f.org.ID, false) },
			method: "GET", path: "usage", status: 403, code: "FUNCTIONALITY_NOT_ENABLED"},
		{name: "org setting off for staging", setup: func(t *testing.T, f *ecaFixture) { _, _ = f.e.SetAllowECAConsumerSecretREST(f.org.ID, false) },
			method: "POST", path: "{c}/staged", status: 403, code: "FUNCTIONALITY_NOT_ENABLED"},
		{name: "unknown app", method: "GET", path: "credentials/0xI000000000000AAA", status: 404, code: "NOT_FOUND"},
		{name: "a connected app", setup: func(t *testing.T, f *ecaFixture) { f.cc = f.app }, method: "GET", path: "{c}", status: 404, code: "NOT_FOUND"},
		{name: "another org's ECA", setup: func(t *testing.T, f *ecaFixture) {
			f.cc = f.e.AddApp(App{Name: "Elsewhere", Type: appTypeECA, OrgID: f.e.AddOrg(Org{Name: "Other", AllowECAConsumerSecretREST: true}).ID})
		}, method: "GET", path: "{c}/staged", status: 404, code: "NOT_FOUND"},
		{name: "packaged app consumers", setup: packagedApp, method: "GET", path: "credentials/{id}", status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "packaged app secret", setup: packagedApp, method: "GET", path: "{c}?part=secret", status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "packaged app staging", setup: packagedApp, method: "POST", path: "{c}/staged", status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "packaged app rotation", setup: packagedApp, method: "PATCH", path: "{c}/staged/x", body: `{"command":"rotate"}`, status: 403, code: "INSUFFICIENT_ACCESS"},
		{name: "unknown consumer", method: "GET", path: "credentials/{id}/888000000000000AAA", status: 404, code: "NOT_FOUND"},
		{name: "unknown consumer staging", method: "POST", path: "credentials/{id}/888000000000000AAA/staged", status: 404, code: "NOT_FOUND"},
		{name: "bad part", method: "GET", path: "{c}?part=everything", status: 400, code: "ILLEGAL_QUERY_PARAMETER_VALUE"},
		{name: "nothing staged", method: "GET", path: "{c}/staged/0Sx000000000000AAA", status: 404, code: "NOT_FOUND"},
		{name: "another staged id", setup: stage, method: "DELETE", path: "{c}/staged/0Sx000000000000AAA", status: 404, code: "NOT_FOUND"},
		{name: "second POST", setup: stage, method: "POST", path: "{c}/staged", status: 400, code: "INVALID_API_INPUT"},
		{name: "PATCH not JSON", setup: stage, method: "PATCH", path: "{c}/staged/{s}", body: `rotate`, status: 400, code: "JSON_PARSER_ERROR"},
		{name: "PATCH unknown command", setup: stage, method: "PATCH", path: "{c}/staged/{s}", body: `{"command":"promote"}`, status: 400, code: "INVALID_API_INPUT"},
		{name: "PATCH no command", setup: stage, method: "PATCH", path: "{c}/staged/{s}", body: `{}`, status: 400, code: "INVALID_API_INPUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newECAFixture(t, Config{})
			if c.setup != nil {
				c.setup(t, f)
			}
			p := strings.NewReplacer("{c}", "credentials/"+f.cc.ID+"/"+f.cc.ConsumerID, "{id}", f.cc.ID, "{s}", f.lastStaged).Replace(c.path)
			if !strings.HasPrefix(p, "/") {
				p = oauthBase + p
			}
			ct, token := "", f.tok
			if c.body != "" {
				ct = "application/json"
			}
			if c.noToken {
				token = ""
			}
			r := f.request(t, c.method, p, ct, c.body, token)
			if r.status != c.status || restErrorCode(t, r) != c.code {
				t.Errorf("%s %s: %d %s, want %d %s", c.method, p, r.status, r.body, c.status, c.code)
			}
			if c.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

func packagedApp(_ *testing.T, f *ecaFixture) {
	a := f.cc
	a.Packaged = true
	f.cc = f.e.AddApp(a)
}

func TestStagedCredentialRotation(t *testing.T) {
	f := newECAFixture(t, Config{})
	cp := f.consumerPath()
	old := credPair{f.cc.ConsumerKey, f.cc.ConsumerSecret}

	// Nothing staged yet.
	if c := decodeStaged(t, f.api(t, "GET", cp+"/staged", ""), 200); len(c.StagedCredentials) != 0 || c.URL != oauthBase+cp+"/staged" {
		t.Fatalf("initial staged %+v", c)
	}
	// Stage a new pair.
	st := f.stage(t)
	if !strings.HasPrefix(st.Key, "3MVG9") || len(st.Key) != 85 || len(st.Secret) != 64 || st.State != "Active" ||
		st.CreatedBy != f.rotator.ID || st.URL != oauthBase+cp+"/staged/"+st.ID || st.StagedCredentialsURL != oauthBase+cp+"/staged" ||
		st.CreatedDate != f.clock.Now().UTC().Format(connectDateLayout) ||
		st.ExpirationDate != f.clock.Now().Add(30*24*time.Hour).UTC().Format(connectDateLayout) {
		t.Errorf("staged %+v", st)
	}
	if c := decodeStaged(t, f.api(t, "GET", cp+"/staged", ""), 200); len(c.StagedCredentials) != 1 || c.StagedCredentials[0] != st {
		t.Errorf("GET staged %+v", c)
	}
	if got := decodeStagedItem(t, f.api(t, "GET", cp+"/staged/"+st.ID, "")); got != st {
		t.Errorf("GET staged record %+v", got)
	}
	// A staged pair is not valid before it is promoted; the active one still is.
	f.wantTokenRefused(t, st.Key, st.Secret, "invalid_client_id")
	f.ccToken(t, old.key, old.secret)

	// Rotate: the staged pair becomes active, the previous one sits in the slot.
	f.clock.Advance(time.Hour)
	rot := decodeStagedItem(t, f.api(t, "PATCH", cp+"/staged/"+st.ID, `{"command":"rotate"}`))
	if rot.ID != st.ID || rot.State != "Rotated" || rot.Key != old.key || rot.Secret != old.secret ||
		rot.ExpirationDate != f.clock.Now().Add(30*24*time.Hour).UTC().Format(connectDateLayout) {
		t.Errorf("rotated %+v", rot)
	}
	m := f.api(t, "GET", cp+"?part=keyandsecret", "").json(t)
	if m["key"] != st.Key || m["secret"] != st.Secret {
		t.Errorf("active pair after rotation %v", m)
	}
	if a, ok := f.e.AppByConsumerKey(st.Key); !ok || a.ConsumerSecret != st.Secret || a.ID != f.cc.ID {
		t.Errorf("AppByConsumerKey(new) %+v %v", a, ok)
	}
	if a, ok := f.e.AppByConsumerKey(old.key); !ok || a.ConsumerKey != st.Key {
		t.Errorf("AppByConsumerKey(rotated) %+v %v", a, ok)
	}
	if keys := f.e.AcceptedConsumerKeys(st.Key); len(keys) != 2 || keys[0] != st.Key || keys[1] != old.key {
		t.Errorf("accepted keys %v", keys)
	}
	// Both pairs work, and only as pairs.
	f.ccToken(t, st.Key, st.Secret)
	f.ccToken(t, old.key, old.secret)
	f.wantTokenRefused(t, st.Key, old.secret, "invalid_client")
	f.wantTokenRefused(t, old.key, st.Secret, "invalid_client")
	// The rotated key is still a valid JWT iss.
	c := f.claims()
	c["iss"], c["sub"] = old.key, f.runAs.Username
	if r := f.postToken(t, jwtForm(sign(t, keyA, c))); r.status != 200 {
		t.Errorf("JWT with the rotated key: %d %s", r.status, r.body)
	}
	// The slot is taken: no new staging, no second rotation.
	if r := f.api(t, "POST", cp+"/staged", ""); r.status != 400 || restErrorCode(t, r) != "INVALID_API_INPUT" {
		t.Errorf("POST while rotated: %d %s", r.status, r.body)
	}
	if r := f.api(t, "PATCH", cp+"/staged/"+st.ID, `{"command":"rotate"}`); r.status != 400 || !strings.Contains(string(r.body), "already rotated") {
		t.Errorf("second rotation: %d %s", r.status, r.body)
	}

	// Deleting the rotated pair revokes it at once.
	if r := f.api(t, "DELETE", cp+"/staged/"+st.ID, ""); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	f.wantTokenRefused(t, old.key, old.secret, "invalid_client_id")
	if r := f.postToken(t, jwtForm(sign(t, keyA, c))); r.status != 400 || r.json(t)["error"] != "invalid_client_id" {
		t.Errorf("JWT with the deleted key: %d %s", r.status, r.body)
	}
	f.ccToken(t, st.Key, st.Secret)
	if _, ok := f.e.AppByConsumerKey(old.key); ok {
		t.Error("the deleted key still finds the app")
	}
	if keys := f.e.AcceptedConsumerKeys(st.Key); len(keys) != 1 {
		t.Errorf("accepted keys %v", keys)
	}
	if c := decodeStaged(t, f.api(t, "GET", cp+"/staged", ""), 200); len(c.StagedCredentials) != 0 {
		t.Errorf("slot after DELETE %+v", c)
	}
	if r := f.api(t, "DELETE", cp+"/staged/"+st.ID, ""); r.status != 404 {
		t.Errorf("second DELETE: %d", r.status)
	}

	// A staged pair that is deleted instead of promoted never becomes valid.
	discard := f.stage(t)
	if r := f.api(t, "DELETE", cp+"/staged/"+discard.ID, ""); r.status != 204 {
		t.Fatalf("DELETE staged: %d %s", r.status, r.body)
	}
	f.wantTokenRefused(t, discard.Key, discard.Secret, "invalid_client_id")
	f.ccToken(t, st.Key, st.Secret)

	cnt := f.e.Counters()
	if cnt.CredentialRotations != 1 || cnt.StagedCredentials != 12 {
		t.Errorf("counters rotations=%d staged=%d", cnt.CredentialRotations, cnt.StagedCredentials)
	}
}

func TestStagedCredentialExpiry(t *testing.T) {
	f := newECAFixture(t, Config{})
	cp := f.consumerPath()
	old := credPair{f.cc.ConsumerKey, f.cc.ConsumerSecret}
	st := f.stage(t)
	f.advance(t, 24*time.Hour)
	decodeStagedItem(t, f.api(t, "PATCH", cp+"/staged/"+st.ID, `{"command":"ROTATE"}`))

	// The rotated pair is valid for 30 days after the rotation, not after staging.
	f.advance(t, 30*24*time.Hour-time.Second)
	f.ccToken(t, old.key, old.secret)
	f.advance(t, time.Second)
	f.wantTokenRefused(t, old.key, old.secret, "invalid_client_id")
	f.ccToken(t, st.Key, st.Secret)
	exp := decodeStaged(t, f.api(t, "GET", cp+"/staged", ""), 200)
	if len(exp.StagedCredentials) != 1 || exp.StagedCredentials[0].State != "Expired" {
		t.Fatalf("after 30 days %+v", exp)
	}
	if r := f.api(t, "PATCH", cp+"/staged/"+st.ID, `{"command":"rotate"}`); r.status != 400 || !strings.Contains(string(r.body), "expired") {
		t.Errorf("PATCH expired: %d %s", r.status, r.body)
	}
	// An expired record does not block staging: the new pair replaces it.
	next := f.stage(t)
	if next.ID == st.ID || next.State != "Active" {
		t.Errorf("staged after expiry %+v", next)
	}

	// A staged pair not promoted within 30 days expires too.
	f.advance(t, 30*24*time.Hour)
	if got := decodeStagedItem(t, f.api(t, "GET", cp+"/staged/"+next.ID, "")); got.State != "Expired" {
		t.Errorf("unpromoted after 30 days %+v", got)
	}
	if r := f.api(t, "PATCH", cp+"/staged/"+next.ID, `{"command":"rotate"}`); r.status != 400 {
		t.Errorf("PATCH expired staged: %d %s", r.status, r.body)
	}
	if r := f.api(t, "DELETE", cp+"/staged/"+next.ID, ""); r.status != 204 {
		t.Errorf("DELETE expired: %d %s", r.status, r.body)
	}
}

func TestStagedCredentialLifetimeConfig(t *testing.T) {
	f := newECAFixture(t, Config{StagedCredentialLifetime: time.Hour})
	old := credPair{f.cc.ConsumerKey, f.cc.ConsumerSecret}
	st := f.stage(t)
	decodeStagedItem(t, f.api(t, "PATCH", f.consumerPath()+"/staged/"+st.ID, `{"command":"rotate"}`))
	f.advance(t, time.Hour-time.Second)
	f.ccToken(t, old.key, old.secret)
	f.advance(t, time.Second)
	f.wantTokenRefused(t, old.key, old.secret, "invalid_client_id")
}

// A rotation changes the consumer key the app is stored under; certificate
// changes and deploys still find it.
func TestRotationKeepsTheApp(t *testing.T) {
	f := newECAFixture(t, Config{})
	old := f.cc.ConsumerKey
	tok := f.login(t, f.deployer.Username)
	glbl := `<ExtlClntAppGlobalOauthSettings xmlns="http://soap.sforce.com/2006/04/metadata">
  <callbackUrl>https://localhost/cb</callbackUrl>
  <certificate>` + certB + `</certificate>
  <externalClientApplication>Vault_CC</externalClientApplication>
  <label>Vault CC</label>
</ExtlClntAppGlobalOauthSettings>`
	r := f.deploy(t, tok, "json", "{}", buildZip(t, map[string]string{
		"package.xml": `<Package xmlns="http://soap.sforce.com/2006/04/metadata"><types><members>Vault_CC_glbloauth</members><name>ExtlClntAppGlobalOauthSettings</name></types><version>65.0</version></Package>`,
		"extlClntAppGlobalOauthSets/Vault_CC_glbloauth.ecaGlblOauth": glbl,
	}))
	if r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	// Rotate while the deploy is under way.
	st := f.stage(t)
	decodeStagedItem(t, f.api(t, "PATCH", f.consumerPath()+"/staged/"+st.ID, `{"command":"rotate"}`))
	for i := 0; i < 5 && f.poll(t, tok, id)["done"] != true; i++ {
	}
	a, ok := f.e.AppByConsumerKey(st.Key)
	if !ok || !sameCert(a.CertificatePEM, certB) || a.Label != "Vault CC" || a.ConsumerKey != st.Key {
		t.Errorf("after deploy %+v", a)
	}
	// SetAppCertificate takes the rotated key as well.
	if err := f.e.SetAppCertificate(old, certA); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.e.AppByName("Vault_CC"); !sameCert(a.CertificatePEM, certA) || a.ConsumerKey != st.Key {
		t.Errorf("after SetAppCertificate %+v", a)
	}
	// AddApp with the returned definition replaces it in place (and empties the slot).
	a.Label = "Relabelled"
	f.e.AddApp(a)
	if keys := f.e.AcceptedConsumerKeys(st.Key); len(keys) != 1 {
		t.Errorf("keys after AddApp %v", keys)
	}
	if got, _ := f.e.AppByName("Vault_CC"); got.Label != "Relabelled" || got.ID != f.cc.ID {
		t.Errorf("after AddApp %+v", got)
	}
}

func TestCredentialsAPIFaults(t *testing.T) {
	f := newECAFixture(t, Config{})
	cp := f.consumerPath()
	f.e.AddFault(Fault{Endpoint: "staged_credentials", Kind: FaultStatus, Status: 500})
	// Other endpoints are not affected.
	if r := f.api(t, "GET", "usage", ""); r.status != 200 {
		t.Errorf("usage under a staged fault: %d", r.status)
	}
	for _, method := range []string{"GET", "POST"} {
		r := f.api(t, method, cp+"/staged", "")
		if r.status != 500 || restErrorCode(t, r) != "UNKNOWN_EXCEPTION" {
			t.Errorf("%s staged: %d %s", method, r.status, r.body)
		}
	}
	if r := f.api(t, "PATCH", cp+"/staged/x", `{"command":"rotate"}`); r.status != 500 {
		t.Errorf("PATCH staged: %d %s", r.status, r.body)
	}
	f.e.ClearFaults()
	f.e.AddFault(Fault{Endpoint: "oauth_usage", Kind: FaultStatus, Status: 429, Count: 1})
	if r := f.api(t, "GET", "usage", ""); r.status != 429 || restErrorCode(t, r) != "REQUEST_LIMIT_EXCEEDED" {
		t.Errorf("usage 429: %d %s", r.status, r.body)
	}
	f.e.AddFault(Fault{Endpoint: "oauth_credentials", Kind: FaultMalformed, Count: 1})
	if r := f.api(t, "GET", cp+"?part=keyandsecret", ""); r.status != 200 || json.Valid(r.body) {
		t.Errorf("malformed credentials: %d %s", r.status, r.body)
	}
	f.e.AddFault(Fault{Endpoint: "oauth_credentials", Kind: FaultStatus, Status: 503, Count: 1})
	if r := f.api(t, "GET", "credentials/"+f.cc.ID, ""); r.status != 503 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("credentials 503: %d %s", r.status, r.body)
	}
	if c := f.e.Counters(); c.FaultsInjected != 6 {
		t.Errorf("FaultsInjected %d", c.FaultsInjected)
	}
}

// The demo seed's client credentials app works out of the box, and its
// consumer can be rotated once an admin allows it.
func TestDemoSeedClientCredentials(t *testing.T) {
	f := newFixture(t, Config{})
	s := f.e.SeedDemo()
	tok := f.ccToken(t, DemoCCConsumerKey, DemoCCConsumerSecret)
	if m := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok).json(t); m["preferred_username"] != DemoRunAsUsername {
		t.Errorf("userinfo %v", m)
	}
	if _, err := f.e.SetAllowECAConsumerSecretREST(DemoOrgID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.SetUserPermissions(DemoDeployUsername, PermExternalClientAppDeveloper, PermViewClientSecret); err != nil {
		t.Fatal(err)
	}
	g := &ecaFixture{ccFixture: &ccFixture{fixture: f, runAs: s.RunAs, cc: s.CCApp}, tok: f.sessionToken(t, DemoDeployUsername)}
	st := g.stage(t)
	decodeStagedItem(t, g.api(t, "PATCH", g.consumerPath()+"/staged/"+st.ID, `{"command":"rotate"}`))
	f.ccToken(t, st.Key, st.Secret)
	f.ccToken(t, DemoCCConsumerKey, DemoCCConsumerSecret)
	q := url.Values{"part": {"key"}}
	if m := g.api(t, "GET", g.consumerPath()+"?"+q.Encode(), "").json(t); m["key"] != st.Key {
		t.Errorf("consumer %v", m)
	}
}

// A fault limited to one method hits only it: the slot still reads and stages while the rotate
// fails; credentials_staged counts the pairs made.
func TestCredentialsAPIFaultByMethod(t *testing.T) {
	f := newECAFixture(t, Config{})
	cp := f.consumerPath()
	f.e.AddFault(Fault{Endpoint: "staged_credentials", Kind: FaultStatus, Status: 503, Method: "patch"})
	if r := f.api(t, "GET", cp+"/staged", ""); r.status != 200 {
		t.Errorf("GET under a PATCH fault: %d %s", r.status, r.body)
	}
	st := f.stage(t)
	if r := f.api(t, "PATCH", cp+"/staged/"+st.ID, `{"command":"rotate"}`); r.status != 503 {
		t.Errorf("PATCH under a PATCH fault: %d %s", r.status, r.body)
	}
	f.e.ClearFaults()
	if r := f.api(t, "PATCH", cp+"/staged/"+st.ID, `{"command":"rotate"}`); r.status != 200 {
		t.Errorf("PATCH after the fault: %d %s", r.status, r.body)
	}
	if c := f.e.Counters(); c.CredentialsStaged != 1 || c.CredentialRotations != 1 || c.FaultsInjected != 1 {
		t.Errorf("counters %+v", c)
	}
	// The admin API's form carries the method.
	var back Fault
	b, _ := json.Marshal(Fault{Endpoint: "staged_credentials", Kind: FaultStatus, Method: "DELETE"})
	if err := json.Unmarshal(b, &back); err != nil || back.Method != "DELETE" {
		t.Errorf("round trip %s: %+v %v", b, back, err)
	}
}

// The JWT bearer flow of an External Client App through a consumer key rotation (the key rotates,
// the certificate stays): a staged key is no iss before its promotion; after it, the new and the
// previous key both are, each counted by iss; after the DELETE only the new one is.
func TestStagedCredentialsJWTIssuer(t *testing.T) {
	f := newECAFixture(t, Config{})
	cp := f.consumerPath()
	old := f.cc.ConsumerKey
	jwtAs := func(iss string) result {
		c := f.claims()
		c["iss"], c["sub"] = iss, f.runAs.Username
		return f.postToken(t, jwtForm(sign(t, keyA, c)))
	}
	st := f.stage(t)
	if r := jwtAs(st.Key); r.status != 400 || r.json(t)["error"] != "invalid_client_id" {
		t.Fatalf("a staged key as iss before its promotion: %d %s", r.status, r.body)
	}
	decodeStagedItem(t, f.api(t, "PATCH", cp+"/staged/"+st.ID, `{"command":"rotate"}`))
	for _, iss := range []string{st.Key, old, st.Key} {
		if r := jwtAs(iss); r.status != 200 {
			t.Fatalf("iss %s during the overlap: %d %s", iss[:12], r.status, r.body)
		}
	}
	if by := f.e.Counters().JWTTokensByIssuer; by[st.Key] != 2 || by[old] != 1 {
		t.Fatalf("tokens by iss %v", by)
	}
	if r := f.api(t, "DELETE", cp+"/staged/"+st.ID, ""); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := jwtAs(old); r.status != 400 || r.json(t)["error"] != "invalid_client_id" {
		t.Fatalf("the deleted key as iss: %d %s", r.status, r.body)
	}
	if r := jwtAs(st.Key); r.status != 200 {
		t.Fatalf("the new key as iss after the DELETE: %d %s", r.status, r.body)
	}
}
