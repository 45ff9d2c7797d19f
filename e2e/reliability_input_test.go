package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// relBadCase is one bad input to one write path.
type relBadCase struct {
	class string
	// path under the mount ("connections/bad"); rawPath, when set, is sent as is after /v1/
	// (for path traversal, which the API client would escape).
	path, rawPath string
	method        string // PUT (default) or DELETE
	data          map[string]any
	rawBody       []byte // sent instead of data
	// field must be named in the error; empty for refusals that concern the path itself.
	field    string
	statuses []int // accepted answers (default 400)
	bug      string
}

// TestReliabilityBadInput sends bad input to every write path of the engine through Vault's
// HTTP API: connections (create and update), roles (create and update), import, promote,
// rotate, reset and key destruction. Classes: wrong types, empty values, huge values, unicode,
// control characters, path traversal in names, URLs with userinfo, non-https URLs, IP literals,
// redirect-style URLs (query, fragment, non-token hosts), unknown fields, out-of-range and
// inconsistent values, bad key material, and malformed request bodies. Each must be refused
// (HTTP 400 naming the field, or for a bad path a 4xx), nothing may be written (the plugin's
// whole storage key list, the existing connection and role, and the key ring are compared
// before and after every case), and nothing may panic (same plugin process at the end, no
// panic in the log).
func TestReliabilityBadInput(t *testing.T) {
	t.Parallel()
	e := newRelEnv(t, relEnvOptions{})
	v := e.Vault
	uuid := relMountUUID(t, v)
	e.Ready(t, v, "base", "base-role", nil)
	ReadCreds(t, v.Client, "base-role")
	pid := v.PluginPID(t)

	conn := func(over map[string]any) map[string]any {
		d := e.ConnectionData(nil)
		maps.Copy(d, over)
		for k, val := range d {
			if val == nil {
				delete(d, k)
			}
		}
		return d
	}
	role := func(over map[string]any) map[string]any {
		d := map[string]any{"connection": "base", "username": e.Emu.Username}
		maps.Copy(d, over)
		return d
	}
	// Filler for huge values: "a." repeated, so that the private-key scanner (which flags long
	// base64 runs in responses) does not take an echoed value for key material.
	big := func(n int) string { return strings.Repeat("a.", n/2) }
	md := map[string]any{"deploy": "metadata_api", "app_name": "Vault_JWT", "deploy_username": e.Emu.DeployUsername}
	mdWith := func(over map[string]any) map[string]any { m := maps.Clone(md); maps.Copy(m, over); return conn(m) }
	keyPEM, certPEM, otherCertPEM, smallKeyPEM, ecKeyPEM := relTestKeys(t, v)

	const C, U, R, RU = "connections/bad", "connections/base", "roles/bad", "roles/base-role"
	const I, P, RO, RS = "connections/base/import", "connections/base/promote", "connections/base/rotate", "roles/base-role/reset"
	var cases []relBadCase
	add := func(class, path, field string, data map[string]any) {
		cases = append(cases, relBadCase{class: class, path: path, field: field, data: data})
	}
	bug := func(id string) { cases[len(cases)-1].bug = id }

	// Wrong types.
	add("wrong_type", C, "consumer_key", conn(map[string]any{"consumer_key": map[string]any{"a": 1}}))
	add("wrong_type", C, "allow_non_salesforce_host", conn(map[string]any{"allow_non_salesforce_host": "maybe"}))
	add("wrong_type", C, "keep_archived_keys", conn(map[string]any{"keep_archived_keys": "many"}))
	add("wrong_type", C, "keep_archived_keys", conn(map[string]any{"keep_archived_keys": 1.5}))
	bug("BUG-5")
	add("wrong_type", C, "certificate_ttl", conn(map[string]any{"certificate_ttl": "forever"}))
	add("wrong_type", C, "certificate_ttl", conn(map[string]any{"certificate_ttl": true}))
	add("wrong_type", C, "key_type", conn(map[string]any{"key_type": 2048}))
	add("wrong_type", C, "deploy", conn(map[string]any{"deploy": []string{"manual", "metadata_api"}}))
	add("wrong_type", U, "propagation_timeout", map[string]any{"propagation_timeout": map[string]any{"m": 1}})
	add("wrong_type", R, "ttl", role(map[string]any{"ttl": "soon"}))
	add("wrong_type", R, "bound_cidrs", role(map[string]any{"bound_cidrs": map[string]any{"a": "b"}}))
	add("wrong_type", R, "token_mode", role(map[string]any{"token_mode": 7}))
	add("wrong_type", R, "username", role(map[string]any{"username": []string{"a@example.com", "b@example.com"}}))
	add("wrong_type", I, "activate", map[string]any{"private_key": keyPEM, "activate": "perhaps"})
	add("wrong_type", I, "private_key", map[string]any{"private_key": 12345})
	add("wrong_type", P, "version", map[string]any{"version": "abc"})
	add("wrong_type", P, "force", map[string]any{"force": "perhaps"})

	// Empty values.
	add("empty", C, "consumer_key", conn(map[string]any{"consumer_key": ""}))
	add("empty", C, "consumer_key", conn(map[string]any{"consumer_key": nil}))
	add("empty", C, "login_url", conn(map[string]any{"login_url": ""}))
	add("empty", C, "key_type", conn(map[string]any{"key_type": ""}))
	add("empty", C, "deploy", conn(map[string]any{"deploy": ""}))
	add("empty", C, "app_type", conn(map[string]any{"app_type": ""}))
	add("empty", C, "api_version", conn(map[string]any{"api_version": ""}))
	add("empty", C, "certificate_ttl", conn(map[string]any{"certificate_ttl": "0"}))
	add("empty", C, "propagation_timeout", conn(map[string]any{"propagation_timeout": "0"}))
	add("empty", C, "app_name", conn(map[string]any{"deploy": "metadata_api", "deploy_username": e.Emu.DeployUsername}))
	add("empty", C, "deploy_username", conn(map[string]any{"deploy": "metadata_api", "app_name": "Vault_JWT", "deploy_username": ""}))
	add("empty", U, "consumer_key", map[string]any{"consumer_key": ""})
	add("empty", U, "login_url", map[string]any{"login_url": "   "})
	add("empty", R, "connection", role(map[string]any{"connection": ""}))
	add("empty", R, "username", role(map[string]any{"username": ""}))
	add("empty", R, "ttl", role(map[string]any{"ttl": "0"}))
	add("empty", R, "session_timeout", role(map[string]any{"session_timeout": "0"}))
	add("empty", RU, "username", map[string]any{"username": ""})
	add("empty", RU, "connection", map[string]any{"connection": ""})
	add("empty", I, "private_key", map[string]any{"private_key": ""})
	add("empty", I, "private_key", map[string]any{})
	add("empty", I, "certificate", map[string]any{"certificate": certPEM})

	// Huge values.
	add("huge", C, "consumer_key", conn(map[string]any{"consumer_key": strings.Repeat("k", 257)}))
	add("huge", C, "consumer_key", conn(map[string]any{"consumer_key": big(1 << 20)}))
	add("huge", C, "login_url", conn(map[string]any{"login_url": "https://" + big(100_000) + "my.salesforce.com", "allow_non_salesforce_host": false}))
	bug("BUG-4")
	add("huge", C, "login_url", conn(map[string]any{"login_url": "https://login.salesforce.com/" + big(100_000), "allow_non_salesforce_host": false}))
	bug("BUG-4")
	add("huge", C, "audience", conn(map[string]any{"audience": "https://login.salesforce.com/" + big(100_000)}))
	bug("BUG-4")
	add("huge", C, "certificate_subject", conn(map[string]any{"certificate_subject": "CN=" + big(100_000)}))
	bug("BUG-4")
	add("huge", C, "ca_cert", conn(map[string]any{"ca_cert": strings.Repeat(e.Emu.CAPEM, (300<<10)/len(e.Emu.CAPEM)+1)}))
	add("huge", C, "app_name", conn(map[string]any{"app_name": "A" + strings.Repeat("b", 80)}))
	add("huge", C, "eca_oauth_settings_name", conn(map[string]any{"eca_oauth_settings_name": "A" + strings.Repeat("b", 80)}))
	add("huge", C, "api_version", conn(map[string]any{"api_version": "62." + strings.Repeat("0.", 500)}))
	add("huge", C, "verify_username", conn(map[string]any{"verify_username": big(100_000) + "@example.com"}))
	add("huge", C, "keep_archived_keys", conn(map[string]any{"keep_archived_keys": 101}))
	add("huge", C, "keep_archived_keys", conn(map[string]any{"keep_archived_keys": int64(1) << 40}))
	add("huge", C, "certificate_ttl", conn(map[string]any{"certificate_ttl": "1000000h"}))
	add("huge", C, "propagation_timeout", conn(map[string]any{"propagation_timeout": "25h"}))
	add("huge", R, "username", role(map[string]any{"username": big(100_000) + "@example.com"}))
	add("huge", R, "session_timeout", role(map[string]any{"session_timeout": "48h"}))
	add("huge", R, "ttl", role(map[string]any{"ttl": "99999999999999h"}))
	add("huge", R, "bound_cidrs", role(map[string]any{"bound_cidrs": big(100_000)}))
	// Over Vault's own limit on a JSON string (1 MiB): Vault refuses it before the plugin, with
	// a 500 (Vault's answer, not the plugin's).
	cases = append(cases, relBadCase{class: "huge", path: I, data: map[string]any{"private_key": big(2 << 20)}, statuses: []int{400, 413, 500}})
	// Names are captured by the route: over 128 characters is refused by the plugin (400
	// naming name) or not routed at all (404).
	cases = append(cases,
		relBadCase{class: "huge", path: "connections/" + strings.Repeat("n", 129), data: conn(nil), statuses: []int{400, 404}},
		relBadCase{class: "huge", path: "roles/" + strings.Repeat("n", 200), data: role(nil), statuses: []int{400, 404}})

	// Unicode.
	add("unicode", C, "consumer_key", conn(map[string]any{"consumer_key": "ключ"}))
	add("unicode", C, "app_name", mdWith(map[string]any{"app_name": "Приложение"}))
	add("unicode", C, "api_version", conn(map[string]any{"api_version": "６２.0"}))
	add("unicode", C, "login_url", conn(map[string]any{"login_url": "https://login.sаlesforce.com", "allow_non_salesforce_host": false}))
	add("unicode", C, "key_type", conn(map[string]any{"key_type": "rsa‐2048"}))
	add("unicode", C, "deploy", conn(map[string]any{"deploy": "manuаl"}))
	add("unicode", C, "certificate_subject", conn(map[string]any{"certificate_subject": "CN=vault, C=ÜS"}))
	add("unicode", C, "certificate_subject", conn(map[string]any{"certificate_subject": "ÇN=vault"}))
	add("unicode", R, "token_mode", role(map[string]any{"token_mode": "ѕhared"}))
	add("unicode", R, "username", role(map[string]any{"username": "ユーザー"}))
	add("unicode", R, "connection", role(map[string]any{"connection": "bаse"}))
	cases = append(cases,
		relBadCase{class: "unicode", path: "connections/ünï", data: conn(nil), statuses: []int{400, 404, 405}},
		relBadCase{class: "unicode", path: "roles/роль", data: role(nil), statuses: []int{400, 404, 405}})

	// Control characters.
	for _, cc := range []struct{ name, s string }{
		{"NUL", "\x00"}, {"LF", "\n"}, {"SOH", "\x01"}, {"ESC", "\x1b[31m"}, {"DEL", "\x7f"}, {"NEL", "\u0085"}, {"RLO", "\u202e"},
	} {
		add("control_chars", R, "username", role(map[string]any{"username": "int" + cc.s + "egration@example.com"}))
		switch cc.name {
		case "SOH", "ESC", "DEL", "NEL", "RLO":
			bug("BUG-3")
		}
		add("control_chars", C, "verify_username", conn(map[string]any{"verify_username": "v" + cc.s + "@example.com"}))
		switch cc.name {
		case "SOH", "ESC", "DEL", "NEL", "RLO":
			bug("BUG-3")
		}
		add("control_chars", C, "certificate_subject", conn(map[string]any{"certificate_subject": "CN=vault" + cc.s + "prod"}))
		switch cc.name {
		case "NEL", "RLO":
			bug("BUG-3")
		}
	}
	add("control_chars", C, "consumer_key", conn(map[string]any{"consumer_key": "abc\x00def"}))
	add("control_chars", C, "login_url", conn(map[string]any{"login_url": "https://login.salesforce.com/\x00", "allow_non_salesforce_host": false}))
	add("control_chars", C, "login_url", conn(map[string]any{"login_url": "https://login.salesforce.com\r\nHost: evil.example", "allow_non_salesforce_host": false}))
	add("control_chars", C, "audience", conn(map[string]any{"audience": "https://login.salesforce.com/\x7f"}))
	add("control_chars", C, "app_name", mdWith(map[string]any{"app_name": "Vault\tJWT"}))
	add("control_chars", C, "api_version", conn(map[string]any{"api_version": "62.0\x00"}))
	add("control_chars", C, "deploy_username", mdWith(map[string]any{"deploy_username": "d\r\n@example.com"}))
	add("control_chars", R, "bound_cidrs", role(map[string]any{"bound_cidrs": "10.0.0.0/8\x00"}))
	add("control_chars", I, "certificate", map[string]any{"private_key": keyPEM, "certificate": "\x00" + certPEM})

	// Path traversal in names (the route names are captured from the path).
	for _, p := range []string{
		"connections/../roles/evil", "connections/..%2froles%2fevil", "connections/%2e%2e", "connections/%2e%2e%2fevil",
		"roles/a%2f..%2f..%2fconnections%2fevil", "connections/evil%00", "connections/.evil", "roles/evil%2freset",
		"connections/base%2f..%2fevil/rotate", "connections/./evil",
	} {
		cases = append(cases, relBadCase{class: "path_traversal", rawPath: Mount + "/" + p, data: conn(nil),
			statuses: []int{301, 307, 400, 404, 405}})
	}
	add("path_traversal", R, "connection", role(map[string]any{"connection": "../connections/base"}))
	bug("BUG-6")
	add("path_traversal", R, "connection", role(map[string]any{"connection": "base/../base"}))
	bug("BUG-6")
	add("path_traversal", R, "connection", role(map[string]any{"connection": "base/"}))
	add("path_traversal", R, "connection", role(map[string]any{"connection": "../../sys/mounts"}))
	bug("BUG-6")

	// URLs with userinfo.
	add("url_userinfo", C, "login_url", conn(map[string]any{"login_url": "https://user:pass@login.salesforce.com", "allow_non_salesforce_host": false}))
	add("url_userinfo", C, "login_url", conn(map[string]any{"login_url": "https://login.salesforce.com@evil.example", "allow_non_salesforce_host": false}))
	add("url_userinfo", C, "login_url", conn(map[string]any{"login_url": "https://user@" + strings.TrimPrefix(e.Emu.URL, "https://")}))
	add("url_userinfo", C, "audience", conn(map[string]any{"audience": "https://u:p@login.salesforce.com"}))

	// Non-https URLs.
	for _, u := range []string{"http://login.salesforce.com", "ftp://login.salesforce.com", "login.salesforce.com", "//login.salesforce.com",
		"javascript:alert(1)", "file:///etc/passwd", "wss://login.salesforce.com", strings.Replace(e.Emu.URL, "https", "http", 1)} {
		add("non_https", C, "login_url", conn(map[string]any{"login_url": u}))
	}
	add("non_https", C, "audience", conn(map[string]any{"audience": "http://login.salesforce.com"}))
	add("non_https", C, "audience", conn(map[string]any{"audience": "login.salesforce.com"}))

	// IP literals (without allow_non_salesforce_host).
	for _, u := range []string{"https://127.0.0.1", "https://[::1]", "https://169.254.169.254", "https://[::ffff:127.0.0.1]",
		"https://10.1.2.3:8443", "https://2130706433", "https://0x7f000001", "https://127.1", e.Emu.URL} {
		add("ip_literal", C, "login_url", conn(map[string]any{"login_url": u, "allow_non_salesforce_host": false}))
	}

	// Redirect-style URLs and hosts that are not Salesforce token hosts.
	for _, u := range []string{"https://login.salesforce.com/?redirect=https://evil.example", "https://login.salesforce.com/#https://evil.example",
		"https://login.salesforce.com/services/oauth2/token?next=x", "https://acme.lightning.force.com", "https://acme.my.salesforce-setup.com",
		"https://evil.example/.salesforce.com", "https://login.salesforce.com.evil.example", "https://evilsalesforce.com", "https://salesforce.com",
		"https://evil.example\\.salesforce.com"} {
		add("redirect_or_foreign_host", C, "login_url", conn(map[string]any{"login_url": u, "allow_non_salesforce_host": false}))
	}

	// Unknown fields.
	add("unknown_field", C, "tls_skip_verify", conn(map[string]any{"tls_skip_verify": true}))
	add("unknown_field", C, "insecure", conn(map[string]any{"insecure": true}))
	add("unknown_field", U, "consumer_secret", map[string]any{"consumer_secret": "s3cr3t"})
	add("unknown_field", R, "sesion_timeout", role(map[string]any{"sesion_timeout": "1h"}))
	add("unknown_field", RU, "policies", map[string]any{"policies": []string{"root"}})
	add("unknown_field", I, "force", map[string]any{"private_key": keyPEM, "force": true})
	add("unknown_field", P, "versoin", map[string]any{"versoin": 2}) //nolint:misspell // the typo is the test
	add("unknown_field", RO, "force", map[string]any{"force": true})
	add("unknown_field", RS, "revoke", map[string]any{"revoke": false})

	// Out of range and inconsistent values.
	add("range_or_consistency", R, "ttl", role(map[string]any{"ttl": "3h", "session_timeout": "2h"}))
	add("range_or_consistency", R, "max_ttl", role(map[string]any{"token_mode": "per_lease", "ttl": "30m", "max_ttl": "10m"}))
	add("range_or_consistency", R, "session_timeout", role(map[string]any{"session_timeout": "1m"}))
	add("range_or_consistency", R, "ttl", role(map[string]any{"ttl": "-5m"}))
	add("range_or_consistency", R, "bound_cidrs", role(map[string]any{"bound_cidrs": "10.0.0.0/33"}))
	add("range_or_consistency", R, "bound_cidrs", role(map[string]any{"bound_cidrs": "999.1.1.1"}))
	add("range_or_consistency", R, "connection", role(map[string]any{"connection": "nope"}))
	add("range_or_consistency", C, "key_rotation_period", conn(map[string]any{"key_rotation_period": "30m"}))
	add("range_or_consistency", C, "key_rotation_period", conn(map[string]any{"key_rotation_period": "-1h"}))
	add("range_or_consistency", C, "certificate_renew_before", conn(map[string]any{"key_rotation_period": "24h", "certificate_ttl": "48h", "certificate_renew_before": "72h"}))
	add("range_or_consistency", C, "consumer_key_max_age", conn(map[string]any{"consumer_key_max_age": "1h"}))
	add("range_or_consistency", C, "keep_archived_keys", conn(map[string]any{"keep_archived_keys": -1}))
	add("range_or_consistency", C, "propagation_timeout", conn(map[string]any{"propagation_timeout": "30s"}))
	add("range_or_consistency", C, "ca_cert", conn(map[string]any{"ca_cert": "not a certificate"}))
	add("range_or_consistency", C, "certificate_subject", conn(map[string]any{"certificate_subject": "CN=a, C=USA"}))
	add("range_or_consistency", C, "certificate_subject", conn(map[string]any{"certificate_subject": "CN"}))
	add("range_or_consistency", C, "certificate", conn(map[string]any{"certificate": certPEM}))
	add("range_or_consistency", U, "private_key", map[string]any{"private_key": keyPEM})
	add("range_or_consistency", U, "certificate", map[string]any{"certificate": certPEM})
	add("range_or_consistency", U, "login_url", map[string]any{"allow_non_salesforce_host": false})
	add("range_or_consistency", P, "version", map[string]any{"version": 999})
	add("range_or_consistency", P, "version", map[string]any{"version": 1})
	add("range_or_consistency", P, "version", map[string]any{"version": -1})
	add("range_or_consistency", P, "", map[string]any{"force": true})
	cases = append(cases,
		relBadCase{class: "range_or_consistency", path: "connections/base/keys/1", method: http.MethodDelete, field: "active"},
		relBadCase{class: "range_or_consistency", path: "connections/base/keys/999", method: http.MethodDelete, field: "999"},
		relBadCase{class: "range_or_consistency", path: "connections/nope/rotate", field: "nope"},
		relBadCase{class: "range_or_consistency", path: "connections/nope/promote", field: "nope", data: map[string]any{"force": true}},
		relBadCase{class: "range_or_consistency", path: "connections/nope/import", field: "nope", data: map[string]any{"private_key": keyPEM}},
		relBadCase{class: "range_or_consistency", path: "roles/nope/reset", field: "nope"})

	// Bad key material (import and create).
	truncated := keyPEM[:len(keyPEM)/2] + "\n-----END RSA PRIVATE KEY-----\n"
	enc := strings.Replace(keyPEM, "-----BEGIN RSA PRIVATE KEY-----\n", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n", 1)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: relMarshalPub(t, keyPEM)}))
	for _, k := range []struct{ what, key, cert, field string }{
		{"not PEM", "hello", "", "private_key"},
		{"public key", pubPEM, "", "private_key"},
		{"1024-bit RSA", smallKeyPEM, "", "private_key"},
		{"EC key", ecKeyPEM, "", "private_key"},
		{"encrypted", enc, "", "private_key"},
		{"two blocks", keyPEM + keyPEM, "", "private_key"},
		{"truncated", truncated, "", "private_key"},
		{"certificate instead of key", certPEM, "", "private_key"},
		{"mismatched certificate", keyPEM, otherCertPEM, "certificate"},
		{"garbage certificate", keyPEM, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate"},
	} {
		d := map[string]any{"private_key": k.key}
		if k.cert != "" {
			d["certificate"] = k.cert
		}
		add("key_material", I, k.field, d)
		add("key_material", C, k.field, conn(d))
	}

	// Malformed request bodies: Vault parses them before the plugin, and answers some with a
	// 500 (Vault's answer, not the plugin's).
	for _, b := range [][]byte{[]byte(`{"consumer_key":`), []byte(`[1,2,3]`), []byte(`consumer_key=x&login_url=y`), []byte(`"a string"`), {0xff, 0xfe, 0x00}} {
		cases = append(cases, relBadCase{class: "malformed_body", path: C, rawBody: b, statuses: []int{400, 500}})
	}

	// Run them all, comparing the whole storage before and after each.
	before := relSnapshot(t, v, uuid)
	type tally struct{ cases, refused, bugs, written int }
	tallies := map[string]*tally{}
	var classes []string
	for i, c := range cases {
		tl := tallies[c.class]
		if tl == nil {
			tl = &tally{}
			tallies[c.class] = tl
			classes = append(classes, c.class)
		}
		tl.cases++
		status, msg := relSendBad(t, v, c)
		statuses := c.statuses
		if statuses == nil {
			statuses = []int{400}
		}
		okStatus := false
		for _, s := range statuses {
			okStatus = okStatus || s == status
		}
		desc := fmt.Sprintf("case %d (%s) %s %s %s", i, c.class, relMethod(c), relCasePath(c), relDescribe(c))
		problem := ""
		switch {
		case !okStatus:
			problem = fmt.Sprintf("HTTP %d, want %v: %.300s", status, statuses, msg)
		case c.field != "" && !strings.Contains(msg, c.field):
			problem = fmt.Sprintf("HTTP %d but the error does not name %q: %.300s", status, c.field, msg)
		case relEchoesValue(c, msg):
			problem = fmt.Sprintf("HTTP %d but the error quotes the value given for %s (it should name the field and what is accepted): %.300s", status, c.field, msg)
		}
		after := relSnapshot(t, v, uuid)
		if diff := relSnapshotDiff(before, after); diff != "" {
			tl.written++
			problem += " | WROTE: " + diff
			if c.bug == "" {
				t.Errorf("%s: the refused input changed storage: %s", desc, diff)
			}
			relRestore(t, v, before, after)
			before = relSnapshot(t, v, uuid)
		}
		switch {
		case problem == "":
			tl.refused++
			if c.bug != "" {
				t.Logf("%s: refused now: known bug %s fixed for this case?", desc, c.bug)
			}
		case c.bug != "":
			tl.bugs++
			relKnownBug(t, c.bug, desc+": "+problem)
		default:
			t.Errorf("%s: %s", desc, problem)
		}
	}
	if got := v.PluginPID(t); got != pid {
		t.Errorf("the plugin process changed (%d -> %d): it died during the bad inputs", pid, got)
	}
	if p := relPanics(t, v); len(p) > 0 {
		t.Errorf("panics in the Vault log:\n%s", strings.Join(p, "\n"))
	}
	// The engine still works.
	e.Emu.RequireTokenAccepted(t, ReadCreds(t, v.Client, "base-role").Data["access_token"].(string))
	total := 0
	for _, c := range classes {
		tl := tallies[c]
		total += tl.cases
		relReport(t, "input", c, "cases", tl.cases, "refused", tl.refused, "accepted_known_bug", tl.bugs, "written", tl.written, "panics", 0)
	}
	relReport(t, "input", "all", "classes", len(classes), "cases", total, "panics", 0)
}

// relEchoesValue reports whether the plugin's error repeats the value given for the case's
// field: errors name the field and what it accepts, never the input (which may be huge, carry
// control characters, or be a secret pasted into the wrong field). An echo is the value
// quoted (as %q would), or a long value anywhere; short unquoted matches are left alone, as the
// message's own examples (login.salesforce.com) may contain them. Vault's framework refuses
// wrong types and unparsable durations before the plugin, in its own words: left out too.
func relEchoesValue(c relBadCase, msg string) bool {
	if c.field == "" || c.class == "wrong_type" || strings.Contains(msg, "error converting input") {
		return false
	}
	val, ok := c.data[c.field].(string)
	if !ok || strings.TrimSpace(val) == "" {
		return false
	}
	// msg is the JSON body: the value as it appears there, and quoted inside a message.
	b, _ := json.Marshal(val)
	inJSON := strings.Trim(string(b), `"`)
	q, _ := json.Marshal(fmt.Sprintf("%q", val))
	quoted := strings.Trim(string(q), `"`)
	return strings.Contains(msg, quoted) || (len(val) >= 40 && strings.Contains(msg, inJSON))
}

// relSendBad sends one case and returns the HTTP status and the body.
func relSendBad(t *testing.T, v *Vault, c relBadCase) (int, string) {
	t.Helper()
	body := c.rawBody
	if body == nil && c.data != nil {
		var err error
		if body, err = json.Marshal(c.data); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(relMethod(c), v.Addr+"/v1/"+relCasePath(c), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if c.rawPath != "" {
		// Send the path exactly as written: no cleaning, no re-escaping.
		req.URL.Opaque = "//" + req.URL.Host + "/v1/" + c.rawPath
	}
	req.Header.Set("X-Vault-Token", v.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, relCasePath(c), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	v.Rec.add(req.Method, relCasePath(c), resp.StatusCode, b)
	return resp.StatusCode, string(b)
}

func relMethod(c relBadCase) string {
	if c.method != "" {
		return c.method
	}
	return http.MethodPut
}

func relCasePath(c relBadCase) string {
	if c.rawPath != "" {
		return c.rawPath
	}
	p := Mount + "/" + c.path
	if len(p) > 80 {
		return p[:80] + fmt.Sprintf("…(%d chars)", len(p))
	}
	return p
}

// relDescribe summarises a case's data for messages (long values shortened, control
// characters quoted).
func relDescribe(c relBadCase) string {
	if c.rawBody != nil {
		return fmt.Sprintf("body %.40q", c.rawBody)
	}
	var parts []string
	for k, val := range c.data {
		s := fmt.Sprintf("%v", val)
		if len(s) > 40 {
			s = fmt.Sprintf("%.40q…(%d bytes)", s, len(s))
		} else {
			s = fmt.Sprintf("%q", s)
		}
		parts = append(parts, k+"="+s)
	}
	sort.Strings(parts)
	// Only the fields that differ from a valid write are interesting; keep it short.
	out := strings.Join(parts, " ")
	if len(out) > 300 {
		out = out[:300] + "…"
	}
	return out
}

// relStateSnapshot is the plugin's storage (every key, listed through sys/raw), plus the
// settings of the connection and the role the cases may update.
type relStateSnapshot struct {
	keys       []string
	conn, role map[string]any
	ring       map[int]relKey
}

func relSnapshot(t *testing.T, v *Vault, uuid string) relStateSnapshot {
	t.Helper()
	var keys []string
	var walk func(prefix string)
	walk = func(prefix string) {
		ks, err := relRawList(v.Client, uuid, prefix)
		if err != nil {
			t.Fatalf("sys/raw list %s: %v", prefix, err)
		}
		for _, k := range ks {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
			} else {
				keys = append(keys, prefix+k)
			}
		}
	}
	walk("")
	sort.Strings(keys)
	s := relStateSnapshot{keys: keys, ring: relMustRing(t, v, "base")}
	s.conn = v.Read(t, Mount+"/connections/base").Data
	s.role = v.Read(t, Mount+"/roles/base-role").Data
	return s
}

func relSnapshotDiff(a, b relStateSnapshot) string {
	var d []string
	if !reflect.DeepEqual(a.keys, b.keys) {
		d = append(d, fmt.Sprintf("storage keys %v -> %v", relSetDiff(a.keys, b.keys), relSetDiff(b.keys, a.keys)))
	}
	for k := range a.conn {
		if !reflect.DeepEqual(a.conn[k], b.conn[k]) {
			d = append(d, fmt.Sprintf("connection base %s %.60v -> %.60v", k, a.conn[k], b.conn[k]))
		}
	}
	for k := range a.role {
		if !reflect.DeepEqual(a.role[k], b.role[k]) {
			d = append(d, fmt.Sprintf("role base-role %s %.60v -> %.60v", k, a.role[k], b.role[k]))
		}
	}
	if !maps.Equal(a.ring, b.ring) {
		d = append(d, fmt.Sprintf("key ring %s -> %s", relRingString(a.ring), relRingString(b.ring)))
	}
	return strings.Join(d, "; ")
}

// relSetDiff lists what a has and b lacks.
func relSetDiff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

// relRestore undoes what an accepted bad input (a known bug) wrote, so that the next cases
// start from the same state: it deletes the connections and roles that appeared.
func relRestore(t *testing.T, v *Vault, before, after relStateSnapshot) {
	t.Helper()
	for _, k := range relSetDiff(after.keys, before.keys) {
		switch {
		case strings.HasPrefix(k, "roles/"):
			v.Delete(t, Mount+"/"+k)
		case strings.HasPrefix(k, "connections/"):
			v.Delete(t, Mount+"/"+k)
		}
	}
}

// relTestKeys makes the key material of the import cases: an RSA key (PKCS#1 PEM) and a
// certificate for it made by the plugin on a scratch connection, the certificate of another
// key, a 1024-bit RSA key and an EC key.
func relTestKeys(t *testing.T, v *Vault) (keyPEM, certPEM, otherCertPEM, smallKeyPEM, ecKeyPEM string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	// The scratch connection imports the key at create to get its certificate, then goes.
	s := v.Write(t, Mount+"/connections/scratch", map[string]any{"consumer_key": "scratch", "private_key": keyPEM})
	certPEM = StringField(t, s, "certificate")
	v.Delete(t, Mount+"/connections/scratch")
	s = v.Write(t, Mount+"/connections/scratch", map[string]any{"consumer_key": "scratch"})
	otherCertPEM = StringField(t, s, "certificate")
	v.Delete(t, Mount+"/connections/scratch")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return
}

func relMarshalPub(t *testing.T, keyPEM string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(keyPEM))
	k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
