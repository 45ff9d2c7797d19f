package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // the SHA-1 OAEP padding Salesforce accepts
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

type byokFixture struct {
	*fixture
	tok  string
	cert *rsa.PublicKey
}

// newBYOKFixture is an org whose user holds Manage Encryption Keys and BYOK certificate
// Vault_BYOK; cfg (at most one) configures the emulator.
func newBYOKFixture(t *testing.T, cfg ...Config) *byokFixture {
	t.Helper()
	c := Config{}
	if len(cfg) > 0 {
		c = cfg[0]
	}
	f := newFixture(t, c)
	if _, err := f.e.SetUserPermissions(f.user.Username, PermManageEncryptionKeys); err != nil {
		t.Fatal(err)
	}
	certPEM, err := f.e.AddBYOKCertificate("", "Vault_BYOK")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rsaKeyOf(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &byokFixture{fixture: f, tok: f.login(t, f.user.Username), cert: pub}
}

const tsBase = "/services/data/v62.0/"

// upload wraps a fresh secret for the certificate and posts it with the given overrides.
func (f *byokFixture) upload(t *testing.T, typ string, edit func(map[string]any)) result {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	var wrapped []byte
	if oaepWrappedTypes[typ] {
		var err error
		if wrapped, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, f.cert, secret, nil); err != nil {
			t.Fatal(err)
		}
	} else {
		wrapped = rsaAESKeyWrap(t, f.cert, make32(t), secret)
	}
	sum := sha256.Sum256(secret)
	body := map[string]any{"Type": typ, "SecretValue": base64.StdEncoding.EncodeToString(wrapped),
		"SecretValueHash": base64.StdEncoding.EncodeToString(sum[:]), "SecretValueCertificate": "Vault_BYOK", "KeyDerivationMode": "PBKDF2"}
	if edit != nil {
		edit(body)
	}
	raw, _ := json.Marshal(body)
	return f.request(t, "POST", tsBase+"sobjects/TenantSecret", "application/json", string(raw), f.tok)
}

func restCode(t *testing.T, r result) string {
	t.Helper()
	var errs []restError
	if err := json.Unmarshal(r.body, &errs); err != nil || len(errs) != 1 {
		t.Fatalf("want a REST error array, got %d %s", r.status, r.body)
	}
	return errs[0].ErrorCode
}

func TestTenantSecretUploadRefusals(t *testing.T) {
	f := newBYOKFixture(t)
	other := make([]byte, 32)
	otherWrapped, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, f.cert, other[:31], nil)
	cases := []struct {
		name, code string
		edit       func(map[string]any)
	}{
		{"hash mismatch", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["SecretValueHash"] = base64.StdEncoding.EncodeToString(make([]byte, 32)) }},
		{"unknown certificate", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["SecretValueCertificate"] = "Nope" }},
		{"not wrapped for the certificate", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["SecretValue"] = base64.StdEncoding.EncodeToString(make([]byte, 256)) }},
		{"31 bytes", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["SecretValue"] = base64.StdEncoding.EncodeToString(otherWrapped) }},
		{"bad type", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", func(b map[string]any) { b["Type"] = "Bogus" }},
		{"bad derivation", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", func(b map[string]any) { b["KeyDerivationMode"] = "HKDF" }},
		{"search index sent plain RSA-OAEP", "FIELD_INTEGRITY_EXCEPTION", func(b map[string]any) { b["Type"] = "SearchIndex" }},
		{"unknown field", "JSON_PARSER_ERROR", func(b map[string]any) { b["Bogus"] = 1 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.upload(t, "Data", c.edit)
			if r.status != 400 || restCode(t, r) != c.code {
				t.Fatalf("got %d %s, want 400 %s", r.status, r.body, c.code)
			}
		})
	}
	if n := len(f.e.TenantSecrets("")); n != 0 {
		t.Fatalf("refused uploads stored %d secrets", n)
	}
	// Without Manage Encryption Keys.
	if _, err := f.e.SetUserPermissions(f.user.Username); err != nil {
		t.Fatal(err)
	}
	if r := f.upload(t, "Data", nil); r.status != 403 || restCode(t, r) != "INSUFFICIENT_ACCESS_OR_READONLY" {
		t.Fatalf("without the permission: %d %s", r.status, r.body)
	}
}

func TestTenantSecretLifecycle(t *testing.T) {
	f := newBYOKFixture(t)
	first := f.upload(t, "Data", nil)
	if first.status != 201 {
		t.Fatalf("upload: %d %s", first.status, first.body)
	}
	id1 := first.json(t)["id"].(string)
	if !strings.HasPrefix(id1, "02G") {
		t.Fatalf("id %s is not a TenantSecret id", id1)
	}
	// Too soon: production Data is once a day.
	f.clock.Advance(23 * time.Hour)
	f.tok = f.login(t, f.user.Username)
	if r := f.upload(t, "Data", nil); r.status != 400 || !strings.Contains(string(r.body), "once every 24h") {
		t.Fatalf("second upload within 24h: %d %s", r.status, r.body)
	}
	// Another type has its own interval.
	if r := f.upload(t, "Analytics", nil); r.status != 201 {
		t.Fatalf("analytics: %d %s", r.status, r.body)
	}
	f.clock.Advance(time.Hour)
	f.tok = f.login(t, f.user.Username)
	second := f.upload(t, "Data", nil)
	if second.status != 201 {
		t.Fatalf("upload after 24h: %d %s", second.status, second.body)
	}
	secrets := f.e.TenantSecrets("")
	if secrets[0].Status != TenantSecretArchived || secrets[2].Status != TenantSecretActive || secrets[1].Status != TenantSecretActive {
		t.Fatalf("statuses after the second Data upload: %+v", secrets)
	}
	// The query by hash finds the record (the backend's resume check).
	q := "SELECT Id, Status, Version FROM TenantSecret WHERE SecretValueHash = '" + secrets[2].Hash + "'"
	r := f.request(t, "GET", tsBase+"query?q="+url.QueryEscape(q), "", "", f.tok)
	if r.status != 200 || r.json(t)["totalSize"].(float64) != 1 {
		t.Fatalf("query by hash: %d %s", r.status, r.body)
	}

	patch := func(id, body string) result {
		return f.request(t, "PATCH", tsBase+"sobjects/TenantSecret/"+id, "application/json", body, f.tok)
	}
	id3 := second.json(t)["id"].(string)
	if r := patch(id3, `{"Status":"Destroyed"}`); r.status != 400 {
		t.Fatalf("destroying the active secret: %d %s", r.status, r.body)
	}
	read := f.request(t, "GET", tsBase+"sobjects/TenantSecret/"+id1, "", "", f.tok)
	export, _ := read.json(t)["SecretValue"].(string)
	if read.status != 200 || export == "" {
		t.Fatalf("read: %d %s", read.status, read.body)
	}
	if r := patch(id1, `{"Status":"Destroyed"}`); r.status != 204 {
		t.Fatalf("destroy archived: %d %s", r.status, r.body)
	}
	// Restore refuses anything but the exported value.
	if r := patch(id1, fmt.Sprintf(`{"SecretValue":%q}`, base64.StdEncoding.EncodeToString(make([]byte, 60)))); r.status != 400 {
		t.Fatalf("restore with another value: %d %s", r.status, r.body)
	}
	if r := patch(id1, fmt.Sprintf(`{"SecretValue":%q}`, export)); r.status != 204 {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	if got := f.e.TenantSecrets("")[0].Status; got != TenantSecretArchived {
		t.Fatalf("restored status %s", got)
	}
}

func TestTenantSecretLimitAndSandbox(t *testing.T) {
	f := newBYOKFixture(t)
	f.e.mu.Lock()
	f.e.orgs[f.org.ID].Sandbox = true
	f.e.mu.Unlock()
	for i := 0; i < MaxTenantSecretsPerType; i++ {
		if r := f.upload(t, "Data", nil); r.status != 201 {
			t.Fatalf("upload %d: %d %s", i, r.status, r.body)
		}
		f.clock.Advance(4 * time.Hour) // the sandbox interval
		c := f.claims()
		c["aud"] = "https://test.salesforce.com"
		r := f.postToken(t, jwtForm(sign(t, keyA, c)))
		f.tok, _ = r.json(t)["access_token"].(string)
	}
	if r := f.upload(t, "Data", nil); r.status != 400 || restCode(t, r) != "LIMIT_EXCEEDED" {
		t.Fatalf("51st: %d %s", r.status, r.body)
	}
}

func TestCertificateThroughTooling(t *testing.T) {
	f := newBYOKFixture(t)
	q := "SELECT Id FROM Certificate WHERE DeveloperName = 'Vault_BYOK'"
	r := f.request(t, "GET", tsBase+"tooling/query?q="+url.QueryEscape(q), "", "", f.tok)
	recs, _ := r.json(t)["records"].([]any)
	if r.status != 200 || len(recs) != 1 {
		t.Fatalf("tooling query: %d %s", r.status, r.body)
	}
	id := recs[0].(map[string]any)["Id"].(string)
	chain := f.request(t, "GET", tsBase+"tooling/sobjects/Certificate/"+id+"/CertificateChain", "", "", f.tok)
	pub, err := rsaKeyOf(string(chain.body))
	if chain.status != 200 || err != nil || pub.N.Cmp(f.cert.N) != 0 {
		t.Fatalf("chain: %d %v", chain.status, err)
	}
	f.e.AddFault(Fault{Endpoint: "tenant_secret", Kind: FaultStatus, Status: 503, Count: 1})
	if r := f.request(t, "GET", tsBase+"tooling/query?q="+url.QueryEscape(q), "", "", f.tok); r.status != 503 {
		t.Fatalf("fault: %d", r.status)
	}
}

// rsaAESKeyWrap is CKM_RSA_AES_KEY_WRAP as a key manager computes it: aesKey RSA-OAEP (SHA-1)
// wrapped under the certificate, then the secret under RFC 5649 with aesKey.
func rsaAESKeyWrap(t *testing.T, pub *rsa.PublicKey, aesKey, secret []byte) []byte {
	t.Helper()
	head, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, aesKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := keyutil.WrapKeyWithPadding(aesKey, secret)
	if err != nil {
		t.Fatal(err)
	}
	return append(head, tail...)
}

func make32(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTenantSecretRSAAESKeyWrap: SearchIndex and Database uploads are opened as
// CKM_RSA_AES_KEY_WRAP and pass every check a Data upload passes, the hash included.
func TestTenantSecretRSAAESKeyWrap(t *testing.T) {
	for _, typ := range []string{"SearchIndex", "Database"} {
		t.Run(typ, func(t *testing.T) {
			f := newBYOKFixture(t)
			secret := make32(t)
			value := func(b []byte) func(map[string]any) {
				return func(m map[string]any) { m["SecretValue"] = base64.StdEncoding.EncodeToString(b) }
			}
			good := rsaAESKeyWrap(t, f.cert, make32(t), secret)
			tampered := bytes.Clone(good)
			tampered[len(tampered)-1] ^= 1
			aes128 := rsaAESKeyWrap(t, f.cert, make([]byte, 16), secret)
			refusals := []struct {
				name string
				edit func(map[string]any)
			}{
				{"hash mismatch", func(m map[string]any) {
					value(good)(m)
					m["SecretValueHash"] = base64.StdEncoding.EncodeToString(make([]byte, 32))
				}},
				{"key wrap tampered", value(tampered)},
				{"only the RSA part", value(good[:f.cert.Size()])},
				{"AES-128 ephemeral key", value(aes128)},
				{"31-byte secret", value(rsaAESKeyWrap(t, f.cert, make32(t), secret[:31]))},
			}
			for _, c := range refusals {
				if r := f.upload(t, typ, c.edit); r.status != 400 || restCode(t, r) != "FIELD_INTEGRITY_EXCEPTION" {
					t.Fatalf("%s: got %d %s, want 400 FIELD_INTEGRITY_EXCEPTION", c.name, r.status, r.body)
				}
			}
			if n := len(f.e.TenantSecrets("")); n != 0 {
				t.Fatalf("refused uploads stored %d secrets", n)
			}
			sum := sha256.Sum256(secret)
			hash := base64.StdEncoding.EncodeToString(sum[:])
			r := f.upload(t, typ, func(m map[string]any) { value(good)(m); m["SecretValueHash"] = hash })
			if r.status != 201 {
				t.Fatalf("upload: %d %s", r.status, r.body)
			}
			if got := f.e.TenantSecrets(""); len(got) != 1 || got[0].Type != typ || got[0].Hash != hash || got[0].Status != TenantSecretActive {
				t.Fatalf("stored: %+v", got)
			}
		})
	}
}

// TestTenantSecretMinIntervalConfig: Config.TenantSecretMinInterval replaces the per-type
// table for every type (end-to-end tests rotate twice within Salesforce's 24h with it).
func TestTenantSecretMinIntervalConfig(t *testing.T) {
	f := newBYOKFixture(t, Config{TenantSecretMinInterval: time.Minute})
	for _, typ := range []string{"Data", "EventBus"} {
		if r := f.upload(t, typ, nil); r.status != 201 {
			t.Fatalf("%s: %d %s", typ, r.status, r.body)
		}
		if r := f.upload(t, typ, nil); r.status != 400 || !strings.Contains(string(r.body), "once every 1m0s") {
			t.Fatalf("%s within the configured minute: %d %s", typ, r.status, r.body)
		}
	}
	f.clock.Advance(time.Minute)
	f.tok = f.login(t, f.user.Username)
	if r := f.upload(t, "EventBus", nil); r.status != 201 {
		t.Fatalf("EventBus a minute later (Salesforce's table says 7 days): %d %s", r.status, r.body)
	}
}
