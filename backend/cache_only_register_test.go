package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

const registerPath = "connections/prod/cache-only-keys/k1/register"

// registerEnv is connection prod logging in as the demo deployer (Manage Encryption Keys), an
// org with BYOK certificate Vault_BYOK and Named Credential Vault_Keys, and cache-only key k1
// created for that certificate by name.
type registerEnv struct {
	*testEnv
	ncID string
}

func newRegisterEnv(t *testing.T) *registerEnv {
	t.Helper()
	e := newTestEnv(t)
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername, emulator.PermManageEncryptionKeys); err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.AddBYOKCertificate("", "Vault_BYOK"); err != nil {
		t.Fatal(err)
	}
	ncID, err := e.emu.AddNamedCredential("", "Vault_Keys", "https://vault.example.com/v1/salesforce/cache-only")
	if err != nil {
		t.Fatal(err)
	}
	e.createConnection("prod", map[string]any{"deploy_username": emulator.DemoDeployUsername})
	mustOK(t, e.write("connections/prod/cache-only-keys/k1", map[string]any{"certificate_name": "Vault_BYOK"}))
	return &registerEnv{testEnv: e, ncID: ncID}
}

// checkOneRegistration asserts Salesforce holds exactly one TenantSecret, the Remote one of k1,
// and that Vault recorded its id.
func (e *registerEnv) checkOneRegistration(t *testing.T) {
	t.Helper()
	at := e.emu.TenantSecrets("")
	if len(at) != 1 {
		t.Fatalf("Salesforce holds %d tenant secrets, want exactly one: %+v", len(at), at)
	}
	got := at[0]
	if got.Source != "REMOTE" || got.Type != "Data" || got.Status != emulator.TenantSecretActive || got.RemoteKeyIdentifier != "k1" ||
		got.RemoteKeyCertificate != "Vault_BYOK" || got.RemoteKeyServiceID != e.ncID || got.Hash != "" {
		t.Fatalf("the registration at Salesforce: %+v", got)
	}
	r := mustOK(t, e.read("connections/prod/cache-only-keys/k1")).Data
	if r["registration_status"] != registerDone || r["salesforce_id"] != got.ID || r["named_credential"] != "Vault_Keys" || r["tenant_secret_type"] != "data" || r["registered_at"] == "" {
		t.Fatalf("Vault's read after the registration: %v (Salesforce id %s)", r, got.ID)
	}
}

// checkUnregistered asserts nothing is at Salesforce and nothing is recorded in Vault.
func (e *registerEnv) checkUnregistered(t *testing.T) {
	t.Helper()
	if at := e.emu.TenantSecrets(""); len(at) != 0 {
		t.Fatalf("Salesforce holds %+v", at)
	}
	k, err := getCacheOnlyKey(context.Background(), e.storage, "k1")
	if err != nil || k == nil || k.Registration != nil {
		t.Fatalf("the key after a refused registration: %+v (%v)", k, err)
	}
	if r := mustOK(t, e.read("connections/prod/cache-only-keys/k1")).Data; r["registration_status"] != registerUnregistered || r["salesforce_id"] != "" {
		t.Fatalf("read: %v", r)
	}
}

func TestCacheOnlyRegister(t *testing.T) {
	e := newRegisterEnv(t)
	if r := mustOK(t, e.read("connections/prod/cache-only-keys/k1")).Data; r["registration_status"] != registerUnregistered {
		t.Fatalf("a new key reads %v", r["registration_status"])
	}
	resp := mustOK(t, e.write(registerPath, map[string]any{"named_credential": "Vault_Keys"})).Data
	if id, _ := resp["salesforce_id"].(string); !strings.HasPrefix(id, "02G") || resp["registration_status"] != registerDone || resp["certificate_name"] != "Vault_BYOK" {
		t.Fatalf("register answered %v", resp)
	}
	e.checkOneRegistration(t)
	// Registered once: a second register is refused, naming the id, and sends nothing.
	mustErr(t, e.write(registerPath, map[string]any{"named_credential": "Vault_Keys"}), "already registered", resp["salesforce_id"].(string))
	e.checkOneRegistration(t)
	listed := mustOK(t, e.list("connections/prod/cache-only-keys")).Data["key_info"].(map[string]any)["k1"].(map[string]any)
	if listed["salesforce_id"] != resp["salesforce_id"] {
		t.Fatalf("list: %v", listed)
	}
}

// Every bad input and every Salesforce refusal is a 400 that names the fix, and leaves nothing
// at Salesforce and nothing recorded in Vault.
func TestCacheOnlyRegisterRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, e *registerEnv)
		path  string
		data  map[string]any
		want  []string
	}{
		{name: "no Manage Encryption Keys", setup: func(t *testing.T, e *registerEnv) {
			if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername); err != nil {
				t.Fatal(err)
			}
		}, data: map[string]any{"named_credential": "Vault_Keys"}, want: []string{"refused", "Manage Encryption Keys"}},
		{name: "named_credential missing", data: map[string]any{}, want: []string{"named_credential", "developer name"}},
		{name: "named_credential malformed", data: map[string]any{"named_credential": "a b"}, want: []string{"named_credential"}},
		{name: "named_credential unknown at Salesforce", data: map[string]any{"named_credential": "Nope"}, want: []string{"named_credential", "names no Named Credential"}},
		{name: "type without cache-only keys", data: map[string]any{"named_credential": "Vault_Keys", "type": "search_index"}, want: []string{"type", "must be one of"}},
		{name: "unknown field", data: map[string]any{"named_credential": "Vault_Keys", "named_credentail": "x"}, want: []string{"unknown field", "named_credentail"}},
		{name: "certificate_name differs from the key's", data: map[string]any{"named_credential": "Vault_Keys", "certificate_name": "Other"}, want: []string{"certificate_name", "differs"}},
		{name: "no such key", path: "connections/prod/cache-only-keys/k9/register", data: map[string]any{"named_credential": "Vault_Keys"}, want: []string{"no cache-only key", "create it first"}},
		{name: "bad kid", path: "connections/prod/cache-only-keys/k.1/register", data: map[string]any{"named_credential": "Vault_Keys"}, want: []string{"kid"}},
		{name: "destroyed key", setup: func(t *testing.T, e *registerEnv) {
			e.del("connections/prod/cache-only-keys/k1")
		}, data: map[string]any{"named_credential": "Vault_Keys"}, want: []string{"destroyed"}},
		{name: "PEM key without certificate_name", setup: func(t *testing.T, e *registerEnv) {
			setKeyCertificateName(t, e, "")
		}, data: map[string]any{"named_credential": "Vault_Keys"}, want: []string{"certificate_name", "is required"}},
		{name: "certificate unknown at Salesforce", setup: func(t *testing.T, e *registerEnv) {
			setKeyCertificateName(t, e, "")
		}, data: map[string]any{"named_credential": "Vault_Keys", "certificate_name": "Nope"}, want: []string{"refused", "RemoteKeyCertificate", "certificate_name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newRegisterEnv(t)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			path := tc.path
			if path == "" {
				path = registerPath
			}
			before := storageSnapshot(t, e.storage)
			mustErr(t, e.write(path, tc.data), tc.want...)
			if after := storageSnapshot(t, e.storage); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatal("a refused registration changed storage")
			}
			if at := e.emu.TenantSecrets(""); len(at) != 0 {
				t.Fatalf("Salesforce holds %+v", at)
			}
		})
	}
	// After a refusal the key registers normally once the cause is fixed.
	e := newRegisterEnv(t)
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername); err != nil {
		t.Fatal(err)
	}
	mustErr(t, e.write(registerPath, map[string]any{"named_credential": "Vault_Keys"}), "Manage Encryption Keys")
	e.checkUnregistered(t)
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername, emulator.PermManageEncryptionKeys); err != nil {
		t.Fatal(err)
	}
	mustOK(t, e.write(registerPath, map[string]any{"named_credential": "Vault_Keys"}))
	e.checkOneRegistration(t)
}

// setKeyCertificateName makes k1 look created from a PEM (name "").
func setKeyCertificateName(t *testing.T, e *registerEnv, name string) {
	t.Helper()
	k, err := getCacheOnlyKey(context.Background(), e.storage, "k1")
	if err != nil || k == nil {
		t.Fatal(err)
	}
	k.CertificateName = name
	if err := putJSON(context.Background(), e.storage, cacheOnlyKeyPath("k1"), k); err != nil {
		t.Fatal(err)
	}
}

func (e *registerEnv) registerOn(s logical.Storage) (*logical.Response, error) {
	req := &logical.Request{Operation: logical.UpdateOperation, Path: registerPath, Storage: s,
		Data: map[string]any{"named_credential": "Vault_Keys"}, Connection: &logical.Connection{RemoteAddr: "127.0.0.1"}}
	resp, err := e.b.HandleRequest(context.Background(), req)
	e.record(resp, err)
	return resp, err
}

// A crash before every write of a registration (the last one is after the create reached
// Salesforce): a fresh backend on the same storage registers again and Salesforce holds
// exactly one registration, the one Vault records.
func TestCacheOnlyRegisterResumesAfterCrashAtEveryStep(t *testing.T) {
	crashAtEveryWrite(t, crashPlan[*registerEnv]{minWrites: 2, fresh: newRegisterEnv, // the intent and the result
		op:      func(e *registerEnv, s *crashStorage) { _, _ = e.registerOn(s) },
		counted: func(t *testing.T, e *registerEnv) { e.checkOneRegistration(t) },
		resume: func(t *testing.T, e *registerEnv, n, total int) {
			if n == total {
				if len(e.emu.TenantSecrets("")) != 1 {
					t.Fatal("the last write is not after the create at Salesforce")
				}
				// The create reached Salesforce: the resume must find it, not send another
				// (which this fault would turn into a 502).
				e.emu.AddFault(emulator.Fault{Endpoint: "tenant_secret", Kind: emulator.FaultStatus, Status: 503, Method: http.MethodPost})
			}
			e.b.Cleanup(context.Background())
			e.b = restartBackend(t, e.testEnv)
			mustOK(t, e.write(registerPath, map[string]any{"named_credential": "Vault_Keys"}))
			e.checkOneRegistration(t)
		},
	})
}

// An outage on the create is a 502 that leaves the intent recorded; the next register
// completes it with one registration.
func TestCacheOnlyRegisterOutageResumes(t *testing.T) {
	e := newRegisterEnv(t)
	e.emu.AddFault(emulator.Fault{Endpoint: "tenant_secret", Kind: emulator.FaultStatus, Status: 503, Count: 1, Method: http.MethodPost})
	_, err := e.do(logical.UpdateOperation, registerPath, map[string]any{"named_credential": "Vault_Keys"})
	var ce logical.HTTPCodedError
	if !errors.As(err, &ce) || ce.Code() != http.StatusBadGateway {
		t.Fatalf("an outage answered %v, want a 502", err)
	}
	if r := mustOK(t, e.read("connections/prod/cache-only-keys/k1")).Data; r["registration_status"] != registerPending || r["salesforce_id"] != "" {
		t.Fatalf("after the outage: %v", r)
	}
	if at := e.emu.TenantSecrets(""); len(at) != 0 {
		t.Fatalf("Salesforce holds %+v after the outage", at)
	}
	mustOK(t, e.write(registerPath, map[string]any{"named_credential": "Vault_Keys"}))
	e.checkOneRegistration(t)
}
