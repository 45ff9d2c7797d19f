package keyutil

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestGenerateSelfSignFingerprint(t *testing.T) {
	key, err := Generate(nil, RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if key.N.BitLen() != 2048 || TypeOf(key) != "rsa-2048" {
		t.Fatalf("key: %d bits, %s", key.N.BitLen(), TypeOf(key))
	}
	subject, _ := ParseSubject("CN=vault prod, O=Acme, OU=Ops, C=US")
	now := time.Now()
	certPEM, cert, err := SelfSign(nil, key, CertRequest{Subject: subject, Now: now, NotAfter: now.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "vault prod" || cert.Subject.Organization[0] != "Acme" || cert.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("certificate: %v %v", cert.Subject, cert.SignatureAlgorithm)
	}
	if cert.SerialNumber.BitLen() < 64 {
		t.Error("serial is not random enough")
	}
	if !MatchesKey(cert, key) {
		t.Error("certificate does not match its key")
	}
	back, err := ParseCertificatePEM(certPEM)
	if err != nil || !back.Equal(cert) {
		t.Fatalf("round trip: %v", err)
	}
	if !regexp.MustCompile(`^([0-9a-f]{2}:){31}[0-9a-f]{2}$`).MatchString(Fingerprint(cert)) {
		t.Errorf("fingerprint format: %s", Fingerprint(cert))
	}
	if _, err := Generate(nil, "rsa-1024"); err == nil {
		t.Error("unknown key type accepted")
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	cases := []struct {
		name, in, errPart string
	}{
		{"pkcs1", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), ""},
		{"pkcs8", enc("PRIVATE KEY", pkcs8), ""},
		{"pkcs8 with surrounding space", "\n  " + enc("PRIVATE KEY", pkcs8) + "\n\n", ""},
		{"small", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), "1024 bits"},
		{"garbage", "hello", "not PEM"},
		{"two blocks", enc("PRIVATE KEY", pkcs8) + enc("PRIVATE KEY", pkcs8), "more than one"},
		{"certificate given", enc("CERTIFICATE", []byte{1, 2}), "unexpected PEM block"},
		{"encrypted pkcs8", enc("ENCRYPTED PRIVATE KEY", []byte{1}), "encrypted"},
		{"bad pkcs1 body", enc("RSA PRIVATE KEY", []byte{1, 2, 3}), "not a valid PKCS#1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tc.in)
			if tc.errPart == "" {
				if err != nil || !k.PublicKey.Equal(&key.PublicKey) {
					t.Fatalf("want the key, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("want error containing %q, got %v", tc.errPart, err)
			}
		})
	}
}

func TestParseSubject(t *testing.T) {
	for in, ok := range map[string]bool{
		"CN=x": true, "cn=x, o=y": true, "CN=x,C=USA": false, "CN=": false, "x": false, "": false,
		"CN=a\x01b": false, "DC=x": false,
	} {
		_, err := ParseSubject(in)
		if (err == nil) != ok {
			t.Errorf("ParseSubject(%q) err=%v, want ok=%v", in, err, ok)
		}
	}
}

// FuzzParsePrivateKeyPEM: any input either parses to a valid RSA key of an accepted size or
// fails with an error that does not echo the input.
func FuzzParsePrivateKeyPEM(f *testing.F) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	f.Add("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParsePrivateKeyPEM(in)
		if err != nil {
			// Error texts quote no PEM armor and none of the input.
			msg := err.Error()
			if strings.Contains(msg, "-----") {
				t.Fatal("error quotes PEM armor")
			}
			if body := strings.TrimSpace(in); len(body) > 24 && strings.Contains(msg, body) {
				t.Fatal("error echoes the input")
			}
			return
		}
		if k.N.BitLen() < MinImportBits {
			t.Fatalf("accepted a %d-bit key", k.N.BitLen())
		}
	})
}

func FuzzParseCertificatePEM(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	f.Add("x")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCertificatePEM(in)
		if err == nil && c == nil {
			t.Fatal("nil certificate without error")
		}
	})
}
