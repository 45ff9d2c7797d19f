package backend

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

func newRSA(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkcs1PEM(k *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

func pkcs8PEM(t testing.TB, k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func selfSigned(t testing.TB, k *rsa.PrivateKey) string {
	t.Helper()
	now := time.Now()
	p, _, err := keyutil.SelfSign(nil, k, keyutil.CertRequest{Now: now, NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertificateAndKeyTable(t *testing.T) {
	e := newTestEnv(t)
	created := e.createConnection("prod", nil)
	c := e.read("connections/prod/certificate").Data
	if c["certificate"] != created.Data["certificate"] || c["key_version"] != 1 {
		t.Fatalf("certificate read: %v", c)
	}
	if _, ok := c["pending_certificate"]; ok {
		t.Error("no rotation in flight, yet a pending certificate")
	}
	list := e.list("connections/prod/keys/")
	if keys := list.Data["keys"].([]string); len(keys) != 1 || keys[0] != "1" {
		t.Fatalf("keys = %v", keys)
	}
	info := list.Data["key_info"].(map[string]any)["1"].(map[string]any)
	for k, want := range map[string]any{"status": "active", "key_type": "rsa-2048", "origin": "generated", "fingerprint_sha256": c["certificate_fingerprint_sha256"]} {
		if info[k] != want {
			t.Errorf("key_info %s = %v, want %v", k, info[k], want)
		}
	}
	for _, k := range []string{"created_at", "activated_at", "not_after"} {
		if info[k] == "" {
			t.Errorf("key_info %s empty", k)
		}
	}
	e.createRole("app", "prod", nil)
	v := e.read("connections/prod/keys/1").Data
	if v["certificate"] != created.Data["certificate"] || strings.Join(v["used_by_roles"].([]string), ",") != "app" {
		t.Errorf("key read: %v", v)
	}
	if e.read("connections/prod/keys/9") != nil {
		t.Error("a missing version must read as not found")
	}
}

func TestKeyTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("4096-bit key generation is slow; -short skips it")
	}
	e := newTestEnv(t)
	for _, kt := range []string{"rsa-3072", "rsa-4096"} {
		mustOK(t, e.write("connections/c", e.connectionData(map[string]any{"key_type": kt})))
		info := e.list("connections/c/keys/").Data["key_info"].(map[string]any)["1"].(map[string]any)
		if info["key_type"] != kt {
			t.Errorf("key_type %s generated %v", kt, info["key_type"])
		}
		e.del("connections/c")
	}
}

func TestDestroyOnlyArchivedKeys(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	mustErr(t, e.del("connections/prod/keys/1"), "active")
	mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, newRSA(t, 2048))}))
	mustErr(t, e.del("connections/prod/keys/2"), "pending")
	mustOK(t, e.write("connections/prod/promote", map[string]any{"force": true}))
	mustOK(t, e.del("connections/prod/keys/1"))
	v := e.read("connections/prod/keys/1").Data
	if v["status"] != "destroyed" || v["destroyed_at"] == "" {
		t.Fatalf("destroyed version metadata: %v", v)
	}
	if _, ok := v["certificate"]; ok {
		t.Error("a destroyed version still returns a certificate")
	}
	if entry, _ := e.storage.Get(t.Context(), keyMaterialPath("prod", 1)); entry != nil {
		t.Fatal("destroyed key material still in storage")
	}
	mustOK(t, e.del("connections/prod/keys/1")) // idempotent
	mustErr(t, e.del("connections/prod/keys/7"), "no key version 7")
}

func TestImport(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	key := newRSA(t, 2048)
	cert := selfSigned(t, key)
	resp := mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs1PEM(key), "certificate": cert}))
	if resp.Data["status"] != "pending" || resp.Data["origin"] != "imported" || resp.Data["certificate"] != cert {
		t.Fatalf("import: %v", resp.Data)
	}
	if _, ok := resp.Data["private_key"]; ok {
		t.Fatal("import echoed the private key")
	}
	if e.read("connections/prod/certificate").Data["pending_certificate"] != cert {
		t.Error("imported key is not the pending certificate")
	}
	mustErr(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs1PEM(key)}), "already in the ring")
	other := newRSA(t, 2048)
	mustErr(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, other)}), "pending key")

	// activate=true is refused while the pending import is being verified…
	mustErr(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, other), "activate": true}), "in flight")
	// …and once that rotation is settled, the imported key signs at once; the old one is archived.
	mustOK(t, e.write("connections/prod/promote", map[string]any{"force": true}))
	resp = mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, other), "activate": true}))
	if resp.Data["status"] != "active" {
		t.Fatalf("activate import: %v", resp.Data)
	}
	if err := e.emu.SetAppCertificate(e.seed.App.ConsumerKey, resp.Data["certificate"].(string)); err != nil {
		t.Fatal(err)
	}
	e.createRole("app", "prod", nil)
	if got := mustOK(t, e.read("creds/app")).Data["key_version"]; got != 3 {
		t.Errorf("minted with key version %v, want the imported 3", got)
	}
	info := e.list("connections/prod/keys/").Data["key_info"].(map[string]any)
	if info["2"].(map[string]any)["status"] != "archived" {
		t.Error("the previous active key was not archived")
	}
}

func TestImportBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	small := newRSA(t, 1024)
	key := newRSA(t, 2048)
	cases := []struct {
		name  string
		data  map[string]any
		field string
	}{
		{"missing key", map[string]any{}, "private_key"},
		{"not pem", map[string]any{"private_key": "hello"}, "private_key"},
		{"too small", map[string]any{"private_key": pkcs1PEM(small)}, "2048"},
		{"cert mismatch", map[string]any{"private_key": pkcs1PEM(key), "certificate": selfSigned(t, newRSA(t, 2048))}, "does not match"},
		{"cert garbage", map[string]any{"private_key": pkcs1PEM(key), "certificate": "nope"}, "certificate"},
		{"two keys", map[string]any{"private_key": pkcs1PEM(key) + pkcs1PEM(key)}, "more than one"},
		{"encrypted", map[string]any{"private_key": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"}, "encrypted"},
		{"unknown field", map[string]any{"private_key": pkcs1PEM(key), "activat": true}, "activat"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.do(logical.UpdateOperation, "connections/prod/import", tc.data)
			if err != nil {
				t.Fatalf("want a 400, got %v", err)
			}
			mustErr(t, resp, tc.field)
			if n := len(e.list("connections/prod/keys/").Data["keys"].([]string)); n != 1 {
				t.Fatalf("a refused import changed the ring (%d versions)", n)
			}
		})
	}
}

func TestCreateWithImportedKey(t *testing.T) {
	e := newTestEnv(t)
	key := newRSA(t, 2048)
	cert := selfSigned(t, key)
	resp := mustOK(t, e.write("connections/prod", e.connectionData(map[string]any{"private_key": pkcs8PEM(t, key), "certificate": cert})))
	if resp.Data["certificate"] != cert {
		t.Fatal("create with private_key did not use its certificate")
	}
	mustErr(t, e.write("connections/prod", map[string]any{"private_key": pkcs8PEM(t, key)}), "import")
}

func TestImportPendingWithMetadataAPIDeploysNothing(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, nil))
	e.createRole("app", "prod", nil)
	key := newRSA(t, 2048)
	cert := selfSigned(t, key)
	mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, key), "certificate": cert}))
	r := e.rotation("prod")
	if r["state"] != "verifying" || r["trigger"] != "import" {
		t.Fatalf("an imported pending key should be verified, not deployed: %v", r)
	}
	mustErr(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, newRSA(t, 2048)), "activate": true}), "in flight")
	// The operator registers the imported certificate; the probe promotes it.
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, cert)
	e.tick()
	if e.keyStatus("prod", "2") != "active" {
		t.Fatalf("imported key not promoted: %v", e.rotation("prod"))
	}
	if n := e.emu.Counters().DeployRequests; n != 0 {
		t.Fatalf("an import made %d deploys", n)
	}
}
