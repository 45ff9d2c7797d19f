package backend

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

func TestConnectionCreateGeneratesKeyAndCertificate(t *testing.T) {
	e := newTestEnv(t)
	resp := e.createConnection("prod", nil)
	cert, err := keyutil.ParseCertificatePEM(resp.Data["certificate"].(string))
	if err != nil {
		t.Fatalf("create did not return a PEM certificate: %v", err)
	}
	if got, want := cert.Subject.CommonName, "vault-plugin-salesforce prod"; got != want {
		t.Errorf("subject CN = %q, want %q", got, want)
	}
	if cert.SignatureAlgorithm.String() != "SHA256-RSA" {
		t.Errorf("signature algorithm = %v, want SHA256-RSA", cert.SignatureAlgorithm)
	}
	if resp.Data["active_key_version"] != 1 || resp.Data["pending_key_version"] != 0 {
		t.Errorf("versions: active=%v pending=%v", resp.Data["active_key_version"], resp.Data["pending_key_version"])
	}
	if resp.Data["certificate_fingerprint_sha256"] != keyutil.Fingerprint(cert) {
		t.Errorf("fingerprint mismatch")
	}
}

func TestConnectionDefaults(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	d := e.read("connections/prod").Data
	want := map[string]any{
		"audience":                 "https://login.salesforce.com",
		"key_type":                 "rsa-2048",
		"certificate_ttl":          int64(8760 * 3600),
		"key_rotation_period":      int64(0),
		"certificate_renew_before": int64(720 * 3600),
		"keep_archived_keys":       2,
		"deploy":                   "manual",
		"app_type":                 "external_client_app", // Connected Apps can no longer be created (Spring '26)
		"propagation_timeout":      int64(15 * 60),
		"api_version":              "62.0",
		"consumer_key_max_age":     int64(0),
		"certificate_subject":      "CN=vault-plugin-salesforce prod",
		"rotation_state":           "idle",
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %#v, want %#v", k, d[k], v)
		}
	}
}

func TestConnectionDefaultLoginURLAndAudience(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct{ loginURL, aud string }{
		{"", "https://login.salesforce.com"},
		{"https://test.salesforce.com", "https://test.salesforce.com"},
		{"https://acme--uat.sandbox.my.salesforce.com/", "https://test.salesforce.com"},
		{"https://acme.my.salesforce.com", "https://login.salesforce.com"},
		{"https://acme.my.site.com/customers", "https://login.salesforce.com"},
	} {
		data := map[string]any{"consumer_key": "3MVGabc", "allow_community_login": true}
		if tc.loginURL != "" {
			data["login_url"] = tc.loginURL
		}
		resp := mustOK(t, e.write("connections/c", data))
		if resp.Data["audience"] != tc.aud {
			t.Errorf("login_url %q: audience %v, want %v", tc.loginURL, resp.Data["audience"], tc.aud)
		}
		if tc.loginURL == "" && resp.Data["login_url"] != "https://login.salesforce.com" {
			t.Errorf("default login_url = %v", resp.Data["login_url"])
		}
		e.del("connections/c")
	}
}

func TestConnectionUpdateIsPartialAndKeepsKey(t *testing.T) {
	e := newTestEnv(t)
	first := e.createConnection("prod", nil)
	resp := mustOK(t, e.write("connections/prod", map[string]any{"keep_archived_keys": 5, "consumer_key": "3MVGnewkey"}))
	if resp.Data["keep_archived_keys"] != 5 || resp.Data["login_url"] != e.emu.URL() {
		t.Errorf("update lost or ignored fields: %v", resp.Data)
	}
	if resp.Data["certificate"] != first.Data["certificate"] {
		t.Error("an update must not change the key")
	}
	if resp.Data["consumer_key_set_at"] == "" {
		t.Error("consumer_key_set_at not recorded")
	}
}

func TestConnectionList(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("a", nil)
	e.createConnection("b", nil)
	keys := e.list("connections/").Data["keys"].([]string)
	if strings.Join(keys, ",") != "a,b" {
		t.Errorf("list = %v", keys)
	}
}

func TestConnectionDeleteRefusedWhileRolesUseIt(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app1", "prod", nil)
	e.createRole("app2", "prod", nil)
	mustErr(t, e.del("connections/prod"), "app1", "app2")
	if e.read("connections/prod") == nil {
		t.Fatal("connection deleted despite roles")
	}
	e.del("roles/app1")
	e.del("roles/app2")
	mustOK(t, e.del("connections/prod"))
	if e.read("connections/prod") != nil {
		t.Fatal("connection still readable after delete")
	}
	if keys, _ := e.storage.List(context.Background(), "keys/prod/"); len(keys) != 0 {
		t.Errorf("key material left after delete: %v", keys)
	}
}

func TestConnectionBadInput(t *testing.T) {
	e := newTestEnv(t)
	cases := []struct {
		name  string
		data  map[string]any
		field string
	}{
		{"missing consumer_key", map[string]any{"consumer_key": nil}, "consumer_key"},
		{"consumer_key with spaces", map[string]any{"consumer_key": "abc def"}, "consumer_key"},
		{"http login_url", map[string]any{"login_url": "http://login.salesforce.com"}, "login_url"},
		{"non-salesforce host", map[string]any{"login_url": "https://evil.example.com", "allow_non_salesforce_host": false}, "login_url"},
		{"ip literal", map[string]any{"login_url": "https://10.0.0.1", "allow_non_salesforce_host": false}, "login_url"},
		{"userinfo in url", map[string]any{"login_url": "https://user:pw@login.salesforce.com"}, "login_url"},
		{"query in url", map[string]any{"login_url": "https://login.salesforce.com/?x=1"}, "login_url"},
		{"setup domain", map[string]any{"login_url": "https://acme.my.salesforce-setup.com", "allow_non_salesforce_host": false}, "login_url"},
		{"lookalike host", map[string]any{"login_url": "https://login.salesforce.com.evil.io", "allow_non_salesforce_host": false}, "login_url"},
		{"bad audience", map[string]any{"audience": "login.salesforce.com"}, "audience"},
		{"bad ca_cert", map[string]any{"ca_cert": "not a cert"}, "ca_cert"},
		{"bad key_type", map[string]any{"key_type": "ec-256"}, "key_type"},
		{"short certificate_ttl", map[string]any{"certificate_ttl": "1h"}, "certificate_ttl"},
		{"bad subject", map[string]any{"certificate_subject": "vault"}, "certificate_subject"},
		{"bad subject attr", map[string]any{"certificate_subject": "XX=vault"}, "certificate_subject"},
		{"tiny rotation period", map[string]any{"key_rotation_period": "5m"}, "key_rotation_period"},
		{"negative keep", map[string]any{"keep_archived_keys": -1}, "keep_archived_keys"},
		{"huge keep", map[string]any{"keep_archived_keys": 1000}, "keep_archived_keys"},
		{"bad deploy", map[string]any{"deploy": "ftp"}, "deploy"},
		{"metadata_api without app_name", map[string]any{"deploy": "metadata_api", "deploy_username": "d@x.com"}, "app_name"},
		{"metadata_api without deploy_username", map[string]any{"deploy": "metadata_api", "app_name": "Vault_JWT"}, "deploy_username"},
		{"bad app_type", map[string]any{"app_type": "canvas"}, "app_type"},
		{"bad app_name", map[string]any{"app_name": "1bad name"}, "app_name"},
		{"bad deploy_username", map[string]any{"deploy_username": "not a user"}, "deploy_username"},
		{"bad verify_username", map[string]any{"verify_username": "x"}, "verify_username"},
		{"short propagation_timeout", map[string]any{"propagation_timeout": "5s"}, "propagation_timeout"},
		{"bad api_version", map[string]any{"api_version": "v62"}, "api_version"},
		{"short consumer_key_max_age", map[string]any{"consumer_key_max_age": "1h"}, "consumer_key_max_age"},
		{"renew_before beyond ttl", map[string]any{"key_rotation_period": "24h", "certificate_ttl": "48h", "certificate_renew_before": "72h"}, "certificate_renew_before"},
		{"duration garbage", map[string]any{"certificate_ttl": "forever"}, "certificate_ttl"},
		{"unknown field", map[string]any{"sesion_timeout": "1h"}, "sesion_timeout"},
		{"private key garbage", map[string]any{"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "private_key"},
		{"certificate without key", map[string]any{"certificate": "x"}, "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := e.connectionData(tc.data)
			for k, v := range tc.data {
				if v == nil {
					delete(data, k)
				}
			}
			resp, err := e.do(logical.UpdateOperation, "connections/bad", data)
			if err != nil {
				t.Fatalf("got a 500-class error instead of a 400: %v", err)
			}
			mustErr(t, resp, tc.field)
			if keys, _ := e.storage.List(context.Background(), ""); len(keys) != 0 {
				t.Fatalf("a refused write left storage entries: %v", keys)
			}
		})
	}
}

func TestConnectionBadUpdateLeavesStoredSettings(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	before := e.read("connections/prod").Data
	mustErr(t, e.write("connections/prod", map[string]any{"keep_archived_keys": 3, "key_type": "dsa"}), "key_type")
	after := e.read("connections/prod").Data
	if after["keep_archived_keys"] != before["keep_archived_keys"] {
		t.Error("a refused update changed a field")
	}
}

func TestConnectionCreateStorageFailureLeavesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.storage.FailPut(true)
	if _, err := e.do(logical.UpdateOperation, "connections/prod", e.connectionData(nil)); err == nil {
		t.Fatal("expected the create to fail when storage fails")
	}
	e.storage.FailPut(false)
	if keys, _ := e.storage.List(context.Background(), ""); len(keys) != 0 {
		t.Fatalf("a failed create left storage entries: %v", keys)
	}
}

func TestConnectionNameTooLong(t *testing.T) {
	e := newTestEnv(t)
	mustErr(t, e.write("connections/"+strings.Repeat("a", 200), e.connectionData(nil)), "name")
}

func TestConnectionWarnsOnOldConsumerKey(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", map[string]any{"consumer_key_max_age": "720h"})
	if w := e.read("connections/prod").Warnings; len(w) != 0 {
		t.Fatalf("unexpected warnings: %v", w)
	}
	e.clock.Advance(721 * 3600e9)
	warnings := strings.Join(e.read("connections/prod").Warnings, " ")
	if !strings.Contains(warnings, "consumer_key_max_age") {
		t.Errorf("no consumer key age warning: %q", warnings)
	}
}

func TestConnectionWarnsOnExpiringCertificateWithoutRotation(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", map[string]any{"certificate_ttl": "48h"})
	warnings := strings.Join(e.read("connections/prod").Warnings, " ")
	if !strings.Contains(warnings, "rotation is off") {
		t.Errorf("expected an expiry warning, got %q", warnings)
	}
}

func TestConnectionUpdateRefusesCertificate(t *testing.T) {
	e := newTestEnv(t)
	cert := e.createConnection("prod", nil).Data["certificate"].(string)
	mustErr(t, e.write("connections/prod", map[string]any{"certificate": cert}), "certificate", "import")
}

func TestUnknownFieldListsBodyFieldsOnly(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	resp := e.write("connections/prod/promote", map[string]any{"forse": true})
	mustErr(t, resp, `"forse"`, "force", "version")
	if msg := resp.Error().Error(); strings.Contains(msg, "name") {
		t.Errorf("the path capture 'name' is listed as a body field: %s", msg)
	}
}

func TestReliabilityFindingsInput(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	long := "https://acme.my.salesforce.com/" + strings.Repeat("a", 600)
	for _, tc := range []struct {
		path  string
		data  map[string]any
		field string
	}{
		{"roles/x", map[string]any{"connection": "prod", "username": "a\u0085b@x.com"}, "username"},       // NEL
		{"roles/x", map[string]any{"connection": "prod", "username": "ab\u202e@x.com"}, "username"},       // RTL override
		{"roles/x", map[string]any{"connection": "../prod", "username": "a@x.com"}, "connection"},         // path step
		{"connections/prod", map[string]any{"verify_username": "v\x1b@x.com"}, "verify_username"},         // ESC
		{"connections/prod", map[string]any{"certificate_subject": "CN=a\u202eb"}, "certificate_subject"}, // RTL override
		{"connections/prod", map[string]any{"certificate_subject": "CN=" + strings.Repeat("x", 65)}, "certificate_subject"},
		{"connections/prod", map[string]any{"login_url": long}, "login_url"},
		{"connections/prod", map[string]any{"audience": long}, "audience"},
		{"connections/prod", map[string]any{"keep_archived_keys": 1.5}, "keep_archived_keys"},
		{"connections/prod/promote", map[string]any{"version": 1.5}, "version"},
	} {
		resp, err := e.do(logical.UpdateOperation, tc.path, tc.data)
		if err != nil {
			t.Fatalf("%s %v: want a 400, got %v", tc.path, tc.data, err)
		}
		mustErr(t, resp, tc.field)
	}
	if e.read("roles/x") != nil {
		t.Fatal("a refused role was stored")
	}
	if d := e.read("connections/prod").Data; d["keep_archived_keys"] != 2 || d["certificate_subject"] != "CN=vault-plugin-salesforce prod" {
		t.Fatalf("a refused update changed the connection: %v", d)
	}
}
