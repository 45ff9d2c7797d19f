package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ecaName is the External Client App that bootstrap/salesforce's ECA metadata describes.
const ecaName = "Vault_JWT_ECA"

// TestBootstrapExternalClientApp drives bootstrap/salesforce/deploy-certificate.sh's External
// Client App variant with the pinned Salesforce CLI against the emulator, as bootstrap/README.md
// tells an operator to (the README walkthrough deploys the whole app too):
//   - the whole app (-t external_client_app): the ECA header, its OAuth settings and policies,
//     the permission sets, and its global OAuth settings carrying Vault's certificate; a token
//     is minted through the ECA's consumer key;
//   - a manual rotation: rotate, then -p -C deploys only the global OAuth settings with the
//     pending certificate; the next read finds the old key refused, mints with the pending one
//     and promotes it.
//
// The emulator only updates apps that exist, so the ECA is created first through its admin API
// (standing in for an ECA created in Setup or by an earlier deploy: see emulator/ASSUMPTIONS.md).
func TestBootstrapExternalClientApp(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	v := e.Vault
	root := RepoRoot(t)
	sfDir := sfCLIDir(t, root)

	ecaKey := "3MVG9ECA" + strings.Repeat("b", 77)
	e.Emu.admin(t, http.MethodPost, "/__emulator/apps", map[string]any{
		"name": ecaName, "type": "external_client_app", "org_id": e.Emu.OrgID, "consumer_key": ecaKey,
		"admin_approved": true, "pre_authorized_users": []string{e.Emu.Username},
		"label": "Vault JWT ECA", "scopes": []string{"Api"},
	})
	v.Write(t, Mount+"/connections/eca", e.ConnectionData(map[string]any{"consumer_key": ecaKey, "app_type": "external_client_app"}))
	e.CreateRole(t, v, "eca", "eca", map[string]any{"token_mode": "per_lease"})

	home := t.TempDir()
	env := []string{
		"HOME=" + home,
		"PATH=" + sfDir + ":" + filepath.Dir(e.Cfg.VaultBin) + ":" + os.Getenv("PATH"),
		"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token,
		"NODE_EXTRA_CA_CERTS=" + e.Emu.CAFile,
		"SF_AUTOUPDATE_DISABLE=true", "SF_DISABLE_TELEMETRY=true", "TERM=dumb", "LANG=C.UTF-8",
	}
	if c := os.Getenv("npm_config_cache"); c != "" {
		env = append(env, "npm_config_cache="+c)
	}
	run := func(extraEnv []string, name string, args ...string) string {
		t.Helper()
		out, err := RunTool(t, 5*time.Minute, root, append(append([]string(nil), env...), extraEnv...), name, args...)
		if strings.Contains(out, "PRIVATE KEY") {
			t.Fatalf("private key material in the output of %s", name)
		}
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return out
	}

	// The CLI logs in as the deploy user, with a session from the emulator's stand-in for the
	// browser login (on a real org: sf org login web).
	var session struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(e.Emu.admin(t, http.MethodPost, "/__emulator/sessions", map[string]any{"username": e.Emu.DeployUsername}), &session); err != nil || session.AccessToken == "" {
		t.Fatalf("emulator session: %v %+v", err, session)
	}
	run([]string{"SF_ACCESS_TOKEN=" + session.AccessToken}, filepath.Join(sfDir, "sf"), "org", "login", "access-token",
		"--instance-url", e.Emu.URL, "--alias", "emulator", "--no-prompt")

	deploy := filepath.Join(root, "bootstrap", "salesforce", "deploy-certificate.sh")
	active := StringField(t, v.Read(t, Mount+"/connections/eca/certificate"), "certificate")

	// 1. The whole app, with the active certificate.
	out := run(nil, deploy, "-c", "eca", "-o", "emulator", "-t", "external_client_app")
	for _, want := range []string{"Status: Succeeded", ecaName + "_glbloauth", "ExternalClientApplication", "ExtlClntAppOauthSettings", "Vault_Integration"} {
		if !strings.Contains(out, want) {
			t.Errorf("whole-app deploy output lacks %q:\n%s", want, out)
		}
	}
	if got := relAppCertificate(t, e.Emu, ecaKey); !sameCertificate(got, active) {
		t.Fatalf("after the deploy the ECA holds another certificate than the connection's active one")
	}
	first := ReadCreds(t, v.Client, "eca")
	e.Emu.RequireTokenAccepted(t, first.Data["access_token"].(string))

	// 2. A manual rotation: only the global OAuth settings, with the pending certificate.
	v.Write(t, Mount+"/connections/eca/rotate", nil)
	pending := StringField(t, v.Read(t, Mount+"/connections/eca/certificate"), "pending_certificate")
	out = run(nil, deploy, "-c", "eca", "-o", "emulator", "-t", "external_client_app", "-p", "-C")
	if !strings.Contains(out, "Status: Succeeded") || !strings.Contains(out, ecaName+"_glbloauth") {
		t.Errorf("certificate-only deploy did not report the global OAuth settings deployed:\n%s", out)
	}
	for _, notWant := range []string{"ExternalClientApplication", "ExtlClntAppOauthSettings", "Vault_Integration"} {
		if strings.Contains(out, notWant) {
			t.Errorf("certificate-only deploy (-C) also deployed %s:\n%s", notWant, out)
		}
	}
	if got := relAppCertificate(t, e.Emu, ecaKey); !sameCertificate(got, pending) {
		t.Fatalf("after the -p -C deploy the ECA does not hold the pending certificate")
	}
	second := ReadCreds(t, v.Client, "eca")
	e.Emu.RequireTokenAccepted(t, second.Data["access_token"].(string))
	if got := StringField(t, v.Read(t, Mount+"/connections/eca/certificate"), "certificate"); !sameCertificate(got, pending) {
		t.Errorf("the read after the upload did not promote the pending key")
	}
	if ring := relRingString(relMustRing(t, v, "eca")); ring != "1:archived 2:active" {
		t.Errorf("key ring after the manual rotation: %s, want 1:archived 2:active", ring)
	}
}

// sfCLIDir is the folder of the pinned Salesforce CLI, from scripts/sf.sh (installed once, then
// cached; `make e2e` installs it before the tests).
func sfCLIDir(t *testing.T, root string) string {
	t.Helper()
	out, err := RunTool(t, 10*time.Minute, root, os.Environ(), "bash", filepath.Join(root, "scripts", "sf.sh"))
	if err != nil {
		t.Fatalf("scripts/sf.sh: %v\n%s", err, out)
	}
	// The folder is the last line of stdout; progress notes (a first install) come before it.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
