package emulator

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"time"
)

// certDER accepts a certificate as full PEM or as the bare base64 body that
// a Metadata API retrieve returns, and gives the DER. Comparing DER means
// the same certificate in either form counts as unchanged.
func certDER(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty certificate")
	}
	var der []byte
	if strings.Contains(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, errors.New("not a PEM CERTIFICATE block")
		}
		der = block.Bytes
	} else {
		clean := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
				return -1
			}
			return r
		}, s)
		b, err := base64.StdEncoding.DecodeString(clean)
		if err != nil {
			return nil, errors.New("certificate is neither PEM nor base64")
		}
		der = b
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	return der, nil
}

func derToPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// bareBase64 renders a stored certificate the way a retrieve shows it: the
// base64 body only, without BEGIN/END lines.
func bareBase64(certPEM string) string {
	der, err := certDER(certPEM)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(der)
}

func sameCert(a, b string) bool {
	if strings.TrimSpace(a) == "" || strings.TrimSpace(b) == "" {
		return strings.TrimSpace(a) == strings.TrimSpace(b)
	}
	da, errA := certDER(a)
	db, errB := certDER(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return bytes.Equal(da, db)
}

// rsaKeyOf returns the RSA public key of a certificate. Expiry is ignored on
// purpose: Salesforce keeps validating JWTs with an expired app certificate.
func rsaKeyOf(certPEM string) (*rsa.PublicKey, error) {
	der, err := certDER(certPEM)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	k, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("certificate key is not RSA")
	}
	return k, nil
}

// acceptedLocked applies the propagation rule: after a certificate change at
// T, until T+PropagationDelay the accepted set is the previous certificate,
// both, or the new one (PropagationOverlap); afterwards only the new one.
func (e *Emulator) acceptedLocked(a *appState, now time.Time) []string {
	cur := a.def.CertificatePEM
	if a.changedAt.IsZero() || !now.Before(a.changedAt.Add(e.cfg.PropagationDelay)) {
		return nonEmpty(cur)
	}
	switch e.cfg.PropagationOverlap {
	case "both":
		if sameCert(a.prevPEM, cur) {
			return nonEmpty(cur)
		}
		return nonEmpty(a.prevPEM, cur)
	case "new":
		return nonEmpty(cur)
	default:
		return nonEmpty(a.prevPEM)
	}
}

// setCertLocked records a certificate change at now. prevPEM is the
// certificate that was fully in effect: a second change inside the window
// does not promote the never-propagated middle certificate.
func (e *Emulator) setCertLocked(a *appState, certPEM string, now time.Time) {
	if sameCert(a.def.CertificatePEM, certPEM) {
		return
	}
	if a.changedAt.IsZero() || !now.Before(a.changedAt.Add(e.cfg.PropagationDelay)) {
		a.prevPEM = a.def.CertificatePEM
	}
	a.def.CertificatePEM = certPEM
	a.changedAt = now
}

func nonEmpty(certs ...string) []string {
	out := []string{}
	for _, c := range certs {
		if strings.TrimSpace(c) != "" {
			out = append(out, c)
		}
	}
	return out
}
