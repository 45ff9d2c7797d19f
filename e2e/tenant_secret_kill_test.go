package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// TestTenantSecretRotationSurvivesKill: kill -9 of the plugin while its rotation is held at the
// emulator, at the upload (Salesforce has not got the secret) and at the read-back after it
// (Salesforce holds it, Vault recorded it uploaded). The restarted plugin reads the rotation
// from storage and the periodic func finishes it with no operator action: Salesforce then holds
// exactly one new active secret, the very one Vault sealed before the upload (same hash), no
// upload of another secret, and the previous active one archived.
func TestTenantSecretRotationSurvivesKill(t *testing.T) {
	cases := []struct {
		name, method string // the tenant_secret call held
		state        string // the rotation state while it is held
		calls        int64  // tenant_secret calls of the rotation up to the held one
		heldAtKill   int    // secrets Salesforce holds when the plugin dies
	}{
		{"upload", "POST", "generated", 1, 1},
		{"read-back", "GET", "uploaded", 2, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Two uploads of a type within Salesforce's 24h: the emulator's interval is cut to 1s.
			e := newBYOKEnv(t, relEnvOptions{emuFlags: []string{"-tenant-secret-min-interval", "1s"}})
			v := e.Vault
			base := Mount + "/connections/prod/tenant-secrets/data"
			v.Write(t, base, map[string]any{"certificate_name": "Vault_BYOK"})
			first := StringField(t, v.Write(t, base+"/rotate", nil), "hash_sha256")
			time.Sleep(1100 * time.Millisecond) // past the emulator's interval since the first upload

			calls := e.Emu.Counter(t, "tenant_secret")
			e.Emu.SetFault(t, map[string]any{"endpoint": "tenant_secret", "kind": emulator.FaultHang, "method": c.method, "count": 1})
			answered := make(chan error, 1)
			go func() {
				_, err := v.Client.Logical().Write(base+"/rotate", nil)
				answered <- err
			}()
			WaitFor(t, 30*time.Second, "the "+c.name+" to be held at the emulator", func() error {
				if e.Emu.Counter(t, "tenant_secret") < calls+c.calls {
					return errNotYet
				}
				return nil
			})
			cfg := v.Read(t, base)
			if cfg.Data["rotation_state"] != c.state || fmt.Sprint(cfg.Data["pending_version"]) != "2" {
				t.Fatalf("while the %s is held the rotation reads %v/%v, want %s/2", c.name, cfg.Data["rotation_state"], cfg.Data["pending_version"], c.state)
			}
			sealed := storedTenantSecret(t, v, "prod", "data", 2) // what Vault stored before the upload
			sum := sha256.Sum256(sealed)
			hash := base64.StdEncoding.EncodeToString(sum[:])

			dead := killPlugin(t, v)
			if err := <-answered; err == nil {
				t.Fatal("the rotate whose plugin was killed reported success")
			}
			e.Emu.ClearFaults(t)
			if held := heldTenantSecrets(t, e.Emu); len(held) != c.heldAtKill {
				t.Fatalf("Salesforce holds %d secrets after the kill, want %d", len(held), c.heldAtKill)
			}
			WaitFor(t, 150*time.Second, "the periodic func to resume and finish the rotation", func() error {
				s, err := v.Client.Logical().Read(base)
				switch {
				case err != nil:
					return fmt.Errorf("read: %w", err) // the plugin restarting
				case s == nil:
					return errNotYet
				}
				if s.Data["rotation_state"] != "idle" || fmt.Sprint(s.Data["active_version"]) != "2" {
					return fmt.Errorf("rotation %v, active version %v", s.Data["rotation_state"], s.Data["active_version"])
				}
				return nil
			})
			if pid := v.PluginPID(t); pid == dead {
				t.Fatalf("plugin pid %d unchanged after kill", dead)
			}

			held := heldTenantSecrets(t, e.Emu)
			if len(held) != 2 || held[0].Hash != first || held[0].Status != emulator.TenantSecretArchived ||
				held[1].Hash != hash || held[1].Status != emulator.TenantSecretActive {
				t.Fatalf("Salesforce holds %+v; want the first (%s) archived and the sealed one (%s) active, nothing else", held, first, hash)
			}
			rows := v.List(t, base+"/versions")
			info, _ := rows.Data["key_info"].(map[string]any)
			v1, _ := info["1"].(map[string]any)
			v2, _ := info["2"].(map[string]any)
			if len(info) != 2 || v1["status"] != "archived" || v2["status"] != "active" || v2["hash_sha256"] != hash || v2["salesforce_id"] != held[1].ID {
				t.Fatalf("Vault's version table %v disagrees with Salesforce %+v", info, held)
			}
			if again := storedTenantSecret(t, v, "prod", "data", 2); string(again) != string(sealed) {
				t.Fatal("the sealed secret of version 2 changed across the kill")
			}
		})
	}
}
