package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/vault/api"
)

// TestRepointAttackReachesNoCredential: a connection admin re-points a working connection at a
// host they control, then everything that can happen on a connection happens: applications
// read creds, a Vault admin revokes a lease, the role operator resets the shared token, and the
// admin makes the deploy user the verify user, promotes and rotates. Finally the attacker
// proves the new key in their own org (registers its certificate there), and the admin promotes
// and rotates again.
//
// Two emulators: the real org, and the attacker's org (same demo seed: same consumer key and
// users), the latter behind an in-test HTTPS front that records every request it gets and
// replays each JWT assertion at the real org's token endpoint the moment it arrives, as an
// attacker would. The re-point is a re-key: the old key keeps signing only for the real org.
//
//   - The attacker never receives a live real-org token: none of the tokens Vault handed out
//     from the real org appears in any request it got (body, query or header), and no token it
//     got (revoke form values, bearer headers) is active at the real org.
//   - Every assertion it receives is refused by the real org, at once and again at the end, and
//     none verifies with the key the real org trusts (key version 1).
//   - Until the attacker proves the new key, reads keep minting at the real org with key 1.
//   - The lease minted before the re-point, and the one minted after it, are revoked at the real
//     org (where they were issued), even after reads moved to the attacker's host; the shared
//     token reset revokes it there too.
//   - The Metadata API of the real org is never called after the re-point, and the real app
//     keeps exactly key 1's certificate: no new key's certificate reaches the real org.
//
// Residual behaviour the test documents: once the attacker's host accepts the new key, reads
// move there (by design: a re-point is a re-key), and applications then get the attacker org's
// tokens, worthless at the real org.
func TestRepointAttackReachesNoCredential(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	v := e.Vault
	realOrg := e.Emu
	evil := StartEmulator(t, e.Cfg)
	front := startRepointFront(t, evil, realOrg)
	t.Logf("real org at %s; the attacker's host at %s (its org behind it at %s)", realOrg.URL, front.URL, evil.URL)
	requireReplayWorks(t, realOrg)

	// Identities: the bootstrap policies for the connection admin and the role operator, and an
	// application that reads the two roles.
	for _, name := range []string{"connection-admin", "operator"} {
		b, err := os.ReadFile(filepath.Join(RepoRoot(t), "bootstrap", "policies", name+".hcl"))
		if err != nil {
			t.Fatal(err)
		}
		v.Write(t, "sys/policies/acl/salesforce-"+name, map[string]any{"policy": string(b)})
	}
	v.Write(t, "sys/policies/acl/repoint-app", map[string]any{"policy": fmt.Sprintf(
		`path "%[1]s/creds/leased" { capabilities = ["read"] }
path "%[1]s/creds/shared" { capabilities = ["read"] }`, Mount)})
	client := func(policy string) *api.Client {
		tok, err := v.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}, NoDefaultPolicy: true, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return v.NewClient(t, tok.Auth.ClientToken)
	}
	admin, operator, app := client("salesforce-connection-admin"), client("salesforce-operator"), client("repoint-app")

	// prod: metadata_api (so that a deploy to the real org would show), trusted by the real org.
	e.CreateConnection(t, v, "prod", e.MetadataAPIFields(nil))
	cert1 := trustConnectionAtOnce(t, e, v, "prod")
	e.CreateRole(t, v, "leased", "prod", map[string]any{"token_mode": "per_lease", "ttl": "10m"})
	e.CreateRole(t, v, "shared", "prod", nil)

	// realTokens are every token Vault handed out from the real org.
	var realTokens []string
	readAtRealOrg := func(role string) *api.Secret {
		t.Helper()
		s := ReadCreds(t, app, role)
		tok := s.Data["access_token"].(string)
		realOrg.RequireTokenAccepted(t, tok)
		if got := Int(t, s, "key_version"); got != 1 {
			t.Errorf("creds/%s: key_version %d, want 1 (the key the real org trusts)", role, got)
		}
		if got := fmt.Sprint(s.Data["instance_url"]); strings.Contains(got, front.URL) || strings.Contains(got, evil.URL) {
			t.Errorf("creds/%s: instance_url %s is the attacker's", role, got)
		}
		realTokens = append(realTokens, tok)
		return s
	}
	leaseBefore := readAtRealOrg("leased")
	leaseKept := readAtRealOrg("leased")
	shared := readAtRealOrg("shared").Data["access_token"].(string)

	// The re-point, by the connection admin: accepted, as a re-key.
	deploysBefore := realOrg.Counter(t, "deploy_requests")
	r, err := admin.Logical().Write(Mount+"/connections/prod", map[string]any{
		"login_url": front.URL, "ca_cert": front.caPEM,
		// The audience the real org accepts: what an attacker wants the assertions to carry.
		"audience": "https://login.salesforce.com",
	})
	if err != nil {
		t.Fatalf("the connection admin's re-point: %v", err)
	}
	if !strings.Contains(strings.Join(r.Warnings, " "), "previous origin") {
		t.Errorf("the re-point's warnings do not mention the previous origin: %q", r.Warnings)
	}
	st, err := readRotation(admin, "prod")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the re-point: rotation %s", st)
	if st.State != "verifying" || st.Trigger != "origin_change" || st.PendingVersion != 2 {
		t.Errorf("after the re-point: rotation %s, want verifying, trigger origin_change, pending version 2", st)
	}
	c, err := admin.Logical().Read(Mount + "/connections/prod")
	if err != nil {
		t.Fatal(err)
	}
	if got := StringField(t, c, "login_url"); strings.TrimSuffix(got, "/") != front.URL {
		t.Errorf("login_url %s after the re-point, want %s", got, front.URL)
	}
	if a, p := Int(t, c, "active_key_version"), Int(t, c, "pending_key_version"); a != 1 || p != 2 {
		t.Errorf("after the re-point: active key %d, pending %d; want 1 (still signing for the real org) and 2 (for the new host)", a, p)
	}

	// Phase 1: the attacker's org does not trust the new key. Everything that can happen does.
	for i := 0; i < 2; i++ {
		readAtRealOrg("leased")
		readAtRealOrg("shared")
	}
	leaseAfter := readAtRealOrg("leased")

	if _, err := admin.Logical().Read(Mount + "/creds/leased"); StatusCode(err) != http.StatusForbidden {
		t.Errorf("the connection admin read creds: %v, want HTTP 403", err)
	}
	if err := v.Client.Sys().Revoke(leaseBefore.LeaseID); err != nil {
		t.Fatalf("sys/leases/revoke of the lease minted before the re-point: %v", err)
	}
	realOrg.RequireTokenRevoked(t, leaseBefore.Data["access_token"].(string))
	if _, err := operator.Logical().Write(Mount+"/roles/shared/reset", nil); err != nil {
		t.Fatalf("the operator's roles/shared/reset: %v", err)
	}
	realOrg.RequireTokenRevoked(t, shared)
	readAtRealOrg("shared")

	if _, err := admin.Logical().Write(Mount+"/connections/prod", map[string]any{"verify_username": realOrg.DeployUsername}); err != nil {
		t.Fatalf("verify_username=the deploy user: %v", err)
	}
	if _, err := admin.Logical().Write(Mount+"/connections/prod/promote", nil); err == nil {
		t.Error("promote succeeded although no org trusts the new key")
	} else {
		t.Logf("promote (the attacker's org does not trust the new key): %v", oneLine(err))
	}
	if _, err := admin.Logical().Write(Mount+"/connections/prod/rotate", nil); err != nil {
		t.Logf("rotate during the re-key: %v", oneLine(err))
	}
	time.Sleep(3 * time.Second) // the drive rotate starts probes the new key at once
	readAtRealOrg("leased")
	readAtRealOrg("shared")
	if n := front.assertionCount(); n == 0 {
		t.Error("the attacker's host received no assertion: the re-key's proof never went there, so the test proves nothing")
	}

	// Phase 2: the attacker registers the new key's certificate in their own org, and the
	// connection admin promotes it, then rotates.
	certs, err := admin.Logical().Read(Mount + "/connections/prod/certificate")
	if err != nil {
		t.Fatal(err)
	}
	evil.RegisterCertificate(t, evil.ConsumerKey, StringField(t, certs, "pending_certificate"))
	if _, err := admin.Logical().Write(Mount+"/connections/prod/promote", nil); err != nil {
		t.Fatalf("promote once the attacker's org trusts the new key: %v", err)
	}
	moved := ReadCreds(t, app, "leased")
	movedTok := moved.Data["access_token"].(string)
	if realOrg.TokenActive(t, movedTok) {
		t.Errorf("after the attacker proved the new key, a read returned a token the real org honours")
	}
	if !evil.TokenActive(t, movedTok) {
		t.Errorf("after the attacker proved the new key, a read returned a token the attacker's org does not know either")
	}
	t.Logf("after the attacker proved the new key: reads mint at %v (key_version %v), tokens of the attacker's org", moved.Data["instance_url"], moved.Data["key_version"])

	// Leases minted at the real org are revoked there, wherever the connection points now.
	for _, l := range []*api.Secret{leaseKept, leaseAfter} {
		if err := v.Client.Sys().Revoke(l.LeaseID); err != nil {
			t.Fatalf("sys/leases/revoke of a lease minted at the real org: %v", err)
		}
		realOrg.RequireTokenRevoked(t, l.Data["access_token"].(string))
	}
	if _, err := admin.Logical().Write(Mount+"/connections/prod/rotate", nil); err != nil {
		t.Logf("rotate after the move: %v", oneLine(err))
	}
	WaitFor(t, 30*time.Second, "the rotation after the move to leave deploying", func() error {
		st, err := readRotation(admin, "prod")
		if err != nil {
			return err
		}
		if st.State == "deploying" {
			return fmt.Errorf("rotation %s", st)
		}
		return nil
	})
	st, _ = readRotation(admin, "prod")
	t.Logf("rotation at the end: %s", st)

	// What reached the real org's Metadata API and app.
	if n := realOrg.Counter(t, "deploy_requests") - deploysBefore; n != 0 {
		t.Errorf("the real org's Metadata API got %d deploy requests after the re-point", n)
	}
	if got := readEmulatorApp(t, realOrg).CertificatePEM; !sameCertificate(got, cert1) {
		t.Errorf("the real app's certificate is no longer key version 1's: a new key's certificate reached the real org")
	}

	// What the attacker got.
	key1 := ParseCertificate(t, cert1).PublicKey.(*rsa.PublicKey)
	reqs := front.requests()
	assertions, tokens := 0, 0
	for i, rq := range reqs {
		desc := fmt.Sprintf("request %d to the attacker (%s %s)", i, rq.Method, rq.Path)
		for _, tok := range realTokens {
			if strings.Contains(rq.Raw, tok) {
				t.Errorf("%s carried a token Vault handed out from the real org", desc)
			}
		}
		var seen []string
		seen = append(seen, rq.Form["token"]...)
		if b, ok := strings.CutPrefix(rq.Authorization, "Bearer "); ok {
			seen = append(seen, b)
		}
		for _, tok := range seen {
			tokens++
			if realOrg.TokenActive(t, tok) {
				t.Errorf("%s carried a token that is live at the real org", desc)
			}
		}
		for _, a := range rq.Form["assertion"] {
			assertions++
			claims := jwt.MapClaims{}
			_, _, _ = jwt.NewParser().ParseUnverified(a, claims)
			t.Logf("%s: assertion sub=%v aud=%v; replayed at the real org on arrival: HTTP %d %s", desc, claims["sub"], claims["aud"], rq.Replay.Status, rq.Replay.Body)
			if _, err := jwt.NewParser(jwt.WithoutClaimsValidation()).Parse(a, func(*jwt.Token) (any, error) { return key1, nil }); err == nil {
				t.Errorf("%s: the assertion is signed with key version 1, which the real org trusts", desc)
			}
			requireReplayRefused(t, desc+", replayed on arrival", rq.Replay)
			requireReplayRefused(t, desc+", replayed at the end", replayAtOrg(realOrg, a))
		}
	}
	t.Logf("the attacker's host got %d requests: %d assertions, %d tokens; none usable at the real org", len(reqs), assertions, tokens)
	if assertions < 2 {
		t.Errorf("the attacker's host got %d assertions, want at least the two promotes' proofs", assertions)
	}
}

// requireReplayWorks is the replay's positive control: an assertion signed with a key the real
// org trusts (on an app of its own) gets a token through replayAtOrg, so a refusal later is the
// org's verdict on the key, not a broken replay.
func requireReplayWorks(t *testing.T, org *Emulator) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "replay control"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	const consumerKey = "RepointReplayControlKey"
	org.AddApp(t, "Repoint_Replay_Control", consumerKey, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), org.Username)
	a, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": consumerKey, "sub": org.Username, "aud": "https://login.salesforce.com", "exp": time.Now().Add(3 * time.Minute).Unix(),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if r := replayAtOrg(org, a); r.Status != http.StatusOK {
		t.Fatalf("replay control: an assertion signed with a trusted key was refused: HTTP %d %s %s", r.Status, r.Body, r.Err)
	}
}

// requireReplayRefused fails unless the real org refused the replayed assertion as one whose
// signature it does not trust (not for a reason a fresher replay would get past).
func requireReplayRefused(t *testing.T, what string, r replayResult) {
	t.Helper()
	switch {
	case r.Err != "":
		t.Errorf("%s: could not reach the real org (the check proves nothing): %s", what, r.Err)
	case r.Status == http.StatusOK:
		t.Errorf("%s: the real org issued a token for it: %s", what, r.Body)
	case r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "invalid assertion"):
		t.Errorf("%s: HTTP %d %s, want 400 invalid_grant \"invalid assertion\" (a key the real org does not trust)", what, r.Status, r.Body)
	}
}

// repointFront is the attacker's host: HTTPS with its own certificate, forwarding to the
// attacker's org (an emulator) with the org's URL rewritten to its own in answers, and
// recording every request.
type repointFront struct {
	*httptest.Server
	caPEM string
	mu    sync.Mutex
	reqs  []frontRequest
}

type frontRequest struct {
	Method, Path  string
	Form          url.Values // body form and query
	Authorization string
	Raw           string // the whole request: query, headers and body
	Replay        replayResult
}

type replayResult struct {
	Status int
	Body   string
	Err    string
}

func startRepointFront(t *testing.T, evil, realOrg *Emulator) *repointFront {
	t.Helper()
	target, err := url.Parse(evil.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := &repointFront{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("Accept-Encoding") // answers are rewritten: keep them plain
		},
		Transport: evil.http.Transport,
		ModifyResponse: func(resp *http.Response) error {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			b = bytes.ReplaceAll(b, []byte(evil.URL), []byte(f.URL))
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			return nil
		},
	}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		var raw strings.Builder
		fmt.Fprintf(&raw, "%s %s\n", r.Method, r.URL.RequestURI())
		_ = r.Header.Write(&raw)
		raw.Write(body)
		rec := frontRequest{Method: r.Method, Path: r.URL.Path, Form: r.URL.Query(), Authorization: r.Header.Get("Authorization"), Raw: raw.String()}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			if form, err := url.ParseQuery(string(body)); err == nil {
				for k, vs := range form {
					rec.Form[k] = append(rec.Form[k], vs...)
				}
			}
		}
		// The attacker's first move: try every assertion at the real org while it is fresh.
		for _, a := range rec.Form["assertion"] {
			rec.Replay = replayAtOrg(realOrg, a)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, rec)
		f.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	f.StartTLS()
	t.Cleanup(f.Close)
	f.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw}))
	return f
}

func (f *repointFront) requests() []frontRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]frontRequest(nil), f.reqs...)
}

func (f *repointFront) assertionCount() int {
	n := 0
	for _, r := range f.requests() {
		n += len(r.Form["assertion"])
	}
	return n
}

// replayAtOrg posts a JWT bearer grant with the assertion to an org's token endpoint, over TLS
// with the org's CA, as an application (or an attacker) would.
func replayAtOrg(org *Emulator, assertion string) replayResult {
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	resp, err := org.http.PostForm(org.URL+"/services/oauth2/token", form)
	if err != nil {
		return replayResult{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &out) == nil && out.AccessToken != "" {
		// Never print a live token: say that there was one.
		return replayResult{Status: resp.StatusCode, Body: "(a token response)"}
	}
	return replayResult{Status: resp.StatusCode, Body: string(b)}
}
