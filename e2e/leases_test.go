package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// mintLeased reads a per_lease role n times and returns the tokens by lease id.
func mintLeased(t *testing.T, e *Env, role string, n int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < n; i++ {
		s := ReadCreds(t, e.Vault.Client, role)
		if s.LeaseID == "" {
			t.Fatalf("per_lease read of %s returned no lease", role)
		}
		out[s.LeaseID] = s.Data["access_token"].(string)
	}
	return out
}

// TestLeaseRevokePrefix: an operator's incident response, `vault lease revoke -prefix`, revokes
// every token of the role at Salesforce, and leaves other roles' tokens alone.
func TestLeaseRevokePrefix(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	e.Ready(t, v, "demo", "leased", map[string]any{"token_mode": "per_lease"})
	e.CreateRole(t, v, "other", "demo", map[string]any{"token_mode": "per_lease"})

	leased := mintLeased(t, e, "leased", 3)
	other := mintLeased(t, e, "other", 1)

	v.CLI(t, "lease", "revoke", "-prefix", Mount+"/creds/leased")
	for _, tok := range leased {
		e.Emu.RequireTokenRevoked(t, tok)
	}
	for _, tok := range other {
		if !e.Emu.TokenActive(t, tok) {
			t.Error("revoke -prefix of creds/leased revoked a creds/other token")
		}
	}
	if n := e.Emu.Counter(t, "revocations"); n != int64(len(leased)) {
		t.Errorf("the emulator counted %d revocations, want %d", n, len(leased))
	}
}

// TestSecretsDisableWithLiveLeases: disabling the mount revokes its live leases, and so their
// tokens at Salesforce, before the engine goes away.
func TestSecretsDisableWithLiveLeases(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	e.Ready(t, v, "demo", "leased", map[string]any{"token_mode": "per_lease"})
	leased := mintLeased(t, e, "leased", 2)
	for _, tok := range leased {
		e.Emu.RequireTokenAccepted(t, tok)
	}

	v.CLI(t, "secrets", "disable", Mount+"/")
	for _, tok := range leased {
		e.Emu.RequireTokenRevoked(t, tok)
	}
	var mounts map[string]json.RawMessage
	v.CLIJSON(t, &mounts, []string{"secrets", "list"})
	if _, ok := mounts[Mount+"/"]; ok {
		t.Fatalf("%s/ still mounted after disable", Mount)
	}
	for id := range leased {
		if _, stderr, err := v.TryCLI(t, "lease", "lookup", id); err == nil || !strings.Contains(stderr, "invalid lease") {
			t.Errorf("lease %s still known after disable: %v %s", id, err, stderr)
		}
	}
	// With its last mount gone, Vault cleans the backend up and stops the plugin process; a
	// Cleanup that hangs (a goroutine waiting on Salesforce, say) would leave it running.
	if err := poll(15*time.Second, 200*time.Millisecond, func() error {
		if pids := v.PluginPIDs(t); len(pids) > 0 {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Errorf("plugin processes remain after the last mount was disabled: %v", v.PluginPIDs(t))
	}
}
