package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestRoleCRUD writes, reads, updates, lists and deletes a role, with the defaults of api.md,
// and checks that a misspelt field is refused rather than silently defaulted.
func TestRoleCRUD(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	e.CreateConnection(t, v, "demo", nil)
	path := Mount + "/roles/app"

	// As an operator types it.
	v.CLI(t, "write", path, "connection=demo", "username="+e.Emu.Username)

	r := v.Read(t, path)
	if r == nil {
		t.Fatal("role not found after write")
	}
	for field, want := range map[string]string{"connection": "demo", "username": e.Emu.Username, "token_mode": "shared"} {
		if got, _ := r.Data[field].(string); got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	for field, want := range map[string]int64{"ttl": 15 * 60, "max_ttl": 60 * 60, "session_timeout": 2 * 60 * 60} {
		if got := Seconds(t, r, field); got != want {
			t.Errorf("%s = %ds, want %ds (the api.md default)", field, got, want)
		}
	}
	if got := Int(t, r, "tokens_minted"); got != 0 {
		t.Errorf("tokens_minted %d before any read", got)
	}

	// An update names only what changes; the rest is kept.
	v.CLI(t, "write", path, "token_mode=per_lease", "ttl=5m")
	r = v.Read(t, path)
	if r.Data["token_mode"] != "per_lease" || Seconds(t, r, "ttl") != 300 {
		t.Errorf("after update: token_mode %v, ttl %v; want per_lease, 300", r.Data["token_mode"], r.Data["ttl"])
	}
	if r.Data["username"] != e.Emu.Username || r.Data["connection"] != "demo" {
		t.Errorf("update lost fields it did not name: %v", r.Data)
	}

	// A typo must never fall back to a default (api.md, Errors).
	_, stderr, err := v.TryCLI(t, "write", path, "sesion_timeout=1h")
	if err == nil {
		t.Errorf("a write with the unknown field sesion_timeout succeeded")
	} else if !strings.Contains(stderr, "sesion_timeout") || !strings.Contains(stderr, "400") {
		t.Errorf("unknown field refusal should be HTTP 400 naming sesion_timeout: %s", stderr)
	}

	_, err = v.Client.Logical().Write(path, map[string]any{"token_mode": "sometimes"})
	if StatusCode(err) != 400 || !strings.Contains(err.Error(), "token_mode") {
		t.Errorf("token_mode=sometimes: %v, want HTTP 400 naming token_mode", err)
	}

	l := v.List(t, Mount+"/roles")
	if l == nil || !slices.Contains(anyStrings(l.Data["keys"]), "app") {
		t.Fatalf("roles list lacks app: %v", l)
	}

	v.CLI(t, "delete", path)
	if r := v.Read(t, path); r != nil {
		t.Fatalf("role still readable after delete: %v", r.Data)
	}
}
