package backend

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

func (e *testEnv) rotation(name string) map[string]any {
	e.t.Helper()
	return mustOK(e.t, e.read("connections/"+name+"/rotation")).Data
}

func (e *testEnv) keyStatus(conn, version string) string {
	e.t.Helper()
	info := e.list("connections/" + conn + "/keys/").Data["key_info"].(map[string]any)
	v, ok := info[version]
	if !ok {
		return ""
	}
	return v.(map[string]any)["status"].(string)
}

// appCertIsVaults checks the invariant that matters most: the certificate Salesforce holds
// for the app belongs to a key version Vault still has material for.
func (e *testEnv) appCertIsVaults(conn string) {
	e.t.Helper()
	app, _ := e.emu.AppByConsumerKey(e.seed.App.ConsumerKey)
	for _, accepted := range append(e.emu.AcceptedCertificates(e.seed.App.ConsumerKey), app.CertificatePEM) {
		if accepted == "" {
			continue
		}
		ring, err := getKeyRing(context.Background(), e.storage, conn)
		if err != nil {
			e.t.Fatal(err)
		}
		found := false
		for _, v := range ring.Versions {
			if v.Status != statusDestroyed && sameCert(v.Certificate, accepted) {
				if _, err := getKeyMaterial(context.Background(), e.storage, conn, v.Version); err != nil {
					e.t.Fatalf("the app's certificate is version %d, whose key material is gone: %v", v.Version, err)
				}
				found = true
			}
		}
		if !found {
			e.t.Fatal("Salesforce holds a certificate that matches no live key version in Vault")
		}
	}
}

func sameCert(a, b string) bool {
	norm := func(s string) string {
		s = strings.ReplaceAll(s, "-----BEGIN CERTIFICATE-----", "")
		s = strings.ReplaceAll(s, "-----END CERTIFICATE-----", "")
		return strings.Join(strings.Fields(s), "")
	}
	return norm(a) == norm(b)
}

func TestManualRotationPromotesOnceSalesforceAccepts(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", nil)
	resp := mustOK(t, e.write("connections/prod/rotate", nil))
	pendingCert := resp.Data["pending_certificate"].(string)
	if resp.Data["state"] != "verifying" || resp.Data["pending_key_version"] != 2 || pendingCert == "" {
		t.Fatalf("rotate: %v", resp.Data)
	}
	e.b.wg.Wait()
	if e.keyStatus("prod", "2") != "pending" {
		t.Fatal("the key was promoted before Salesforce accepted it")
	}
	if r := e.rotation("prod"); !strings.Contains(r["last_error"].(string), "waiting for Salesforce") {
		t.Errorf("rotation should report it is waiting: %v", r["last_error"])
	}
	// Reads keep working with the active key meanwhile.
	if mustOK(t, e.read("creds/app")).Data["key_version"] != 1 {
		t.Fatal("a read during a manual rotation did not use the active key")
	}
	// The operator uploads the new certificate; the next probe promotes.
	if err := e.emu.SetAppCertificate(e.seed.App.ConsumerKey, pendingCert); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(probeInterval)
	e.tick()
	if e.keyStatus("prod", "2") != "active" || e.keyStatus("prod", "1") != "archived" {
		t.Fatalf("after the upload: v1 %s, v2 %s", e.keyStatus("prod", "1"), e.keyStatus("prod", "2"))
	}
	r := e.rotation("prod")
	if r["state"] != "idle" || r["last_completed_at"] == "" {
		t.Fatalf("rotation after promotion: %v", r)
	}
	e.b.tokens.drop("app")
	if mustOK(t, e.read("creds/app")).Data["key_version"] != 2 {
		t.Fatal("new mints do not use the promoted key")
	}
}

func TestMintFallsBackToPendingKeyAndPromotes(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", nil)
	pendingCert := mustOK(t, e.write("connections/prod/rotate", nil)).Data["pending_certificate"].(string)
	e.b.wg.Wait()
	// The operator uploads the certificate; Salesforce now refuses the old key. A read must not fail.
	if err := e.emu.SetAppCertificate(e.seed.App.ConsumerKey, pendingCert); err != nil {
		t.Fatal(err)
	}
	resp := mustOK(t, e.read("creds/app"))
	if resp.Data["key_version"] != 2 {
		t.Fatalf("read used key version %v, want the pending 2", resp.Data["key_version"])
	}
	if e.keyStatus("prod", "2") != "active" {
		t.Fatal("the pending key Salesforce accepted was not promoted")
	}
}

func TestManualRotationStallsThenStillDetectsUpload(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", map[string]any{"propagation_timeout": "10m"})
	e.createRole("app", "prod", nil)
	pendingCert := mustOK(t, e.write("connections/prod/rotate", nil)).Data["pending_certificate"].(string)
	e.b.wg.Wait()
	for i := 0; i < 25; i++ {
		e.clock.Advance(probeInterval)
		e.tick()
	}
	r := e.rotation("prod")
	if r["state"] != "failed" || r["stalled"] != true || !strings.Contains(r["last_error"].(string), "stalled") {
		t.Fatalf("want a stalled failure after propagation_timeout, got %v", r)
	}
	if w := strings.Join(e.read("connections/prod").Warnings, " "); !strings.Contains(w, "rotation is stalled") {
		t.Errorf("connection read does not warn about the stalled rotation: %q", w)
	}
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, pendingCert)
	e.clock.Advance(stalledProbeInterval)
	e.tick()
	if e.keyStatus("prod", "2") != "active" {
		t.Fatal("a late upload was not detected by the slow probe")
	}
}

func TestPromote(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	mustErr(t, e.write("connections/prod/promote", nil), "no pending key")
	pendingCert := mustOK(t, e.write("connections/prod/rotate", nil)).Data["pending_certificate"].(string)
	e.b.wg.Wait()
	mustErr(t, e.write("connections/prod/promote", nil), "verify_username")
	e.createRole("app", "prod", nil)
	mustErr(t, e.write("connections/prod/promote", nil), "does not accept key version 2", "invalid assertion")
	if e.keyStatus("prod", "2") != "pending" {
		t.Fatal("a refused promote changed the ring")
	}
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, pendingCert)
	if r := mustOK(t, e.write("connections/prod/promote", nil)).Data; r["state"] != "idle" {
		t.Fatalf("promote: %v", r)
	}
	if e.keyStatus("prod", "2") != "active" {
		t.Fatal("promote did not activate the key")
	}
	// force=true needs no proof.
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	mustOK(t, e.write("connections/prod/promote", map[string]any{"force": true}))
	if e.keyStatus("prod", "3") != "active" {
		t.Fatal("force promote did not activate the key")
	}
}

func TestRotateReusesPendingKey(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	a := mustOK(t, e.write("connections/prod/rotate", nil)).Data
	e.b.wg.Wait()
	b := mustOK(t, e.write("connections/prod/rotate", nil)).Data
	e.b.wg.Wait()
	if a["pending_key_version"] != b["pending_key_version"] || a["pending_certificate"] != b["pending_certificate"] {
		t.Fatal("a second rotate made another key instead of reusing the pending one")
	}
}

func metadataConn(e *testEnv, extra map[string]any) map[string]any {
	d := map[string]any{"deploy": "metadata_api", "app_type": "connected_app", "app_name": e.seed.App.Name, "deploy_username": e.seed.Deployer.Username}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

func TestMetadataAPIRotation(t *testing.T) {
	e := newTestEnv(t, func(c *emulator.Config) { c.DeployPolls = 2 })
	e.createConnection("prod", metadataConn(e, nil))
	e.createRole("app", "prod", nil)
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	r := e.rotation("prod")
	if r["state"] != "idle" || e.keyStatus("prod", "2") != "active" || e.keyStatus("prod", "1") != "archived" {
		t.Fatalf("rotation did not complete: %v (v1 %s, v2 %s)", r, e.keyStatus("prod", "1"), e.keyStatus("prod", "2"))
	}
	app, _ := e.emu.AppByConsumerKey(e.seed.App.ConsumerKey)
	if !sameCert(app.CertificatePEM, e.read("connections/prod/certificate").Data["certificate"].(string)) {
		t.Fatal("the app does not hold the new certificate")
	}
	// The deploy changed only the certificate: other app settings survived.
	if app.Extra["oauthPolicy.ipRelaxation"] != "ENFORCE" || !app.AdminApproved || app.CallbackURL != e.seed.App.CallbackURL {
		t.Fatalf("the deploy wiped app settings: %+v", app)
	}
	c := e.emu.Counters()
	if c.ReadMetadata < 1 || c.DeploysSucceeded != 1 {
		t.Errorf("counters: %+v", c)
	}
	e.appCertIsVaults("prod")
}

func TestMetadataAPIRotationWithPropagationDelay(t *testing.T) {
	for _, overlap := range []string{"old", "both", "new"} {
		t.Run(overlap, func(t *testing.T) {
			e := newTestEnv(t, func(c *emulator.Config) { c.PropagationDelay = 5 * time.Minute; c.PropagationOverlap = overlap })
			e.createConnection("prod", metadataConn(e, nil))
			e.createRole("app", "prod", nil)
			_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, e.read("connections/prod/certificate").Data["certificate"].(string))
			e.clock.Advance(6 * time.Minute) // the first certificate has propagated
			mustOK(t, e.read("creds/app"))
			mustOK(t, e.write("connections/prod/rotate", nil))
			e.b.wg.Wait()
			for i := 0; i < 20 && e.rotation("prod")["state"] != "idle"; i++ {
				e.b.tokens.drop("app")
				mustOK(t, e.read("creds/app")) // reads never fail during the window
				e.clock.Advance(probeInterval)
				e.tick()
				e.appCertIsVaults("prod")
			}
			if e.keyStatus("prod", "2") != "active" {
				t.Fatalf("rotation did not complete: %v", e.rotation("prod"))
			}
		})
	}
}

// startUnacceptedRotation starts a metadata_api rotation of connection "prod" (role "app")
// whose new certificate Salesforce takes 3 h to apply, past the 10 min propagation_timeout:
// the deploy succeeds, the proof never comes in time. It returns the env once the rotation's
// first drive is done, with the active and the pending certificates.
func startUnacceptedRotation(t *testing.T) (e *testEnv, oldCert, pending string) {
	t.Helper()
	e = newTestEnv(t, func(c *emulator.Config) { c.PropagationDelay = 3 * time.Hour })
	e.createConnection("prod", metadataConn(e, map[string]any{"propagation_timeout": "10m"}))
	e.createRole("app", "prod", nil)
	oldCert = e.read("connections/prod/certificate").Data["certificate"].(string)
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, oldCert)
	e.clock.Advance(4 * time.Hour) // the upload above is in effect
	pending = mustOK(t, e.write("connections/prod/rotate", nil)).Data["pending_certificate"].(string)
	e.b.wg.Wait()
	return e, oldCert, pending
}

func TestMetadataAPIRotationRollsBackWhenNotAccepted(t *testing.T) {
	e, oldCert, _ := startUnacceptedRotation(t)
	for i := 0; i < 40 && e.rotation("prod")["state"] != "failed"; i++ {
		mustOK(t, e.read("creds/app"))
		e.clock.Advance(probeInterval)
		e.tick()
	}
	r := e.rotation("prod")
	if r["state"] != "failed" || r["stalled"] != false || !strings.Contains(r["last_error"].(string), "rolled back") {
		t.Fatalf("want a rolled-back failure, got %v", r)
	}
	if e.keyStatus("prod", "1") != "active" || e.keyStatus("prod", "2") != "archived" {
		t.Fatalf("after rollback: v1 %s, v2 %s", e.keyStatus("prod", "1"), e.keyStatus("prod", "2"))
	}
	if r["pending_key_version"] != 0 || r["rotated_key_version"] != 2 {
		t.Errorf("after rollback the rotation reports pending %v (want 0), rotated %v (want 2)", r["pending_key_version"], r["rotated_key_version"])
	}
	app, _ := e.emu.AppByConsumerKey(e.seed.App.ConsumerKey)
	if !sameCert(app.CertificatePEM, oldCert) {
		t.Fatal("the app does not hold the old certificate after rollback")
	}
	e.appCertIsVaults("prod")
}

func TestMetadataAPIDeployFailures(t *testing.T) {
	cases := []struct {
		name  string
		fault emulator.Fault
		want  string
	}{
		{"deploy failed", emulator.Fault{Endpoint: "deploy_status", Kind: emulator.FaultDeployFail}, "failed"},
		{"component failure", emulator.Fault{Endpoint: "deploy_status", Kind: emulator.FaultComponentFailure}, "ConnectedApp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.createConnection("prod", metadataConn(e, nil))
			e.createRole("app", "prod", nil)
			e.emu.AddFault(tc.fault)
			mustOK(t, e.write("connections/prod/rotate", nil))
			e.b.wg.Wait()
			r := e.rotation("prod")
			if r["state"] != "failed" || !strings.Contains(r["last_error"].(string), tc.want) {
				t.Fatalf("rotation: %v", r)
			}
			if e.keyStatus("prod", "1") != "active" {
				t.Fatal("a failed deploy changed the active key")
			}
			mustOK(t, e.read("creds/app"))
			e.appCertIsVaults("prod")
			// Retry after the fault is gone: rotate reuses the pending key and completes.
			e.emu.ClearFaults()
			mustOK(t, e.write("connections/prod/rotate", nil))
			e.b.wg.Wait()
			if e.keyStatus("prod", "2") != "active" {
				t.Fatalf("retry did not complete: %v", e.rotation("prod"))
			}
		})
	}
}

func TestMetadataAPITransientErrorsRetryWithBackoff(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, nil))
	e.createRole("app", "prod", nil)
	e.emu.AddFault(emulator.Fault{Endpoint: "deploy", Kind: emulator.FaultStatus, Status: 503})
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	r := e.rotation("prod")
	if r["state"] != "deploying" || r["attempts"] != 1 || r["next_attempt_at"] == "" {
		t.Fatalf("a transient deploy error should be retried later: %v", r)
	}
	e.emu.ClearFaults()
	e.clock.Advance(retryBase)
	e.tick()
	if e.keyStatus("prod", "2") != "active" {
		t.Fatalf("rotation did not recover: %v", e.rotation("prod"))
	}
}

// TestRotationResumesAfterCrash runs a rotation one step at a time, and after each step
// throws the backend away and starts a new one on the same storage, as a plugin crash,
// reload or leader change would. Each must finish the rotation from storage alone.
func TestRotationResumesAfterCrash(t *testing.T) {
	e := newTestEnv(t, func(c *emulator.Config) { c.DeployPolls = 1 })
	e.createConnection("prod", metadataConn(e, nil))
	e.createRole("app", "prod", nil)
	// Start the rotation without the background driver, as if the process died right after.
	lock := e.b.connLock("prod")
	lock.Lock()
	conn, ring, _ := e.b.loadConnection(context.Background(), e.storage, "prod")
	if err := e.b.startRotation(context.Background(), e.storage, "prod", conn, ring, triggerManual, false, nil); err != nil {
		t.Fatal(err)
	}
	lock.Unlock()
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		state := e.rotation("prod")["state"].(string)
		seen[state] = true
		if state == "idle" {
			break
		}
		e.appCertIsVaults("prod")
		// Crash: a new backend on the same storage, which knows only what storage says.
		e.b.Cleanup(context.Background())
		e.b = restartBackend(t, e)
		conn, ring, _ := e.b.loadConnection(context.Background(), e.storage, "prod")
		if err := e.b.step(context.Background(), e.storage, "prod", conn, ring, &driveSession{}); err != nil {
			t.Fatalf("step in %s: %v", state, err)
		}
		e.clock.Advance(deployPollInterval)
	}
	for _, s := range []string{"deploying", "verifying", "promoting", "idle"} {
		if !seen[s] {
			t.Errorf("never observed state %s across restarts (saw %v)", s, seen)
		}
	}
	if e.keyStatus("prod", "2") != "active" {
		t.Fatal("the rotation did not finish across restarts")
	}
	e.appCertIsVaults("prod")
}

func restartBackend(t *testing.T, e *testEnv) *backend {
	t.Helper()
	old := e.b
	b := newBackend()
	b.now, b.retry, b.sleep = old.now, old.retry, old.sleep
	conf := logical.TestBackendConfig()
	conf.System = e.sys
	conf.Logger = old.Logger()
	conf.StorageView = e.storage
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScheduledRotationAndRetention(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, map[string]any{"key_rotation_period": "24h", "keep_archived_keys": 1}))
	e.createRole("app", "prod", nil)
	if r := e.rotation("prod"); r["next_scheduled_rotation"] == "" {
		t.Fatal("no next_scheduled_rotation with key_rotation_period set")
	}
	e.tick()
	if e.keyStatus("prod", "2") != "" {
		t.Fatal("rotated before the period elapsed")
	}
	for round := 2; round <= 4; round++ {
		e.clock.Advance(25 * time.Hour)
		e.tick()
		e.b.wg.Wait()
		if e.keyStatus("prod", strconv.Itoa(round)) != "active" {
			t.Fatalf("round %d: scheduled rotation did not complete: %v", round, e.rotation("prod"))
		}
		e.tick() // retention
	}
	// keep_archived_keys=1: v3 archived with material, v1 and v2 destroyed (metadata kept).
	for v, want := range map[string]string{"1": "destroyed", "2": "destroyed", "3": "archived", "4": "active"} {
		if got := e.keyStatus("prod", v); got != want {
			t.Errorf("v%s = %s, want %s", v, got, want)
		}
	}
	keys, _ := e.storage.List(context.Background(), "keys/prod/")
	if strings.Join(keys, ",") != "3,4" {
		t.Errorf("key material kept for %v, want 3,4", keys)
	}
}

func TestRotationWhenCertificateNearsExpiry(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, map[string]any{"key_rotation_period": "8000h", "certificate_ttl": "1000h", "certificate_renew_before": "100h"}))
	e.createRole("app", "prod", nil)
	e.clock.Advance(901 * time.Hour)
	e.tick()
	e.b.wg.Wait()
	if e.keyStatus("prod", "2") != "active" {
		t.Fatalf("no rotation when the certificate was within certificate_renew_before: %v", e.rotation("prod"))
	}
}

func TestRotationUnderConcurrentReaders(t *testing.T) {
	e := newTestEnv(t, func(c *emulator.Config) {
		c.PropagationDelay = 2 * time.Minute
		c.PropagationOverlap = "new"
		c.DeployPolls = 2
	})
	e.createConnection("prod", metadataConn(e, nil))
	e.createRole("shared", "prod", nil)
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease"})
	var failed, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			role := "shared"
			if i%2 == 1 {
				role = "leased"
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := e.do(logical.ReadOperation, "creds/"+role, nil)
				if err != nil || resp.IsError() {
					failed.Add(1)
					t.Logf("read failed: %v %v", err, resp)
				} else {
					served.Add(1)
				}
			}
		}(i)
	}
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	for i := 0; i < 20 && e.rotation("prod")["state"] != "idle"; i++ {
		e.clock.Advance(probeInterval)
		e.tick()
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if e.keyStatus("prod", "2") != "active" {
		t.Fatalf("rotation did not complete: %v", e.rotation("prod"))
	}
	if failed.Load() != 0 || served.Load() == 0 {
		t.Fatalf("%d reads failed, %d served during the rotation", failed.Load(), served.Load())
	}
	t.Logf("%d reads served, 0 failed, during a metadata_api rotation", served.Load())
}

func TestPromoteArchivedKeyBack(t *testing.T) {
	e := newTestEnv(t)
	first := e.createConnection("prod", nil).Data["certificate"].(string)
	e.createRole("app", "prod", nil)
	second := mustOK(t, e.write("connections/prod/rotate", nil)).Data["pending_certificate"].(string)
	e.b.wg.Wait()
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, second)
	mustOK(t, e.write("connections/prod/promote", nil))
	if e.keyStatus("prod", "1") != "archived" {
		t.Fatal("setup: v1 should be archived")
	}
	// Not proven: v1's certificate is no longer on the app.
	mustErr(t, e.write("connections/prod/promote", map[string]any{"version": 1}), "key version 1", "invalid assertion")
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, first)
	mustOK(t, e.write("connections/prod/promote", map[string]any{"version": 1}))
	if e.keyStatus("prod", "1") != "active" || e.keyStatus("prod", "2") != "archived" {
		t.Fatalf("after promoting v1 back: v1 %s, v2 %s", e.keyStatus("prod", "1"), e.keyStatus("prod", "2"))
	}
	e.b.tokens.drop("app")
	if mustOK(t, e.read("creds/app")).Data["key_version"] != 1 {
		t.Fatal("mints do not use the promoted-back key")
	}
	mustErr(t, e.write("connections/prod/promote", map[string]any{"version": 1}), "version", "already active")
	mustErr(t, e.write("connections/prod/promote", map[string]any{"version": 9}), "version", "does not exist")
	mustOK(t, e.del("connections/prod/keys/2"))
	mustErr(t, e.write("connections/prod/promote", map[string]any{"version": 2, "force": true}), "version", "destroyed")
}

func TestActionPathsOnMissingTargetsAre400(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"connections/nope/rotate", "connections/nope/promote", "connections/nope/import", "roles/nope/reset"} {
		data := map[string]any{}
		if p == "connections/nope/import" {
			data["private_key"] = pkcs8PEM(t, newRSA(t, 2048))
		}
		resp, err := e.do(logical.UpdateOperation, p, data)
		if err != nil {
			t.Fatalf("%s: want a 400, got %v", p, err)
		}
		mustErr(t, resp, "nope")
	}
}

func TestMetadataAPIRefusalFailsAtOnce(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, map[string]any{"app_name": "No_Such_App"}))
	e.createRole("app", "prod", nil)
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	r := e.rotation("prod")
	if r["state"] != "failed" || r["attempts"] != 0 {
		t.Fatalf("a Salesforce refusal must fail the rotation at once, not be retried: %v", r)
	}
	if last, _ := r["last_error"].(string); !strings.Contains(last, "No_Such_App") {
		t.Errorf("last_error should name the missing app: %q", last)
	}
	if e.keyStatus("prod", "1") != "active" {
		t.Fatal("the active key changed")
	}
}

func TestFailedMetadataRotationStillDetectsManualUpload(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, map[string]any{"app_name": "No_Such_App"}))
	e.createRole("app", "prod", nil)
	pending := mustOK(t, e.write("connections/prod/rotate", nil)).Data["pending_certificate"].(string)
	e.b.wg.Wait()
	if e.rotation("prod")["state"] != "failed" {
		t.Fatal("setup: the deploy should fail")
	}
	// The operator uploads the pending certificate by hand; the slow probe notices.
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, pending)
	e.clock.Advance(stalledProbeInterval)
	e.tick()
	if e.keyStatus("prod", "2") != "active" {
		t.Fatalf("a failed rotation's pending key was not detected once uploaded: %v", e.rotation("prod"))
	}
}

// TestReadDuringRollbackDoesNotPromote: Salesforce applies the new certificate late, while the
// plugin deploys the old one back. A read served by the new key must not promote it: the
// rollback is about to take that certificate away again.
func TestReadDuringRollbackDoesNotPromote(t *testing.T) {
	e, _, pending := startUnacceptedRotation(t)
	e.emu.AddFault(emulator.Fault{Endpoint: "deploy_status", Kind: emulator.FaultStuck}) // the rollback deploy stays in progress
	for i := 0; i < 40 && e.rotation("prod")["state"] != "rolling_back"; i++ {
		e.clock.Advance(probeInterval)
		e.tick()
	}
	if e.rotation("prod")["state"] != "rolling_back" {
		t.Fatalf("setup: want rolling_back, got %v", e.rotation("prod"))
	}
	// Salesforce now applies the new certificate (late) and refuses the old key.
	app, _ := e.emu.AppByConsumerKey(e.seed.App.ConsumerKey)
	app.CertificatePEM = pending
	e.emu.AddApp(app)
	e.b.tokens.drop("app")
	if got := mustOK(t, e.read("creds/app")).Data["key_version"]; got != 2 {
		t.Fatalf("the read should be served by the pending key, got version %v", got)
	}
	if e.keyStatus("prod", "2") != "pending" || e.rotation("prod")["state"] != "rolling_back" {
		t.Fatalf("a read promoted the key during a rollback: v2 %s, state %v", e.keyStatus("prod", "2"), e.rotation("prod")["state"])
	}
}
