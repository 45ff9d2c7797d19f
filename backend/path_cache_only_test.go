package backend

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// byokCert is a BYOK certificate as Salesforce holds it: the emulator's side keeps the private
// key to open what Vault sends.
type byokCert struct {
	priv *rsa.PrivateKey
	pem  string
}

func newBYOKCert(t testing.TB, bits int) byokCert {
	t.Helper()
	k := newRSA(t, bits)
	return byokCert{priv: k, pem: selfSigned(t, k)}
}

// cacheOnlyEnv is a test env with connection prod and a BYOK certificate.
type cacheOnlyEnv struct {
	*testEnv
	cert byokCert
}

func newCacheOnlyEnv(t testing.TB) *cacheOnlyEnv {
	t.Helper()
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	return &cacheOnlyEnv{testEnv: e, cert: newBYOKCert(t, 2048)}
}

// createKey creates cache-only key kid on prod and returns its Named Credential secret.
func (e *cacheOnlyEnv) createKey(kid string, extra map[string]any) string {
	e.t.Helper()
	d := map[string]any{"certificate": e.cert.pem}
	for k, v := range extra {
		d[k] = v
	}
	resp := mustOK(e.t, e.write("connections/prod/cache-only-keys/"+kid, d))
	secret, _ := resp.Data["named_credential_secret"].(string)
	if !strings.HasPrefix(secret, bearerSecretPrefix) || len(secret) != len(bearerSecretPrefix)+43 {
		e.t.Fatalf("named_credential_secret has the wrong shape (%d characters)", len(secret))
	}
	return secret
}

// fetch runs the callout as Vault hands it to the plugin: the passed-through headers, the
// query string as data.
func (e *testEnv) fetch(kid string, headers map[string][]string, query map[string]any) (status int, body map[string]any) {
	e.t.Helper()
	req := &logical.Request{Operation: logical.ReadOperation, Path: "cache-only/" + kid, Storage: e.storage, Data: query,
		Headers: headers, Connection: &logical.Connection{RemoteAddr: "203.0.113.7"}}
	resp, err := e.b.HandleRequest(context.Background(), req)
	e.record(resp, err)
	if err != nil {
		e.t.Fatalf("cache-only/%s: %v", kid, err)
	}
	if resp == nil || resp.Data[logical.HTTPStatusCode] == nil {
		e.t.Fatalf("cache-only/%s: not a raw answer: %#v", kid, resp)
	}
	if resp.Data[logical.HTTPContentType] != "application/json" || resp.Data[logical.HTTPCacheControlHeader] != "no-store" {
		e.t.Fatalf("cache-only/%s: content type %v, cache control %v", kid, resp.Data[logical.HTTPContentType], resp.Data[logical.HTTPCacheControlHeader])
	}
	if err := json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &body); err != nil {
		e.t.Fatalf("cache-only/%s: body is not JSON: %v", kid, err)
	}
	return resp.Data[logical.HTTPStatusCode].(int), body
}

func bearer(secret string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + secret}}
}

// storedDataKey is the data key as storage holds it (nil once destroyed).
func (e *testEnv) storedDataKey(conn, kid string) []byte {
	e.t.Helper()
	sec, err := getEntry[cacheOnlySecret](context.Background(), e.storage, cacheOnlySecretPath(conn, kid))
	if err != nil || sec == nil {
		e.t.Fatalf("secret entry of %s: %v %v", kid, sec, err)
	}
	return sec.DataKey
}

// jweHeader decodes a compact JWE's protected header, checked here without the code under
// test or the emulator: the exact parameters Salesforce allows.
func jweHeader(t *testing.T, jwe string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(jwe, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCacheOnlyKeyServesTheDataKey(t *testing.T) {
	for _, bits := range []int{2048, 4096} {
		e := newCacheOnlyEnv(t)
		e.cert = newBYOKCert(t, bits)
		secret := e.createKey("k1", nil)
		status, body := e.fetch("k1", bearer(secret), nil)
		if status != 200 || body["kid"] != "k1" || len(body) != 2 {
			t.Fatalf("RSA-%d: HTTP %d %v", bits, status, body)
		}
		jwe := body["jwe"].(string)
		want := map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1"}
		if h := jweHeader(t, jwe); !reflect.DeepEqual(h, want) {
			t.Fatalf("RSA-%d: header %v, want exactly %v", bits, h, want)
		}
		key, cerr := emulator.OpenCacheOnlyJWE(jwe, "k1", "", e.cert.priv)
		if cerr != nil {
			t.Fatalf("RSA-%d: the independent decryption refused the JWE: %v", bits, cerr)
		}
		if len(key) != 32 || !bytes.Equal(key, e.storedDataKey("prod", "k1")) {
			t.Fatalf("RSA-%d: decrypted %d bytes, not the stored data key", bits, len(key))
		}
		// Each callout wraps afresh (new content key and IV); the data key stays.
		_, again := e.fetch("k1", bearer(secret), nil)
		if again["jwe"] == jwe {
			t.Fatal("two callouts answered the same JWE: the content key or IV is reused")
		}
		if k2, _ := emulator.OpenCacheOnlyJWE(again["jwe"].(string), "k1", "", e.cert.priv); !bytes.Equal(k2, key) {
			t.Fatal("the second callout carried another key")
		}
	}
}

func TestCacheOnlyReplayDetection(t *testing.T) {
	e := newCacheOnlyEnv(t)
	secret := e.createKey("replayed", map[string]any{"replay_detection": true})
	if status, body := e.fetch("replayed", bearer(secret), nil); status != 400 || !strings.Contains(body["error"].(string), "requestId is required") {
		t.Fatalf("a callout without a nonce: HTTP %d %v", status, body)
	}
	nonce := "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	status, body := e.fetch("replayed", bearer(secret), map[string]any{"requestId": nonce})
	if status != 200 {
		t.Fatalf("HTTP %d %v", status, body)
	}
	want := map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "replayed", "jti": nonce}
	if h := jweHeader(t, body["jwe"].(string)); !reflect.DeepEqual(h, want) {
		t.Fatalf("header %v, want exactly %v", h, want)
	}
	if _, cerr := emulator.OpenCacheOnlyJWE(body["jwe"].(string), "replayed", nonce, e.cert.priv); cerr != nil {
		t.Fatal(cerr)
	}
	if _, cerr := emulator.OpenCacheOnlyJWE(body["jwe"].(string), "replayed", "another-nonce", e.cert.priv); cerr == nil || cerr.Code != emulator.CalloutIncorrectNonce {
		t.Fatalf("a JWE answered to another nonce was accepted: %v", cerr)
	}
	for _, bad := range []map[string]any{
		{"requestId": "has space"},
		{"requestId": strings.Repeat("n", maxRequestIDLength+1)},
		{"requestId": nonce, "extra": "1"},
	} {
		if status, body := e.fetch("replayed", bearer(secret), bad); status != 400 {
			t.Errorf("query %v: HTTP %d %v, want 400", bad, status, body)
		}
	}
}

func TestCacheOnlyCalloutRefusals(t *testing.T) {
	e := newCacheOnlyEnv(t)
	secret := e.createKey("k1", nil)
	other := e.createKey("k2", nil)
	basicSecret := e.createKey("kb", map[string]any{"auth_scheme": "basic"})
	basic := func(user, pass string) map[string][]string {
		return map[string][]string{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
	}
	for _, c := range []struct {
		name    string
		kid     string
		headers map[string][]string
	}{
		{"no Authorization header", "k1", nil},
		{"a wrong secret", "k1", bearer(secret[:len(secret)-1] + "x")},
		{"another kid's secret", "k1", bearer(other)},
		{"the secret without a scheme", "k1", map[string][]string{"Authorization": {secret}}},
		{"an empty bearer", "k1", map[string][]string{"Authorization": {"Bearer "}}},
		{"two Authorization values", "k1", map[string][]string{"Authorization": {"Bearer " + secret, "Bearer " + secret}}},
		{"an overlong header", "k1", bearer(secret + strings.Repeat("a", maxAuthorizationLength))},
		{"basic credentials on a bearer key", "k1", basic("k1", secret)},
		{"a bearer on a basic key", "kb", bearer(basicSecret)},
		{"basic with another user", "kb", basic("k1", basicSecret)},
		{"basic that does not decode", "kb", map[string][]string{"Authorization": {"Basic %%%"}}},
		{"an unknown kid", "nope", bearer(secret)},
		{"a kid outside the charset", "k.1", bearer(secret)},
	} {
		status, body := e.fetch(c.kid, c.headers, nil)
		if status != 401 || !reflect.DeepEqual(body, map[string]any{"error": "unauthorized"}) {
			t.Errorf("%s: HTTP %d %v, want a bare 401", c.name, status, body)
		}
	}
	// What is accepted: the bearer in any case of the scheme and header name, basic as user kid.
	for _, c := range []struct {
		name, kid string
		headers   map[string][]string
	}{
		{"bearer", "k1", bearer(secret)},
		{"lower case", "k1", map[string][]string{"authorization": {"bearer " + secret}}},
		{"basic", "kb", basic("kb", basicSecret)},
	} {
		if status, body := e.fetch(c.kid, c.headers, nil); status != 200 {
			t.Errorf("%s: HTTP %d %v", c.name, status, body)
		}
	}
	if !strings.Contains(e.logs.String(), "refused a cache-only key callout") {
		t.Error("refusals are not logged")
	}
}

func TestCacheOnlyKeyBadInput(t *testing.T) {
	e := newCacheOnlyEnv(t)
	e.createKey("taken", nil)
	mustOK(t, e.write("connections/other", e.connectionData(nil)))
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ec"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	ecDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ecDER}))
	good := e.cert.pem
	for _, c := range []struct {
		name, path string
		data       map[string]any
		want       []string
	}{
		{"a kid with a dot", "prod/cache-only-keys/a.b", map[string]any{"certificate": good}, []string{"kid must be 1 to 64 characters"}},
		{"a kid too long", "prod/cache-only-keys/" + strings.Repeat("k", maxKidLength+1), map[string]any{"certificate": good}, []string{"kid must be"}},
		{"a missing connection", "nope/cache-only-keys/k9", map[string]any{"certificate": good}, []string{`connection "nope" does not exist`}},
		{"no certificate", "prod/cache-only-keys/k9", map[string]any{}, []string{"certificate is required"}},
		{"an empty certificate", "prod/cache-only-keys/k9", map[string]any{"certificate": ""}, []string{"certificate is required"}},
		{"a certificate that is not PEM", "prod/cache-only-keys/k9", map[string]any{"certificate": "hello"}, []string{"certificate must be the BYOK certificate's PEM"}},
		{"a private key as certificate", "prod/cache-only-keys/k9", map[string]any{"certificate": pkcs1PEM(e.cert.priv)}, []string{"certificate must be the BYOK certificate's PEM"}},
		{"two certificates", "prod/cache-only-keys/k9", map[string]any{"certificate": good + good}, []string{"more than one PEM block"}},
		{"an EC certificate", "prod/cache-only-keys/k9", map[string]any{"certificate": ecPEM}, []string{"must hold an RSA public key"}},
		{"an RSA-3072 certificate", "prod/cache-only-keys/k9", map[string]any{"certificate": selfSigned(t, newRSA(t, 3072))}, []string{"3072-bit", "2048 or 4096"}},
		{"an overlong certificate", "prod/cache-only-keys/k9", map[string]any{"certificate": good + strings.Repeat(" ", maxCertificatePEMLength)}, []string{"longer than"}},
		{"replay_detection not a bool", "prod/cache-only-keys/k9", map[string]any{"certificate": good, "replay_detection": "sometimes"}, []string{"replay_detection"}},
		{"an unknown auth_scheme", "prod/cache-only-keys/k9", map[string]any{"certificate": good, "auth_scheme": "digest"}, []string{"auth_scheme must be one of bearer, basic"}},
		{"an unknown field", "prod/cache-only-keys/k9", map[string]any{"certificate": good, "certificat": good}, []string{`unknown field(s) "certificat"`}},
		{"a change to an existing key", "prod/cache-only-keys/taken", map[string]any{"certificate": good, "replay_detection": true}, []string{"already exists and cannot change", "rotate-secret"}},
		{"a kid another connection uses", "other/cache-only-keys/taken", map[string]any{"certificate": good}, []string{`kid "taken" is already used in this mount`}},
		{"rotate-secret of an unknown kid", "prod/cache-only-keys/k9/rotate-secret", map[string]any{}, []string{`no cache-only key "k9"`}},
		{"rotate-secret with a field", "prod/cache-only-keys/taken/rotate-secret", map[string]any{"force": true}, []string{`unknown field(s) "force"`}},
	} {
		before := storageSnapshot(t, e.storage)
		resp, err := e.do(logical.UpdateOperation, "connections/"+c.path, c.data)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		mustErr(t, resp, c.want...)
		if after := storageSnapshot(t, e.storage); !reflect.DeepEqual(before, after) {
			t.Errorf("%s: the refused write changed storage", c.name)
		}
		if strings.Contains(resp.Error().Error(), "BEGIN") {
			t.Errorf("%s: the error quotes the input", c.name)
		}
	}
}

// storageSnapshot is every entry of s, for "a failed write leaves storage as it was".
func storageSnapshot(t *testing.T, s logical.Storage) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := s.List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
				continue
			}
			e, err := s.Get(context.Background(), prefix+k)
			if err != nil {
				t.Fatal(err)
			}
			out[prefix+k] = string(e.Value)
		}
	}
	walk("")
	return out
}

func TestCacheOnlyKeyReadAndList(t *testing.T) {
	e := newCacheOnlyEnv(t)
	secret := e.createKey("k1", map[string]any{"replay_detection": true})
	e.createKey("k2", map[string]any{"auth_scheme": "basic"})
	mustOK(t, e.write("connections/other", e.connectionData(nil)))
	mustOK(t, e.write("connections/other/cache-only-keys/elsewhere", map[string]any{"certificate": e.cert.pem}))

	r := mustOK(t, e.read("connections/prod/cache-only-keys/k1"))
	for field, want := range map[string]any{"kid": "k1", "connection": "prod", "status": "active", "replay_detection": true,
		"auth_scheme": "bearer", "callout_path": "cache-only/k1", "destroyed_at": ""} {
		if r.Data[field] != want {
			t.Errorf("%s = %v, want %v", field, r.Data[field], want)
		}
	}
	if r.Data["certificate"] != e.cert.pem || r.Data["certificate_fingerprint_sha256"] == "" || r.Data["created_at"] == "" {
		t.Errorf("certificate fields: %v", r.Data)
	}
	if _, ok := r.Data["named_credential_secret"]; ok || strings.Contains(responseText(r), secret) {
		t.Error("a read shows the Named Credential secret")
	}
	expired := newRSA(t, 2048)
	past := time.Now().Add(-48 * time.Hour)
	expiredPEM, _, err := keyutil.SelfSign(nil, expired, keyutil.CertRequest{Now: past, NotAfter: past.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if w := mustOK(t, e.write("connections/prod/cache-only-keys/old", map[string]any{"certificate": expiredPEM})).Warnings; len(w) != 2 || !strings.Contains(w[1], "expired") {
		t.Errorf("an expired certificate: warnings %v", w)
	}
	if e.read("connections/other/cache-only-keys/k1") != nil {
		t.Error("a key is readable under a connection it does not belong to")
	}
	list := mustOK(t, e.list("connections/prod/cache-only-keys/"))
	if keys := list.Data["keys"].([]string); !reflect.DeepEqual(keys, []string{"k1", "k2", "old"}) {
		t.Fatalf("list: %v", keys)
	}
	if info := list.Data["key_info"].(map[string]any)["k2"].(map[string]any); info["status"] != "active" || info["auth_scheme"] != "basic" {
		t.Errorf("key_info: %v", info)
	}
}

func TestCacheOnlyKeyDestroy(t *testing.T) {
	e := newCacheOnlyEnv(t)
	secret := e.createKey("doomed", nil)
	if resp := e.del("connections/other/cache-only-keys/doomed"); resp != nil {
		t.Fatalf("a delete under the wrong connection answered %v", resp)
	}
	if len(e.storedDataKey("prod", "doomed")) != 32 {
		t.Fatal("a delete under the wrong connection touched the key")
	}
	e.del("connections/prod/cache-only-keys/doomed")
	if k := e.storedDataKey("prod", "doomed"); k != nil {
		t.Fatal("the data key survived its destruction")
	}
	if !strings.Contains(e.logs.String(), "destroyed cache-only key") {
		t.Error("the destruction is not logged")
	}
	r := mustOK(t, e.read("connections/prod/cache-only-keys/doomed"))
	if r.Data["status"] != "destroyed" || r.Data["destroyed_at"] == "" {
		t.Fatalf("read after destroy: %v", r.Data)
	}
	if status, body := e.fetch("doomed", bearer(secret), nil); status != 404 || body["error"] != "key destroyed" {
		t.Fatalf("callout for a destroyed key: HTTP %d %v", status, body)
	}
	if status, _ := e.fetch("doomed", bearer("sfcok_wrong"), nil); status != 401 {
		t.Fatalf("an outsider learns the key is destroyed: HTTP %d", status)
	}
	mustErr(t, e.write("connections/prod/cache-only-keys/doomed", map[string]any{"certificate": e.cert.pem}), "already exists")
	mustErr(t, e.write("connections/prod/cache-only-keys/doomed/rotate-secret", nil), "is destroyed")
	if resp := e.del("connections/prod/cache-only-keys/doomed"); resp != nil && resp.IsError() {
		t.Fatalf("a second delete: %v", resp.Error())
	}
}

func TestCacheOnlyRotateSecret(t *testing.T) {
	e := newCacheOnlyEnv(t)
	old := e.createKey("k1", nil)
	key := e.storedDataKey("prod", "k1")
	r := mustOK(t, e.write("connections/prod/cache-only-keys/k1/rotate-secret", nil))
	fresh, _ := r.Data["named_credential_secret"].(string)
	if !strings.HasPrefix(fresh, bearerSecretPrefix) || fresh == old {
		t.Fatal("rotate-secret did not answer a new secret")
	}
	if status, _ := e.fetch("k1", bearer(old), nil); status != 401 {
		t.Fatalf("the old secret still works: HTTP %d", status)
	}
	status, body := e.fetch("k1", bearer(fresh), nil)
	if status != 200 {
		t.Fatalf("the new secret: HTTP %d", status)
	}
	if got, _ := emulator.OpenCacheOnlyJWE(body["jwe"].(string), "k1", "", e.cert.priv); !bytes.Equal(got, key) {
		t.Fatal("rotating the secret changed the data key")
	}
	if mustOK(t, e.read("connections/prod/cache-only-keys/k1")).Data["secret_rotated_at"] == "" {
		t.Error("secret_rotated_at not set")
	}
}

// TestCacheOnlyCrashPoints stops each write after every storage step, then a fresh backend on
// the same storage must serve, refuse or finish as the steps done say, and never lose a key.
func TestCacheOnlyCrashPoints(t *testing.T) {
	e := newCacheOnlyEnv(t)
	via := func(s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
		return e.b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Storage: s, Data: data})
	}

	// Create, stopped before its first write and between its two.
	for _, failing := range []string{secretsPrefix, cacheOnlyPrefix} {
		s := newKeyCountingStorage(e.storage)
		s.failPuts[failing] = 1
		if _, err := via(s, logical.CreateOperation, "connections/prod/cache-only-keys/half", map[string]any{"certificate": e.cert.pem}); err == nil {
			t.Fatalf("create with %s failing succeeded", failing)
		}
		e.b = restartBackend(t, e.testEnv)
		if status, _ := e.fetch("half", nil, nil); status != 401 {
			t.Fatalf("after a create stopped at %s: HTTP %d", failing, status)
		}
		if keys := e.list("connections/prod/cache-only-keys/").Data["keys"]; keys != nil {
			t.Fatalf("after a create stopped at %s the list shows %v", failing, keys)
		}
	}
	// The retry takes the kid, and its secret is the one that works.
	secret := e.createKey("half", nil)
	if status, _ := e.fetch("half", bearer(secret), nil); status != 200 {
		t.Fatalf("the retried create: HTTP %d", status)
	}

	// Destroy, stopped between erasing the key and recording it: destroyed already.
	s := newKeyCountingStorage(e.storage)
	s.failPuts[cacheOnlyPrefix] = 1
	if _, err := via(s, logical.DeleteOperation, "connections/prod/cache-only-keys/half", nil); err == nil {
		t.Fatal("destroy with the metadata write failing succeeded")
	}
	e.b = restartBackend(t, e.testEnv)
	if e.storedDataKey("prod", "half") != nil {
		t.Fatal("the data key survived the first step of its destruction")
	}
	if status, _ := e.fetch("half", bearer(secret), nil); status != 404 {
		t.Fatalf("half-destroyed key: HTTP %d, want 404", status)
	}
	if st := mustOK(t, e.read("connections/prod/cache-only-keys/half")).Data["status"]; st != "destroyed" {
		t.Fatalf("half-destroyed key reads %v", st)
	}
	e.del("connections/prod/cache-only-keys/half")
	if mustOK(t, e.read("connections/prod/cache-only-keys/half")).Data["destroyed_at"] == "" {
		t.Fatal("the retried destroy did not record the destruction")
	}

	// Rotate-secret, stopped before its write: the old secret still works.
	old := e.createKey("rot", nil)
	s = newKeyCountingStorage(e.storage)
	s.failPuts[secretsPrefix] = 1
	if _, err := via(s, logical.UpdateOperation, "connections/prod/cache-only-keys/rot/rotate-secret", nil); err == nil {
		t.Fatal("rotate-secret with storage failing succeeded")
	}
	if status, _ := e.fetch("rot", bearer(old), nil); status != 200 {
		t.Fatalf("a failed rotate-secret broke the old secret: HTTP %d", status)
	}
}

func TestCacheOnlyHelpAndOpenAPI(t *testing.T) {
	e := newTestEnv(t)
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Path: "cache-only/k1", Storage: e.storage})
	if err != nil {
		t.Fatal(err)
	}
	help, _ := resp.Data["help"].(string)
	if !strings.Contains(help, "passthrough-request-headers=Authorization") {
		t.Error("the callout's help does not say how to tune the mount")
	}
	var paths []string
	for _, p := range e.b.Paths {
		if strings.Contains(p.Pattern, "cache-only") {
			paths = append(paths, p.Pattern)
		}
	}
	sort.Strings(paths)
	if len(paths) != 5 {
		t.Fatalf("cache-only paths: %v", paths)
	}
	if !reflect.DeepEqual(e.b.PathsSpecial.Unauthenticated, []string{"cache-only/*"}) {
		t.Fatalf("unauthenticated paths: %v", e.b.PathsSpecial.Unauthenticated)
	}
}

// BenchmarkCacheOnlyFetch is one callout as the plugin serves it: two storage reads, the
// secret's hash, one RSA-OAEP encryption under the certificate and AES-GCM.
func BenchmarkCacheOnlyFetch(b *testing.B) {
	for _, bits := range []int{2048, 4096} {
		b.Run(fmt.Sprintf("rsa-%d", bits), func(b *testing.B) {
			e := newCacheOnlyEnv(b)
			e.cert = newBYOKCert(b, bits)
			secret := e.createKey("bench", nil)
			req := &logical.Request{Operation: logical.ReadOperation, Path: "cache-only/bench", Storage: e.storage, Headers: bearer(secret)}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := e.b.HandleRequest(context.Background(), req)
				if err != nil || resp.Data[logical.HTTPStatusCode] != 200 {
					b.Fatalf("%v %v", err, resp)
				}
			}
		})
	}
}

// TestCacheOnlyKeyCertificateByName: certificate_name reads the BYOK certificate through the
// Tooling API with the connection's login, as the tenant secrets do; a name the org does not
// have, or neither field, is a 400 naming the field.
func TestCacheOnlyKeyCertificateByName(t *testing.T) {
	e := newTestEnv(t)
	pemText, err := e.emu.AddBYOKCertificate("", "Vault_BYOK")
	if err != nil {
		t.Fatal(err)
	}
	e.createConnection("prod", map[string]any{"deploy_username": emulator.DemoDeployUsername})
	mustErr(t, e.write("connections/prod/cache-only-keys/k0", map[string]any{"certificate_name": "Vault_BYOK"}), "Manage Encryption Keys")
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername, emulator.PermManageEncryptionKeys); err != nil {
		t.Fatal(err)
	}
	mustErr(t, e.write("connections/prod/cache-only-keys/k0", map[string]any{}), "certificate")
	mustErr(t, e.write("connections/prod/cache-only-keys/k0", map[string]any{"certificate_name": "Nope"}), "certificate_name")
	if k, err := getCacheOnlyKey(context.Background(), e.storage, "k0"); k != nil || err != nil {
		t.Fatalf("a refused create stored a key: %v %v", k, err)
	}
	resp := mustOK(t, e.write("connections/prod/cache-only-keys/k1", map[string]any{"certificate_name": "Vault_BYOK"}))
	if resp.Data["named_credential_secret"] == "" {
		t.Fatal("no Named Credential secret")
	}
	r := mustOK(t, e.read("connections/prod/cache-only-keys/k1"))
	if r.Data["certificate_name"] != "Vault_BYOK" || strings.TrimSpace(r.Data["certificate"].(string)) != strings.TrimSpace(pemText) {
		t.Fatalf("read: certificate_name %v, certificate read from Salesforce matches: %v", r.Data["certificate_name"],
			strings.TrimSpace(r.Data["certificate"].(string)) == strings.TrimSpace(pemText))
	}
}
