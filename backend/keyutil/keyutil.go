// Package keyutil generates, imports and describes the RSA keys and self-signed certificates
// that sign Salesforce JWT assertions. Nothing here logs or formats key material into errors:
// callers may surface these errors to operators verbatim.
package keyutil

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/vault/sdk/helper/certutil"
)

// Key types an operator may choose for generated keys.
const (
	RSA2048 = "rsa-2048"
	RSA3072 = "rsa-3072"
	RSA4096 = "rsa-4096"
)

// KeyTypes lists the accepted key_type values, in the order help text shows them.
var KeyTypes = []string{RSA2048, RSA3072, RSA4096}

// Bits returns the modulus size of a key type, or 0 for an unknown type.
func Bits(keyType string) int {
	switch keyType {
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	case RSA4096:
		return 4096
	}
	return 0
}

// TypeOf names the key type of an RSA key by its modulus size ("rsa-2048", …, or "rsa-<bits>").
func TypeOf(key *rsa.PrivateKey) string {
	return fmt.Sprintf("rsa-%d", key.N.BitLen())
}

// Generate makes a new RSA key of the given type from rnd (crypto/rand when nil).
func Generate(rnd io.Reader, keyType string) (*rsa.PrivateKey, error) {
	bits := Bits(keyType)
	if bits == 0 {
		return nil, fmt.Errorf("unknown key type: use one of %s", strings.Join(KeyTypes, ", "))
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return rsa.GenerateKey(rnd, bits)
}

// CertRequest describes a self-signed certificate to make for a key.
type CertRequest struct {
	Subject  pkix.Name
	NotAfter time.Time
	Now      time.Time
}

// SelfSign makes a self-signed X.509 certificate (SHA-256 with RSA, random 128-bit serial) for
// key and returns it PEM-encoded. Salesforce only uses the certificate's public key, but a
// well-formed certificate keeps Setup, the Metadata API and openssl happy.
func SelfSign(rnd io.Reader, key *rsa.PrivateKey, req CertRequest) (string, *x509.Certificate, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return "", nil, fmt.Errorf("generating certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		NotBefore:             req.Now.Add(-5 * time.Minute).UTC(), // tolerate small clock skew
		NotAfter:              req.NotAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", nil, fmt.Errorf("creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", nil, fmt.Errorf("parsing the new certificate: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), cert, nil
}

// Fingerprint is the SHA-256 of the certificate's DER, as lower-case colon-separated hex
// (the form `openssl x509 -fingerprint -sha256` prints, lower-cased).
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return certutil.GetHexFormatted(sum[:], ":")
}

// MarshalPrivateKey encodes key as PKCS#8 DER, the form kept in storage.
func MarshalPrivateKey(key *rsa.PrivateKey) ([]byte, error) {
	return x509.MarshalPKCS8PrivateKey(key)
}

// UnmarshalPrivateKey decodes a PKCS#8 DER RSA key from storage.
func UnmarshalPrivateKey(der []byte) (*rsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("stored private key is not valid PKCS#8")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("stored private key is not an RSA key")
	}
	return rk, nil
}

// MinImportBits is the smallest RSA key accepted on import.
const MinImportBits = 2048

// maxImportBits bounds the work an imported key can cost (signing time grows with the cube).
const maxImportBits = 8192

// ParsePrivateKeyPEM parses one RSA private key in PEM (PKCS#1 "RSA PRIVATE KEY" or PKCS#8
// "PRIVATE KEY"). Errors describe the problem, never the content, and quote no PEM armor.
func ParsePrivateKeyPEM(data string) (*rsa.PrivateKey, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(data)))
	if block == nil {
		return nil, errors.New("not PEM: expected one PEM-encoded RSA private key (a PKCS#1 RSA PRIVATE KEY or PKCS#8 PRIVATE KEY block)")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("more than one PEM block: give exactly one private key")
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted {
		return nil, errors.New("the key is encrypted: decrypt it first (openssl rsa -in key.pem -out plain.pem)")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the RSA PRIVATE KEY block is not a valid PKCS#1 key")
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the PRIVATE KEY block is not a valid PKCS#8 key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("the key is not RSA: Salesforce's JWT bearer flow signs with RS256, which needs an RSA key")
		}
		key = rk
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the key is encrypted: decrypt it first (openssl pkcs8 -in key.pem -out plain.pem)")
	default:
		return nil, errors.New("unexpected PEM block type: expected RSA PRIVATE KEY or PRIVATE KEY")
	}
	if bits := key.N.BitLen(); bits < MinImportBits || bits > maxImportBits {
		return nil, fmt.Errorf("the key is %d bits: RSA keys of %d to %d bits are accepted", bits, MinImportBits, maxImportBits)
	}
	if err := key.Validate(); err != nil {
		return nil, errors.New("the RSA key is inconsistent (failed validation)")
	}
	key.Precompute()
	return key, nil
}

// ParseCertificatePEM parses exactly one PEM certificate.
func ParseCertificatePEM(data string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(data)))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate: expected one PEM-encoded X.509 certificate (a CERTIFICATE block)")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("more than one PEM block: give exactly one certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the certificate does not parse: %w", err)
	}
	return cert, nil
}

// MatchesKey reports whether cert carries key's public key.
func MatchesKey(cert *x509.Certificate, key *rsa.PrivateKey) bool {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	return ok && pub.Equal(key.Public())
}

// EncodeCertificate renders a certificate as PEM.
func EncodeCertificate(cert *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// maxSubjectValue is the X.509 upper bound on a CN (ub-common-name), applied to every attribute.
const maxSubjectValue = 64

// MaxSubjectLength and maxSubjectAttributes bound a whole subject: it is stored in every
// certificate of the ring, and a ring must stay far below Raft's 1 MiB entry limit.
const (
	MaxSubjectLength     = 1024
	maxSubjectAttributes = 16
)

// ParseSubject parses an RFC 4514-style subject such as "CN=vault, O=Acme, C=US".
// Accepted attributes: CN, O, OU, L, ST, C. Values may not be empty. Errors never quote the
// input: a secret pasted into the field must not come back in an error (errors reach audit
// logs unhashed).
func ParseSubject(s string) (pkix.Name, error) {
	var n pkix.Name
	if strings.TrimSpace(s) == "" {
		return n, errors.New("empty subject: use e.g. CN=vault-plugin-salesforce prod")
	}
	if len(s) > MaxSubjectLength {
		return n, fmt.Errorf("subject is %d bytes: use at most %d", len(s), MaxSubjectLength)
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxSubjectAttributes {
		return n, fmt.Errorf("subject has %d attributes: use at most %d", len(parts), maxSubjectAttributes)
	}
	for i, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.ToUpper(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || v == "" {
			return n, fmt.Errorf("subject component %d is malformed: use ATTR=value pairs separated by commas (CN, O, OU, L, ST, C)", i+1)
		}
		for _, r := range v {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return n, errors.New("subject contains a control or invisible format character")
			}
		}
		if len(v) > maxSubjectValue {
			return n, fmt.Errorf("subject component %d's value is %d bytes: X.509 allows at most %d", i+1, len(v), maxSubjectValue)
		}
		switch k {
		case "CN":
			n.CommonName = v
		case "O":
			n.Organization = append(n.Organization, v)
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, v)
		case "L":
			n.Locality = append(n.Locality, v)
		case "ST":
			n.Province = append(n.Province, v)
		case "C":
			if len(v) != 2 {
				return n, errors.New("subject country (C) must be a two-letter code")
			}
			n.Country = append(n.Country, v)
		default:
			return n, fmt.Errorf("subject component %d has an unsupported attribute: use CN, O, OU, L, ST or C", i+1)
		}
	}
	return n, nil
}
