package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// TestCacheOnlyKeyService runs Salesforce's cache-only key callout against the plugin served
// by a real Vault's HTTP listener: the emulator's callout client (Salesforce's side, holding
// the BYOK certificate's private key) fetches the key with the Named Credential's secret and
// checks the JWE. It shows the mount must pass the Authorization header through, that wrong
// credentials are refused, that destroying the key turns the callout into the destroyed
// answer, and that neither the data key nor the secret appears in any response, the audit log
// or the server log (trace level, the plugin's lines included).
func TestCacheOnlyKeyService(t *testing.T) {
	t.Parallel()
	e := newRelEnv(t, relEnvOptions{trace: true})
	v := e.Vault
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.CLI(t, "audit", "enable", "file", "file_path="+auditPath)
	e.CreateConnection(t, v, "prod", nil)

	byok, byokPEM := byokCertificate(t)
	created := v.Write(t, Mount+"/connections/prod/cache-only-keys/orders", map[string]any{"certificate": byokPEM})
	secret := StringField(t, created, "named_credential_secret")
	urlPath := StringField(t, created, "named_credential_url_path")
	if urlPath != "/v1/"+Mount+"/cache-only" {
		t.Fatalf("named_credential_url_path %q", urlPath)
	}
	replayed := StringField(t, v.Write(t, Mount+"/connections/prod/cache-only-keys/replayed", map[string]any{"certificate": byokPEM, "replay_detection": true}), "named_credential_secret")
	namedCredentialURL := v.Addr + urlPath
	sf := emulator.New(emulator.Config{})
	ctx := context.Background()
	code := func(err error) string {
		var ce *emulator.CalloutError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return fmt.Sprint(err)
	}

	// Before the tune Vault keeps the Authorization header from the plugin: refused.
	if _, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "orders", secret, byok, false); code(err) != emulator.CalloutAuthenticationFailure {
		t.Fatalf("before the tune: %v, want %s", err, emulator.CalloutAuthenticationFailure)
	}
	v.CLI(t, "secrets", "tune", "-passthrough-request-headers=Authorization", Mount)

	key, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "orders", secret, byok, false)
	if err != nil {
		t.Fatalf("the callout: %v", err)
	}
	stored := storedCacheOnlyKey(t, v, "prod", "orders")
	if len(key) != 32 || !bytes.Equal(key, stored) {
		t.Fatalf("the callout got %d bytes, not the data key Vault stored", len(key))
	}
	if _, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "replayed", replayed, byok, true); err != nil {
		t.Fatalf("the callout with replay detection: %v", err)
	}
	replayedKey := storedCacheOnlyKey(t, v, "prod", "replayed")
	for name, c := range map[string]struct {
		kid, secret string
		replay      bool
		want        string
	}{
		"a wrong secret":                  {"orders", secret[:len(secret)-2] + "xx", false, emulator.CalloutAuthenticationFailure},
		"another key's secret":            {"orders", replayed, false, emulator.CalloutAuthenticationFailure},
		"no secret":                       {"orders", "", false, emulator.CalloutAuthenticationFailure},
		"an unknown kid":                  {"nope", secret, false, emulator.CalloutAuthenticationFailure},
		"no nonce under replay detection": {"replayed", replayed, false, emulator.CalloutErrorHTTPCode},
	} {
		if _, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, c.kid, c.secret, byok, c.replay); code(err) != c.want {
			t.Errorf("%s: %v, want %s", name, err, c.want)
		}
	}
	// A Vault token is no credential here: the path is unauthenticated at Vault's level.
	if _, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "orders", v.Token, byok, false); code(err) != emulator.CalloutAuthenticationFailure {
		t.Errorf("the root token as bearer: %v", err)
	}

	// A lost secret is replaced without touching the key.
	rotated := StringField(t, v.Write(t, Mount+"/connections/prod/cache-only-keys/orders/rotate-secret", nil), "named_credential_secret")
	if _, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "orders", secret, byok, false); code(err) != emulator.CalloutAuthenticationFailure {
		t.Errorf("the replaced secret still works: %v", err)
	}
	if again, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "orders", rotated, byok, false); err != nil || !bytes.Equal(again, key) {
		t.Fatalf("after rotate-secret: %v", err)
	}

	// Destroy: the data key is erased and Salesforce is told so.
	v.Delete(t, Mount+"/connections/prod/cache-only-keys/orders")
	if _, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "orders", rotated, byok, false); code(err) != emulator.CalloutDestroyHTTPCode {
		t.Fatalf("after destroy: %v, want %s", err, emulator.CalloutDestroyHTTPCode)
	}
	if r := v.Read(t, Mount+"/connections/prod/cache-only-keys/orders"); StringField(t, r, "status") != "destroyed" {
		t.Fatalf("read after destroy: %v", r.Data)
	}
	if storedCacheOnlyKey(t, v, "prod", "orders") != nil {
		t.Fatal("the data key is still in Vault's storage after destroy")
	}
	v.Read(t, Mount+"/connections/prod/cache-only-keys/replayed")
	v.List(t, Mount+"/connections/prod/cache-only-keys")

	// Vault's own rate-limit quota guards the unauthenticated path before the plugin runs.
	v.CLI(t, "write", "sys/quotas/rate-limit/cache-only", "path="+Mount+"/cache-only/*", "rate=2", "interval=30s")
	limited := 0
	for i := 0; i < 4; i++ {
		_, err := sf.FetchCacheOnlyKey(ctx, namedCredentialURL, "replayed", replayed, byok, true)
		var ce *emulator.CalloutError
		if errors.As(err, &ce) && ce.Code == emulator.CalloutErrorHTTPCode && ce.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 2 {
		t.Errorf("a rate-limit quota of 2 per 30 s let %d of 4 callouts through", 4-limited)
	}

	// The scan: the data keys nowhere; each secret only in the one answer that issued it.
	var keyNeedles []relNeedle
	for name, k := range map[string][]byte{"orders": key, "replayed": replayedKey} {
		for what, s := range map[string]string{"base64": base64.StdEncoding.EncodeToString(k), "base64url": base64.RawURLEncoding.EncodeToString(k), "hex": hex.EncodeToString(k)} {
			keyNeedles = append(keyNeedles, relNeedle{name + " data key " + what, s})
		}
	}
	secrets := map[string]string{"orders": secret, "replayed": replayed, "orders rotated": rotated}
	haystacks := map[string][]string{"audit log": relReadLines(t, auditPath), "server log": relReadLines(t, v.LogPath)}
	if logCountAny(haystacks["server log"], "refused a cache-only key callout") == 0 || logCountAny(haystacks["audit log"], "cache-only/orders") == 0 {
		t.Fatal("the logs hold no callout lines: the scan would prove nothing")
	}
	for where, lines := range haystacks {
		all := strings.Join(lines, "\n")
		for _, n := range keyNeedles {
			if strings.Contains(all, n.s) {
				t.Errorf("%s found in the %s", n.what, where)
			}
		}
		for name, s := range secrets {
			if strings.Contains(all, s[6:]) {
				t.Errorf("the %s Named Credential secret found in the %s", name, where)
			}
		}
	}
	exchanges := v.Rec.Exchanges()
	for name, s := range secrets {
		n := 0
		for _, ex := range exchanges {
			for _, kn := range keyNeedles {
				if bytes.Contains(ex.Body, []byte(kn.s)) {
					t.Errorf("%s in the response to %s %s", kn.what, ex.Method, ex.Path)
				}
			}
			if bytes.Contains(ex.Body, []byte(s[6:])) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the %s Named Credential secret is in %d responses, want exactly its one answer", name, n)
		}
	}
	t.Logf("scanned %d responses, %d audit and %d server log lines", len(exchanges), len(haystacks["audit log"]), len(haystacks["server log"]))
}

// byokCertificate is a BYOK certificate as Salesforce makes one: RSA 4096, self-signed, its
// private key kept by "Salesforce" (here the test).
func byokCertificate(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "BYOK_Cert"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// storedCacheOnlyKey reads a data key from the plugin's storage through sys/raw, with a client
// that records nothing (the value is the secret under test); nil once destroyed.
func storedCacheOnlyKey(t *testing.T, v *Vault, conn, kid string) []byte {
	t.Helper()
	url := v.Addr + "/v1/sys/raw/logical/" + relMountUUID(t, v) + "/secrets/" + conn + "/cache-only/" + kid
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("sys/raw of %s: HTTP %d", kid, resp.StatusCode)
	}
	var raw struct {
		Data struct {
			Value string `json:"value"`
		} `json:"data"`
	}
	var entry struct {
		DataKey []byte `json:"data_key"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || json.Unmarshal([]byte(raw.Data.Value), &entry) != nil {
		t.Fatalf("sys/raw of %s: not the entry expected", kid)
	}
	return entry.DataKey
}
