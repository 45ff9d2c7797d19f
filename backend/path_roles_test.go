package backend

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRoleCRUDAndDefaults(t *testing.T) {
	e := newAppEnv(t)
	d := e.read("roles/app").Data
	want := map[string]any{"connection": "prod", "username": e.seed.User.Username, "ttl": int64(900), "max_ttl": int64(3600),
		"token_mode": "shared", "session_timeout": int64(7200), "tokens_minted": int64(0)}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %#v, want %#v", k, d[k], v)
		}
	}
	mustOK(t, e.write("roles/app", map[string]any{"ttl": "20m"}))
	if d := e.read("roles/app").Data; d["ttl"] != int64(1200) || d["username"] != e.seed.User.Username {
		t.Errorf("partial update: %v", d)
	}
	mustOK(t, e.read("creds/app"))
	d = e.read("roles/app").Data
	if d["tokens_minted"] != int64(1) || d["last_key_version"] != 1 || d["last_minted_at"] == "" {
		t.Errorf("usage not recorded: %v", d)
	}
	e.createRole("other", "prod", nil)
	if keys := e.list("roles/").Data["keys"].([]string); strings.Join(keys, ",") != "app,other" {
		t.Errorf("list = %v", keys)
	}
	e.del("roles/app")
	if e.read("roles/app") != nil {
		t.Fatal("role readable after delete")
	}
	mustErr(t, e.read("creds/app"), "unknown role")
}

func TestRoleBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	good := map[string]any{"connection": "prod", "username": "integration@example.com"}
	cases := []struct {
		name  string
		data  map[string]any
		field string
	}{
		{"missing connection", map[string]any{"connection": nil}, "connection"},
		{"unknown connection", map[string]any{"connection": "nope"}, "connection"},
		{"missing username", map[string]any{"username": nil}, "username"},
		{"bad username", map[string]any{"username": "not an email"}, "username"},
		{"username control chars", map[string]any{"username": "a\n@b.com"}, "username"},
		{"bad token_mode", map[string]any{"token_mode": "cached"}, "token_mode"},
		{"ttl too short", map[string]any{"ttl": "10s"}, "ttl"},
		{"ttl garbage", map[string]any{"ttl": "soon"}, "ttl"},
		{"max_ttl below ttl", map[string]any{"ttl": "30m", "max_ttl": "10m", "token_mode": "per_lease"}, "max_ttl"},
		{"session_timeout too short", map[string]any{"session_timeout": "5m"}, "session_timeout"},
		{"session_timeout too long", map[string]any{"session_timeout": "48h"}, "session_timeout"},
		{"shared ttl not below session", map[string]any{"ttl": "2h", "max_ttl": "2h", "session_timeout": "2h"}, "ttl"},
		{"bad cidr", map[string]any{"bound_cidrs": "10.0.0.0/33"}, "bound_cidrs"},
		{"typo field", map[string]any{"sesion_timeout": "1h"}, "sesion_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string]any{}
			for k, v := range good {
				data[k] = v
			}
			for k, v := range tc.data {
				if v == nil {
					delete(data, k)
				} else {
					data[k] = v
				}
			}
			resp, err := e.do(logical.UpdateOperation, "roles/bad", data)
			if err != nil {
				t.Fatalf("want a 400, got %v", err)
			}
			mustErr(t, resp, tc.field)
			if e.read("roles/bad") != nil {
				t.Fatal("a refused write stored the role")
			}
		})
	}
}

func TestRoleChangeDropsCachedToken(t *testing.T) {
	e := newAppEnv(t)
	tok := mustOK(t, e.read("creds/app")).Data["access_token"]
	mustOK(t, e.write("roles/app", map[string]any{"username": e.seed.Deployer.Username}))
	resp := mustOK(t, e.read("creds/app"))
	if resp.Data["access_token"] == tok || resp.Data["username"] != e.seed.Deployer.Username {
		t.Fatal("a username change kept serving the old user's token")
	}
}

func TestRoleSharedTTLNotBoundByMaxTTL(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	mustOK(t, e.write("roles/app", map[string]any{"connection": "prod", "username": e.seed.User.Username, "ttl": "90m"}))
	mustErr(t, e.write("roles/leased", map[string]any{"connection": "prod", "username": e.seed.User.Username, "ttl": "90m", "token_mode": "per_lease"}), "max_ttl")
}
