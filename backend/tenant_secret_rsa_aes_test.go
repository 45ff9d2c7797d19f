package backend

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// TestTenantSecretRSAAESKeyWrapTypes: search_index and database secrets are wrapped with
// CKM_RSA_AES_KEY_WRAP, which the emulator opens with its own RFC 5649 unwrap (not this
// plugin's code) and checks against the hash; a second rotation archives the first.
func TestTenantSecretRSAAESKeyWrapTypes(t *testing.T) {
	cases := []struct{ typ, salesforce, oaep string }{
		{"search_index", "SearchIndex", "sha1"},
		{"search_index", "SearchIndex", "sha512"},
		{"database", "Database", "sha1"},
	}
	for _, c := range cases {
		t.Run(c.typ+"/"+c.oaep, func(t *testing.T) {
			e := newTenantSecretEnv(t, nil)
			path := "connections/prod/tenant-secrets/" + c.typ
			mustOK(t, e.write(path, map[string]any{"certificate_name": "Vault_BYOK", "oaep_hash": c.oaep}))
			v1 := mustOK(t, e.write(path+"/rotate", nil)).Data
			e.clock.Advance(7 * 24 * time.Hour) // the longest minimum of the two types
			v2 := mustOK(t, e.write(path+"/rotate", nil)).Data
			at := e.emu.TenantSecrets("")
			if len(at) != 2 || at[0].Type != c.salesforce || at[0].Status != emulator.TenantSecretArchived ||
				at[1].Status != emulator.TenantSecretActive || at[0].Hash != v1["hash_sha256"] || at[1].Hash != v2["hash_sha256"] {
				t.Fatalf("at Salesforce: %+v", at)
			}
			val, err := getEntry[tenantSecretValue](context.Background(), e.storage, tenantSecretValuePath("prod", c.typ, v2["version"].(int)))
			if err != nil || val == nil {
				t.Fatalf("sealed secret: %v", err)
			}
			if sum := sha256.Sum256(val.Secret); base64.StdEncoding.EncodeToString(sum[:]) != at[1].Hash || val.Export == "" {
				t.Fatal("Salesforce accepted another secret than the sealed one, or the export was not kept")
			}
		})
	}
}
