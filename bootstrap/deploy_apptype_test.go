package bootstrap

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeVaultCLI answers deploy-certificate.sh's reads: the connection's app_type from $APP_TYPE
// (refused when it is empty, as for a token that may read only the certificate), a certificate
// and its fingerprint.
const fakeVaultCLI = `#!/bin/sh
case "$*" in
  *-field=app_type*) [ -n "$APP_TYPE" ] || { echo "permission denied" >&2; exit 2; }; echo "$APP_TYPE" ;;
  *-field=certificate_fingerprint_sha256*) echo "ab:cd" ;;
  *-field=certificate*) printf -- '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' ;;
  *) exit 2 ;;
esac
`

// Without -t, deploy-certificate.sh deploys to the kind of app the connection uses (its
// app_type in Vault: external_client_app for a new connection, connected_app for one made for a
// Connected App), -t still decides when given, and when the app_type cannot be read it stops
// and asks for -t rather than guessing.
func TestDeployCertificateAppTypeFromConnection(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("salesforce", "deploy-certificate.sh"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "vault"), []byte(fakeVaultCLI), 0o755); err != nil {
		t.Fatal(err)
	}
	const eca, ca = "extlClntAppGlobalOauthSets/Vault_JWT_ECA_glbloauth", "connectedApps/Vault_JWT.connectedApp"
	for _, c := range []struct {
		name, stored string
		args         []string
		want, not    string // the deployed file the dry run names, and one it must not
		wantErr      string
	}{
		{name: "new connection", stored: "external_client_app", want: eca, not: ca},
		{name: "connected app connection", stored: "connected_app", want: ca, not: eca},
		{name: "-t wins", stored: "connected_app", args: []string{"-t", "external_client_app"}, want: eca, not: ca},
		{name: "unreadable, no -t", stored: "", wantErr: "give -t external_client_app or -t connected_app"},
		{name: "unreadable, -t given", stored: "", args: []string{"-t", "connected_app"}, want: ca, not: eca},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("bash", append([]string{script, "-c", "prod", "-o", "acme", "-n"}, c.args...)...)
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "APP_TYPE=" + c.stored, "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(string(out), c.wantErr) {
					t.Fatalf("want a refusal saying %q, got err=%v:\n%s", c.wantErr, err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("dry run failed: %v\n%s", err, out)
			}
			if dir := deployDir(string(out)); dir != "" {
				t.Cleanup(func() { _ = os.RemoveAll(dir) })
			}
			if !strings.Contains(string(out), c.want) || strings.Contains(string(out), c.not) {
				t.Errorf("dry run should deploy %s and not %s:\n%s", c.want, c.not, out)
			}
		})
	}
}

// deployDir is the folder a dry run keeps ("deploy directory kept: DIR").
func deployDir(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if dir, ok := strings.CutPrefix(line, "deploy directory kept: "); ok {
			return strings.TrimSpace(dir)
		}
	}
	return ""
}
