package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// restErrorCode is the errorCode of a REST error body, a JSON array of one.
func restErrorCode(t *testing.T, r result) string {
	t.Helper()
	var errs []restError
	if err := json.Unmarshal(r.body, &errs); err != nil || len(errs) != 1 {
		t.Fatalf("body %s is not a REST error array: %v", r.body, err)
	}
	return errs[0].ErrorCode
}

// restGet GETs path with token and checks the status and, for a refusal, its errorCode; ok
// reports a 200 to look into.
func (f *fixture) restGet(t *testing.T, path, token string, status int, code string) (r result, ok bool) {
	t.Helper()
	r = f.request(t, "GET", path, "", "", token)
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if status != 200 {
		if got := restErrorCode(t, r); got != code {
			t.Errorf("errorCode %s, want %s", got, code)
		}
		return r, false
	}
	return r, true
}

func TestSObjectRead(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	sbx := f.e.AddOrg(Org{Name: "UAT", Sandbox: true})
	stranger := f.e.AddUser(User{Username: "stranger@example.com", OrgID: sbx.ID})
	sbxTok := f.sessionToken(t, stranger.Username)
	const base = "/services/data/v60.0/sobjects/"

	cases := []struct {
		name, path, token string
		status            int
		want              map[string]any // 200: fields of the record
		code              string         // otherwise: errorCode
	}{
		{name: "own user", path: base + "User/" + f.user.ID, token: tok, status: 200, want: map[string]any{
			"Id": f.user.ID, "Username": f.user.Username, "Email": f.user.Email, "Name": "Integration", "IsActive": true}},
		{name: "other user of the org by 15-char id", path: base + "User/" + f.deployer.ID[:15], token: tok, status: 200, want: map[string]any{
			"Id": f.deployer.ID, "Username": f.deployer.Username}},
		{name: "org", path: base + "Organization/" + f.org.ID, token: tok, status: 200, want: map[string]any{
			"Id": f.org.ID, "Name": "Prod", "IsSandbox": false, "OrganizationType": "Developer Edition",
			"NamespacePrefix": nil, "TrialExpirationDate": nil}},
		{name: "org by 15-char id", path: base + "Organization/" + f.org.ID[:15], token: tok, status: 200, want: map[string]any{"Id": f.org.ID}},
		{name: "sandbox org", path: base + "Organization/" + sbx.ID, token: sbxTok, status: 200, want: map[string]any{
			"Id": sbx.ID, "IsSandbox": true, "OrganizationType": "Unlimited Edition"}},
		{name: "user of another org", path: base + "User/" + stranger.ID, token: tok, status: 404, code: "NOT_FOUND"},
		{name: "another org", path: base + "Organization/" + sbx.ID, token: tok, status: 404, code: "NOT_FOUND"},
		{name: "unknown user", path: base + "User/005000000000000AAA", token: tok, status: 404, code: "NOT_FOUND"},
		{name: "other sObject type", path: base + "Account/001000000000000AAA", token: tok, status: 404, code: "NOT_FOUND"},
		{name: "no token", path: base + "User/" + f.user.ID, status: 401, code: "INVALID_SESSION_ID"},
		{name: "bad token", path: base + "User/" + f.user.ID, token: "00Dxx!nope", status: 401, code: "INVALID_SESSION_ID"},
		{name: "bad version", path: "/services/data/latest/sobjects/User/" + f.user.ID, token: tok, status: 404, code: "NOT_FOUND"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := f.restGet(t, c.path, c.token, c.status, c.code)
			if !ok {
				return
			}
			m := r.json(t)
			for k, v := range c.want {
				if got, ok := m[k]; !ok || got != v {
					t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
				}
			}
			typ := strings.Split(strings.TrimPrefix(c.path, base), "/")[0]
			attrs, _ := m["attributes"].(map[string]any)
			if attrs["type"] != typ || attrs["url"] != base+typ+"/"+c.want["Id"].(string) {
				t.Errorf("attributes %v", attrs)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	f.e.AddUser(User{Username: "stranger@example.com", OrgID: f.e.AddOrg(Org{Name: "Other"}).ID})
	const path = "/services/data/v60.0/query"
	both := []string{f.user.ID, f.deployer.ID}

	cases := []struct {
		name, q string
		path    string // default path
		noToken bool
		code    string         // refusal: errorCode (400, or 401 without a token)
		ids     []string       // success: the records' Ids, in any order
		first   map[string]any // success: every selected field of the first record
	}{
		{name: "organization fields", q: "SELECT Id, Name, IsSandbox, OrganizationType, InstanceName, NamespacePrefix, TrialExpirationDate FROM Organization",
			ids: []string{f.org.ID}, first: map[string]any{"Id": f.org.ID, "Name": "Prod", "IsSandbox": false,
				"OrganizationType": "Developer Edition", "InstanceName": "EMU1", "NamespacePrefix": nil, "TrialExpirationDate": nil}},
		{name: "user by username", q: "SELECT Id, Username, Email, IsActive FROM User WHERE Username = 'integration@example.com'",
			ids: []string{f.user.ID}, first: map[string]any{"Id": f.user.ID, "Username": f.user.Username, "Email": f.user.Email, "IsActive": true}},
		{name: "as the Salesforce CLI sends it", q: "SELECT Id, Username FROM User WHERE Username='deployer@example.com'",
			ids: []string{f.deployer.ID}, first: map[string]any{"Id": f.deployer.ID, "Username": f.deployer.Username}},
		{name: "keywords and value ignore case", q: "select Id from user where Username = 'DEPLOYER@Example.com'",
			ids: []string{f.deployer.ID}, first: map[string]any{"Id": f.deployer.ID}},
		{name: "user by 18-char id", q: "SELECT Id FROM User WHERE Id = '" + f.user.ID + "'", ids: []string{f.user.ID}},
		{name: "user by 15-char id", q: "SELECT Username FROM User WHERE Id = '" + f.deployer.ID[:15] + "'",
			ids: []string{f.deployer.ID}, first: map[string]any{"Username": f.deployer.Username}},
		{name: "all users of the org only", q: "SELECT Id FROM User", ids: both},
		{name: "ORDER BY and LIMIT accepted", q: "SELECT Id FROM User ORDER BY Username LIMIT 10", ids: both},
		{name: "users by IN, 15- and 18-char ids", q: "SELECT Id FROM User WHERE Id IN ('" + f.user.ID[:15] + "', '" + f.deployer.ID + "')", ids: both},
		{name: "users by IN, usernames", q: "SELECT Id FROM User WHERE Username IN ('Integration@example.com', 'nobody@example.com')", ids: []string{f.user.ID}},
		{name: "ORDER BY an unknown field", q: "SELECT Id FROM User ORDER BY Bogus", code: "INVALID_FIELD"},
		{name: "LIMIT bounds the records", q: "SELECT Id FROM User LIMIT 1", ids: []string{min(f.user.ID, f.deployer.ID)}}, // ordered by Id
		{name: "fields answered in Salesforce's spelling", q: "select id, username from user where username = 'deployer@example.com'",
			ids: []string{f.deployer.ID}, first: map[string]any{"Id": f.deployer.ID, "Username": f.deployer.Username}},
		{name: "no match", q: "SELECT Id FROM User WHERE Username = 'nobody@example.com'", ids: []string{}},
		{name: "trailing slash", path: path + "/", q: "SELECT Id FROM Organization", ids: []string{f.org.ID}},
		{name: "object the org lacks", q: "SELECT Id, Status FROM ScratchOrgInfo WHERE Id = '2SR000000000000'", code: "INVALID_TYPE"},
		{name: "unknown selected field", q: "SELECT Id, Bogus FROM Organization", code: "INVALID_FIELD"},
		{name: "unknown WHERE field", q: "SELECT Id FROM User WHERE Bogus = 'x'", code: "INVALID_FIELD"},
		{name: "unknown field, no row matching", q: "SELECT Bogus FROM User WHERE Username = 'nobody@example.com'", code: "INVALID_FIELD"},
		{name: "no fields", q: "SELECT FROM User", code: "MALFORMED_QUERY"},
		{name: "unquoted value", q: "SELECT Id FROM User WHERE Username = integration@example.com", code: "MALFORMED_QUERY"},
		{name: "not a SELECT", q: "DELETE FROM User", code: "MALFORMED_QUERY"},
		{name: "empty", q: "", code: "MALFORMED_QUERY"},
		{name: "no token", q: "SELECT Id FROM Organization", noToken: true, code: "INVALID_SESSION_ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, token := c.path, tok
			if p == "" {
				p = path
			}
			if c.noToken {
				token = ""
			}
			r := f.request(t, "GET", p+"?q="+url.QueryEscape(c.q), "", "", token)
			if c.code != "" {
				want := 400
				if c.noToken {
					want = 401
				}
				if r.status != want || restErrorCode(t, r) != c.code {
					t.Errorf("want %d %s: %d %s", want, c.code, r.status, r.body)
				}
				return
			}
			var res struct {
				TotalSize int              `json:"totalSize"`
				Done      *bool            `json:"done"`
				Records   []map[string]any `json:"records"`
			}
			if r.status != 200 || json.Unmarshal(r.body, &res) != nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if res.Records == nil || res.TotalSize != len(res.Records) || res.Done == nil || !*res.Done {
				t.Errorf("envelope %s", r.body)
			}
			var ids []string
			for _, rec := range res.Records {
				attrs, _ := rec["attributes"].(map[string]any)
				u, _ := attrs["url"].(string)
				if attrs["type"] == nil || !strings.HasPrefix(u, "/services/data/v60.0/sobjects/") {
					t.Errorf("record attributes %v", attrs)
				}
				ids = append(ids, u[strings.LastIndex(u, "/")+1:])
			}
			if !sameIDs(ids, c.ids) {
				t.Errorf("records %v, want %v", ids, c.ids)
			}
			if c.first == nil || len(res.Records) == 0 {
				return
			}
			rec := res.Records[0]
			if len(rec) != len(c.first)+1 {
				t.Errorf("record has other fields than those selected: %v", rec)
			}
			for k, v := range c.first {
				if got, ok := rec[k]; !ok || got != v {
					t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
				}
			}
		})
	}
}

func sameIDs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// The Salesforce CLI joins an instance URL ending in "/" with paths
// starting with one; those must be served, not redirected.
func TestDoubleSlashPaths(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	noRedirect := *f.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	g := *f
	g.client = &noRedirect

	cases := []struct {
		path, token, want string
	}{
		{"/services/data", "", `"version":"60.0"`},
		{"//services/data", "", `"version":"60.0"`},
		{"//services/data/", "", `"version":"60.0"`},
		{"//services/data/v60.0/sobjects/User/" + f.user.ID, tok, `"Username":"integration@example.com"`},
		{"/services//data/v60.0//query?q=SELECT+Name+FROM+Organization", tok, `"Name":"Prod"`},
		{"//services/oauth2/userinfo", tok, `"preferred_username":"integration@example.com"`},
	}
	for _, c := range cases {
		r := g.request(t, "GET", c.path, "", "", c.token)
		if r.status != 200 || !strings.Contains(string(r.body), c.want) {
			t.Errorf("GET %s: %d (Location %q) %s", c.path, r.status, r.header.Get("Location"), r.body)
		}
	}
}

// The request log shows a query's SOQL, and no other query string (an
// oauth_token parameter is a secret).
func TestRequestLogQueryStrings(t *testing.T) {
	var logs syncBuffer
	f := newFixture(t, Config{Logf: logs.Printf})
	tok := f.login(t, f.user.Username)
	cases := []struct {
		path, token, want string
	}{
		{"/services/data/v60.0/query?q=" + url.QueryEscape("SELECT Id FROM Organization"), tok,
			"GET /services/data/v60.0/query?q=SELECT+Id+FROM+Organization -> 200"},
		{"/services/data/v60.0/query/?q=SELECT", tok, "GET /services/data/v60.0/query/?q=SELECT -> 400"},
		{"/services/oauth2/userinfo?oauth_token=" + url.QueryEscape(tok), "", "GET /services/oauth2/userinfo -> 200"},
	}
	for _, c := range cases {
		f.request(t, "GET", c.path, "", "", c.token)
		if !strings.Contains(logs.String(), c.want) {
			t.Errorf("log lacks %q:\n%s", c.want, logs.String())
		}
	}
	if strings.Contains(logs.String(), tok[16:]) {
		t.Error("the log shows an access token")
	}
}
