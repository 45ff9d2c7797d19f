package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// Emulator is a running Salesforce emulator (HTTPS with its own CA), seeded with one org, one
// connected app (no certificate yet) and one user pre-authorised on it.
type Emulator struct {
	emulator.ProcessState
	CAPEM string // the emulator's CA, for the connection's ca_cert
	proc  *Process
	http  *http.Client
}

// StartEmulator starts the emulator with -seed-demo (plus extra flags) and waits for its state
// file.
func StartEmulator(t testing.TB, cfg Config, extra ...string) *Emulator {
	t.Helper()
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	args := append([]string{
		"-addr", "127.0.0.1:0",
		"-ca-out", filepath.Join(dir, "ca.pem"),
		"-state-out", statePath,
		"-seed-demo",
	}, extra...)
	p := StartProcess(t, "emulator", filepath.Join(dir, "emulator.log"), nil, cfg.EmulatorBin, args...)

	var st emulator.ProcessState
	WaitFor(t, 30*time.Second, "the emulator's state file", func() error {
		if exited, err := p.Exited(); exited {
			t.Fatalf("the emulator exited during start-up: %v", err)
		}
		b, err := os.ReadFile(statePath)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &st); err != nil { // may be half-written
			return fmt.Errorf("state file: %w", err)
		}
		if st.URL == "" || st.CAFile == "" || st.ConsumerKey == "" || st.Username == "" {
			return fmt.Errorf("state file incomplete: %s", b)
		}
		return nil
	})
	caPEM, err := os.ReadFile(st.CAFile)
	if err != nil {
		t.Fatalf("emulator CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("emulator CA %s holds no PEM certificate", st.CAFile)
	}
	e := &Emulator{
		ProcessState: st,
		CAPEM:        string(caPEM),
		proc:         p,
		http: &http.Client{
			Timeout:   15 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		},
	}
	t.Logf("emulator at %s (consumer key %s, user %s)", st.URL, st.ConsumerKey, st.Username)
	return e
}

// do sends a request to the emulator and returns the status and body.
func (e *Emulator) do(t testing.TB, method, path string, body any, header http.Header) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("emulator %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// admin calls the emulator's admin API and fails the test unless it answers 2xx.
func (e *Emulator) admin(t testing.TB, method, path string, body any) []byte {
	t.Helper()
	status, b := e.do(t, method, path, body, nil)
	if status/100 != 2 {
		t.Fatalf("emulator %s %s: HTTP %d: %s", method, path, status, b)
	}
	return b
}

// AddApp creates (or replaces) an app of the emulator's demo org, with users (default: both
// demo users) pre-authorised and certPEM registered at once (no propagation delay applies to a
// created app).
func (emu *Emulator) AddApp(t testing.TB, name, consumerKey, certPEM string, users ...string) {
	t.Helper()
	if len(users) == 0 {
		users = []string{emu.Username, emu.DeployUsername}
	}
	emu.admin(t, http.MethodPost, "/__emulator/apps", map[string]any{
		"name": name, "org_id": emu.OrgID, "consumer_key": consumerKey, "certificate_pem": certPEM,
		"admin_approved": true, "pre_authorized_users": users,
		"label": name, "contact_email": "ops@example.com", "callback_url": "https://localhost/callback",
		"scopes": []string{"Api", "RefreshToken"},
	})
}

// RegisterCertificate puts a certificate on the connected app, as an admin uploading it in Setup.
func (e *Emulator) RegisterCertificate(t testing.TB, consumerKey, certPEM string) {
	t.Helper()
	e.admin(t, http.MethodPut, "/__emulator/apps/"+url.PathEscape(consumerKey)+"/certificate",
		map[string]string{"certificate": certPEM})
}

// Counters is a snapshot of the emulator's counters.
type Counters map[string]json.RawMessage

// Counters reads the emulator's counters.
func (e *Emulator) Counters(t testing.TB) Counters {
	t.Helper()
	var c Counters
	if err := json.Unmarshal(e.admin(t, http.MethodGet, "/__emulator/counters", nil), &c); err != nil {
		t.Fatalf("counters: %v", err)
	}
	return c
}

// Counter reads one numeric counter (token_requests, tokens_issued, revocations, …). A missing
// name fails the test: a silent zero would make "exactly one login" pass for the wrong reason.
func (e *Emulator) Counter(t testing.TB, name string) int64 {
	t.Helper()
	c := e.Counters(t)
	raw, ok := c[name]
	if !ok {
		t.Fatalf("emulator counters have no %q: %v", name, c)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatalf("emulator counter %q is not a number: %s", name, raw)
	}
	return n
}

// ResetCounters zeroes the counters.
func (e *Emulator) ResetCounters(t testing.TB) {
	t.Helper()
	e.admin(t, http.MethodPost, "/__emulator/counters/reset", nil)
}

// TokenActive reports whether the emulator still honours an access token.
func (e *Emulator) TokenActive(t testing.TB, token string) bool {
	t.Helper()
	var out struct {
		Active *bool `json:"active"`
	}
	b := e.admin(t, http.MethodGet, "/__emulator/tokens/"+url.PathEscape(token), nil)
	if err := json.Unmarshal(b, &out); err != nil || out.Active == nil {
		t.Fatalf("emulator token state: %v: %s", err, b)
	}
	return *out.Active
}

// SetFault injects a fault (the body is the emulator's fault spec, passed through).
func (e *Emulator) SetFault(t testing.TB, fault any) {
	t.Helper()
	e.admin(t, http.MethodPost, "/__emulator/faults", fault)
}

// ClearFaults removes every injected fault.
func (e *Emulator) ClearFaults(t testing.TB) {
	t.Helper()
	e.admin(t, http.MethodDelete, "/__emulator/faults", nil)
}

// UserInfo calls Salesforce's userinfo endpoint with an access token, as an application would:
// 200 with the user's JSON when the token is good, 403 Bad_OAuth_Token otherwise.
func (e *Emulator) UserInfo(t testing.TB, token string) (int, []byte) {
	t.Helper()
	return e.do(t, http.MethodGet, "/services/oauth2/userinfo", nil,
		http.Header{"Authorization": {"Bearer " + token}})
}

// RequireTokenAccepted fails the test unless userinfo accepts the token.
func (e *Emulator) RequireTokenAccepted(t testing.TB, token string) {
	t.Helper()
	if status, body := e.UserInfo(t, token); status != http.StatusOK {
		t.Fatalf("userinfo refused the token Vault handed out: HTTP %d: %s", status, body)
	}
}

// RequireTokenRevoked waits (bounded) until the emulator no longer honours the token.
func (e *Emulator) RequireTokenRevoked(t testing.TB, token string) {
	t.Helper()
	WaitFor(t, 15*time.Second, "the token to be revoked at the emulator", func() error {
		if e.TokenActive(t, token) {
			return fmt.Errorf("token still active")
		}
		return nil
	})
	if status, body := e.UserInfo(t, token); status == http.StatusOK {
		t.Fatalf("userinfo still accepts a revoked token: %s", body)
	}
}

// SetPermissions replaces a user's permissions (emulator.Perm…), as an admin assigning
// permission sets in Setup.
func (e *Emulator) SetPermissions(t testing.TB, username string, perms ...string) {
	t.Helper()
	e.admin(t, http.MethodPut, "/__emulator/users/"+url.PathEscape(username)+"/permissions", map[string]any{"permissions": perms})
}

// SetOrgSettings changes settings of the demo org (e.g. allow_eca_consumer_secret_rest).
func (e *Emulator) SetOrgSettings(t testing.TB, settings map[string]any) {
	t.Helper()
	e.admin(t, http.MethodPut, "/__emulator/orgs/"+url.PathEscape(e.OrgID)+"/settings", settings)
}

// AddBYOKCertificate creates a BYOK certificate in the demo org; the emulator (Salesforce's
// side) holds its private key, to unwrap the tenant secrets uploaded for it.
func (e *Emulator) AddBYOKCertificate(t testing.TB, name string) {
	t.Helper()
	e.admin(t, http.MethodPost, "/__emulator/byok-certificates", map[string]any{"org_id": e.OrgID, "name": name})
}
