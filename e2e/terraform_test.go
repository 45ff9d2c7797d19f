package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// terraformDir is the folder scripts/terraform.sh prints: terraform and its terraformrc, which
// installs hashicorp/vault from a local mirror. `make e2e` builds it first and passes it in
// TERRAFORM_DIR; otherwise the test builds it (minutes when cold).
func terraformDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("TERRAFORM_DIR"); d != "" {
		return d
	}
	cmd := exec.Command("bash", filepath.Join(RepoRoot(t), "scripts", "terraform.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/terraform.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// copyFiles copies the files of src matching pattern into dst.
func copyFiles(t *testing.T, src, pattern, dst string) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(src, pattern))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no %s in %s (%v)", pattern, src, err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, filepath.Base(m)), string(b))
	}
}

// TestTerraformExample applies bootstrap/terraform, as its README says, to a real Vault: the
// plugin registered (vault_plugin) and the mount pinned at its version (vault_mount), a
// connection, a role, the four policies, and the certificate as an output. A second plan must
// be empty (durations as the plugin returns them, no drift); an upgrade to a new binary moves
// the mount, reloads the plugin and deregisters the old version; destroy removes what apply made.
func TestTerraformExample(t *testing.T) {
	cfg := LoadConfig(t)
	tfDir := terraformDir(t)
	v, sha := StartDevVault(t, cfg)

	// The example reads ../policies: copy both folders side by side, as in the checkout.
	root := RepoRoot(t)
	work := t.TempDir()
	module := filepath.Join(work, "terraform")
	copyFiles(t, filepath.Join(root, "bootstrap", "terraform"), "*.tf", module)
	copyFiles(t, filepath.Join(root, "bootstrap", "policies"), "*.hcl", filepath.Join(work, "policies"))
	const role, conn, username = "billing", "acme", "integration@acme.example.com"
	tfvars := func(sha, version, command string) {
		writeFile(t, filepath.Join(module, "terraform.tfvars"), fmt.Sprintf(`plugin_sha256   = %q
plugin_version  = %q
plugin_command  = %q
consumer_key    = "placeholder"
login_url       = "https://acme.my.salesforce.com"
username        = %q
connection_name = %q
role_name       = %q
`, sha, version, command, username, conn, role))
	}
	tfvars(sha, cfg.PluginVersion, PluginName)

	home := t.TempDir()
	env := []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"TF_CLI_CONFIG_FILE=" + filepath.Join(tfDir, "terraformrc"),
		"TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=root",
	}
	tf := func(args ...string) (string, error) {
		t.Helper()
		out, err := RunTool(t, 5*time.Minute, module, env, filepath.Join(tfDir, "terraform"), args...)
		t.Logf("%s", out)
		return out, err
	}
	mustTF := func(args ...string) string {
		t.Helper()
		out, err := tf(args...)
		if err != nil {
			t.Fatalf("terraform %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	mustTF("init", "-input=false", "-no-color")
	mustTF("apply", "-input=false", "-no-color", "-auto-approve")

	// What Vault holds now.
	mount := v.Read(t, "sys/mounts/salesforce")
	if mount == nil || mount.Data["type"] != PluginName || mount.Data["running_plugin_version"] != cfg.PluginVersion {
		t.Fatalf("mount after apply: %v", mount)
	}
	// vault_mount.plugin_version pins the mount (a tune would show the same).
	if pinned := mount.Data["plugin_version"]; pinned != cfg.PluginVersion {
		t.Errorf("mount plugin_version %v after apply, want it pinned to %s", pinned, cfg.PluginVersion)
	}
	// vault_plugin registered exactly this binary at this version.
	if entry := catalogEntry(t, v, cfg.PluginVersion); entry == nil || entry.Data["sha256"] != sha || entry.Data["version"] != cfg.PluginVersion || entry.Data["command"] != PluginName {
		t.Fatalf("catalog entry %s after apply: %v", cfg.PluginVersion, entry)
	}
	c := v.Read(t, "salesforce/connections/"+conn)
	if c == nil || c.Data["consumer_key"] != "placeholder" || c.Data["login_url"] != "https://acme.my.salesforce.com" || c.Data["deploy"] != "manual" {
		t.Fatalf("connection after apply: %v", c)
	}
	r := v.Read(t, "salesforce/roles/"+role)
	if r == nil || r.Data["connection"] != conn || r.Data["username"] != username || r.Data["token_mode"] != "shared" {
		t.Fatalf("role after apply: %v", r)
	}
	for _, name := range []string{"salesforce-app", "salesforce-operator", "salesforce-connection-admin", "salesforce-auditor"} {
		p := v.Read(t, "sys/policies/acl/"+name)
		if p == nil {
			t.Fatalf("policy %s missing after apply", name)
		}
		if name == "salesforce-app" && !strings.Contains(fmt.Sprint(p.Data["policy"]), `"salesforce/creds/`+role+`"`) {
			t.Errorf("the app policy does not name the role's creds path: %v", p.Data["policy"])
		}
	}
	cert := mustTF("output", "-raw", "certificate")
	if want := StringField(t, v.Read(t, "salesforce/connections/"+conn+"/certificate"), "certificate"); strings.TrimSpace(cert) != strings.TrimSpace(want) {
		t.Errorf("output certificate differs from the connection's:\n%s\nwant\n%s", cert, want)
	}
	ParseCertificate(t, cert)

	// Nothing to change on a second plan: the example's values are what Vault reads back.
	if out, err := tf("plan", "-input=false", "-no-color", "-detailed-exitcode"); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 2 {
			t.Errorf("a plan right after apply wants changes:\n%s", out)
		} else {
			t.Fatalf("plan: %v", err)
		}
	}

	// An upgrade as bootstrap/README.md tells it: the new binary beside the old one, its sha256,
	// version and file name in the variables, apply. Vault then runs the new version on the same
	// connection, and the old catalog entry is gone.
	const next = "v0.99.0"
	nextCmd, nextSHA := pluginBuild(t, v, root, next)
	tfvars(nextSHA, next, nextCmd)
	mustTF("apply", "-input=false", "-no-color", "-auto-approve")
	if m := v.Read(t, "sys/mounts/salesforce"); m.Data["plugin_version"] != next || m.Data["running_plugin_version"] != next {
		t.Errorf("mount after the upgrade: plugin_version %v, running %v; want %s", m.Data["plugin_version"], m.Data["running_plugin_version"], next)
	}
	if got := v.Read(t, "salesforce/info").Data["version"]; got != next {
		t.Errorf("info reports %v after the upgrade, want %s (the reload did not happen)", got, next)
	}
	if entry := catalogEntry(t, v, next); entry == nil || entry.Data["sha256"] != nextSHA {
		t.Errorf("catalog entry %s after the upgrade: %v", next, entry)
	}
	if entry := catalogEntry(t, v, cfg.PluginVersion); entry != nil {
		t.Errorf("the old version %s is still registered after the upgrade: %v", cfg.PluginVersion, entry.Data)
	}
	if after := mustTF("output", "-raw", "certificate"); strings.TrimSpace(after) != strings.TrimSpace(cert) {
		t.Error("the upgrade changed the connection's certificate")
	}

	mustTF("destroy", "-input=false", "-no-color", "-auto-approve")
	if m, err := v.Client.Logical().Read("sys/mounts/salesforce"); err == nil && m != nil {
		t.Errorf("mount still there after destroy: %v", m.Data)
	}
	if p := v.Read(t, "sys/policies/acl/salesforce-app"); p != nil {
		t.Errorf("app policy still there after destroy")
	}
	if entry := catalogEntry(t, v, next); entry != nil {
		t.Errorf("catalog entry still there after destroy: %v", entry.Data)
	}
}

// catalogEntry reads the plugin's catalog entry at the suite's plugin version (nil when there
// is none).
func catalogEntry(t *testing.T, v *Vault, version string) *api.Secret {
	t.Helper()
	s, err := v.Client.Logical().ReadWithData("sys/plugins/catalog/secret/"+PluginName, map[string][]string{"version": {version}})
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return nil
		}
		t.Fatalf("read the catalog entry: %v", err)
	}
	return s
}
