package backend

import (
	"context"
	"strings"
	"testing"
	"time"

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
		{"shared ttl not below session", map[string]any{"ttl": "2h", "session_timeout": "2h"}, "ttl"},
		{"shared alias not below session", map[string]any{"min_remaining_ttl": "2h", "session_timeout": "2h"}, "min_remaining_ttl"},
		{"max_ttl on a shared role", map[string]any{"max_ttl": "2h"}, "max_ttl is ignored with token_mode=shared"},
		{"max_ttl with explicit shared", map[string]any{"token_mode": "shared", "max_ttl": "30m"}, "max_ttl is ignored"},
		{"alias and ttl together", map[string]any{"ttl": "10m", "min_remaining_ttl": "10m"}, "give one of them"},
		{"alias on per_lease", map[string]any{"token_mode": "per_lease", "min_remaining_ttl": "10m"}, "applies to token_mode=shared only"},
		{"alias too short", map[string]any{"min_remaining_ttl": "10s"}, "min_remaining_ttl"},
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

// Shared mode's ttl and max_ttl: min_remaining_ttl sets what ttl means there (ttl keeps
// working), and max_ttl is refused only on a write that names it. A shared role stored with
// max_ttl before the refusal existed (every role was: it had a default) still reads, takes an
// update that does not name max_ttl, and mints.
func TestSharedRoleTTLNames(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	e.createConnection("prod", nil)

	e.createRole("alias", "prod", map[string]any{"min_remaining_ttl": "20m"})
	if got := e.read("roles/alias").Data["ttl"]; got != int64(20*60) {
		t.Errorf("min_remaining_ttl=20m: ttl reads %v, want 1200", got)
	}
	e.createRole("plain", "prod", map[string]any{"ttl": "25m"})
	if got := e.read("roles/plain").Data["ttl"]; got != int64(25*60) {
		t.Errorf("ttl=25m: ttl reads %v, want 1500", got)
	}
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease", "ttl": "10m", "max_ttl": "30m"})

	// A role as an older version stored it: shared, with max_ttl set.
	old, err := getRole(ctx, e.storage, "plain")
	if err != nil || old == nil {
		t.Fatalf("getRole: %v %v", old, err)
	}
	old.MaxTTL = 90 * time.Minute
	if err := e.b.putRole(ctx, e.storage, "plain", old); err != nil {
		t.Fatal(err)
	}
	if got := e.read("roles/plain").Data["max_ttl"]; got != int64(90*60) {
		t.Errorf("stored shared role's max_ttl reads %v, want 5400", got)
	}
	mustOK(t, e.write("roles/plain", map[string]any{"min_remaining_ttl": "15m"}))
	mustErr(t, e.write("roles/plain", map[string]any{"max_ttl": "1h"}), "max_ttl is ignored with token_mode=shared")
	if got := e.read("roles/plain").Data["ttl"]; got != int64(15*60) {
		t.Errorf("after the refused write ttl reads %v, want 900 (a failed write changes nothing)", got)
	}
	if tok := e.read("creds/plain").Data["access_token"]; tok == nil || tok == "" {
		t.Error("the stored shared role with max_ttl did not mint")
	}
}
