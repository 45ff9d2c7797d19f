package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// walkthroughMarker precedes the README's newcomer walkthrough block.
const walkthroughMarker = "<!-- newcomer-walkthrough:"

// readmeWalkthrough returns the first ```sh block after the marker in README.md.
func readmeWalkthrough(t *testing.T, root string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), walkthroughMarker)
	if !ok {
		t.Fatalf("README.md has no %q marker before the walkthrough block", walkthroughMarker)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)\n```").FindStringSubmatch(after)
	if m == nil {
		t.Fatal("README.md: no ```sh block after the walkthrough marker")
	}
	return m[1]
}

// freshCopy copies the checkout's files as a clone would have them (tracked and untracked, not
// ignored: no bin/, no build output) into a new folder.
func freshCopy(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "vault-plugin-salesforce")
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// newcomerEnv is a new user's environment: their own empty HOME (no Salesforce CLI login, no
// Vault token file), PATH as the machine has it, and the machine's caches (Go modules and
// builds, the pinned Vault, npm's download cache) so that the test does not rebuild the world.
func newcomerEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	realHome, _ := os.UserHomeDir()
	cacheDir := os.Getenv("VAULT_CACHE_DIR")
	if cacheDir == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			base = filepath.Join(realHome, ".cache")
		}
		cacheDir = filepath.Join(base, "vault-plugin-salesforce")
	}
	env := []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"VAULT_CACHE_DIR=" + cacheDir,
		"npm_config_cache=" + filepath.Join(realHome, ".npm"),
		"TERM=dumb",
		"LANG=C.UTF-8",
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS", "GOTOOLCHAIN"} {
		if v, err := exec.Command("go", "env", k).Output(); err == nil && len(bytes.TrimSpace(v)) > 0 {
			env = append(env, k+"="+strings.TrimSpace(string(v)))
		}
	}
	// Where the suite was given its Vault, the walkthrough's scripts/vault.sh uses it first.
	if v := os.Getenv("VAULT_BIN"); v != "" {
		env = append(env, "VAULT_BIN="+v)
	}
	return env
}

// TestNewcomerWalkthrough runs the README's walkthrough as a new user would: in a fresh copy of
// the checkout, in bash, the commands exactly as written. It builds the plugin and the emulator,
// starts Vault and the emulator, registers the plugin with bootstrap/configure.sh, logs the
// pinned Salesforce CLI in to the emulator, deploys the app with Vault's certificate with
// bootstrap/salesforce/deploy-certificate.sh (sf project deploy start, over the emulator's SOAP
// Metadata API), and mints a token that the emulator's userinfo accepts.
func TestNewcomerWalkthrough(t *testing.T) {
	LoadConfig(t) // skips only where the whole suite does (no VAULT_BIN)
	for _, tool := range []string{"bash", "make", "git", "curl", "npm", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthrough needs %s on PATH: %v", tool, err)
		}
	}
	root := RepoRoot(t)
	script := readmeWalkthrough(t, root)
	// The block must stay the walkthrough the issue asks for, not shrink to something easier.
	for _, step := range []string{
		"make build emulator", "scripts/demo.sh start", "bootstrap/configure.sh",
		"vault write salesforce/connections/", "sf org login",
		"bootstrap/salesforce/deploy-certificate.sh", "vault read salesforce/creds/",
		// An External Client App, the app a new integration uses (no new Connected Apps since Spring '26).
		"-t external_client_app", `consumer_key="$SF_ECA_CONSUMER_KEY"`,
		"/services/oauth2/userinfo", "scripts/demo.sh stop",
	} {
		if !strings.Contains(script, step) {
			t.Errorf("README walkthrough lost the step %q", step)
		}
	}

	dir := freshCopy(t, root)
	t.Cleanup(func() {
		// Whatever happened, leave no Vault or emulator running.
		stop := exec.Command("bash", "scripts/demo.sh", "stop")
		stop.Dir = dir
		_ = stop.Run()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = newcomerEnv(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	output := out.String()
	t.Logf("walkthrough ran in %s", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("the README walkthrough failed (%v); its output:\n%s", err, output)
	}

	for _, want := range []string{
		"Registered plugin: vault-plugin-salesforce",     // configure.sh
		"Successfully authorized",                        // sf org login
		"Status: Succeeded",                              // sf project deploy start
		"Vault_JWT",                                      // ... of the app
		"access_token",                                   // vault read creds
		`"preferred_username":"integration@example.com"`, // the emulator accepted the token
		"stopped vault",
	} {
		if !strings.Contains(output, want) {
			t.Errorf("walkthrough output lacks %q; output:\n%s", want, output)
		}
	}
	if strings.Contains(output, "PRIVATE KEY") {
		t.Errorf("private key material in the walkthrough's output:\n%s", output)
	}
	if t.Failed() {
		return
	}
	// The emulator's request log shows the CLI deployed through the SOAP Metadata API.
	log, err := os.ReadFile(filepath.Join(dir, "bin", "demo", "emulator.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/services/Soap/m/", "deploy ", "Succeeded", "token issued to integration@example.com via Vault_JWT"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("emulator.log lacks %q", want)
		}
	}
}
