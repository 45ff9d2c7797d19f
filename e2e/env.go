package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Mount is where the tests enable the plugin, as in api.md's examples.
const Mount = "salesforce"

// Env is a dev Vault server and an emulator, one per top-level test so that counters and leases
// of one test never leak into another.
type Env struct {
	Cfg       Config
	Vault     *Vault
	Emu       *Emulator
	PluginSHA string
}

// NewBareEnv starts the emulator (with emulatorFlags, e.g. "-propagation-delay", "20s") and a
// dev Vault whose plugin directory holds the plugin, but registers nothing: for the tests that
// are about registering.
func NewBareEnv(t testing.TB, emulatorFlags ...string) *Env {
	t.Helper()
	cfg := LoadConfig(t)
	e := &Env{Cfg: cfg}
	e.Emu = StartEmulator(t, cfg, emulatorFlags...)
	e.Vault, e.PluginSHA = StartDevVault(t, cfg)
	// Every test, whatever it checks, also checks that no response carried a private key.
	t.Cleanup(func() { e.Vault.Rec.AssertNoPrivateKey(t) })
	return e
}

// NewEnv is NewBareEnv plus the plugin registered with its version and enabled at salesforce/.
func NewEnv(t testing.TB, emulatorFlags ...string) *Env {
	t.Helper()
	e := NewBareEnv(t, emulatorFlags...)
	e.Vault.RegisterPlugin(t, e.PluginSHA, e.Cfg.PluginVersion)
	e.Vault.EnablePlugin(t, Mount)
	return e
}

// StartDevVault starts `vault server -dev` on a free loopback port with root token "root".
//
// The plugin directory comes from a -config file rather than -dev-plugin-dir: dev mode
// registers every file of -dev-plugin-dir by itself, without a version, and an unversioned entry
// wins over versioned ones when a mount names no version. The tests register the plugin the way
// an operator does in production, with -sha256 and -version.
func StartDevVault(t testing.TB, cfg Config) (*Vault, string) {
	t.Helper()
	return StartDevVaultWith(t, cfg, DevVaultOptions{})
}

// DevVaultOptions add to a dev server's start: lines for its config file (e.g.
// "raw_storage_endpoint = true\n") and command-line arguments, which come last and so win
// (e.g. "-log-level=trace" over the default debug).
type DevVaultOptions struct {
	ExtraConfig string
	ExtraArgs   []string
}

// StartDevVaultWith is StartDevVault with extra configuration.
func StartDevVaultWith(t testing.TB, cfg Config, opts DevVaultOptions) (*Vault, string) {
	t.Helper()
	home := t.TempDir()
	pluginDir, sha := PluginDirCopy(t, cfg)
	conf := filepath.Join(home, "plugins.hcl")
	writeFile(t, conf, fmt.Sprintf("plugin_directory = %q\n", pluginDir)+opts.ExtraConfig)
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	args := []string{"server", "-dev", "-dev-root-token-id=root", "-dev-listen-address=" + addr,
		"-config=" + conf, "-log-level=debug"}
	v := newVault(t, cfg, "vault-dev", "http://"+addr, home, append(args, opts.ExtraArgs...)...)
	v.setToken("root")
	v.start(t)
	WaitFor(t, 30*time.Second, "the dev server to be active", func() error {
		code, err := v.HealthStatus()
		if err == nil && code != 200 {
			err = fmt.Errorf("sys/health: HTTP %d", code)
		}
		return err
	})
	t.Logf("vault dev server at %s (pid %d, log %s)", v.Addr, v.PID(), v.LogPath)
	return v, sha
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ConnectionData is what every test's connection is written with: the emulator as the login
// host, trusted through its CA.
func (e *Env) ConnectionData(extra map[string]any) map[string]any {
	d := map[string]any{
		"consumer_key":              e.Emu.ConsumerKey,
		"login_url":                 e.Emu.URL,
		"allow_non_salesforce_host": true,
		"ca_cert":                   e.Emu.CAPEM,
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// CreateConnection writes connections/NAME and returns the response (it carries the new
// key's certificate).
func (e *Env) CreateConnection(t testing.TB, v *Vault, name string, extra map[string]any) *api.Secret {
	t.Helper()
	return v.Write(t, Mount+"/connections/"+name, e.ConnectionData(extra))
}

// TrustConnection exports the connection's certificate from Vault and registers it on the
// emulator's connected app: the operator's upload step.
func (e *Env) TrustConnection(t testing.TB, v *Vault, name string) string {
	t.Helper()
	cert := StringField(t, v.Read(t, Mount+"/connections/"+name+"/certificate"), "certificate")
	e.Emu.RegisterCertificate(t, e.Emu.ConsumerKey, cert)
	return cert
}

// CreateRole writes roles/NAME for the emulator's seeded user.
func (e *Env) CreateRole(t testing.TB, v *Vault, name, connection string, extra map[string]any) {
	t.Helper()
	d := map[string]any{"connection": connection, "username": e.Emu.Username}
	for k, val := range extra {
		d[k] = val
	}
	v.Write(t, Mount+"/roles/"+name, d)
}

// ReadCreds reads creds/ROLE and checks the fields every application relies on.
func ReadCreds(t testing.TB, c *api.Client, role string) *api.Secret {
	t.Helper()
	s, err := c.Logical().Read(Mount + "/creds/" + role)
	if err != nil {
		t.Fatalf("read %s/creds/%s: %v", Mount, role, err)
	}
	if s == nil || s.Data == nil {
		t.Fatalf("read %s/creds/%s: empty response", Mount, role)
	}
	for _, f := range []string{"access_token", "instance_url"} {
		if _, ok := s.Data[f].(string); !ok || s.Data[f] == "" {
			t.Fatalf("creds/%s: no %s in %v", role, f, keys(s.Data))
		}
	}
	return s
}

// Ready gives a connection named conn, trusted by the emulator, and a role named role on it.
func (e *Env) Ready(t testing.TB, v *Vault, conn, role string, roleExtra map[string]any) {
	t.Helper()
	e.CreateConnection(t, v, conn, nil)
	e.TrustConnection(t, v, conn)
	e.CreateRole(t, v, role, conn, roleExtra)
}

// StringField returns a non-empty string field of a response, failing the test otherwise.
func StringField(t testing.TB, s *api.Secret, field string) string {
	t.Helper()
	if s == nil || s.Data == nil {
		t.Fatalf("no response data (wanted %q)", field)
	}
	v, ok := s.Data[field].(string)
	if !ok || v == "" {
		t.Fatalf("field %q missing or empty; fields: %v", field, keys(s.Data))
	}
	return v
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// ParseCertificate decodes a PEM certificate, failing the test if it is not exactly one.
func ParseCertificate(t testing.TB, certPEM string) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %.80q", certPEM)
	}
	if strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("trailing data after the certificate: %.80q", rest)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// Fingerprint is the SHA-256 of a certificate's DER, lower-case hex without separators.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// NormalizeFingerprint accepts "AB:CD:…" or "abcd…" (and a "sha256:" prefix) so that the
// tests do not depend on which hex style the plugin picked.
func NormalizeFingerprint(fp string) string {
	fp = strings.TrimPrefix(strings.ToLower(fp), "sha256:")
	return strings.ReplaceAll(fp, ":", "")
}

// Int reads an integer field (Vault's JSON numbers arrive as json.Number; a version may also come
// as a string).
func Int(t testing.TB, s *api.Secret, field string) int64 {
	t.Helper()
	if s == nil || s.Data == nil {
		t.Fatalf("no response data (wanted %q)", field)
	}
	switch v := s.Data[field].(type) {
	case json.Number:
		n, err := v.Int64()
		if err == nil {
			return n
		}
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	t.Fatalf("field %q is not an integer: %#v", field, s.Data[field])
	return 0
}

// Seconds reads a duration field: seconds as a number (Vault's convention for ttl fields) or a
// duration string such as "15m".
func Seconds(t testing.TB, s *api.Secret, field string) int64 {
	t.Helper()
	if str, ok := s.Data[field].(string); ok {
		if d, err := time.ParseDuration(str); err == nil {
			return int64(d / time.Second)
		}
	}
	return Int(t, s, field)
}

// anyStrings converts a JSON list to strings.
func anyStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
