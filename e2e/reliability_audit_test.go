package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// relNeedle is a string that must never appear where it is searched for.
type relNeedle struct{ what, s string }

// relKeyNeedles are the private parts of key, in every encoding a leak could take: PEM armor
// is searched for separately; here the base64 (standard, URL, raw) and hex of its PKCS#1 and
// PKCS#8 DER (as a whole: the plugin stores PKCS#8 DER, which JSON writes as base64), and the
// private exponent, primes and CRT values in hex, decimal and base64. Windows are taken at
// several offsets, so a partial or re-wrapped copy is found too. The modulus and public
// exponent are public (every certificate carries them) and are not needles.
func relKeyNeedles(t testing.TB, name string, key *rsa.PrivateKey) []relNeedle {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var out []relNeedle
	windows := func(what, s string, width int) {
		for off := 0; off+width <= len(s); off += max(width, len(s)/8) {
			out = append(out, relNeedle{fmt.Sprintf("%s %s @%d", name, what, off), s[off : off+width]})
		}
	}
	for _, der := range []struct {
		what string
		b    []byte
	}{{"PKCS#1 DER", x509.MarshalPKCS1PrivateKey(key)}, {"PKCS#8 DER", pkcs8}} {
		windows(der.what+" base64", base64.StdEncoding.EncodeToString(der.b), 40)
		windows(der.what+" base64url", base64.RawURLEncoding.EncodeToString(der.b), 40)
		windows(der.what+" hex", hex.EncodeToString(der.b), 48)
	}
	key.Precompute()
	parts := []struct {
		what string
		n    *big.Int
	}{{"d", key.D}, {"p", key.Primes[0]}, {"q", key.Primes[1]}, {"dp", key.Precomputed.Dp}, {"dq", key.Precomputed.Dq}, {"qinv", key.Precomputed.Qinv}}
	for _, p := range parts {
		b := p.n.Bytes()
		windows(p.what+" hex", hex.EncodeToString(b), 40)
		windows(p.what+" HEX", strings.ToUpper(hex.EncodeToString(b)), 40)
		windows(p.what+" decimal", p.n.String(), 40)
		windows(p.what+" base64", base64.StdEncoding.EncodeToString(b), 32)
	}
	return out
}

// relAssertionRe is a signed JWT (header.payload.signature, the header starting {"): a signed
// assertion is a bearer credential for a few minutes and must not be logged either.
var relAssertionRe = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}`)

// TestReliabilityNoSecretLeaks runs a scenario that touches every path (imports of known keys,
// PKCS#1 and PKCS#8, at create and through import; shared and per_lease mints, renewals and
// revocations; a reset; a metadata_api rotation; archived key destruction; failed imports of
// broken copies of the keys; token endpoint faults) on a Vault with a file audit device enabled
// and trace logging (the plugin's own log lines included), then scans:
//   - every HTTP response and CLI output, the audit log and the server log, for the imported
//     keys' private material (PEM armor, DER in base64 and hex, d, p, q and CRT values);
//   - the audit log and the server log for every access token handed out, and for signed JWT
//     assertions.
//
// Zero hits is asserted. (The audit device HMACs secrets in requests and responses by default,
// so the private_key field of an import and the access_token of a creds read appear there only
// as hmac-sha256 values.)
func TestReliabilityNoSecretLeaks(t *testing.T) {
	t.Parallel()
	e := newRelEnv(t, relEnvOptions{trace: true})
	v := e.Vault
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.CLI(t, "audit", "enable", "file", "file_path="+auditPath)

	k1, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	k1DER, err := x509.MarshalPKCS8PrivateKey(k1)
	if err != nil {
		t.Fatal(err)
	}
	k1PEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k1DER}))
	k2PEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k2)}))

	tokens := map[string]bool{}
	keep := func(s string) string { tokens[s] = true; return s }
	mint := func(role string) string {
		s := ReadCreds(t, v.Client, role)
		tok := keep(s.Data["access_token"].(string))
		e.Emu.RequireTokenAccepted(t, tok)
		return tok
	}

	// Key 1 (PKCS#8) at create, on the demo app, metadata_api.
	r := v.Write(t, Mount+"/connections/leak", e.ConnectionData(e.MetadataAPIFields(map[string]any{"private_key": k1PEM})))
	e.Emu.AddApp(t, e.Emu.AppName, e.Emu.ConsumerKey, StringField(t, r, "certificate"))
	e.CreateRole(t, v, "shared", "leak", nil)
	e.CreateRole(t, v, "leased", "leak", map[string]any{"token_mode": "per_lease"})
	mint("shared")
	lease := ReadCreds(t, v.Client, "leased")
	keep(lease.Data["access_token"].(string))
	if _, err := v.Client.Sys().Renew(lease.LeaseID, 60); err != nil {
		t.Fatalf("renew: %v", err)
	}
	v.CLI(t, "lease", "revoke", lease.LeaseID)

	// Key 2 (PKCS#1) through import, activated; the app moves to its certificate.
	v.Write(t, Mount+"/connections/leak/import", map[string]any{"private_key": k2PEM, "activate": true})
	e.Emu.AddApp(t, e.Emu.AppName, e.Emu.ConsumerKey, StringField(t, v.Read(t, Mount+"/connections/leak/certificate"), "certificate"))
	v.Write(t, Mount+"/roles/shared/reset", nil)
	mint("shared")
	mint("leased")
	v.CLI(t, "read", Mount+"/creds/shared")
	v.CLI(t, "read", "-format=json", Mount+"/creds/leased")

	// Broken copies of the keys: the errors must not echo them.
	half := k2PEM[:len(k2PEM)*2/3]
	for _, d := range []map[string]any{
		{"private_key": half},
		{"private_key": strings.ReplaceAll(k1PEM, "PRIVATE KEY", "RSA PRIVATE KEY")},
		{"private_key": k1PEM, "certificate": StringField(t, r, "certificate") + "junk"},
		{"private_key": k1PEM + k2PEM},
		{"private_key": k2PEM, "bogus_field": k1PEM},
	} {
		if _, err := v.Client.Logical().Write(Mount+"/connections/leak/import", d); err == nil {
			t.Fatalf("a broken import was accepted")
		}
	}
	if _, err := v.Client.Logical().Write(Mount+"/connections/leak2", e.ConnectionData(map[string]any{"private_key": half})); err == nil {
		t.Fatalf("a connection with a truncated key was created")
	}
	_, _, _ = v.TryCLI(t, "write", Mount+"/connections/leak/import", "private_key="+half)

	// Faults: the failures are logged with their causes.
	e.CreateRole(t, v, "cold", "leak", map[string]any{"token_mode": "per_lease"})
	for _, f := range []relFault{
		{"endpoint": "token", "kind": "status", "status": 503, "count": 3},
		{"endpoint": "token", "kind": "malformed", "count": 3},
		{"endpoint": "token", "kind": "wrong_instance_url", "count": 3},
	} {
		e.Emu.SetFault(t, f)
		if _, _, err := relRead(v.Client, "cold"); err == nil {
			t.Fatalf("a read under %v was served", f)
		}
		e.Emu.ClearFaults(t)
	}
	e.Emu.SetFault(t, relFault{"endpoint": "revoke", "kind": "status", "status": 500, "count": 3})
	_, _ = v.Client.Logical().Write(Mount+"/roles/shared/reset", nil)
	e.Emu.ClearFaults(t)

	// A metadata_api rotation to a generated key 3, then key 1 (archived) destroyed.
	v.Write(t, Mount+"/connections/leak/rotate", nil)
	WaitFor(t, 90*time.Second, "the rotation to complete", func() error {
		st, err := readRotation(v.Client, "leak")
		if err != nil {
			return err
		}
		if st.State == "failed" {
			t.Fatalf("rotation failed: %s", st)
		}
		if st.State != "idle" || st.LastCompletedAt == "" {
			return fmt.Errorf("rotation %s", st)
		}
		return nil
	})
	mint("shared")
	mint("leased")
	v.Delete(t, Mount+"/connections/leak/keys/1")
	v.CLI(t, "read", Mount+"/connections/leak")
	v.CLI(t, "list", Mount+"/connections/leak/keys")
	for _, p := range []string{"connections/leak/rotation", "connections/leak/keys/2", "roles/shared", "info"} {
		v.Read(t, Mount+"/"+p)
	}

	// Collect the tokens handed out by the readers above and in the CLI output.
	for _, ex := range v.Rec.Exchanges() {
		for _, m := range regexp.MustCompile(`00D[0-9A-Za-z]{12}!AQ[0-9A-Za-z._]{20,}`).FindAllString(string(ex.Body), -1) {
			tokens[m] = true
		}
	}

	keyNeedles := append(relKeyNeedles(t, "key 1", k1), relKeyNeedles(t, "key 2", k2)...)
	var tokenNeedles []relNeedle
	for tok := range tokens {
		tokenNeedles = append(tokenNeedles, relNeedle{"access token " + tok[:12] + "…", tok})
		if i := strings.Index(tok, "!"); i > 0 && len(tok) > i+40 {
			tokenNeedles = append(tokenNeedles, relNeedle{"access token body " + tok[:12] + "…", tok[i+1 : i+41]})
		}
	}
	t.Logf("needles: %d for the two keys' private material, %d for %d access tokens", len(keyNeedles), len(tokenNeedles), len(tokens))

	scan := func(where string, lines []string, needles []relNeedle, assertions bool) int {
		hits := 0
		for i, line := range lines {
			if strings.Contains(line, "PRIVATE KEY-----") {
				hits++
				t.Errorf("%s line %d: PEM private key armor", where, i+1)
			}
			for _, n := range needles {
				if strings.Contains(line, n.s) {
					hits++
					t.Errorf("%s line %d: %s", where, i+1, n.what)
				}
			}
			if assertions {
				if m := relAssertionRe.FindString(line); m != "" {
					hits++
					t.Errorf("%s line %d: a signed JWT assertion (%.40s…)", where, i+1, m)
				}
			}
		}
		return hits
	}

	// Positive controls: the needles find the keys in the forms a leak would take (PEM, the
	// JSON the plugin stores, a hex dump, d in decimal), and the tokens in the creds answers.
	stored := fmt.Sprintf(`{"private_key":%q}`, base64.StdEncoding.EncodeToString(k1DER))
	for _, c := range []struct{ what, s string }{
		{"key 1 PEM", k1PEM}, {"key 2 PEM", strings.ReplaceAll(k2PEM, "-----", "")}, {"key 1 as stored", stored},
		{"key 2 DER hex", hex.EncodeToString(x509.MarshalPKCS1PrivateKey(k2))}, {"key 1 d", "d=" + k1.D.String()},
		{"key 2 q base64", base64.StdEncoding.EncodeToString(k2.Primes[1].Bytes())},
	} {
		found := false
		for _, n := range keyNeedles {
			found = found || strings.Contains(c.s, n.s)
		}
		if !found {
			t.Fatalf("positive control: the needles do not find %s: the scan would miss a leak", c.what)
		}
	}
	controlHits := 0
	for _, ex := range v.Rec.Exchanges() {
		for _, n := range tokenNeedles {
			if strings.Contains(string(ex.Body), n.s) {
				controlHits++
			}
		}
	}
	if controlHits == 0 {
		t.Fatalf("positive control: no access token found in the creds answers: the token needles are wrong")
	}

	// 1. Every response and CLI output: no private key (tokens are allowed there: creds).
	var respLines []string
	for _, ex := range v.Rec.Exchanges() {
		respLines = append(respLines, string(ex.Body))
	}
	h := scan("response", respLines, keyNeedles, false)
	relReport(t, "leak", "http_responses", "scanned", len(respLines), "needles", len(keyNeedles), "hits", h)

	// 2. The audit log: no private key, no access token, no assertion.
	audit := relReadLines(t, auditPath)
	if len(audit) < 50 {
		t.Fatalf("the audit log has %d lines: the audit device did not record the scenario", len(audit))
	}
	sawImport := false
	for _, l := range audit {
		if strings.Contains(l, `"path":"`+Mount+`/connections/leak/import"`) && strings.Contains(l, `"private_key":"hmac-sha256:`) {
			sawImport = true
		}
	}
	if !sawImport {
		t.Errorf("the audit log has no import request with an HMAC'd private_key: the scan may be looking at the wrong file")
	}
	h = scan("audit log", audit, append(append([]relNeedle(nil), keyNeedles...), tokenNeedles...), true)
	relReport(t, "leak", "audit_log", "scanned", len(audit), "needles", len(keyNeedles)+len(tokenNeedles), "hits", h)

	// 3. The server log at trace level, plugin lines included.
	server := relReadLines(t, v.LogPath)
	pluginLines := 0
	for _, l := range server {
		if strings.Contains(l, PluginName) || strings.Contains(l, "minted token") {
			pluginLines++
		}
	}
	if logCountAny(server, "minted token") == 0 || logCountAny(server, "[TRACE]") == 0 {
		t.Errorf("the server log has no trace lines or no plugin debug lines: the scan would prove nothing")
	}
	h = scan("server log", server, append(append([]relNeedle(nil), keyNeedles...), tokenNeedles...), true)
	relReport(t, "leak", "server_log_trace", "scanned", len(server), "plugin_lines", pluginLines, "needles", len(keyNeedles)+len(tokenNeedles), "hits", h)
}

func relReadLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func logCountAny(lines []string, part string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, part) {
			n++
		}
	}
	return n
}
