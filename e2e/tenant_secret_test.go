package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// TestTenantSecretBYOK rotates a Shield tenant secret through a real Vault: the plugin reads the
// BYOK certificate through the emulator's Tooling API, and the upload it makes is one the
// emulator (Salesforce's side, holding the certificate's private key) unwraps to 32 bytes whose
// SHA-256 matches; the version table agrees with Salesforce; the active version cannot be
// destroyed; a search_index secret (CKM_RSA_AES_KEY_WRAP) is accepted too; and neither secret
// (base64, hex) appears in any response, audit or server log line.
func TestTenantSecretBYOK(t *testing.T) {
	t.Parallel()
	e := newBYOKEnv(t, relEnvOptions{trace: true})
	v := e.Vault
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	v.CLI(t, "audit", "enable", "file", "file_path="+auditPath)

	base := Mount + "/connections/prod/tenant-secrets/data"
	cfg := v.Write(t, base, map[string]any{"certificate_name": "Vault_BYOK", "rotation_period": "720h"})
	v.Write(t, Mount+"/connections/prod/tenant-secrets/search_index", map[string]any{"certificate_name": "Vault_BYOK"})
	if StringField(t, cfg, "certificate_fingerprint_sha256") == "" {
		t.Fatal("the certificate was not read through the Tooling API")
	}
	rotated := v.Write(t, base+"/rotate", nil)
	hash := StringField(t, rotated, "hash_sha256")

	held := heldTenantSecrets(t, e.Emu)
	if len(held) != 1 || held[0].Status != emulator.TenantSecretActive || held[0].Hash != hash || held[0].ID != StringField(t, rotated, "salesforce_id") {
		t.Fatalf("Salesforce holds %+v; Vault says %v", held, rotated.Data)
	}
	secret := storedTenantSecret(t, v, "prod", "data", 1)
	sum := sha256.Sum256(secret)
	if len(secret) != 32 || base64.StdEncoding.EncodeToString(sum[:]) != hash {
		t.Fatal("the sealed secret is not the one Salesforce accepted")
	}
	list := v.List(t, base+"/versions")
	if list == nil || len(list.Data["keys"].([]any)) != 1 {
		t.Fatalf("versions: %v", list)
	}
	if _, err := v.Client.Logical().Write(base+"/versions/1/destroy", nil); err == nil || !strings.Contains(err.Error(), "active") {
		t.Fatalf("destroying the active version: %v", err)
	}

	// A search_index secret goes out CKM_RSA_AES_KEY_WRAP wrapped; the emulator opens it with
	// its own RFC 5649 unwrap and checks the hash.
	si := v.Write(t, Mount+"/connections/prod/tenant-secrets/search_index/rotate", nil)
	if held := heldTenantSecrets(t, e.Emu); len(held) != 2 || held[1].Type != "SearchIndex" || held[1].Status != emulator.TenantSecretActive ||
		held[1].Hash != StringField(t, si, "hash_sha256") {
		t.Fatalf("after the search_index rotation Salesforce holds %+v; Vault says %v", held, si.Data)
	}
	siSecret := storedTenantSecret(t, v, "prod", "search_index", 1)

	needles := map[string]string{"base64": base64.StdEncoding.EncodeToString(secret), "base64url": base64.RawURLEncoding.EncodeToString(secret), "hex": hex.EncodeToString(secret),
		"search_index base64": base64.StdEncoding.EncodeToString(siSecret), "search_index hex": hex.EncodeToString(siSecret)}
	haystacks := map[string][]string{"audit log": relReadLines(t, auditPath), "server log": relReadLines(t, v.LogPath)}
	if logCountAny(haystacks["audit log"], "tenant-secrets/data/rotate") == 0 || logCountAny(haystacks["server log"], "rotated a tenant secret") == 0 {
		t.Fatal("the logs hold no rotation lines: the scan would prove nothing")
	}
	for where, lines := range haystacks {
		all := strings.Join(lines, "\n")
		for what, n := range needles {
			if strings.Contains(all, n) {
				t.Errorf("the tenant secret (%s) found in the %s", what, where)
			}
		}
	}
	for _, ex := range v.Rec.Exchanges() {
		for what, n := range needles {
			if bytes.Contains(ex.Body, []byte(n)) && !strings.Contains(ex.Path, "sys/raw") {
				t.Errorf("the tenant secret (%s) in the response to %s %s", what, ex.Method, ex.Path)
			}
		}
	}
}

// newBYOKEnv is a real Vault and an emulator whose deploy user holds Manage Encryption Keys, in
// an org with BYOK certificate Vault_BYOK, and a trusted connection prod that logs in as it.
func newBYOKEnv(t *testing.T, o relEnvOptions) *Env {
	t.Helper()
	e := newRelEnv(t, o)
	e.Emu.SetPermissions(t, e.Emu.DeployUsername, emulator.PermManageEncryptionKeys)
	e.Emu.AddBYOKCertificate(t, "Vault_BYOK")
	e.CreateConnection(t, e.Vault, "prod", map[string]any{"deploy_username": e.Emu.DeployUsername})
	e.TrustConnection(t, e.Vault, "prod")
	return e
}

// heldTenantSecrets are the tenant secrets Salesforce (the emulator) holds, oldest first.
func heldTenantSecrets(t *testing.T, emu *Emulator) []emulator.TenantSecretRecord {
	t.Helper()
	var held []emulator.TenantSecretRecord
	if err := json.Unmarshal(emu.admin(t, http.MethodGet, "/__emulator/tenant-secrets", nil), &held); err != nil {
		t.Fatal(err)
	}
	return held
}

// storedTenantSecret reads the sealed secret of a version through sys/raw (the test's view of
// storage, as an operator with root could).
func storedTenantSecret(t *testing.T, v *Vault, conn, typ string, version int) []byte {
	t.Helper()
	url := v.Addr + "/v1/sys/raw/logical/" + relMountUUID(t, v) + "/secrets/" + conn + "/tenant-secrets/" + typ + "/" + strconv.Itoa(version)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var raw struct {
		Data struct {
			Value string `json:"value"`
		} `json:"data"`
	}
	var entry struct {
		Secret []byte `json:"secret"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &raw) != nil || json.Unmarshal([]byte(raw.Data.Value), &entry) != nil {
		t.Fatalf("sys/raw of the tenant secret: HTTP %d", resp.StatusCode)
	}
	return entry.Secret
}
