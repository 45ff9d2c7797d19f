package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/testclock"
)

// Two RSA keys with self-signed certificates, made once: 2048-bit key
// generation is slow under -race.
var (
	keysOnce     sync.Once
	keyA, keyB   *rsa.PrivateKey
	certA, certB string
)

func testKeys(t *testing.T) {
	t.Helper()
	keysOnce.Do(func() {
		keyA, certA = newKeyCert(t, "vault-a")
		keyB, certB = newKeyCert(t, "vault-b")
	})
}

func newKeyCert(t *testing.T, cn string) (*rsa.PrivateKey, string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// fixture is a started emulator with one production org, a pre-authorised
// integration user, a deployer and an admin-approved app holding certA.
type fixture struct {
	e        *Emulator
	clock    *testclock.Clock
	client   *http.Client
	org      Org
	user     User
	deployer User
	app      App
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	testKeys(t)
	clock := testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	if cfg.Clock == nil {
		cfg.Clock = clock.Now
	}
	e := New(cfg)
	if err := e.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	f := &fixture{e: e, clock: clock, client: trustingClient(t, e)}
	f.org = e.AddOrg(Org{Name: "Prod"})
	f.user = e.AddUser(User{Username: "integration@example.com", DisplayName: "Integration"})
	f.deployer = e.AddUser(User{Username: "deployer@example.com", CanModifyMetadata: true})
	f.app = e.AddApp(App{
		Name: "Vault_JWT", CertificatePEM: certA, AdminApproved: true,
		PreAuthorizedUsers: []string{f.user.Username, f.deployer.Username},
		Scopes:             []string{"Api", "RefreshToken"},
		Extra:              map[string]string{"oauthPolicy.ipRelaxation": "ENFORCE"},
	})
	return f
}

func trustingClient(t *testing.T, e *Emulator) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e.CACertPEM())) {
		t.Fatal("CA PEM not parsable")
	}
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

func (f *fixture) claims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": f.app.ConsumerKey,
		"sub": f.user.Username,
		"aud": "https://login.salesforce.com",
		"exp": f.clock.Now().Add(3 * time.Minute).Unix(),
	}
}

func sign(t *testing.T, key *rsa.PrivateKey, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwtForm(assertion string) url.Values {
	return url.Values{"grant_type": {grantTypeJWTBearer}, "assertion": {assertion}}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (f *fixture) do(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, b}
}

func (f *fixture) request(t *testing.T, method, path, contentType, body, token string) result {
	t.Helper()
	req, err := http.NewRequest(method, f.e.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return f.do(t, req)
}

func (f *fixture) postToken(t *testing.T, form url.Values) result {
	t.Helper()
	return f.request(t, "POST", "/services/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), "")
}

// login gets a token for sub with keyA, failing the test otherwise.
func (f *fixture) login(t *testing.T, sub string) string {
	t.Helper()
	c := f.claims()
	c["sub"] = sub
	r := f.postToken(t, jwtForm(sign(t, keyA, c)))
	if r.status != 200 {
		t.Fatalf("login %s: %d %s", sub, r.status, r.body)
	}
	return r.json(t)["access_token"].(string)
}

// loginDeployer logs in the deployer, or with noPerm the integration user, who lacks Modify
// Metadata, and returns the access token.
func (f *fixture) loginDeployer(t *testing.T, noPerm bool) string {
	t.Helper()
	if noPerm {
		return f.login(t, f.user.Username)
	}
	return f.login(t, f.deployer.Username)
}

func wantOAuthError(t *testing.T, r result, code, desc string) {
	t.Helper()
	if r.status != 400 {
		t.Fatalf("status %d, want 400; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type %q", ct)
	}
	m := r.json(t)
	if m["error"] != code || m["error_description"] != desc {
		t.Errorf("got %v / %v, want %s / %s", m["error"], m["error_description"], code, desc)
	}
}

func newReq(method, u, body string) (*http.Request, error) {
	return http.NewRequest(method, u, strings.NewReader(body))
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// syncBuffer collects Logf output; server goroutines may log after a test
// ends, so t.Logf cannot be used.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(&s.b, format+"\n", args...)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
