package backend

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

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

func TestImportPendingWithMetadataAPIDeploysNothing(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", metadataConn(e, nil))
	e.createRole("app", "prod", nil)
	key := newRSA(t, 2048)
	cert := selfSigned(t, key)
	mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, key), "certificate": cert}))
	r := e.rotation("prod")
	if r["state"] != "verifying" || r["trigger"] != "import" {
		t.Fatalf("an imported pending key should be verified, not deployed: %v", r)
	}
	mustErr(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs8PEM(t, newRSA(t, 2048)), "activate": true}), "in flight")
	// The operator registers the imported certificate; the probe promotes it.
	_ = e.emu.SetAppCertificate(e.seed.App.ConsumerKey, cert)
	e.tick()
	if e.keyStatus("prod", "2") != "active" {
		t.Fatalf("imported key not promoted: %v", e.rotation("prod"))
	}
	if n := e.emu.Counters().DeployRequests; n != 0 {
		t.Fatalf("an import made %d deploys", n)
	}
}

func TestRoleSharedTTLNotBoundByMaxTTL(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	mustOK(t, e.write("roles/app", map[string]any{"connection": "prod", "username": e.seed.User.Username, "ttl": "90m"}))
	mustErr(t, e.write("roles/leased", map[string]any{"connection": "prod", "username": e.seed.User.Username, "ttl": "90m", "token_mode": "per_lease"}), "max_ttl")
}

func TestConnectionUpdateRefusesCertificate(t *testing.T) {
	e := newTestEnv(t)
	cert := e.createConnection("prod", nil).Data["certificate"].(string)
	mustErr(t, e.write("connections/prod", map[string]any{"certificate": cert}), "certificate", "import")
}

func TestUnknownFieldListsBodyFieldsOnly(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	resp := e.write("connections/prod/promote", map[string]any{"forse": true})
	mustErr(t, resp, `"forse"`, "force", "version")
	if msg := resp.Error().Error(); strings.Contains(msg, "name") {
		t.Errorf("the path capture 'name' is listed as a body field: %s", msg)
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

func TestReliabilityFindingsInput(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	long := "https://acme.my.salesforce.com/" + strings.Repeat("a", 600)
	for _, tc := range []struct {
		path  string
		data  map[string]any
		field string
	}{
		{"roles/x", map[string]any{"connection": "prod", "username": "a\u0085b@x.com"}, "username"},       // NEL
		{"roles/x", map[string]any{"connection": "prod", "username": "ab\u202e@x.com"}, "username"},       // RTL override
		{"roles/x", map[string]any{"connection": "../prod", "username": "a@x.com"}, "connection"},         // path step
		{"connections/prod", map[string]any{"verify_username": "v\x1b@x.com"}, "verify_username"},         // ESC
		{"connections/prod", map[string]any{"certificate_subject": "CN=a\u202eb"}, "certificate_subject"}, // RTL override
		{"connections/prod", map[string]any{"certificate_subject": "CN=" + strings.Repeat("x", 65)}, "certificate_subject"},
		{"connections/prod", map[string]any{"login_url": long}, "login_url"},
		{"connections/prod", map[string]any{"audience": long}, "audience"},
		{"connections/prod", map[string]any{"keep_archived_keys": 1.5}, "keep_archived_keys"},
		{"connections/prod/promote", map[string]any{"version": 1.5}, "version"},
	} {
		resp, err := e.do(logical.UpdateOperation, tc.path, tc.data)
		if err != nil {
			t.Fatalf("%s %v: want a 400, got %v", tc.path, tc.data, err)
		}
		mustErr(t, resp, tc.field)
	}
	if e.read("roles/x") != nil {
		t.Fatal("a refused role was stored")
	}
	if d := e.read("connections/prod").Data; d["keep_archived_keys"] != 2 || d["certificate_subject"] != "CN=vault-plugin-salesforce prod" {
		t.Fatalf("a refused update changed the connection: %v", d)
	}
}
