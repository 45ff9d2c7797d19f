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
// plugin registered and mounted at its version, a connection, a role, the four policies, and
// the certificate as an output. A second plan must be empty (durations as the plugin returns
// them, no drift), and destroy must remove what apply made.
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
	writeFile(t, filepath.Join(module, "terraform.tfvars"), fmt.Sprintf(`plugin_sha256   = %q
plugin_version  = %q
consumer_key    = "placeholder"
login_url       = "https://acme.my.salesforce.com"
username        = %q
connection_name = %q
role_name       = %q
`, sha, cfg.PluginVersion, username, conn, role))

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

	mustTF("destroy", "-input=false", "-no-color", "-auto-approve")
	if m, err := v.Client.Logical().Read("sys/mounts/salesforce"); err == nil && m != nil {
		t.Errorf("mount still there after destroy: %v", m.Data)
	}
	if p := v.Read(t, "sys/policies/acl/salesforce-app"); p != nil {
		t.Errorf("app policy still there after destroy")
	}
}
