package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestKeyMaterialScanner proves the private-key scan that every e2e test runs is not vacuous: it
// must flag a key in any of the shapes a bug could leak it in, and pass a certificate, a
// fingerprint and an access token. Needs no Vault.
func TestKeyMaterialScanner(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	relabelled := strings.ReplaceAll(keyPEM, "PRIVATE KEY", "KEY MATERIAL")
	rawB64 := base64.StdEncoding.EncodeToString(pkcs8)
	var lines []string
	for i := 0; i < len(rawB64); i += 64 {
		lines = append(lines, rawB64[i:min(i+64, len(rawB64))])
	}
	urlB64 := base64.RawURLEncoding.EncodeToString(key.D.Bytes()) // a JWK "d"

	body := func(fields map[string]any) []byte {
		b, err := json.Marshal(map[string]any{"data": fields})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	clean := body(map[string]any{
		"certificate":                    certPEM,
		"ca_cert":                        certPEM + certPEM,
		"certificate_fingerprint_sha256": strings.Repeat("ab:", 31) + "ab",
		"access_token":                   "00D5g00000DeMo1!AQNMZjWrBqHLm3HX8NCN8d1FFfdfm5x1bMnNoUaLoLO4TyoRPK5QhP_USPlemY4HRx42LBuD99.kEOVrfOpMu05hH6fesP1L",
	})
	if found := KeyMaterial(clean); len(found) != 0 {
		t.Fatalf("false positives on a clean response: %v", found)
	}
	for name, leak := range map[string][]byte{
		"PEM private key":     body(map[string]any{"certificate": certPEM, "key": keyPEM}),
		"relabelled PEM":      body(map[string]any{"k": relabelled}),
		"bare base64 DER":     body(map[string]any{"k": rawB64}),
		"64-column base64":    body(map[string]any{"k": strings.Join(lines, "\n")}),
		"JWK d (base64url)":   body(map[string]any{"jwk": map[string]any{"d": urlB64}}),
		"key after a cert":    body(map[string]any{"certificate": certPEM + rawB64}),
		"non-JSON CLI output": []byte("Key  Value\nprivate  " + rawB64 + "\n"),
	} {
		if found := KeyMaterial(leak); len(found) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}
