package e2e

import (
	"strings"
	"testing"
)

// TestPluginUpgrade: an operator registers a new version next to the running one, tunes the
// mount to it and reloads. The mount then runs the new version with its connection, key and
// roles as they were.
func TestPluginUpgrade(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	e.Ready(t, v, "prod", "app", nil)
	before := v.Read(t, Mount+"/connections/prod/certificate")
	ReadCreds(t, v.Client, "app")
	if got := v.Read(t, Mount+"/info").Data["version"]; got != e.Cfg.PluginVersion {
		t.Fatalf("info version %v, want %s", got, e.Cfg.PluginVersion)
	}

	// Build the "new release" into the plugin directory under its own file name.
	const next = "v0.99.0"
	cmd, sha := pluginBuild(t, v, RepoRoot(t), next)
	upgradeTo(t, v, cmd, sha, next)
	if out := v.CLI(t, "secrets", "list", "-detailed"); !strings.Contains(out, next) {
		t.Errorf("secrets list does not show the running version %s:\n%s", next, out)
	}
	after := v.Read(t, Mount+"/connections/prod/certificate")
	if after.Data["certificate"] != before.Data["certificate"] {
		t.Fatal("the upgrade changed the connection's key")
	}
	s := ReadCreds(t, v.Client, "app")
	e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
}
