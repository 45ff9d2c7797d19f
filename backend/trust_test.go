package backend

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// The trust boundary, one test per "cannot" of docs/SECURITY.md. Each failed on the code
// before the fix (noted per test).

// attackerHost is a Salesforce-looking host an operator with connections/ write points a
// connection at: it records every assertion and token it is sent, and refuses them all.
type attackerHost struct {
	srv        *httptest.Server
	mu         sync.Mutex
	assertions []string
	secrets    []string // client_secret values of client-credentials requests
	revoked    []string
}

func newAttackerHost(t *testing.T) *attackerHost {
	a := &attackerHost{}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		a.mu.Lock()
		defer a.mu.Unlock()
		switch r.URL.Path {
		case "/services/oauth2/token":
			a.assertions = append(a.assertions, r.PostForm.Get("assertion"))
			a.secrets = append(a.secrets, r.PostForm.Get("client_secret"))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"invalid assertion"}`))
		case "/services/oauth2/revoke":
			a.revoked = append(a.revoked, r.PostForm.Get("token"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *attackerHost) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw}))
}

func (a *attackerHost) seen() (assertions, revoked []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.assertions...), append([]string(nil), a.revoked...)
}

// replayAtRealOrg sends each captured assertion to the real org: none may be accepted.
func (e *testEnv) replayAtRealOrg(assertions []string) int {
	e.t.Helper()
	client, err := salesforce.New(salesforce.Options{LoginURL: e.emu.URL(), CACertPEM: e.emu.CACertPEM(), AllowNonSalesforceHost: true, Retry: e.b.retry})
	if err != nil {
		e.t.Fatal(err)
	}
	defer client.Close()
	accepted := 0
	for _, a := range assertions {
		if _, err := client.RequestToken(context.Background(), a); err == nil {
			accepted++
		}
	}
	return accepted
}

func (e *testEnv) revokeLease(lease *logical.Response) error {
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RevokeOperation, Storage: e.storage, Secret: lease.Secret, Data: lease.Data})
	return err
}

// Defect 1: one write re-pointed a connection and its keys at another host. Before the fix the
// attacker host received assertions signed by the key the real org trusts (replayable there),
// a live lease's token on revoke, and the shared token on reset.
func TestRepointedConnectionNeverSendsACredentialToTheNewHost(t *testing.T) {
	e := newTestEnv(t)
	atk := newAttackerHost(t)
	e.createConnection("prod", map[string]any{"deploy": "metadata_api", "app_type": "connected_app", "app_name": e.seed.App.Name, "deploy_username": e.seed.Deployer.Username})
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease"})
	e.createRole("shared", "prod", nil)
	lease := mustOK(t, e.read("creds/leased"))
	shared := mustOK(t, e.read("creds/shared"))

	resp := mustOK(t, e.write("connections/prod", map[string]any{"login_url": atk.srv.URL, "ca_cert": atk.caPEM(), "allow_non_salesforce_host": true}))
	if len(resp.Warnings) == 0 || !strings.Contains(strings.Join(resp.Warnings, " "), "previous origin") {
		t.Fatalf("a re-point must say the keys stay with the previous origin: %v", resp.Warnings)
	}
	if r := e.rotation("prod"); r["trigger"] != triggerOriginChange || r["state"] != stateVerifying {
		t.Fatalf("a re-point must start a re-key that proves a new key at the new origin: %v", r)
	}

	// Everything a connection admin can make the plugin do after the re-point.
	for i := 0; i < 3; i++ {
		mustOK(t, e.read("creds/leased"))
	}
	if err := e.revokeLease(lease); err != nil {
		t.Fatalf("revoking the lease minted before the re-point: %v", err)
	}
	mustOK(t, e.write("roles/shared/reset", nil))
	_ = e.write("connections/prod/promote", nil)
	mustOK(t, e.write("connections/prod", map[string]any{"verify_username": e.seed.Deployer.Username}))
	_ = e.write("connections/prod/promote", nil)
	_ = e.write("connections/prod/rotate", nil)
	e.b.wg.Wait()
	e.clock.Advance(time.Hour)
	e.tick()
	e.b.wg.Wait()

	assertions, revoked := atk.seen()
	if n := e.replayAtRealOrg(assertions); n != 0 {
		t.Fatalf("the new host received %d assertion(s) that the real org accepts", n)
	}
	for _, tok := range revoked {
		if tok == lease.Data["access_token"] || tok == shared.Data["access_token"] {
			t.Fatal("the new host was sent a live token to revoke")
		}
	}
	if e.emu.TokenActive(lease.Data["access_token"].(string)) || e.emu.TokenActive(shared.Data["access_token"].(string)) {
		t.Fatal("the tokens minted before the re-point were not revoked at the org that issued them")
	}
	// Reads never failed: the active key still signs at the origin it was proven at.
	if c := e.emu.Counters(); c.TokensIssued < 5 {
		t.Fatalf("reads after the re-point should keep minting at the real org: %d tokens issued", c.TokensIssued)
	}
}

// A legitimate move (a My Domain change, here to a second emulator host of the same org) has no
// failed read: the old key serves the old origin until the new key is proven at the new one.
func TestLoginURLChangeIsAReKeyWithNoFailedRead(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease"})
	mustOK(t, e.read("creds/app"))

	// The same org under another host name (localhost vs 127.0.0.1): another origin.
	newURL := strings.Replace(e.emu.URL(), "127.0.0.1", "localhost", 1)
	mustOK(t, e.write("connections/prod", map[string]any{"login_url": newURL}))
	cert := mustOK(t, e.read("connections/prod/certificate")).Data
	if cert["pending_key_version"] != 2 {
		t.Fatalf("no pending key for the new origin: %v", cert)
	}
	mustOK(t, e.read("creds/app")) // old key, old origin
	if err := e.emu.SetAppCertificate(e.seed.App.ConsumerKey, cert["pending_certificate"].(string)); err != nil {
		t.Fatal(err)
	}
	got := mustOK(t, e.read("creds/app")) // old key refused: falls back to the new key, promotes it
	if got.Data["key_version"] != 2 || e.keyStatus("prod", "2") != statusActive {
		t.Fatalf("after the upload the new key should sign and be promoted: %v, %s", got.Data["key_version"], e.keyStatus("prod", "2"))
	}
	if e.emu.Counters().TokenErrors["invalid_grant"] != 1 {
		t.Fatalf("token errors: %v", e.emu.Counters().TokenErrors)
	}
	mustOK(t, e.read("creds/app"))
}

// Defect 4: a lease whose connection is gone was "revoked" with a log line, and its token stayed
// valid at Salesforce. Before the fix the revoke returned success.
func TestRevokeWithoutItsConnectionFailsVisibly(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease"})
	lease := mustOK(t, e.read("creds/app"))
	mustOK(t, e.del("roles/app"))
	mustOK(t, e.del("connections/prod"))
	err := e.revokeLease(lease)
	if err == nil {
		t.Fatal("revoking a lease whose connection is gone reported success; the token is still valid")
	}
	if strings.Contains(err.Error(), lease.Data["access_token"].(string)) {
		t.Fatal("the error quotes the token")
	}
	if !e.emu.TokenActive(lease.Data["access_token"].(string)) {
		t.Fatal("test setup: the token should still be active")
	}
	e.sys.TaintedVal = true // the mount is being disabled: let the lease go
	if err := e.revokeLease(lease); err != nil {
		t.Fatalf("while unmounting: %v", err)
	}
}

// Defect 2: rotate after a failed import rotation deployed the importer's certificate with
// deploy_username's rights. Before the fix the app ended up trusting the imported key.
func TestRotateNeverDeploysAnImportedKeyUnasked(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, map[string]any{"propagation_timeout": "1m"}))
	e.createRole("app", "prod", nil)
	key := newRSA(t, 2048)
	imported := selfSigned(t, key)
	mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, key), "certificate": imported}))
	e.clock.Advance(2 * time.Minute)
	e.tick() // the imported certificate is not on the app: the import's rotation stalls
	if r := e.rotation("prod"); r["state"] != stateFailed {
		t.Fatalf("the import's rotation should have failed: %v", r)
	}
	rot := mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	for i := 0; i < 5; i++ {
		e.clock.Advance(time.Minute)
		e.tick()
	}
	if e.keyStatus("prod", "2") != statusArchived || rot.Data["pending_key_version"] != 3 {
		t.Fatalf("rotate must archive the imported pending key and make a fresh one: v2=%s, pending=%v", e.keyStatus("prod", "2"), rot.Data["pending_key_version"])
	}
	for _, c := range e.emu.AcceptedCertificates(e.seed.App.ConsumerKey) {
		if c == imported {
			t.Fatal("the imported key's certificate was deployed to the app")
		}
	}
}

// Defect 6: write access to roles/* minted on every connection, as any pre-authorised user,
// the deploy user included. Before the fix the scoping fields did not exist (unknown field).
func TestRolesAreScopedByTheirConnection(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, map[string]any{"verify_username": "", "allowed_roles": "app-*", "allowed_usernames": "*@" + strings.SplitN(e.seed.User.Username, "@", 2)[1]}))
	user := e.seed.User.Username
	mustErr(t, e.write("roles/other", map[string]any{"connection": "prod", "username": user}), "allowed_roles")
	mustErr(t, e.write("roles/app-deploy", map[string]any{"connection": "prod", "username": e.seed.Deployer.Username}), "deploy_username")
	mustErr(t, e.write("roles/app-x", map[string]any{"connection": "prod", "username": "someone@elsewhere.example"}), "allowed_usernames")
	e.createRole("app-1", "prod", nil)
	mustOK(t, e.read("creds/app-1"))
	// Names and usernames match whatever their case; an empty list is refused, not "allow all".
	mustOK(t, e.write("connections/prod", map[string]any{"allowed_roles": "APP-*", "allowed_usernames": strings.ToUpper(user)}))
	mustOK(t, e.write("roles/app-1", map[string]any{"username": strings.ToUpper(user)}))
	mustOK(t, e.read("creds/app-1"))
	mustErr(t, e.write("connections/prod", map[string]any{"allowed_roles": ""}), "allowed_roles", "at least one")
	mustErr(t, e.write("connections/prod", map[string]any{"allowed_usernames": []string{}}), "allowed_usernames", "at least one")

	// Narrowed after the role was written: the mint checks again.
	mustOK(t, e.write("connections/prod", map[string]any{"allowed_roles": "billing-*"}))
	mustErr(t, e.read("creds/app-1"), "allowed_roles")
	mustOK(t, e.write("connections/prod", map[string]any{"allowed_roles": "*", "verify_username": user}))
	mustErr(t, e.read("creds/app-1"), "allow_privileged_roles")
	mustOK(t, e.write("connections/prod", map[string]any{"allow_privileged_roles": true}))
	mustOK(t, e.read("creds/app-1"))
	if d := mustOK(t, e.read("connections/prod")).Data; d["allow_privileged_roles"] != true || len(d["allowed_usernames"].([]string)) != 1 {
		t.Fatalf("connection read: %v", d)
	}
}

// Defect 7: the shared-token flight was keyed by the role name only, so a reader who saw the
// role's new username joined a flight for the old one. Before the fix the second reader got a
// token for the previous username.
func TestSharedFlightNeverServesThePreviousRole(t *testing.T) {
	e := newAppEnv(t)
	// The first mint is slow; while it is in flight the role changes user.
	e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultLatency, Latency: 600 * time.Millisecond, Count: 1})
	first := make(chan *logical.Response, 1)
	go func() {
		resp, _ := e.do(logical.ReadOperation, "creds/app", nil)
		first <- resp
	}()
	time.Sleep(150 * time.Millisecond)
	mustOK(t, e.write("roles/app", map[string]any{"username": e.seed.Deployer.Username}))
	got := mustOK(t, e.read("creds/app"))
	if got.Data["username"] != e.seed.Deployer.Username {
		t.Fatalf("a read after the role change got a token for %v", got.Data["username"])
	}
	<-first
}

// Defect 8: a failed rotation with nothing pending (after a rollback) was never scheduled
// again, so automatic rotation and retention stopped for good. Before the fix
// nextRotationWork returned zero.
func TestFailedRotationFallsBackToTheSchedule(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	conn := &connectionEntry{LoginURL: defaultLoginURL, KeyRotationPeriod: 24 * time.Hour, CertificateTTL: defaultCertificateTTL, CertificateRenewBefore: time.Hour, KeepArchivedKeys: 2}
	ring := &keyRing{
		Versions: []*keyVersion{{Version: 1, Status: statusActive, ActivatedAt: now.Add(-48 * time.Hour), NotAfter: now.Add(8000 * time.Hour)},
			{Version: 2, Status: statusArchived}},
		Rotation: rotationState{State: stateFailed, LastAttemptAt: now, Failures: 1},
	}
	at := nextRotationWork(conn, ring, now)
	if at.IsZero() {
		t.Fatal("a failed rotation with nothing pending is never retried")
	}
	if want := now.Add(failureBackoff(1)); !at.Equal(want) {
		t.Fatalf("next work at %v, want after the backoff, %v", at, want)
	}
	ring.Rotation.Failures = 3
	if at := nextRotationWork(conn, ring, now); !at.Equal(now.Add(4 * time.Hour)) {
		t.Fatalf("backoff after 3 failures: %v", at.Sub(now))
	}
	if got := failureBackoff(40); got != 24*time.Hour {
		t.Fatalf("backoff is capped at a day: %v", got)
	}
}

// The same, end to end: after a rollback the schedule starts a new rotation once the backoff
// has passed.
func TestScheduledRotationRestartsAfterARollback(t *testing.T) {
	// A certificate takes far longer than propagation_timeout to be accepted: rolled back.
	e := newTestEnv(t, func(c *emulator.Config) { c.DeployPolls = 1; c.PropagationDelay = 30 * time.Minute })
	e.createConnection("prod", metadataConn(e, map[string]any{"verify_username": "", "key_rotation_period": "2h", "propagation_timeout": "1m"}))
	e.createRole("app", "prod", nil)
	e.clock.Advance(31 * time.Minute) // the first certificate takes effect
	mustOK(t, e.read("creds/app"))
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	for i := 0; i < 30 && e.rotation("prod")["state"] != stateFailed; i++ {
		e.clock.Advance(time.Minute)
		e.tick()
	}
	if r := e.rotation("prod"); r["state"] != stateFailed || r["pending_key_version"] != 0 {
		t.Fatalf("setup: the rotation should have rolled back and failed: %v", r)
	}
	e.clock.Advance(3 * time.Hour)
	e.tick()
	e.b.wg.Wait()
	if r := e.rotation("prod"); r["state"] == stateFailed {
		t.Fatalf("no new rotation after the backoff: %v", r)
	}
}

// gatedStorage holds the first Get of one key until released, returning what storage held when
// the Get began: a reader that read an entry just before a writer replaced it.
type gatedStorage struct {
	logical.Storage
	key              string
	once             sync.Once
	reached, release chan struct{}
}

func (g *gatedStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := g.Storage.Get(ctx, key)
	if key == g.key {
		g.once.Do(func() { close(g.reached); <-g.release })
	}
	return e, err
}

// Defect 3: a mint that read the connection before a write cached a client built from the old
// login_url after the write had dropped the cache; later mints kept going to the old host while
// reads of the connection showed the new one. Before the fix every read after the race went to
// the old host (and failed there).
func TestNoMintFollowsAConnectionReadBeforeAWrite(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", map[string]any{"token_mode": "per_lease"})

	other := emulator.New(emulator.Config{Clock: e.clock.Now})
	if err := other.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	otherSeed := other.SeedDemo()

	g := &gatedStorage{Storage: e.storage, key: connectionsPrefix + "prod", reached: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/app", Storage: g,
			Connection: &logical.Connection{RemoteAddr: "127.0.0.1"}})
	}()
	<-g.reached
	// While that mint holds the old entry, the operator moves the connection to another org.
	mustOK(t, e.del("roles/app"))
	mustOK(t, e.del("connections/prod"))
	resp := mustOK(t, e.write("connections/prod", map[string]any{"consumer_key": otherSeed.App.ConsumerKey, "login_url": other.URL(),
		"allow_non_salesforce_host": true, "ca_cert": other.CACertPEM()}))
	if err := other.SetAppCertificate(otherSeed.App.ConsumerKey, resp.Data["certificate"].(string)); err != nil {
		t.Fatal(err)
	}
	mustOK(t, e.write("roles/app", map[string]any{"connection": "prod", "username": otherSeed.User.Username, "token_mode": "per_lease"}))
	close(g.release)
	<-done

	before, otherBefore := e.emu.Counters().TokenRequests, other.Counters().TokensIssued
	for i := 0; i < 3; i++ {
		mustOK(t, e.read("creds/app"))
	}
	if n := other.Counters().TokensIssued - otherBefore; n != 3 {
		t.Fatalf("the new org issued %d tokens for 3 reads", n)
	}
	if n := e.emu.Counters().TokenRequests - before; n != 0 {
		t.Fatalf("%d token requests still went to the old host", n)
	}
}

// Defect 10: input caps, defaults that break and errors that quote the input.
func TestInputIsCappedAndNeverEchoed(t *testing.T) {
	e := newTestEnv(t)
	secret := pkcs8PEM(t, newRSA(t, 2048))
	long := strings.Repeat("a", 100)
	e.createConnection(long, nil) // the default subject stays valid for long names

	cases := []struct {
		path  string
		data  map[string]any
		field string
	}{
		{"connections/big", e.connectionData(map[string]any{"certificate_subject": "CN=" + strings.Repeat("x", 1_300_000)}), "certificate_subject"},
		{"connections/many", e.connectionData(map[string]any{"certificate_subject": strings.Repeat("O=a,", 40) + "CN=x"}), "certificate_subject"},
		{"connections/pasted", e.connectionData(map[string]any{"certificate_subject": secret}), "certificate_subject"},
		{"connections/pasted2", e.connectionData(map[string]any{"login_url": "https://" + secret}), "login_url"},
		{"connections/pasted3", e.connectionData(map[string]any{"app_name": secret}), "app_name"},
		{"connections/pasted4", e.connectionData(map[string]any{"key_type": secret}), "key_type"},
		{"roles/pasted", map[string]any{"connection": secret, "username": e.seed.User.Username}, "connection"},
		{"roles/pasted2", map[string]any{"connection": long, "username": e.seed.User.Username, "bound_cidrs": secret}, "bound_cidrs"},
	}
	for _, c := range cases {
		resp, err := e.do(logical.UpdateOperation, c.path, c.data)
		if err != nil {
			t.Fatalf("%s: a 500 (%v) instead of a 400 naming %s", c.path, err, c.field)
		}
		mustErr(t, resp, c.field)
		msg := resp.Error().Error()
		for _, line := range strings.Split(secret, "\n")[1:3] {
			if strings.Contains(msg, line) {
				t.Fatalf("%s: the error quotes the input: %s", c.path, msg)
			}
		}
		if len(msg) > 600 {
			t.Fatalf("%s: a %d-byte error", c.path, len(msg))
		}
	}
	// A name storage cannot hold is a 400, not an internal error.
	resp, err := e.do(logical.UpdateOperation, "connections/a..b", e.connectionData(nil))
	if err != nil || resp == nil || !resp.IsError() {
		t.Fatalf("connections/a..b: %v %v", resp, err)
	}
	// Clearing the subject returns to the default; an import then works.
	mustOK(t, e.write("connections/"+long, map[string]any{"certificate_subject": ""}))
	mustOK(t, e.write("connections/"+long+"/import", map[string]any{"private_key": pkcs8PEM(t, newRSA(t, 2048))}))
	// A subject stored by an older release that no longer validates: a 400 naming it, not a 500.
	e.createConnection("old", nil)
	conn, _ := getConnection(context.Background(), e.storage, "old")
	conn.CertificateSubject = "CN=" + strings.Repeat("y", 80)
	if err := e.b.putConnection(context.Background(), e.storage, "old", conn); err != nil {
		t.Fatal(err)
	}
	resp, err = e.do(logical.UpdateOperation, "connections/old/rotate", nil)
	if err != nil {
		t.Fatalf("rotate with a stored bad subject: a 500: %v", err)
	}
	mustErr(t, resp, "certificate_subject")
}

// A lease written by a release before origins were recorded (no origin_id) is revoked at the
// origin the connection had then, even after a re-point whose new key became active: never at
// the new host.
func TestLegacyLeaseIsRevokedAtItsOriginalHost(t *testing.T) {
	e := newTestEnv(t)
	atk := newAttackerHost(t)
	e.createConnection("prod", nil)
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease"})
	lease := mustOK(t, e.read("creds/leased"))
	delete(lease.Secret.InternalData, "origin_id") // as the previous release wrote it
	mustOK(t, e.write("connections/prod", map[string]any{"login_url": atk.srv.URL, "ca_cert": atk.caPEM()}))
	mustOK(t, e.write("connections/prod/promote", map[string]any{"force": true})) // the new key is active, at the new host
	if err := e.revokeLease(lease); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if e.emu.TokenActive(lease.Data["access_token"].(string)) {
		t.Fatal("the legacy lease's token was not revoked at the org that issued it")
	}
	_, revoked := atk.seen()
	for _, tok := range revoked {
		if tok == lease.Data["access_token"] {
			t.Fatal("the legacy lease's token was sent to the new host")
		}
	}
}
