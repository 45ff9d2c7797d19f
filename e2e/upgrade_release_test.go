package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// previousRelease is the last commit before key rings recorded the origin each key is bound to
// (and before scoping, the connection snapshot and the rotation state machine): a mount it
// wrote has key versions without bound_origin and leases without origin_id.
const previousRelease = "1e439bf"

var errStillActive = errors.New("not yet")

// pluginBuild builds the plugin from the source tree at src into the dev server's plugin
// directory as version, and returns the file's SHA-256 for `vault plugin register`.
func pluginBuild(t *testing.T, v *Vault, src, version string) (command, sha string) {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(v.home, "plugins.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	pluginDir := regexp.MustCompile(`plugin_directory = "([^"]+)"`).FindStringSubmatch(string(conf))[1]
	bin := filepath.Join(pluginDir, PluginName+"-"+version)
	build := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/version.Version="+version,
		"./cmd/vault-plugin-salesforce")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s from %s: %v\n%s", version, src, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return filepath.Base(bin), hex.EncodeToString(sum[:])
}

// upgradeTo registers version and moves the mount to it, as an operator upgrades.
func upgradeTo(t *testing.T, v *Vault, command, sha, version string) {
	t.Helper()
	v.CLI(t, "plugin", "register", "-sha256="+sha, "-command="+command, "-version="+version, "secret", PluginName)
	v.CLI(t, "secrets", "tune", "-plugin-version="+version, Mount+"/")
	v.CLI(t, "plugin", "reload", "-plugin="+PluginName)
	if got := v.Read(t, Mount+"/info").Data["version"]; got != version {
		t.Fatalf("after the upgrade info reports %v, want %s", got, version)
	}
}

// TestUpgradeFromPreviousRelease: a mount written by the previous release (connection, key
// ring, shared and per_lease roles, a live lease) is read, minted from, revoked and rotated by
// this one in a real Vault, with nothing to migrate by hand.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	e := NewBareEnv(t)
	v := e.Vault
	root := RepoRoot(t)
	old := filepath.Join(t.TempDir(), "previous")
	if out, err := RunTool(t, time.Minute, root, nil, "git", "worktree", "add", "--detach", old, previousRelease); err != nil {
		t.Fatalf("checking out the previous release %s (CI needs the clone's history): %v\n%s", previousRelease, err, out)
	}
	t.Cleanup(func() { _, _ = RunTool(t, time.Minute, root, nil, "git", "worktree", "remove", "--force", old) })
	const prevVersion = "v0.0.9"
	cmd, sha := pluginBuild(t, v, old, prevVersion)
	v.CLI(t, "plugin", "register", "-sha256="+sha, "-command="+cmd, "-version="+prevVersion, "secret", PluginName)
	v.CLI(t, "secrets", "enable", "-path="+Mount, "-plugin-version="+prevVersion, PluginName)

	// What the previous release writes.
	e.Ready(t, v, "prod", "app", nil)
	e.CreateRole(t, v, "leased", "prod", map[string]any{"token_mode": "per_lease"})
	before := StringField(t, v.Read(t, Mount+"/connections/prod/certificate"), "certificate")
	lease := ReadCreds(t, v.Client, "leased")
	ReadCreds(t, v.Client, "app")

	upgradeTo(t, v, PluginName, e.PluginSHA, e.Cfg.PluginVersion)

	conn := v.Read(t, Mount+"/connections/prod")
	if got := anyStrings(conn.Data["allowed_roles"]); len(got) != 1 || got[0] != "*" {
		t.Fatalf("a connection from the previous release reads allowed_roles %v, want [*]", got)
	}
	if StringField(t, v.Read(t, Mount+"/connections/prod/certificate"), "certificate") != before {
		t.Fatal("the upgrade changed the active certificate")
	}
	for _, role := range []string{"app", "leased"} {
		s := ReadCreds(t, v.Client, role)
		e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
	}
	// A lease the previous release issued (no origin recorded) is revoked where it came from.
	if _, err := v.Client.Logical().Write("sys/leases/revoke", map[string]any{"lease_id": lease.LeaseID}); err != nil {
		t.Fatalf("revoking a lease of the previous release: %v", err)
	}
	WaitFor(t, 30*time.Second, "the old lease's token to be revoked", func() error {
		if e.Emu.TokenActive(t, lease.Data["access_token"].(string)) {
			return errStillActive
		}
		return nil
	})
	// And the ring rotates: a new key, its certificate uploaded, proven by a read, promoted.
	rot := v.Write(t, Mount+"/connections/prod/rotate", nil)
	e.Emu.RegisterCertificate(t, e.Emu.ConsumerKey, StringField(t, rot, "pending_certificate"))
	WaitFor(t, time.Minute, "the new key to be promoted", func() error {
		s := ReadCreds(t, v.Client, "leased")
		if Int(t, s, "key_version") != 2 {
			return errStillActive
		}
		return nil
	})
	keys := v.List(t, Mount+"/connections/prod/keys/").Data["key_info"].(map[string]any)
	if keys["1"].(map[string]any)["status"] != "archived" || keys["2"].(map[string]any)["status"] != "active" {
		t.Fatalf("key ring after the rotation: %v", keys)
	}
}
