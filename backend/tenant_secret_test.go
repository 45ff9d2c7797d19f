package backend

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

const tsPath = "connections/prod/tenant-secrets/data"

// newTenantSecretEnv is a connection prod that logs in as the demo deployer, who holds Manage
// Encryption Keys, in an org with BYOK certificate Vault_BYOK, and a data config for it.
func newTenantSecretEnv(t *testing.T, extra map[string]any) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername, emulator.PermManageEncryptionKeys); err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.AddBYOKCertificate("", "Vault_BYOK"); err != nil {
		t.Fatal(err)
	}
	e.createConnection("prod", map[string]any{"deploy_username": emulator.DemoDeployUsername})
	d := map[string]any{"certificate_name": "Vault_BYOK"}
	for k, v := range extra {
		d[k] = v
	}
	mustOK(t, e.write(tsPath, d))
	return e
}

func (e *testEnv) tsVersions() map[string]any {
	e.t.Helper()
	resp := mustOK(e.t, e.list(tsPath+"/versions"))
	if resp == nil {
		return map[string]any{}
	}
	return resp.Data["key_info"].(map[string]any)
}

func TestTenantSecretConfigRefusals(t *testing.T) {
	e := newTenantSecretEnv(t, nil)
	cases := []struct {
		name, path string
		data       map[string]any
		want       string
	}{
		{"unknown type", "connections/prod/tenant-secrets/bogus", map[string]any{"certificate_name": "Vault_BYOK"}, "type"},
		{"search index below a week", "connections/prod/tenant-secrets/search_index", map[string]any{"certificate_name": "Vault_BYOK", "rotation_period": "100h"}, "rotation_period"},
		{"no certificate name", "connections/prod/tenant-secrets/analytics", map[string]any{}, "certificate_name"},
		{"unknown certificate", "connections/prod/tenant-secrets/analytics", map[string]any{"certificate_name": "Nope"}, "certificate_name"},
		{"bad certificate PEM", "connections/prod/tenant-secrets/analytics", map[string]any{"certificate_name": "Vault_BYOK", "certificate": "not a pem"}, "certificate"},
		{"period below the minimum", tsPath, map[string]any{"rotation_period": "23h"}, "rotation_period"},
		{"event bus below a week", "connections/prod/tenant-secrets/event_bus", map[string]any{"certificate_name": "Vault_BYOK", "rotation_period": "100h"}, "rotation_period"},
		{"keep 0", tsPath, map[string]any{"keep_archived": 0}, "keep_archived"},
		{"keep 50", tsPath, map[string]any{"keep_archived": 50}, "keep_archived"},
		{"bad oaep hash", tsPath, map[string]any{"oaep_hash": "md5"}, "oaep_hash"},
		{"unknown field", tsPath, map[string]any{"rotation_perod": "24h"}, "rotation_perod"},
		{"no connection", "connections/nope/tenant-secrets/data", map[string]any{"certificate_name": "Vault_BYOK"}, "does not exist"},
	}
	before := mustOK(t, e.read(tsPath)).Data
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustErr(t, e.write(c.path, c.data), c.want)
		})
	}
	after := mustOK(t, e.read(tsPath)).Data
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("a refused write changed the config:\n%v\n%v", before, after)
	}
	if r := e.read("connections/prod/tenant-secrets/analytics"); r != nil {
		t.Fatalf("a refused create stored a config: %v", r.Data)
	}
	mustOK(t, e.write(tsPath, map[string]any{"rotation_period": "24h", "keep_archived": 49, "oaep_hash": "sha512"}))
}

func TestTenantSecretRotateArchiveDestroyRestore(t *testing.T) {
	e := newTenantSecretEnv(t, map[string]any{"oaep_hash": "sha512"})
	v1 := mustOK(t, e.write(tsPath+"/rotate", nil)).Data
	if v1["status"] != tsActive || !strings.HasPrefix(v1["salesforce_id"].(string), "02G") {
		t.Fatalf("first rotation: %v", v1)
	}
	// Too soon for Salesforce: a 400 that says what to do, and no pending rotation left.
	e.clock.Advance(time.Hour)
	mustErr(t, e.write(tsPath+"/rotate", nil), "rotation did not happen", "rotation_period")
	if cfg := mustOK(t, e.read(tsPath)).Data; cfg["rotation_state"] != "idle" || cfg["last_error"] == "" {
		t.Fatalf("after a refusal: %v", cfg)
	}
	e.clock.Advance(24 * time.Hour)
	v2 := mustOK(t, e.write(tsPath+"/rotate", nil)).Data
	at := e.emu.TenantSecrets("")
	if len(at) != 2 || at[0].Status != emulator.TenantSecretArchived || at[1].Status != emulator.TenantSecretActive || at[1].Hash != v2["hash_sha256"] {
		t.Fatalf("at Salesforce: %+v", at)
	}
	vs := e.tsVersions()
	// A refused rotation's number is not reused: the next is 3.
	if vs["1"].(map[string]any)["status"] != tsArchived || vs["3"].(map[string]any)["status"] != tsActive || len(vs) != 2 {
		t.Fatalf("version table: %v", vs)
	}
	// The sealed secret hashes to what Salesforce accepted.
	val, _ := getEntry[tenantSecretValue](context.Background(), e.storage, tenantSecretValuePath("prod", "data", 3))
	sum := sha256.Sum256(val.Secret)
	if base64.StdEncoding.EncodeToString(sum[:]) != at[1].Hash || val.Export == "" {
		t.Fatal("the sealed secret is not the one Salesforce holds, or its export was not kept")
	}
	mustErr(t, e.write(tsPath+"/versions/3/destroy", nil), "active")
	mustOK(t, e.write(tsPath+"/versions/1/destroy", nil))
	if s := e.emu.TenantSecrets("")[0].Status; s != emulator.TenantSecretDestroyed {
		t.Fatalf("Salesforce status after destroy: %s", s)
	}
	mustOK(t, e.write(tsPath+"/versions/1/restore", nil))
	if s := e.emu.TenantSecrets("")[0].Status; s != emulator.TenantSecretArchived {
		t.Fatalf("Salesforce status after restore: %s", s)
	}
	if r := mustOK(t, e.read(tsPath+"/versions/1")).Data; r["status"] != tsArchived || r["source"] != "vault" {
		t.Fatalf("version 1 after restore: %v", r)
	}
	mustErr(t, e.write(tsPath+"/versions/1/restore", map[string]any{"bogus": 1}), "bogus")
	mustErr(t, e.del(tsPath), "restore")
}

func TestTenantSecretRefusedWithoutPermission(t *testing.T) {
	e := newTenantSecretEnv(t, nil)
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername); err != nil {
		t.Fatal(err)
	}
	mustErr(t, e.write(tsPath+"/rotate", nil), "Manage Encryption Keys")
	if n := len(e.emu.TenantSecrets("")); n != 0 {
		t.Fatalf("%d secrets at Salesforce", n)
	}
	if v, err := getEntry[tenantSecretValue](context.Background(), e.storage, tenantSecretValuePath("prod", "data", 1)); err != nil || v != nil {
		t.Fatalf("the refused secret is still sealed in Vault (%v)", err)
	}
}

func TestTenantSecretRetention(t *testing.T) {
	e := newTenantSecretEnv(t, map[string]any{"keep_archived": 1, "auto_destroy": true})
	for i := 0; i < 4; i++ {
		mustOK(t, e.write(tsPath+"/rotate", nil))
		e.clock.Advance(25 * time.Hour)
	}
	at := e.emu.TenantSecrets("")
	want := []string{emulator.TenantSecretDestroyed, emulator.TenantSecretDestroyed, emulator.TenantSecretArchived, emulator.TenantSecretActive}
	for i, s := range at {
		if s.Status != want[i] {
			t.Fatalf("at Salesforce: %+v", at)
		}
	}
	vs := e.tsVersions()
	if len(vs) != 2 || vs["3"] == nil || vs["4"] == nil {
		t.Fatalf("Vault kept %v", vs)
	}
	for _, v := range []int{1, 2} {
		if got, _ := getEntry[tenantSecretValue](context.Background(), e.storage, tenantSecretValuePath("prod", "data", v)); got != nil {
			t.Fatalf("version %d's secret was not erased", v)
		}
	}
	// Without auto_destroy nothing is destroyed.
	mustOK(t, e.write(tsPath, map[string]any{"auto_destroy": false}))
	mustOK(t, e.write(tsPath+"/rotate", nil))
	if n := len(e.tsVersions()); n != 3 {
		t.Fatalf("without auto_destroy: %d versions", n)
	}
}

// A crash before every storage write of a rotation: a fresh backend on the same storage
// finishes it with exactly one upload at Salesforce, the one whose secret Vault holds.
func TestTenantSecretRotationResumesAfterCrashAtEveryStep(t *testing.T) {
	// data is wrapped with RSA-OAEP, search_index with CKM_RSA_AES_KEY_WRAP (a fresh ephemeral
	// key on every attempt, the same sealed secret and hash).
	for _, typ := range []string{"data", "search_index"} {
		t.Run(typ, func(t *testing.T) { testTenantSecretCrashAtEveryStep(t, typ) })
	}
}

func testTenantSecretCrashAtEveryStep(t *testing.T, typ string) {
	path := "connections/prod/tenant-secrets/" + typ
	env := func(t *testing.T) *testEnv {
		e := newTenantSecretEnv(t, nil)
		mustOK(t, e.write(path, map[string]any{"certificate_name": "Vault_BYOK"}))
		return e
	}
	crashAtEveryWrite(t, crashPlan[*testEnv]{minWrites: 4, fresh: env,
		op: func(e *testEnv, s *crashStorage) {
			_, _, _ = e.b.rotateTenantSecret(context.Background(), s, "prod", typ, "manual")
		},
		counted: func(t *testing.T, e *testEnv) {
			if at := e.emu.TenantSecrets(""); len(at) != 1 || at[0].Status != emulator.TenantSecretActive {
				t.Fatalf("setup: an uninterrupted rotation left %+v at Salesforce", at)
			}
		},
		resume: func(t *testing.T, e *testEnv, _, _ int) {
			e.b.Cleanup(context.Background())
			e.b = restartBackend(t, e)
			v := mustOK(t, e.write(path+"/rotate", nil)).Data
			at := e.emu.TenantSecrets("")
			if len(at) != 1 || at[0].Status != emulator.TenantSecretActive || at[0].Hash != v["hash_sha256"] {
				t.Fatalf("at Salesforce: %+v, Vault: %v", at, v)
			}
			val, _ := getEntry[tenantSecretValue](context.Background(), e.storage, tenantSecretValuePath("prod", typ, v["version"].(int)))
			sum := sha256.Sum256(val.Secret)
			if base64.StdEncoding.EncodeToString(sum[:]) != at[0].Hash || val.Export == "" {
				t.Fatal("the secret Vault holds is not the one Salesforce accepted: a secret was lost")
			}
			if keys := mustOK(t, e.list(path+"/versions")).Data["keys"].([]string); len(keys) != 1 {
				t.Fatalf("versions: %v", keys)
			}
		},
	})
}

// rotation_period drives rotations from the periodic func: the first at once, the next one
// period later, none in between; a restarted backend picks the schedule up from storage.
func TestTenantSecretScheduledRotation(t *testing.T) {
	e := newTenantSecretEnv(t, map[string]any{"rotation_period": "24h"})
	e.tick()
	if n := len(e.emu.TenantSecrets("")); n != 1 {
		t.Fatalf("after the first tick: %d uploads", n)
	}
	e.clock.Advance(23 * time.Hour)
	e.tick()
	if n := len(e.emu.TenantSecrets("")); n != 1 {
		t.Fatalf("before the period: %d uploads", n)
	}
	e.b.Cleanup(context.Background())
	e.b = restartBackend(t, e)
	e.clock.Advance(2 * time.Hour)
	e.tick()
	at := e.emu.TenantSecrets("")
	if len(at) != 2 || at[1].Status != emulator.TenantSecretActive {
		t.Fatalf("after the period: %+v", at)
	}
	if cfg := mustOK(t, e.read(tsPath)).Data; cfg["next_scheduled_rotation"] == "" || cfg["active_version"] != 2 {
		t.Fatalf("config after the scheduled rotation: %v", cfg)
	}
}

// An outage during the upload is a 502, leaves the rotation recorded, and the next rotate
// finishes it with the same secret and one upload.
func TestTenantSecretOutageResumes(t *testing.T) {
	e := newTenantSecretEnv(t, nil)
	e.emu.AddFault(emulator.Fault{Endpoint: "tenant_secret", Kind: emulator.FaultStatus, Status: 503, Count: 1})
	_, err := e.do(logical.UpdateOperation, tsPath+"/rotate", nil)
	var ce logical.HTTPCodedError
	if !errors.As(err, &ce) || ce.Code() != http.StatusBadGateway {
		t.Fatalf("an outage answered %v, want a 502", err)
	}
	cfg := mustOK(t, e.read(tsPath)).Data
	if cfg["rotation_state"] != tsGenerated || cfg["pending_version"] != 1 {
		t.Fatalf("after the outage: %v", cfg)
	}
	v := mustOK(t, e.write(tsPath+"/rotate", nil)).Data
	at := e.emu.TenantSecrets("")
	if len(at) != 1 || v["version"] != 1 || at[0].Hash != v["hash_sha256"] {
		t.Fatalf("after the resume: Salesforce %+v, Vault %v", at, v)
	}
	// Destroy during an outage: a 502, nothing recorded.
	e.clock.Advance(25 * time.Hour)
	mustOK(t, e.write(tsPath+"/rotate", nil))
	e.emu.AddFault(emulator.Fault{Endpoint: "tenant_secret", Kind: emulator.FaultStatus, Status: 503, Count: 100})
	if _, err := e.do(logical.UpdateOperation, tsPath+"/versions/1/destroy", nil); !errors.As(err, &ce) || ce.Code() != http.StatusBadGateway {
		t.Fatalf("destroy during an outage: %v", err)
	}
	if r := mustOK(t, e.read(tsPath+"/versions/1")).Data; r["status"] != tsArchived {
		t.Fatalf("a failed destroy changed the table: %v", r)
	}
}

// A crash before every write of a rotation that also applies retention: after a restart and
// one more rotate, Salesforce holds exactly three uploads, and every version Vault erased is
// destroyed at Salesforce (never erased here first).
func TestTenantSecretRetentionCrashAtEveryStep(t *testing.T) {
	setup := func(t *testing.T) *testEnv {
		e := newTenantSecretEnv(t, map[string]any{"keep_archived": 1, "auto_destroy": true})
		for i := 0; i < 2; i++ {
			mustOK(t, e.write(tsPath+"/rotate", nil))
			e.clock.Advance(25 * time.Hour)
		}
		return e
	}
	crashAtEveryWrite(t, crashPlan[*testEnv]{minWrites: 1, fresh: setup,
		op: func(e *testEnv, s *crashStorage) {
			_, _, _ = e.b.rotateTenantSecret(context.Background(), s, "prod", "data", "manual")
		},
		resume: func(t *testing.T, e *testEnv, _, _ int) {
			e.b.Cleanup(context.Background())
			e.b = restartBackend(t, e)
			if len(e.emu.TenantSecrets("")) == 2 { // the crash came before the upload: rotate anew
				mustOK(t, e.write(tsPath+"/rotate", nil))
			} else if r := e.write(tsPath+"/rotate", nil); r != nil && r.IsError() && !strings.Contains(r.Error().Error(), "once every") {
				t.Fatalf("resume: %v", r.Error())
			}
			at := e.emu.TenantSecrets("")
			if len(at) != 3 {
				t.Fatalf("%d uploads at Salesforce, want 3", len(at))
			}
			vs := e.tsVersions()
			held := map[string]bool{}
			for _, v := range vs {
				held[v.(map[string]any)["salesforce_id"].(string)] = true
			}
			for _, s := range at {
				if !held[s.ID] && s.Status != emulator.TenantSecretDestroyed {
					t.Fatalf("version %d was erased from Vault but is %s at Salesforce", s.Version, s.Status)
				}
			}
			if at[2].Status != emulator.TenantSecretActive {
				t.Fatalf("the last upload is %s", at[2].Status)
			}
		},
	})
}

// A rotation announces itself on Vault's event bus as started and completed, with the
// versions, under kind tenant_secret.
func TestTenantSecretRotationEvents(t *testing.T) {
	e := newTenantSecretEnv(t, nil)
	mustOK(t, e.write(tsPath+"/rotate", nil))
	var kinds []string
	for _, ev := range e.sentEvents() {
		if ev.md["kind"] == kindTenantSecret && ev.md["target"] == "data" {
			kinds = append(kinds, ev.md["outcome"]+":"+ev.md["active_version"]+ev.md["pending_version"])
		}
	}
	if strings.Join(kinds, ",") != "started:1,completed:1" {
		t.Fatalf("events %v", kinds)
	}
}

// A tenant-secret type outliving its connection would keep its schedule and its exports with no
// org to rotate or restore them in, and a connection made anew under the name would inherit
// them. The delete is refused, naming the types, and leaves storage as it was; once the types
// are deleted (possible only while Salesforce holds no version) the connection goes.
func TestConnectionDeleteRefusedWhileTenantSecretsManaged(t *testing.T) {
	e := newTenantSecretEnv(t, nil)
	mustOK(t, e.write("connections/prod/tenant-secrets/analytics", map[string]any{"certificate_name": "Vault_BYOK"}))
	mustOK(t, e.write(tsPath+"/rotate", nil))
	before := storageSnapshot(t, e.storage)
	mustErr(t, e.del("connections/prod"), "tenant secret type(s) analytics, data", "connections/prod/tenant-secrets/<type>")
	if after := storageSnapshot(t, e.storage); !reflect.DeepEqual(before, after) {
		t.Fatal("a refused connection delete changed storage")
	}
	// data has a version at Salesforce: it stays, and so does the connection.
	mustErr(t, e.del(tsPath), "export")
	mustOK(t, e.del("connections/prod/tenant-secrets/analytics"))
	mustErr(t, e.del("connections/prod"), "tenant secret type(s) data")
	if e.read("connections/prod") == nil {
		t.Fatal("the connection was deleted while it manages a tenant secret")
	}
}

// A type written while its connection is deleted either blocks the delete or is refused
// itself: never do both succeed (a stranded type). The write is held in its certificate read
// at Salesforce, after it saw the connection, while the delete runs.
func TestConnectionDeleteRacingTenantSecretWrite(t *testing.T) {
	e := newTenantSecretEnv(t, nil)
	mustOK(t, e.del(tsPath)) // no versions yet: the type can go, so only the race is left
	e.emu.AddFault(emulator.Fault{Endpoint: "tenant_secret", Kind: emulator.FaultLatency, Latency: 300 * time.Millisecond, Count: 1})
	var wg sync.WaitGroup
	var write *logical.Response
	wg.Add(1)
	go func() { defer wg.Done(); write = e.write(tsPath, map[string]any{"certificate_name": "Vault_BYOK"}) }()
	time.Sleep(100 * time.Millisecond)
	del := e.del("connections/prod")
	wg.Wait()
	if del != nil && del.IsError() {
		// Only on a machine so loaded that the write finished first: then the delete must
		// have seen the type, and the connection must still be there.
		mustOK(t, write)
		mustErr(t, del, "tenant secret type(s) data")
		return
	}
	mustErr(t, write, "connection", "deleted")
	types, err := e.storage.List(context.Background(), tenantSecretsPrefix+"prod/")
	if err != nil || len(types) > 0 {
		t.Fatalf("the connection was deleted and its tenant secret types %v kept (%v)", types, err)
	}
}
