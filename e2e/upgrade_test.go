package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	conf, err := os.ReadFile(filepath.Join(v.home, "plugins.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	pluginDir := regexp.MustCompile(`plugin_directory = "([^"]+)"`).FindStringSubmatch(string(conf))[1]
	bin := filepath.Join(pluginDir, PluginName+"-"+next)
	build := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/version.Version="+next,
		"./cmd/vault-plugin-salesforce")
	build.Dir = RepoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", next, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	v.CLI(t, "plugin", "register", "-sha256="+hex.EncodeToString(sum[:]), "-command="+filepath.Base(bin), "-version="+next, "secret", PluginName)
	v.CLI(t, "secrets", "tune", "-plugin-version="+next, Mount+"/")
	v.CLI(t, "plugin", "reload", "-plugin="+PluginName)

	if got := v.Read(t, Mount+"/info").Data["version"]; got != next {
		t.Fatalf("after the upgrade info reports %v, want %s", got, next)
	}
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
