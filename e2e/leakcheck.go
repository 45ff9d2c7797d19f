package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var (
	// A PEM certificate (the only PEM the plugin may return), possibly with JSON-escaped newlines.
	certPEMRe = regexp.MustCompile(`-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----`)
	// A long run of base64/base64url characters. A PEM or DER-in-base64 RSA private key is well
	// over 1,000 characters and even a bare 2048-bit modulus is 342; tokens, fingerprints (64 hex)
	// and UUIDs are far shorter.
	longBase64Re = regexp.MustCompile(`[A-Za-z0-9+/_-]{120,}`)
)

// KeyMaterial returns descriptions of anything in body that looks like private key material:
// private key PEM armor, a PEM block other than a certificate, or a long base64 run outside a
// certificate. Strings are checked after JSON decoding, so that a PEM split over "\n" escapes is
// seen whole.
func KeyMaterial(body []byte) []string {
	var found []string
	// PEM armor of a private key (help and errors may name "private key"; they never carry armor).
	if strings.Contains(string(body), "PRIVATE KEY-----") {
		found = append(found, "PRIVATE KEY PEM armor")
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		doc = string(body) // CLI table output and the like: check it as one string
	}
	walkStrings(doc, "", func(where, s string) {
		rest := certPEMRe.ReplaceAllString(s, "")
		if strings.Contains(rest, "-----BEGIN") {
			found = append(found, fmt.Sprintf("a non-certificate PEM block at %s", where))
		}
		// Join PEM-style lines so a key wrapped at 64 columns is one run.
		joined := strings.NewReplacer("\n", "", "\r", "", `\n`, "").Replace(rest)
		for _, run := range longBase64Re.FindAllString(joined, -1) {
			found = append(found, fmt.Sprintf("a %d-character base64 run at %s (%.24s…)", len(run), where, run))
		}
	})
	return found
}

// walkStrings calls f for every string (map keys included) in a decoded JSON document.
func walkStrings(v any, where string, f func(where, s string)) {
	switch x := v.(type) {
	case string:
		f(where, x)
	case map[string]any:
		for k, e := range x {
			f(where+"{key}", k)
			walkStrings(e, where+"."+k, f)
		}
	case []any:
		for i, e := range x {
			walkStrings(e, fmt.Sprintf("%s[%d]", where, i), f)
		}
	}
}

// AssertNoPrivateKey fails the test if any response recorded so far carried key material.
func (r *Recorder) AssertNoPrivateKey(t testing.TB) {
	t.Helper()
	n := 0
	for _, ex := range r.Exchanges() {
		n++
		for _, what := range KeyMaterial(ex.Body) {
			t.Errorf("private key material in the response to %s %s (HTTP %d): %s", ex.Method, ex.Path, ex.Status, what)
		}
	}
	t.Logf("scanned %d responses for private key material", n)
}
