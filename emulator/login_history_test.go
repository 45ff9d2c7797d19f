package emulator

import (
	"net/url"
	"testing"
	"time"
)

func TestLoginHistoryQuery(t *testing.T) {
	f := newFixture(t, Config{})
	first := f.login(t, f.user.Username)
	f.clock.Advance(time.Minute)
	bad := f.claims()
	bad["aud"] = "https://nowhere.example.com"
	if r := f.postToken(t, jwtForm(sign(t, keyA, bad))); r.status != 400 {
		t.Fatalf("bad audience: %d %s", r.status, r.body)
	}
	f.clock.Advance(time.Minute)
	_ = f.login(t, f.deployer.Username)
	if _, err := f.e.SetUserPermissions(f.deployer.Username, PermManageUsers); err != nil {
		t.Fatal(err)
	}
	admin := f.login(t, f.deployer.Username)
	q := func(soql string) string { return "/services/data/v62.0/query?q=" + url.QueryEscape(soql) }
	const cols = "SELECT UserId, LoginTime, Status, SourceIp, Application, TlsProtocol FROM LoginHistory"

	cases := []struct {
		name, path, token string
		status            int
		wantUsers         []string // 200: UserId of each row, in order
		wantStatus        []string
		code              string // otherwise
	}{
		{name: "own rows only without Manage Users", path: q(cols + " ORDER BY LoginTime DESC"), token: first, status: 200,
			wantUsers: []string{f.user.ID, f.user.ID}, wantStatus: []string{"Failed: audience is invalid", "Success"}},
		{name: "every user's rows with Manage Users, newest first", path: q(cols + " WHERE UserId IN ('" + f.user.ID + "', '" + f.deployer.ID[:15] + "') ORDER BY LoginTime DESC LIMIT 3"), token: admin, status: 200,
			wantUsers: []string{f.deployer.ID, f.deployer.ID, f.user.ID}, wantStatus: []string{"Success", "Success", "Failed: audience is invalid"}},
		{name: "IN filters users", path: q(cols + " WHERE UserId IN ('" + f.user.ID + "') ORDER BY LoginTime ASC LIMIT 1"), token: admin, status: 200,
			wantUsers: []string{f.user.ID}, wantStatus: []string{"Success"}},
		{name: "unknown column", path: q("SELECT Password FROM LoginHistory"), token: admin, status: 400, code: "INVALID_FIELD"},
		{name: "unknown order column", path: q(cols + " ORDER BY Nope DESC"), token: admin, status: 400, code: "INVALID_FIELD"},
		{name: "unquoted IN value", path: q(cols + " WHERE UserId IN (42)"), token: admin, status: 400, code: "MALFORMED_QUERY"},
		{name: "no token", path: q(cols), status: 401, code: "INVALID_SESSION_ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := f.restGet(t, c.path, c.token, c.status, c.code)
			if !ok {
				return
			}
			records := r.json(t)["records"].([]any)
			if len(records) != len(c.wantUsers) {
				t.Fatalf("%d rows, want %d: %s", len(records), len(c.wantUsers), r.body)
			}
			for i, rec := range records {
				row := rec.(map[string]any)
				if row["UserId"] != c.wantUsers[i] || row["Status"] != c.wantStatus[i] {
					t.Fatalf("row %d: %v, want user %s status %s", i, row, c.wantUsers[i], c.wantStatus[i])
				}
				if row["SourceIp"] != "127.0.0.1" || row["Application"] == "" || row["TlsProtocol"] != "TLS 1.3" {
					t.Fatalf("row %d: %v", i, row)
				}
			}
		})
	}
}

func TestLimitsNeedViewSetup(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.e.DenyViewSetup(f.user.Username); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, user string
		status     int
	}{
		{"with View Setup", f.deployer.Username, 200},
		{"without View Setup", f.user.Username, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.request(t, "GET", "/services/data/v62.0/limits", "", "", f.login(t, c.user))
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.status == 403 && restErrorCode(t, r) != "INSUFFICIENT_ACCESS" {
				t.Fatalf("body %s", r.body)
			}
		})
	}
}
