package backend

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

const testSecret = "S3cr3tConsumerValue0123456789ABCDEF"

// ccConnection is a client-credentials connection to the emulator's host.
func (e *testEnv) ccConnection(extra map[string]any) map[string]any {
	d := map[string]any{"auth_flow": "client_credentials", "consumer_key": e.seed.App.ConsumerKey, "consumer_secret": testSecret,
		"login_url": e.emu.URL(), "allow_non_salesforce_host": true, "ca_cert": e.emu.CACertPEM()}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// Bad input of a client-credentials connection and its roles: each a 400 naming the field, none
// quoting the secret.
func TestClientCredentialsConnectionInput(t *testing.T) {
	e := newTestEnv(t)
	mustOK(t, e.write("connections/cc", e.ccConnection(nil)))
	e.createConnection("jwt", nil)
	cases := []struct {
		name, path string
		data       map[string]any
		field      string
	}{
		{"login host", "connections/c1", e.ccConnection(map[string]any{"login_url": "https://login.salesforce.com", "allow_non_salesforce_host": false, "ca_cert": ""}), "login_url"},
		{"test host", "connections/c2", e.ccConnection(map[string]any{"login_url": "https://test.salesforce.com", "allow_non_salesforce_host": false, "ca_cert": ""}), "login_url"},
		{"no secret", "connections/c3", e.ccConnection(map[string]any{"consumer_secret": nil}), "consumer_secret"},
		{"empty secret", "connections/c4", e.ccConnection(map[string]any{"consumer_secret": ""}), "consumer_secret"},
		{"control char", "connections/c5", e.ccConnection(map[string]any{"consumer_secret": testSecret + "\n"}), "consumer_secret"},
		{"key field", "connections/c6", e.ccConnection(map[string]any{"key_type": "rsa-4096"}), "key_type"},
		{"deploy field", "connections/c7", e.ccConnection(map[string]any{"deploy": "metadata_api"}), "deploy"},
		{"import", "connections/c8", e.ccConnection(map[string]any{"private_key": "x"}), "private_key"},
		{"flow change", "connections/cc", map[string]any{"auth_flow": "jwt_bearer"}, "auth_flow"},
		{"flow change jwt", "connections/jwt", map[string]any{"auth_flow": "client_credentials", "consumer_secret": testSecret}, "auth_flow"},
		{"secret on jwt", "connections/jwt", map[string]any{"consumer_secret": testSecret}, "consumer_secret"},
		{"new host without secret", "connections/cc", map[string]any{"login_url": strings.Replace(e.emu.URL(), "127.0.0.1", "localhost", 1)}, "consumer_secret"},
		{"unknown flow", "connections/c9", e.ccConnection(map[string]any{"auth_flow": "password"}), "auth_flow"},
		{"role username", "roles/r1", map[string]any{"connection": "cc", "username": e.seed.User.Username}, "username"},
		{"role without username on jwt", "roles/r2", map[string]any{"connection": "jwt"}, "username"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := map[string]any{}
			for k, v := range c.data {
				if v != nil {
					data[k] = v
				}
			}
			resp, err := e.do(logical.UpdateOperation, c.path, data)
			if err != nil {
				t.Fatalf("a 500 instead of a 400: %v", err)
			}
			mustErr(t, resp, c.field)
			if strings.Contains(resp.Error().Error(), testSecret) {
				t.Fatal("the error quotes the consumer secret")
			}
		})
	}
	// The secret is nowhere in what a read returns, and the key paths say why they do not apply.
	d := mustOK(t, e.read("connections/cc")).Data
	if d["auth_flow"] != "client_credentials" || d["key_type"] != nil || d["certificate"] != nil {
		t.Fatalf("read: %v", d)
	}
	if strings.Contains(responseText(e.read("connections/cc")), testSecret) {
		t.Fatal("a read returns the consumer secret")
	}
	for _, p := range []string{"connections/cc/certificate", "connections/cc/rotation"} {
		mustErr(t, e.read(p), "client_credentials")
	}
	mustErr(t, e.list("connections/cc/keys/"), "client_credentials")
	for _, p := range []string{"connections/cc/rotate", "connections/cc/promote"} {
		mustErr(t, e.write(p, nil), "client_credentials")
	}
	// Stored under the seal-wrapped prefix only.
	sec, err := getConsumerSecret(context.Background(), e.storage, "cc")
	if err != nil || sec == nil || sec.Secret != testSecret {
		t.Fatalf("stored secret: %v %v", sec, err)
	}
	entry, _ := e.storage.Get(context.Background(), connectionsPrefix+"cc")
	if strings.Contains(string(entry.Value), testSecret) {
		t.Fatal("the connection entry holds the secret; it belongs under secrets/ only")
	}
	if !slices.Contains(e.b.PathsSpecial.SealWrapStorage, secretsPrefix) {
		t.Fatal("secrets/ is not declared for seal wrapping")
	}
	// Deleting the connection erases the secret.
	mustOK(t, e.del("connections/cc"))
	if sec, _ := getConsumerSecret(context.Background(), e.storage, "cc"); sec != nil {
		t.Fatal("the consumer secret survived the connection's delete")
	}
}

// A client-credentials connection mints for the app's run-as user, caches a shared token,
// leases per_lease tokens and revokes them where they were issued.
func TestClientCredentialsMintShareAndRevoke(t *testing.T) {
	e := newTestEnv(t)
	cc := e.seed.CCApp
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": cc.ConsumerKey, "consumer_secret": cc.ConsumerSecret})))
	mustOK(t, e.write("roles/shared", map[string]any{"connection": "cc"}))
	mustOK(t, e.write("roles/leased", map[string]any{"connection": "cc", "token_mode": "per_lease"}))

	a := mustOK(t, e.read("creds/shared"))
	b := mustOK(t, e.read("creds/shared"))
	if a.Data["username"] != e.seed.RunAs.Username || a.Data["access_token"] != b.Data["access_token"] || a.Secret != nil {
		t.Fatalf("shared: %v / %v", a.Data, b.Data)
	}
	if !e.emu.TokenActive(a.Data["access_token"].(string)) {
		t.Fatal("the token does not work at Salesforce")
	}
	lease := mustOK(t, e.read("creds/leased"))
	if lease.Secret == nil || lease.Data["username"] != e.seed.RunAs.Username {
		t.Fatalf("per_lease: %+v", lease)
	}
	if err := e.revokeLease(lease); err != nil {
		t.Fatal(err)
	}
	if e.emu.TokenActive(lease.Data["access_token"].(string)) {
		t.Fatal("revoking the lease left its token active")
	}
	mustOK(t, e.write("roles/shared/reset", nil))
	if e.emu.TokenActive(a.Data["access_token"].(string)) {
		t.Fatal("reset left the shared token active")
	}
	if u := e.read("roles/leased").Data["tokens_minted"]; u != int64(1) {
		t.Fatalf("usage: %v", u)
	}
	if strings.Contains(e.logs.String(), cc.ConsumerSecret) {
		t.Fatal("the consumer secret is in the log")
	}
}

// Salesforce's refusals of the flow come back as 400s with what to check, never with the
// secret; a run-as user outside allowed_usernames gets no token (the one minted is revoked).
func TestClientCredentialsRefusals(t *testing.T) {
	e := newTestEnv(t)
	cc := e.seed.CCApp
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": cc.ConsumerKey, "consumer_secret": "wrong-" + cc.ConsumerSecret})))
	mustOK(t, e.write("roles/app", map[string]any{"connection": "cc"}))
	resp, err := e.do(logical.ReadOperation, "creds/app", nil)
	if err != nil {
		t.Fatalf("a refusal must be a 400: %v", err)
	}
	mustErr(t, resp, "invalid_client", "consumer_secret")
	if strings.Contains(resp.Error().Error(), cc.ConsumerSecret) {
		t.Fatal("the error quotes the secret")
	}
	mustOK(t, e.write("connections/cc", map[string]any{"consumer_secret": cc.ConsumerSecret, "allowed_usernames": "someone@else.example"}))
	before := e.emu.Counters().Revocations
	mustErr(t, e.read("creds/app"), "allowed_usernames")
	if e.emu.Counters().Revocations != before+1 {
		t.Fatal("the token minted for a run-as user outside allowed_usernames was not revoked")
	}
	mustOK(t, e.write("connections/cc", map[string]any{"allowed_usernames": "*@example.com"}))
	mustOK(t, e.read("creds/app"))
	if strings.Contains(e.logs.String(), cc.ConsumerSecret) {
		t.Fatal("the consumer secret is in the log")
	}
}

// A secret is bound to the host it was written for: re-pointing needs it again, and the
// lease minted before is still revoked at the host that issued it.
func TestClientCredentialsSecretFollowsNoRepoint(t *testing.T) {
	e := newTestEnv(t)
	atk := newAttackerHost(t)
	cc := e.seed.CCApp
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": cc.ConsumerKey, "consumer_secret": cc.ConsumerSecret})))
	mustOK(t, e.write("roles/app", map[string]any{"connection": "cc", "token_mode": "per_lease"}))
	lease := mustOK(t, e.read("creds/app"))
	mustErr(t, e.write("connections/cc", map[string]any{"login_url": atk.srv.URL, "ca_cert": atk.caPEM()}), "consumer_secret")
	mustOK(t, e.write("connections/cc", map[string]any{"login_url": atk.srv.URL, "ca_cert": atk.caPEM(), "consumer_secret": "the-attackers-own-secret"}))
	_, _ = e.do(logical.ReadOperation, "creds/app", nil)
	if err := e.revokeLease(lease); err != nil {
		t.Fatalf("revoking at the issuing host: %v", err)
	}
	if e.emu.TokenActive(lease.Data["access_token"].(string)) {
		t.Fatal("the lease minted before the re-point was not revoked where it was issued")
	}
	atk.mu.Lock()
	defer atk.mu.Unlock()
	if len(atk.secrets) == 0 {
		t.Fatal("setup: the read after the re-point did not reach the new host")
	}
	for _, s := range atk.secrets {
		if s == cc.ConsumerSecret {
			t.Fatal("the real consumer secret was sent to the new host")
		}
	}
	for _, tok := range atk.revoked {
		if tok == lease.Data["access_token"] {
			t.Fatal("the new host was sent the old token")
		}
	}
}

// The credential table shows the version and never the secret.
func TestCredentialVersionsTable(t *testing.T) {
	e := newTestEnv(t)
	cc := e.seed.CCApp
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": cc.ConsumerKey, "consumer_secret": cc.ConsumerSecret})))
	e.createConnection("jwt", nil)
	for name, hasSecret := range map[string]bool{"cc": true, "jwt": false} {
		resp := mustOK(t, e.read("connections/"+name+"/credentials"))
		versions := resp.Data["versions"].([]map[string]any)
		if len(versions) != 1 || versions[0]["status"] != "active" || versions[0]["has_secret"] != hasSecret || versions[0]["created_at"] == "" {
			t.Fatalf("%s: %v", name, resp.Data)
		}
		if strings.Contains(responseText(resp), cc.ConsumerSecret) {
			t.Fatal("the table shows the secret")
		}
	}
	if resp := e.read("connections/none/credentials"); resp != nil {
		t.Fatalf("a missing connection: %v", resp)
	}
}

// The run-as user read for one origin is never reused for a token from another host that names
// the same identity URL: that host's token is checked on its own (and here refused, its
// identity URL not being on its host).
func TestRunAsUserIsNotTakenFromAnotherOrigin(t *testing.T) {
	e := newTestEnv(t)
	cc := e.seed.CCApp
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": cc.ConsumerKey, "consumer_secret": cc.ConsumerSecret})))
	mustOK(t, e.write("roles/real", map[string]any{"connection": "cc", "token_mode": "per_lease"}))
	real := mustOK(t, e.read("creds/real"))
	idURL := real.Data["id"].(string)

	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/services/oauth2/token" {
			_, _ = fmt.Fprintf(w, `{"access_token":"other-token","instance_url":"https://%s","id":%q,"token_type":"Bearer"}`, r.Host, idURL)
		}
	}))
	t.Cleanup(other.Close)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw}))
	mustOK(t, e.write("connections/other", map[string]any{"auth_flow": "client_credentials", "consumer_key": "3MVGother", "consumer_secret": "other-secret",
		"login_url": other.URL, "allow_non_salesforce_host": true, "ca_cert": ca, "allowed_usernames": e.seed.RunAs.Username}))
	mustOK(t, e.write("roles/other", map[string]any{"connection": "other", "token_mode": "per_lease"}))
	resp, err := e.do(logical.ReadOperation, "creds/other", nil)
	if err == nil && !resp.IsError() {
		t.Fatalf("a token from another host was taken to act for %v, the user cached for the real org", resp.Data["username"])
	}
}

// Past origins are kept newest first, the oldest dropped beyond maxPastOrigins.
func TestPastOriginsKeepTheNewest(t *testing.T) {
	c := &connectionEntry{}
	for i := 0; i < maxPastOrigins+3; i++ {
		c.rememberOrigin(&origin{LoginURL: fmt.Sprintf("https://o%d.my.salesforce.com", i)})
	}
	if len(c.PastOrigins) != maxPastOrigins || c.PastOrigins[0].LoginURL != fmt.Sprintf("https://o%d.my.salesforce.com", maxPastOrigins+2) ||
		c.PastOrigins[maxPastOrigins-1].LoginURL != "https://o3.my.salesforce.com" {
		t.Fatalf("kept %d, newest %s, oldest %s", len(c.PastOrigins), c.PastOrigins[0].LoginURL, c.PastOrigins[len(c.PastOrigins)-1].LoginURL)
	}
}
