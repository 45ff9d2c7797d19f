package e2e

import (
	"testing"
)

// TestHACluster runs one 3-node Raft cluster for all the HA checks (bringing one up is the slow
// part of the suite). In Vault CE only the active node runs the plugin; standbys forward to it,
// and a new active node must serve the same connections and keys from replicated storage.
func TestHACluster(t *testing.T) {
	cfg := LoadConfig(t)
	e := &Env{Cfg: cfg, Emu: StartEmulator(t, cfg)}
	c := StartCluster(t, cfg)

	leader := c.Leader(t)
	t.Logf("leader %s; standbys %v", leader.Name, names(c.Standbys(t)))
	e.Ready(t, leader, "demo", "shared", nil)
	e.CreateRole(t, leader, "leased", "demo", map[string]any{"token_mode": "per_lease"})
	before := readConnectionState(t, leader, "demo")

	t.Run("mint through a standby", func(t *testing.T) {
		for _, s := range c.Standbys(t) {
			e.Emu.RequireTokenAccepted(t, ReadCreds(t, s.Client, "shared").Data["access_token"].(string))
			lease := ReadCreds(t, s.Client, "leased")
			e.Emu.RequireTokenAccepted(t, lease.Data["access_token"].(string))
			s.CLI(t, "lease", "revoke", lease.LeaseID)
			e.Emu.RequireTokenRevoked(t, lease.Data["access_token"].(string))
			requireSameConnection(t, before, readConnectionState(t, s, "demo"))
		}
	})

	t.Run("step-down", func(t *testing.T) {
		lease := ReadCreds(t, c.Leader(t).Client, "leased")
		old, next := c.StepDown(t)
		requireSameConnection(t, before, readConnectionState(t, next, "demo"))
		e.Emu.RequireTokenAccepted(t, ReadCreds(t, next.Client, "shared").Data["access_token"].(string))
		// The old leader, now a standby, forwards to the new one.
		e.Emu.RequireTokenAccepted(t, ReadCreds(t, old.Client, "shared").Data["access_token"].(string))
		// A lease taken under the old leader is revoked by the new one.
		next.CLI(t, "lease", "revoke", lease.LeaseID)
		e.Emu.RequireTokenRevoked(t, lease.Data["access_token"].(string))
	})

	t.Run("leader killed and restarted", func(t *testing.T) {
		dead := c.Leader(t)
		c.KillNode(t, dead)
		next := c.Leader(t)
		requireSameConnection(t, before, readConnectionState(t, next, "demo"))
		e.Emu.RequireTokenAccepted(t, ReadCreds(t, next.Client, "shared").Data["access_token"].(string))

		c.RestartNode(t, dead)
		e.Emu.RequireTokenAccepted(t, ReadCreds(t, dead.Client, "shared").Data["access_token"].(string))
		requireSameConnection(t, before, readConnectionState(t, dead, "demo"))
	})
}

func names(vs []*Vault) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}
