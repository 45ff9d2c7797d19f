package e2e

import (
	"crypto/rsa"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConnectionLifecycle covers a connection from creation to deletion: the generated key's
// certificate comes back on create, read and the certificate path agree on it, the key ring shows
// version 1 active, nothing ever returns private key material, and deletion is refused while a
// role uses the connection.
func TestConnectionLifecycle(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	const name = "demo"
	path := Mount + "/connections/" + name

	created := e.CreateConnection(t, v, name, nil)
	certPEM := StringField(t, created, "certificate")
	cert := ParseCertificate(t, certPEM)
	if cn := cert.Subject.CommonName; cn != "vault-plugin-salesforce "+name {
		t.Errorf("certificate CN %q, want the default %q", cn, "vault-plugin-salesforce "+name)
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || pub.N.BitLen() != 2048 {
		t.Errorf("certificate key: %T, want RSA 2048 (key_type default rsa-2048)", cert.PublicKey)
	}
	if d := time.Until(cert.NotAfter) - 8760*time.Hour; d > 24*time.Hour || d < -24*time.Hour {
		t.Errorf("certificate not after %s, want about a year (certificate_ttl default 8760h)", cert.NotAfter)
	}

	t.Run("read", func(t *testing.T) {
		r := v.Read(t, path)
		if r == nil {
			t.Fatal("connection not found after create")
		}
		if got := StringField(t, r, "consumer_key"); got != e.Emu.ConsumerKey {
			t.Errorf("consumer_key %q, want %q", got, e.Emu.ConsumerKey)
		}
		if got := StringField(t, r, "login_url"); strings.TrimSuffix(got, "/") != strings.TrimSuffix(e.Emu.URL, "/") {
			t.Errorf("login_url %q, want %q", got, e.Emu.URL)
		}
		if r.Data["allow_non_salesforce_host"] != true {
			t.Errorf("allow_non_salesforce_host %v, want true", r.Data["allow_non_salesforce_host"])
		}
		if got := Int(t, r, "active_key_version"); got != 1 {
			t.Errorf("active_key_version %d, want 1", got)
		}
		if got := StringField(t, r, "certificate"); got != certPEM {
			t.Errorf("read certificate differs from the one create returned")
		}
		if got := NormalizeFingerprint(StringField(t, r, "certificate_fingerprint_sha256")); got != Fingerprint(cert) {
			t.Errorf("certificate_fingerprint_sha256 %s, want %s", got, Fingerprint(cert))
		}
		StringField(t, r, "certificate_not_after")
	})

	t.Run("list", func(t *testing.T) {
		l := v.List(t, Mount+"/connections")
		if l == nil || !slices.Contains(anyStrings(l.Data["keys"]), name) {
			t.Fatalf("connections list lacks %q: %v", name, l)
		}
	})

	t.Run("certificate export", func(t *testing.T) {
		// Exactly what api.md tells an operator to type to get the file to upload.
		out := v.CLI(t, "read", "-field=certificate", path+"/certificate")
		if strings.TrimSpace(out) != strings.TrimSpace(certPEM) {
			t.Fatalf("vault read -field=certificate gave:\n%s\nwant:\n%s", out, certPEM)
		}
		ParseCertificate(t, strings.TrimSpace(out))
	})

	t.Run("key ring", func(t *testing.T) {
		l := v.List(t, path+"/keys")
		if l == nil {
			t.Fatal("keys list: empty")
		}
		if ks := anyStrings(l.Data["keys"]); !slices.Equal(ks, []string{"1"}) {
			t.Fatalf("keys %v, want [1]", ks)
		}
		info, _ := l.Data["key_info"].(map[string]any)
		k1, _ := info["1"].(map[string]any)
		if k1["status"] != "active" || k1["origin"] != "generated" {
			t.Errorf("key_info[1] = %v, want status active, origin generated", k1)
		}
		if fp, _ := k1["fingerprint_sha256"].(string); NormalizeFingerprint(fp) != Fingerprint(cert) {
			t.Errorf("key_info[1].fingerprint_sha256 %q, want %s", fp, Fingerprint(cert))
		}
		r := v.Read(t, path+"/keys/1")
		if got := StringField(t, r, "certificate"); got != certPEM {
			t.Errorf("keys/1 certificate differs from the active certificate")
		}
		// The active version cannot be destroyed.
		if _, err := v.Client.Logical().Delete(path + "/keys/1"); err == nil {
			t.Errorf("deleting the active key version succeeded")
		} else if StatusCode(err) != 400 {
			t.Errorf("deleting the active key version: %v, want HTTP 400", err)
		}
	})

	t.Run("no private key anywhere", func(t *testing.T) {
		// Every response this test has had so far, API and CLI.
		v.Rec.AssertNoPrivateKey(t)
	})

	t.Run("delete refused while a role uses it", func(t *testing.T) {
		e.CreateRole(t, v, "uses-demo", name, nil)
		_, err := v.Client.Logical().Delete(path)
		if err == nil {
			t.Fatal("deleting a connection in use succeeded")
		}
		if !strings.Contains(err.Error(), "uses-demo") {
			t.Errorf("the refusal does not name the role: %v", err)
		}
		v.Delete(t, Mount+"/roles/uses-demo")
		v.Delete(t, path)
		if r := v.Read(t, path); r != nil {
			t.Fatalf("connection still readable after delete: %v", r.Data)
		}
	})
}
