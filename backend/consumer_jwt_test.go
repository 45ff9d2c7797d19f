package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

const (
	jwtECAName = "Vault_JWT_ECA"
	jwtECAID   = "0xI5g00000DeMoJ"
)

// newJWTRotationEnv is newCCRotationEnv's org with, instead of the client-credentials
// connection, a jwt_bearer connection "jwt" on an External Client App of its own (its
// certificate registered), whose consumer key "admin" rotates, and a per_lease role "japp" on
// it for the integration user.
func newJWTRotationEnv(t testing.TB, extra map[string]any) *testEnv {
	t.Helper()
	e := newCCRotationEnv(t, nil)
	app := e.emu.AddApp(emulator.App{Name: jwtECAName, Type: "external_client_app", ID: jwtECAID, OrgID: emulator.DemoOrgID,
		AdminApproved: true, PreAuthorizedUsers: []string{emulator.DemoUsername}, Scopes: []string{"Api"}})
	d := map[string]any{"consumer_key": app.ConsumerKey, "app_type": appTypeExternalClientApp,
		"credentials_rotation_connection": "admin", "credentials_overlap": "10m"}
	for k, v := range extra {
		d[k] = v
	}
	resp := mustOK(t, e.write("connections/jwt", e.connectionData(d)))
	if err := e.emu.SetAppCertificate(app.ConsumerKey, resp.Data["certificate"].(string)); err != nil {
		t.Fatal(err)
	}
	mustOK(t, e.write("roles/japp", map[string]any{"connection": "jwt", "username": emulator.DemoUsername, "token_mode": "per_lease"}))
	mustOK(t, e.read("creds/japp"))
	e.emu.ResetCounters()
	return e
}

// jwtApp is the jwt connection's ECA as the emulator holds it now.
func (e *testEnv) jwtApp() emulator.App {
	e.t.Helper()
	a, ok := e.emu.AppByName(jwtECAName)
	if !ok {
		e.t.Fatal("the JWT ECA is gone")
	}
	return a
}

// The settings are accepted on a jwt_bearer connection of an External Client App and refused,
// naming the field and why, everywhere else; a refused write changes nothing.
func TestJWTConsumerRotationSettings(t *testing.T) {
	e := newJWTRotationEnv(t, nil)
	e.createConnection("legacy", map[string]any{"app_type": appTypeConnectedApp})
	e.createConnection("twin", map[string]any{"consumer_key": e.jwtApp().ConsumerKey, "app_type": appTypeExternalClientApp, "deploy_username": emulator.DemoDeployUsername})
	cases := []struct {
		name  string
		path  string
		data  map[string]any
		field string // "": accepted
		says  string
	}{
		{"ECA, every setting", "connections/jwt", map[string]any{"credentials_rotation_connection": "admin", "eca_app_id": jwtECAID,
			"credentials_rotation_period": "48h", "credentials_overlap": "2h"}, "", ""},
		{"ECA, schedule", "connections/jwt", map[string]any{"credentials_rotation_period": 0, "credentials_rotation_schedule": "0 3 * * SUN", "credentials_rotation_window": "2h"}, "", ""},
		{"ECA, create", "connections/jwt2", e.connectionData(map[string]any{"consumer_key": "3MVG9Another", "credentials_rotation_connection": "admin"}), "", ""},
		{"connected app", "connections/legacy", map[string]any{"credentials_rotation_connection": "admin"}, "credentials_rotation_connection", "External Client Apps only"},
		{"connected app period", "connections/legacy", map[string]any{"credentials_overlap": "2h"}, "credentials_overlap", "app_type=external_client_app"},
		{"connected app create", "connections/legacy2", e.connectionData(map[string]any{"app_type": appTypeConnectedApp, "eca_app_id": jwtECAID}), "eca_app_id", "Connected App"},
		{"to connected app", "connections/jwt", map[string]any{"app_type": appTypeConnectedApp}, "app_type", "credentials_rotation_connection"},
		{"itself", "connections/jwt", map[string]any{"credentials_rotation_connection": "jwt"}, "credentials_rotation_connection", "itself"},
		{"same key", "connections/jwt", map[string]any{"credentials_rotation_connection": "twin"}, "credentials_rotation_connection", "same consumer key"},
		{"period without connection", "connections/jwt", map[string]any{"credentials_rotation_connection": "", "credentials_rotation_schedule": "", "credentials_rotation_window": 0, "credentials_rotation_period": "24h"}, "credentials_rotation_connection", "required"},
		{"bad app id", "connections/jwt", map[string]any{"eca_app_id": "0xI/x"}, "eca_app_id", "15- or 18-character"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := mustOK(t, e.read("connections/jwt")).Data
			resp, err := e.do(logical.UpdateOperation, c.path, c.data)
			if err != nil {
				t.Fatalf("a 500: %v", err)
			}
			if c.field == "" {
				got := mustOK(t, resp).Data
				for k, v := range c.data {
					if k != "consumer_key" && k != "login_url" && k != "ca_cert" && k != "allow_non_salesforce_host" && toString(got[k]) != toString(v) && !strings.HasSuffix(k, "_period") && !strings.HasSuffix(k, "_window") && k != "credentials_overlap" {
						t.Fatalf("%s reads %v, written %v", k, got[k], v)
					}
				}
				return
			}
			mustErr(t, resp, c.field, c.says)
			if after := mustOK(t, e.read("connections/jwt")).Data; toString(after["credentials_rotation_connection"]) != toString(before["credentials_rotation_connection"]) ||
				toString(after["app_type"]) != toString(before["app_type"]) {
				t.Fatalf("a refused write changed the connection: %v → %v", before, after)
			}
		})
	}
	if d := mustOK(t, e.read("connections/legacy")).Data; d["credentials_rotation_connection"] != nil {
		t.Fatal("a Connected App connection reports consumer rotation settings")
	}
	if d := mustOK(t, e.read("connections/jwt")).Data; d["credentials_overlap"] != int64(7200) || d["eca_app_id"] != jwtECAID {
		t.Fatalf("the accepted settings are not read back: %v", d)
	}
}

// A manual rotation of a JWT ECA connection's consumer key: stage, rotate, prove and switch at
// once; the JWTs the emulator receives then carry the new key as iss, signed by the same key
// (the certificate stays); both keys work during the overlap, the previous one is deleted after
// it, and a consumer_key the operator writes afterwards is what iss names again.
func TestJWTConsumerKeyRotationManual(t *testing.T) {
	e := newJWTRotationEnv(t, nil)
	old := e.jwtApp()
	before := mustOK(t, e.read("connections/jwt")).Data
	r := mustOK(t, e.write("connections/jwt/credentials/rotate", nil)).Data
	if r["state"] != ccStateOverlap || !strings.HasPrefix(r["eca_app_id"].(string), jwtECAID) {
		t.Fatalf("rotate: %v", r)
	}
	now := e.jwtApp()
	if now.ConsumerKey == old.ConsumerKey || e.emu.Counters().CredentialRotations != 1 || e.emu.Counters().CredentialsStaged != 1 {
		t.Fatal("Salesforce's consumer key did not change exactly once")
	}
	// The proof was a JWT with the new key as iss, made before reads moved.
	if by := e.emu.Counters().JWTTokensByIssuer; by[now.ConsumerKey] != 1 || by[old.ConsumerKey] != 0 {
		t.Fatalf("the proof's iss: %v", by)
	}
	e.emu.ResetCounters()
	lease := mustOK(t, e.read("creds/japp"))
	if by := e.emu.Counters().JWTTokensByIssuer; by[now.ConsumerKey] != 1 || by[old.ConsumerKey] != 0 {
		t.Fatalf("a read after the switch sent iss %v, want only the new key", by)
	}
	if !e.emu.TokenActive(lease.Data["access_token"].(string)) {
		t.Fatal("a read after the switch got no working token")
	}
	after := mustOK(t, e.read("connections/jwt")).Data
	if after["consumer_key"] != now.ConsumerKey || after["certificate_fingerprint_sha256"] != before["certificate_fingerprint_sha256"] ||
		after["active_key_version"] != before["active_key_version"] {
		t.Fatalf("the consumer key must follow and the certificate stay: %v", after)
	}
	vs := e.credVersions("jwt")
	if vs[1]["status"] != credPrevious || vs[1]["consumer_key"] != old.ConsumerKey || vs[2]["status"] != credActive || vs[2]["consumer_key"] != now.ConsumerKey || vs[2]["has_secret"] != true {
		t.Fatalf("versions: %v", vs)
	}
	if got := e.emu.AcceptedConsumerKeys(now.ConsumerKey); len(got) != 2 {
		t.Fatalf("both keys must be valid during the overlap: %v", got)
	}
	e.clock.Advance(11 * time.Minute)
	e.tick()
	if r := mustOK(t, e.read("connections/jwt/credentials/rotation")).Data; r["state"] != ccStateIdle || r["last_completed_at"] == "" {
		t.Fatalf("after the overlap: %v", r)
	}
	if got := e.emu.AcceptedConsumerKeys(now.ConsumerKey); len(got) != 1 {
		t.Fatalf("the previous key is still valid: %v", got)
	}
	mustOK(t, e.read("creds/japp"))
	if err := e.revokeLease(lease); err != nil {
		t.Fatalf("revoking a lease minted with the new key: %v", err)
	}
	if strings.Contains(e.logs.String(), now.ConsumerSecret) {
		t.Fatal("the staged secret is in the log")
	}
	// The operator writes a consumer_key: iss follows it, not the key the rotation stored.
	mustOK(t, e.write("connections/jwt", map[string]any{"consumer_key": "3MVG9OperatorKey"}))
	snap, err := e.b.snapshot(context.Background(), e.storage, "jwt")
	if err != nil || snap.iss() != "3MVG9OperatorKey" {
		t.Fatalf("iss after the operator's write: %v %v", snap, err)
	}
	if vs := e.credVersions("jwt"); vs[2]["consumer_key"] != "3MVG9OperatorKey" || vs[2]["has_secret"] != false {
		t.Fatalf("the active version after the operator's write: %v", vs[2])
	}
}

// The key rotation and the consumer-key rotation of one connection never run at once: each is
// refused (manual) or postponed (scheduled) while the other may change what its proof uses, and
// goes ahead once the other is at rest (the consumer rotation's overlap is rest enough).
func TestJWTRotationsExclusive(t *testing.T) {
	t.Run("consumer rotation waits for a key rotation", func(t *testing.T) {
		e := newJWTRotationEnv(t, map[string]any{"credentials_rotation_period": "24h"})
		mustOK(t, e.write("connections/jwt/rotate", nil)) // deploy=manual: verifying until the certificate is uploaded
		if st := e.rotation("jwt")["state"]; st != stateVerifying {
			t.Fatalf("setup: key rotation %v", st)
		}
		mustErr(t, e.write("connections/jwt/credentials/rotate", nil), "key rotation in flight")
		e.clock.Advance(25 * time.Hour) // the consumer rotation is due; no reader runs
		e.tick()
		if c := e.emu.Counters(); c.StagedCredentials != 0 || c.CredentialRotations != 0 {
			t.Fatal("a consumer key rotation started over a key rotation")
		}
		if st := mustOK(t, e.read("connections/jwt/credentials/rotation")).Data["state"]; st != ccStateIdle {
			t.Fatalf("consumer rotation state %v, want idle", st)
		}
	})
	t.Run("key rotation waits for a consumer rotation", func(t *testing.T) {
		e := newJWTRotationEnv(t, nil)
		e.emu.AddFault(emulator.Fault{Endpoint: "staged_credentials", Kind: emulator.FaultStatus, Status: 503, Method: "PATCH"})
		_, _ = e.do(logical.UpdateOperation, "connections/jwt/credentials/rotate", nil) // held at rotating: a 502
		if st := mustOK(t, e.read("connections/jwt/credentials/rotation")).Data["state"]; st != ccStateRotating {
			t.Fatalf("setup: consumer rotation %v", st)
		}
		mustErr(t, e.write("connections/jwt/rotate", nil), "consumer key rotation in flight")
		mustErr(t, e.write("connections/jwt", map[string]any{"login_url": "https://acme.my.salesforce.com", "allow_non_salesforce_host": false, "ca_cert": ""}), "in flight")
		// A key rotation that falls due meanwhile waits too (no reader runs: the clock may jump).
		mustOK(t, e.write("connections/jwt", map[string]any{"key_rotation_period": "24h"}))
		e.clock.Advance(25 * time.Hour)
		e.tick()
		if st := e.rotation("jwt")["state"]; st != stateIdle {
			t.Fatalf("a key rotation started: %v", st)
		}
		e.emu.ClearFaults()
		e.clock.Advance(10 * time.Minute) // past the rotate's retry
		e.tick()
		if st := mustOK(t, e.read("connections/jwt/credentials/rotation")).Data["state"]; st != ccStateOverlap {
			t.Fatalf("consumer rotation %v, want overlap", st)
		}
		e.clock.Advance(time.Minute) // past the held start's retry
		e.tick()
		if st := e.rotation("jwt")["state"]; st == stateIdle { // the overlap holds nothing back
			t.Fatalf("the due key rotation did not start in the overlap: %v", e.rotation("jwt"))
		}
	})
}
