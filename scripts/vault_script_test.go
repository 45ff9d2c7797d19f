package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeFakeVault writes an executable `vault` into dir whose `vault version` prints banner.
func writeFakeVault(t *testing.T, dir, banner string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vault")
	script := "#!/bin/sh\n[ \"$1\" = version ] && echo '" + banner + "'\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// scripts/vault.sh uses any Vault in the supported range (>= 1.12.0) that it finds in VAULT_BIN
// or on PATH and prints its path; it warns (stderr) when the version is not a tested one, and
// passes over a Vault below the floor or a binary that is not Vault, falling back to the cached
// build of the pinned version. With VAULT_VERSION set (what scripts/compat.sh does) only that
// exact version is taken. Every case has a cached fake build, so none starts a real build.
func TestVaultScriptVersionRange(t *testing.T) {
	script, err := filepath.Abs("vault.sh")
	if err != nil {
		t.Fatal(err)
	}
	const cached, onPath, inVaultBin = "cached", "path", "vault_bin"
	for _, c := range []struct {
		name        string
		pathBanner  string // what the `vault` on PATH reports ("" = no vault on PATH)
		binBanner   string // what $VAULT_BIN reports ("" = unset)
		exact       string // VAULT_VERSION
		want        string // which binary is printed
		wantWarning string // a line stderr must hold ("" = no warning at all)
	}{
		{"tested version on PATH", "Vault v1.21.0 (abc), built 2025-10-01", "", "", onPath, ""},
		{"newer patch on PATH", "Vault v1.21.3 (abc), built 2026-01-01", "", "", onPath, "not among the tested versions"},
		{"older minor on PATH", "Vault v1.20.0 (abc)", "", "", onPath, "warning: using Vault v1.20.0"},
		{"the floor itself", "Vault v1.12.0 (abc)", "", "", onPath, "not among the tested versions"},
		{"enterprise build", "Vault v1.19.5+ent (abc)", "", "", onPath, "warning: using Vault v1.19.5"},
		{"below the floor", "Vault v1.10.0 (abc)", "", "", cached, "below the supported floor v1.12.0"},
		{"not a vault", "OpenBao v2.1.0 (abc)", "", "", cached, "does not report a Vault version"},
		{"VAULT_BIN before PATH", "Vault v1.21.0 (abc)", "Vault v1.20.1 (abc)", "", inVaultBin, "warning: using Vault v1.20.1"},
		{"VAULT_BIN below the floor", "Vault v1.21.0 (abc)", "Vault v1.11.9 (abc)", "", onPath, "below the supported floor"},
		{"exact version asked, PATH differs", "Vault v1.21.3 (abc)", "", "1.21.0", cached, ""},
		{"exact version asked, PATH has it", "Vault v1.21.3 (abc)", "", "1.21.3", onPath, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cacheDir := filepath.Join(dir, "cache")
			paths := map[string]string{
				cached: writeFakeVault(t, filepath.Join(cacheDir, "vault-1.21.0"), "Vault v1.21.0 (cached)"),
			}
			env := []string{"HOME=" + dir, "VAULT_CACHE_DIR=" + cacheDir, "PATH=/usr/bin:/bin"}
			if c.pathBanner != "" {
				paths[onPath] = writeFakeVault(t, filepath.Join(dir, "bin"), c.pathBanner)
				env[2] = "PATH=" + filepath.Join(dir, "bin") + ":/usr/bin:/bin"
			}
			if c.binBanner != "" {
				paths[inVaultBin] = writeFakeVault(t, filepath.Join(dir, "other"), c.binBanner)
				env = append(env, "VAULT_BIN="+paths[inVaultBin])
			}
			if c.exact != "" {
				env = append(env, "VAULT_VERSION="+c.exact)
			}
			cmd := exec.Command("bash", script)
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("vault.sh failed: %v\nstderr:\n%s", err, stderr.String())
			}
			if got := strings.TrimSpace(stdout.String()); got != paths[c.want] {
				t.Errorf("vault.sh printed %q, want the %s binary %q\nstderr:\n%s", got, c.want, paths[c.want], stderr.String())
			}
			switch {
			case c.wantWarning == "" && stderr.Len() != 0:
				t.Errorf("vault.sh wrote to stderr, want nothing:\n%s", stderr.String())
			case c.wantWarning != "" && !strings.Contains(stderr.String(), c.wantWarning):
				t.Errorf("stderr does not say %q:\n%s", c.wantWarning, stderr.String())
			}
			if strings.Contains(stderr.String(), "building Vault") {
				t.Errorf("vault.sh started a build:\n%s", stderr.String())
			}
		})
	}
}

// Without a usable Vault, vault.sh says what it is about to do and how long it takes before the
// build starts, names each phase, and fails plainly when the module proxy does not serve the
// version (here a fake `go` that downloads nothing).
func TestVaultScriptBuildProgress(t *testing.T) {
	script, err := filepath.Abs("vault.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Env = []string{"HOME=" + dir, "VAULT_CACHE_DIR=" + filepath.Join(dir, "cache"), "PATH=" + bin + ":/usr/bin:/bin", "VAULT_VERSION=1.99.0"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("vault.sh succeeded without a Vault to build; stdout %q", stdout.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("vault.sh printed %q on stdout after a failed build, want nothing", stdout.String())
	}
	for _, want := range []string{
		"building Vault v1.99.0 from the Go module proxy",
		"~20 minutes on 2 cores",
		"1/4 downloading the Vault v1.99.0 module source",
		"does not serve github.com/hashicorp/vault@v1.99.0",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	}
}
