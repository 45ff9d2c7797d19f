package backend

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// keyNeedles are fragments that would betray a private key in any encoding we or a library
// might print: PEM, base64 of PKCS#1 and PKCS#8 DER, and the private exponent and primes in
// hex, decimal and base64. (The modulus is public: it is in every certificate.)
func keyNeedles(t *testing.T, k *rsa.PrivateKey) []string {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	mid := func(s string) string { return s[len(s)/2 : len(s)/2+32] }
	for _, der := range [][]byte{pkcs8, x509.MarshalPKCS1PrivateKey(k)} {
		b64 := base64.StdEncoding.EncodeToString(der)
		out = append(out, mid(b64), b64[len(b64)-48:len(b64)-16])
	}
	for _, n := range append([]*big.Int{k.D}, k.Primes...) {
		out = append(out, mid(n.Text(16)), mid(n.String()), mid(base64.StdEncoding.EncodeToString(n.Bytes())), mid(hex.EncodeToString(n.Bytes())))
	}
	return out
}

// TestPrivateKeysNeverLeak drives every path, success and failure, then scans every response,
// error, warning and log line for private key material, and the logs for access tokens.
// bytesNeedles are the ways a secret of raw bytes could be written out: as it is, base64 (both
// alphabets), hex, and Go's %v of a byte slice.
func bytesNeedles(b []byte) []string {
	return []string{string(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		hex.EncodeToString(b), strings.Trim(fmt.Sprint(b), "[]")} //nolint:staticcheck // the decimal list is the leak looked for
}

// recorded is every log line and response of the test so far, joined; fewer than min
// responses means the scenario did not run.
func (e *testEnv) recorded(t *testing.T, min int) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.responses) < min {
		t.Fatalf("only %d responses recorded: the scenario did not run", len(e.responses))
	}
	return strings.Join(append([]string{e.logs.String()}, e.responses...), "\n")
}

func TestPrivateKeysNeverLeak(t *testing.T) {
	e := newTestEnv(t)
	imported := newRSA(t, 2048)
	e.createConnection("prod", map[string]any{"verify_username": e.seed.User.Username, "allow_privileged_roles": true})
	e.read("connections/prod")
	e.read("connections/prod/certificate")
	e.list("connections/prod/keys/")
	e.read("connections/prod/keys/1")
	e.createRole("shared", "prod", nil)
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease"})
	tokens := []string{
		mustOK(t, e.read("creds/shared")).Data["access_token"].(string),
		mustOK(t, e.read("creds/leased")).Data["access_token"].(string),
	}
	e.read("roles/shared")
	e.read("connections/prod/usage") // a login of its own, with queries that name the users
	// Refusals and bad input, which print errors.
	e.write("connections/prod/import", map[string]any{"private_key": pkcs1PEM(imported), "certificate": selfSigned(t, newRSA(t, 2048))})
	e.write("connections/prod/import", map[string]any{"private_key": "-----BEGIN RSA PRIVATE KEY-----\n" + base64.StdEncoding.EncodeToString([]byte("not really a key at all")) + "\n-----END RSA PRIVATE KEY-----"})
	e.write("connections/bad", map[string]any{"consumer_key": "x", "login_url": "https://evil.example"})
	mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs1PEM(imported)}))
	e.write("connections/prod/promote", nil) // refused: cert not on the app
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, "")
	e.write("roles/shared/reset", nil)
	e.read("creds/shared") // invalid assertion
	e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultMalformed})
	e.do(logical.ReadOperation, "creds/leased", nil)
	e.emu.ClearFaults()
	mustOK(t, e.write("connections/prod/promote", map[string]any{"force": true}))
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	e.read("connections/prod/rotation")
	e.tick()
	// The trust-boundary paths: a pasted key in fields that echo nothing, scoping refusals, a
	// rotate that may deploy an imported key, a re-key to another origin, a failed revoke.
	e.write("connections/prod", map[string]any{"certificate_subject": pkcs1PEM(imported), "allowed_roles": pkcs1PEM(imported)})
	e.write("connections/prod", map[string]any{"allowed_usernames": pkcs1PEM(imported)})
	e.write("roles/shared", map[string]any{"username": e.seed.Deployer.Username})
	e.write("connections/prod/rotate", map[string]any{"deploy_imported": true})
	e.b.wg.Wait()
	active := mustOK(t, e.read("connections/prod/certificate")).Data["certificate"].(string)
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, active)
	lease := mustOK(t, e.read("creds/leased"))
	tokens = append(tokens, lease.Data["access_token"].(string))
	e.clock.Advance(time.Hour)
	e.tick()
	e.write("connections/prod", map[string]any{"login_url": strings.Replace(e.emu.URL(), "127.0.0.1", "localhost", 1)})
	e.read("connections/prod")
	e.read("creds/shared")
	_ = e.revokeLease(lease)
	// A client-credentials connection: its secret must never show either.
	ccSecret := e.seed.CCApp.ConsumerSecret
	mustOK(t, e.write("connections/cc", e.ccConnection(map[string]any{"consumer_key": e.seed.CCApp.ConsumerKey, "consumer_secret": ccSecret})))
	mustOK(t, e.write("roles/cc", map[string]any{"connection": "cc", "token_mode": "per_lease"}))
	ccLease := mustOK(t, e.read("creds/cc"))
	tokens = append(tokens, ccLease.Data["access_token"].(string))
	e.read("connections/cc")
	e.read("connections/cc/usage")
	e.write("connections/cc", map[string]any{"consumer_secret": ccSecret + "\x00"})
	e.write("connections/cc", map[string]any{"consumer_secret": "wrong"})
	e.read("creds/cc")
	_ = e.revokeLease(ccLease)
	// Cache-only keys: the data key must never show, the Named Credential secret only in the
	// one answer that issues it.
	byok := newBYOKCert(t, 2048)
	co := mustOK(t, e.write("connections/prod/cache-only-keys/leak", map[string]any{"certificate": byok.pem, "replay_detection": true}))
	bearers := []string{co.Data["named_credential_secret"].(string)}
	dataKey := e.storedDataKey("prod", "leak")
	e.fetch("leak", bearer(bearers[0]), map[string]any{"requestId": "n1"})
	e.fetch("leak", bearer(bearers[0]), nil) // refused: replay detection wants a nonce
	e.fetch("leak", bearer(bearers[0]+"x"), nil)
	e.fetch("leak", map[string][]string{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("leak:"+bearers[0]))}}, nil)
	e.write("connections/prod/cache-only-keys/leak", map[string]any{"certificate": pkcs1PEM(imported)})
	e.write("connections/prod/cache-only-keys/bad", map[string]any{"certificate": pkcs1PEM(imported)})
	e.read("connections/prod/cache-only-keys/leak")
	e.list("connections/prod/cache-only-keys/")
	bearers = append(bearers, mustOK(t, e.write("connections/prod/cache-only-keys/leak/rotate-secret", nil)).Data["named_credential_secret"].(string))
	e.fetch("leak", bearer(bearers[1]), map[string]any{"requestId": "n2"})
	e.fetch("leak", bearer(bearers[0]), map[string]any{"requestId": "n3"})
	e.del("connections/prod/cache-only-keys/leak")
	e.fetch("leak", bearer(bearers[1]), map[string]any{"requestId": "n4"})
	e.read("connections/prod/cache-only-keys/leak")

	keys := storedKeys(t, e, "prod")
	if len(keys) < 3 {
		t.Fatalf("expected at least 3 keys in the ring, found %d", len(keys))
	}
	keys = append(keys, imported)

	// The metrics and the events' metadata are outputs too.
	outputs := []string{e.scrapeText()}
	for _, ev := range e.sentEvents() {
		for k, v := range ev.md {
			outputs = append(outputs, k+"="+v)
		}
	}
	e.mu.Lock()
	haystacks := append(append([]string{e.logs.String()}, e.responses...), outputs...)
	e.mu.Unlock()
	all := strings.Join(haystacks, "\n")
	if len(e.responses) < 15 {
		t.Fatalf("only %d responses recorded: the scenario did not run", len(e.responses))
	}
	if strings.Contains(all, ccSecret) || strings.Contains(all, ccSecret[8:40]) {
		t.Error("the consumer secret appears in a response or log")
	}
	for _, n := range bytesNeedles(dataKey) {
		if strings.Contains(all, n) {
			t.Error("the cache-only data key appears in a response or log")
		}
	}
	for i, secret := range bearers {
		seen := 0
		for _, r := range haystacks[1:] {
			if strings.Contains(r, secret[6:]) {
				seen++
			}
		}
		if seen != 1 || strings.Contains(e.logs.String(), secret[6:]) {
			t.Errorf("Named Credential secret %d is in %d responses (want exactly its one answer) or in the log", i, seen)
		}
	}
	if strings.Contains(all, "PRIVATE KEY-----") {
		t.Error("a PEM private key block appears in a response or log")
	}
	for i, k := range keys {
		for _, n := range keyNeedles(t, k) {
			if strings.Contains(all, n) {
				t.Fatalf("key %d leaked: fragment %q found in responses/logs", i, n)
			}
		}
	}
	for _, tok := range tokens {
		if out := strings.Join(outputs, "\n"); strings.Contains(out, tok) || strings.Contains(out, tok[16:]) {
			t.Fatal("an access token appears in the metrics or an event")
		}
		if strings.Contains(e.logs.String(), tok) || strings.Contains(e.logs.String(), tok[16:]) {
			t.Fatal("an access token was written to the log")
		}
	}
}

// storedKeys is every private key connection conn's ring holds in storage.
func storedKeys(t *testing.T, e *testEnv, conn string) []*rsa.PrivateKey {
	t.Helper()
	var keys []*rsa.PrivateKey
	versions, _ := e.storage.List(context.Background(), "keys/"+conn+"/")
	for _, v := range versions {
		var m keyMaterial
		if _, err := getJSON(context.Background(), e.storage, "keys/"+conn+"/"+v, &m); err != nil {
			t.Fatal(err)
		}
		k, err := x509.ParsePKCS8PrivateKey(m.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(*rsa.PrivateKey))
	}
	return keys
}

// TestConsumerSecretsNeverLeakThroughRotation drives the consumer credential rotation through
// success, refusals, outages and a restart, reads every path it adds, and scans every response,
// error, warning and log line for each consumer secret the app ever had; for both flows (a
// jwt_bearer connection's rotation seals the secret Salesforce returns with each new key).
func TestConsumerSecretsNeverLeakThroughRotation(t *testing.T) {
	for _, f := range consumerFlows {
		t.Run(f.name, func(t *testing.T) { testConsumerSecretsNeverLeak(t, f) })
	}
}

func testConsumerSecretsNeverLeak(t *testing.T, f consumerFlow) {
	e := f.env(t, map[string]any{"credentials_rotation_period": "24h"})
	secrets := []string{f.app(e).ConsumerSecret}
	e.read("creds/" + f.role)
	_, _ = e.emu.SetAllowECAConsumerSecretREST(emulator.DemoOrgID, false)
	e.do(logical.UpdateOperation, "connections/"+f.conn+"/credentials/rotate", nil) // refused
	_, _ = e.emu.SetAllowECAConsumerSecretREST(emulator.DemoOrgID, true)
	e.emu.AddFault(emulator.Fault{Endpoint: "staged_credentials", Kind: emulator.FaultMalformed, Count: 1})
	e.do(logical.UpdateOperation, "connections/"+f.conn+"/credentials/rotate", nil) // a malformed answer, retried
	e.emu.ClearFaults()
	e.clock.Advance(time.Hour)
	e.tick()
	secrets = append(secrets, f.app(e).ConsumerSecret)
	e.read("connections/" + f.conn + "/credentials")
	e.read("connections/" + f.conn + "/credentials/rotation")
	e.read("connections/" + f.conn)
	e.write("connections/"+f.conn, map[string]any{"consumer_secret": "x" + secrets[1]}) // refused: in flight
	e.b.Cleanup(context.Background())
	e.b = restartBackend(t, e)
	e.clock.Advance(2 * time.Hour)
	e.tick()
	e.read("creds/" + f.role)
	e.clock.Advance(25 * time.Hour)
	e.tick()
	e.clock.Advance(time.Hour)
	e.tick()
	secrets = append(secrets, f.app(e).ConsumerSecret)
	e.read("connections/" + f.conn + "/credentials")
	e.read("connections/" + f.conn + "/credentials/rotation")
	if e.emu.Counters().CredentialRotations < 2 {
		t.Fatalf("setup: %d rotations", e.emu.Counters().CredentialRotations)
	}
	all := e.recorded(t, 10)
	for i, s := range secrets {
		if strings.Contains(all, s) || strings.Contains(all, s[8:40]) {
			t.Fatalf("consumer secret %d appears in a response or log", i)
		}
	}
}

// TestTenantSecretsNeverLeak drives tenant secret rotations through success, a refusal, an
// outage, destroy, restore and a restart, reads every path, and scans every response, error,
// warning and log line for each tenant secret (raw, base64, hex) and its export value.
func TestTenantSecretsNeverLeak(t *testing.T) {
	e := newTenantSecretEnv(t, map[string]any{"keep_archived": 1, "auto_destroy": true})
	mustOK(t, e.write(tsPath+"/rotate", nil))
	e.do(logical.UpdateOperation, tsPath+"/rotate", nil) // refused: too soon
	e.clock.Advance(25 * time.Hour)
	var sealed []tenantSecretValue
	keepOf := func(typ string) {
		for v := 1; v < 10; v++ {
			if val, _ := getEntry[tenantSecretValue](context.Background(), e.storage, tenantSecretValuePath("prod", typ, v)); val != nil {
				sealed = append(sealed, *val)
			}
		}
	}
	keep := func() { keepOf("data") }
	e.emu.AddFault(emulator.Fault{Endpoint: "tenant_secret", Kind: emulator.FaultStatus, Status: 500, Count: 100})
	e.do(logical.UpdateOperation, tsPath+"/rotate", nil) // an outage: left pending
	e.emu.ClearFaults()
	keep()
	e.b.Cleanup(context.Background())
	e.b = restartBackend(t, e)
	e.tick() // resumes the pending rotation
	keep()
	e.clock.Advance(25 * time.Hour)
	mustOK(t, e.write(tsPath+"/rotate", nil))
	keep()
	e.clock.Advance(25 * time.Hour)
	mustOK(t, e.write(tsPath+"/rotate", nil)) // retention destroys the oldest
	keep()
	for _, p := range []string{tsPath, tsPath + "/versions/1", tsPath + "/versions/2", tsPath + "/versions/4"} {
		e.read(p)
	}
	e.list(tsPath + "/versions")
	e.do(logical.UpdateOperation, tsPath+"/versions/4/destroy", nil)
	e.do(logical.UpdateOperation, tsPath+"/versions/4/restore", nil)
	e.do(logical.UpdateOperation, tsPath+"/versions/5/destroy", nil) // the active one: refused
	// A search_index secret goes out CKM_RSA_AES_KEY_WRAP wrapped: the same scan covers it.
	const siPath = "connections/prod/tenant-secrets/search_index"
	mustOK(t, e.write(siPath, map[string]any{"certificate_name": "Vault_BYOK"}))
	mustOK(t, e.write(siPath+"/rotate", nil))
	e.do(logical.UpdateOperation, siPath+"/rotate", nil) // refused: too soon
	e.read(siPath)
	e.list(siPath + "/versions")
	keepOf("search_index")
	if len(sealed) < 4 {
		t.Fatalf("setup: %d sealed secrets seen", len(sealed))
	}
	all := e.recorded(t, 10)
	for i, s := range sealed {
		for _, needle := range bytesNeedles(s.Secret) {
			if strings.Contains(all, needle) {
				t.Fatalf("tenant secret %d appears in a response or log", i)
			}
		}
		if s.Export != "" && strings.Contains(all, s.Export[:40]) {
			t.Fatalf("the export value of secret %d appears in a response or log", i)
		}
	}
}
