package emulator

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// register posts a cache-only key's TenantSecret for kid with the given overrides.
func (f *byokFixture) register(t *testing.T, ncID, kid string, edit func(map[string]any)) result {
	t.Helper()
	body := map[string]any{"Type": "Data", "Source": "REMOTE", "RemoteKeyIdentifier": kid, "RemoteKeyServiceId": ncID,
		"RemoteKeyCertificate": "Vault_BYOK", "Description": "marker-" + kid}
	if edit != nil {
		edit(body)
	}
	raw, _ := json.Marshal(body)
	return f.request(t, "POST", tsBase+"sobjects/TenantSecret", "application/json", string(raw), f.tok)
}

func TestRemoteKeyRegistrationRefusals(t *testing.T) {
	f := newBYOKFixture(t)
	ncID, err := f.e.AddNamedCredential("", "Vault_Keys", "https://vault.example.com/v1/salesforce/cache-only")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, code string
		edit       func(map[string]any)
	}{
		{"no kid", "REQUIRED_FIELD_MISSING", func(b map[string]any) { delete(b, "RemoteKeyIdentifier") }},
		{"no Named Credential", "REQUIRED_FIELD_MISSING", func(b map[string]any) { b["RemoteKeyServiceId"] = "" }},
		{"no certificate", "REQUIRED_FIELD_MISSING", func(b map[string]any) { delete(b, "RemoteKeyCertificate") }},
		{"key material", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["SecretValue"] = "AAAA" }},
		{"derivation", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["KeyDerivationMode"] = "PBKDF2" }},
		{"search index", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["Type"] = "SearchIndex" }},
		{"bad type", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", func(b map[string]any) { b["Type"] = "Bogus" }},
		{"bad kid", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["RemoteKeyIdentifier"] = "a/b" }},
		{"unknown certificate", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["RemoteKeyCertificate"] = "Nope" }},
		{"Named Credential by name", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["RemoteKeyServiceId"] = "Vault_Keys" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.register(t, ncID, "k1", c.edit)
			if r.status != 400 || restCode(t, r) != c.code {
				t.Fatalf("got %d %s, want 400 %s", r.status, r.body, c.code)
			}
		})
	}
	if n := len(f.e.TenantSecrets("")); n != 0 {
		t.Fatalf("refused registrations stored %d secrets", n)
	}
	if _, err := f.e.SetUserPermissions(f.user.Username); err != nil {
		t.Fatal(err)
	}
	if r := f.register(t, ncID, "k1", nil); r.status != 403 || restCode(t, r) != "INSUFFICIENT_ACCESS_OR_READONLY" {
		t.Fatalf("without the permission: %d %s", r.status, r.body)
	}
}

// A registration is found by its kid, shows its fields, has no exportable value, cannot be
// restored, and a second one for the kid is a duplicate.
func TestRemoteKeyRegistration(t *testing.T) {
	f := newBYOKFixture(t)
	ncID, err := f.e.AddNamedCredential("", "Vault_Keys", "https://vault.example.com/v1/salesforce/cache-only")
	if err != nil {
		t.Fatal(err)
	}
	q := f.request(t, "GET", tsBase+"query?q="+url.QueryEscape("SELECT Id FROM NamedCredential WHERE DeveloperName = 'vault_keys'"), "", "", f.tok)
	var ncs struct {
		Records []struct {
			ID string `json:"Id"`
		} `json:"records"`
	}
	if err := json.Unmarshal(q.body, &ncs); err != nil || len(ncs.Records) != 1 || !sameID(ncs.Records[0].ID, ncID) {
		t.Fatalf("Named Credential query: %d %s", q.status, q.body)
	}
	r := f.register(t, ncs.Records[0].ID, "k1", nil)
	var created struct {
		ID string `json:"id"`
	}
	if r.status != 201 || json.Unmarshal(r.body, &created) != nil {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	at := f.e.TenantSecrets("")
	if len(at) != 1 || at[0].Source != "REMOTE" || at[0].RemoteKeyIdentifier != "k1" || at[0].RemoteKeyCertificate != "Vault_BYOK" ||
		at[0].RemoteKeyServiceID != ncID || at[0].Status != TenantSecretActive || at[0].Description != "marker-k1" {
		t.Fatalf("stored: %+v", at)
	}
	q = f.request(t, "GET", tsBase+"query?q="+url.QueryEscape("SELECT Id, Description FROM TenantSecret WHERE RemoteKeyIdentifier = 'k1'"), "", "", f.tok)
	var found struct {
		Records []struct{ ID, Description string } `json:"records"`
	}
	if err := json.Unmarshal(q.body, &found); err != nil || len(found.Records) != 1 || found.Records[0].ID != created.ID || found.Records[0].Description != "marker-k1" {
		t.Fatalf("query by kid: %d %s", q.status, q.body)
	}
	read := f.request(t, "GET", tsBase+"sobjects/TenantSecret/"+created.ID, "", "", f.tok)
	var rec map[string]any
	if err := json.Unmarshal(read.body, &rec); err != nil || rec["SecretValue"] != nil || rec["RemoteKeyIdentifier"] != "k1" || rec["Source"] != "REMOTE" {
		t.Fatalf("read: %d %s", read.status, read.body)
	}
	if p := f.request(t, "PATCH", tsBase+"sobjects/TenantSecret/"+created.ID, "application/json", `{"SecretValue":"AAAA"}`, f.tok); p.status != 400 {
		t.Fatalf("restore of a Remote key: %d %s", p.status, p.body)
	}
	f.clock.Advance(25 * time.Hour) // past the type's minimum interval, so the duplicate is what is refused
	f.tok = f.login(t, f.user.Username)
	if d := f.register(t, ncID, "k1", nil); d.status != 400 || restCode(t, d) != "DUPLICATE_VALUE" {
		t.Fatalf("a second registration of k1: %d %s", d.status, d.body)
	}
}
