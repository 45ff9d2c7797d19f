package e2e

import (
	"strings"
	"testing"
)

// TestPluginRegistration is the harness's own proof: it needs nothing from the plugin but a
// binary that reports its version. An operator registers the plugin with its sha256 and version,
// Vault refuses a version the binary does not report, and the mount runs the registered version.
func TestPluginRegistration(t *testing.T) {
	e := NewBareEnv(t)
	v, ver := e.Vault, e.Cfg.PluginVersion

	// Vault runs the binary at registration and compares the version it reports.
	if _, stderr, err := v.TryCLI(t, "plugin", "register", "-sha256="+e.PluginSHA, "-version=v99.0.0", "secret", PluginName); err == nil {
		t.Fatalf("registering as v99.0.0 succeeded; the binary should report exactly %s", ver)
	} else {
		t.Logf("refused as expected: %s", strings.TrimSpace(stderr))
	}

	v.RegisterPlugin(t, e.PluginSHA, ver)

	var info struct {
		Name    string `json:"name"`
		SHA256  string `json:"sha256"`
		Version string `json:"version"`
		Builtin bool   `json:"builtin"`
		Command string `json:"command"`
	}
	v.CLIJSON(t, &info, []string{"plugin", "info"}, "-version="+ver, "secret", PluginName)
	if info.Version != ver || info.SHA256 != e.PluginSHA || info.Builtin {
		t.Fatalf("plugin info: %+v; want version %s, sha256 %s, external", info, ver, e.PluginSHA)
	}

	var list struct {
		Details []struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Version string `json:"version"`
		} `json:"details"`
	}
	v.CLIJSON(t, &list, []string{"plugin", "list"}, "secret")
	versions := 0
	for _, p := range list.Details {
		if p.Name == PluginName {
			versions++
			if p.Version != ver {
				t.Errorf("plugin list: %s at version %q, want %s (dev mode auto-registration leaked in?)", p.Name, p.Version, ver)
			}
		}
	}
	if versions != 1 {
		t.Fatalf("plugin list: %d entries for %s, want 1: %+v", versions, PluginName, list.Details)
	}

	// No -plugin-version: Vault picks the newest registered version, as it will in production.
	v.EnablePlugin(t, Mount)
	var mounts map[string]struct {
		Type                 string `json:"type"`
		PluginVersion        string `json:"plugin_version"`
		RunningPluginVersion string `json:"running_plugin_version"`
		RunningSHA256        string `json:"running_sha256"`
	}
	v.CLIJSON(t, &mounts, []string{"secrets", "list"}, "-detailed")
	m, ok := mounts[Mount+"/"]
	if !ok {
		t.Fatalf("secrets list: no %s/ mount", Mount)
	}
	if m.Type != PluginName || m.PluginVersion != ver || m.RunningPluginVersion != ver || m.RunningSHA256 != e.PluginSHA {
		t.Fatalf("mount %s/: %+v; want type %s, plugin and running version %s, sha256 %s", Mount, m, PluginName, ver, e.PluginSHA)
	}

	// The mount has a live plugin process under Vault: what the kill test relies on.
	pid := v.PluginPID(t)
	t.Logf("plugin process %d under vault %d", pid, v.PID())
}
