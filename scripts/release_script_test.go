package scripts

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// releaseVersion is what the test releases: the Makefile's default version, which the
// Containerfile and the SBOM must name.
const releaseVersion = "v0.1.0"

// runOut runs a command in dir and returns its combined output and error.
func runOut(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sshKey generates an ed25519 key pair (no passphrase) at dir/name.
func sshKey(t *testing.T, dir, name string) string {
	t.Helper()
	key := filepath.Join(dir, name)
	if out, err := runOut(dir, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return key
}

// TestRelease runs `make release` for linux/amd64 (the plugin's own build, so the Go build cache
// makes it quick) with a signing key generated for the test, into a temporary DIST_DIR, and
// checks what a user gets:
//   - the binary, static (the Containerfile's distroless/static base has no libc), and its
//     CycloneDX SBOM naming the module at the release version with its dependencies;
//   - SHA256SUMS listing both, and SHA256SUMS.sig, which scripts/release.sh verify accepts with
//     the allowed_signers of the key;
//   - verify refuses a SHA256SUMS with one digit changed, a binary that differs from its
//     checksum, and a signature made by another key or for another namespace;
//   - the Containerfile copies the file the Makefile writes (for the same version and arch) to
//     the path its ENTRYPOINT runs.
func TestRelease(t *testing.T) {
	for _, tool := range []string{"make", "ssh-keygen", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the release needs %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	key := sshKey(t, tmp, "release-key")
	dist := filepath.Join(tmp, "dist")

	// Without a key there is no release: unsigned checksums are not one.
	if out, err := runOut(root, nil, "make", "-s", "release", "DIST_DIR="+dist, "RELEASE_PLATFORMS=linux/amd64", "RELEASE_SIGNING_KEY="); err == nil || !strings.Contains(out, "RELEASE_SIGNING_KEY") {
		t.Fatalf("make release without a key: err=%v, output:\n%s", err, out)
	}
	if out, err := runOut(root, nil, "make", "-s", "release", "DIST_DIR="+dist, "RELEASE_PLATFORMS=linux/amd64", "RELEASE_SIGNING_KEY="+key); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}

	bin := "vault-plugin-salesforce_" + releaseVersion + "_linux_amd64"
	sbom := bin + ".cdx.json"
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bin, sbom} {
		if !regexp.MustCompile(`(?m)^[0-9a-f]{64}  ` + regexp.QuoteMeta(f) + `$`).Match(sums) {
			t.Errorf("SHA256SUMS does not list %s:\n%s", f, sums)
		}
	}
	requireStatic(t, filepath.Join(dist, bin))
	requireSBOM(t, filepath.Join(dist, sbom))

	verify := func(signers string) (string, error) {
		return runOut(root, nil, "bash", "scripts/release.sh", "verify", dist, signers)
	}
	signers := filepath.Join(dist, "allowed_signers")
	if out, err := verify(signers); err != nil {
		t.Fatalf("verify of an untouched release: %v\n%s", err, out)
	}

	// A tampered SHA256SUMS: one checksum digit changed.
	tampered := tamperOneDigit(t, sums)
	writeBack := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeBack(filepath.Join(dist, "SHA256SUMS"), tampered)
	if out, err := verify(signers); err == nil || !strings.Contains(out, "signature on SHA256SUMS does not verify") {
		t.Errorf("verify accepted a tampered SHA256SUMS: err=%v\n%s", err, out)
	}
	writeBack(filepath.Join(dist, "SHA256SUMS"), sums)

	// A binary that is not the one SHA256SUMS lists.
	binPath := filepath.Join(dist, bin)
	orig, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	writeBack(binPath, append(append([]byte(nil), orig...), 0))
	if out, err := verify(signers); err == nil || !strings.Contains(out, "does not match SHA256SUMS") {
		t.Errorf("verify accepted a modified binary: err=%v\n%s", err, out)
	}
	writeBack(binPath, orig)

	// Another key's signature, and this key's signature for another namespace (git commits).
	other := sshKey(t, tmp, "other-key")
	for _, c := range []struct{ name, key, namespace string }{
		{"another key", other, "vault-plugin-salesforce-release"},
		{"another namespace", key, "git"},
	} {
		_ = os.Remove(filepath.Join(dist, "SHA256SUMS.sig"))
		if out, err := runOut(dist, nil, "ssh-keygen", "-q", "-Y", "sign", "-f", c.key, "-n", c.namespace, "SHA256SUMS"); err != nil {
			t.Fatalf("%s: ssh-keygen -Y sign: %v\n%s", c.name, err, out)
		}
		if out, err := verify(signers); err == nil {
			t.Errorf("verify accepted a signature by %s:\n%s", c.name, out)
		}
	}

	requireContainerfileCopies(t, root, dist, bin)
}

// tamperOneDigit changes the first hex digit of SHA256SUMS.
func tamperOneDigit(t *testing.T, sums []byte) []byte {
	t.Helper()
	out := append([]byte(nil), sums...)
	if out[0] == '0' {
		out[0] = '1'
	} else {
		out[0] = '0'
	}
	return out
}

// requireStatic fails unless the ELF binary at path asks for no dynamic loader.
func requireStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked: it would not run in the distroless/static image", filepath.Base(path))
		}
	}
}

// requireSBOM fails unless path is a CycloneDX JSON SBOM of the plugin's module at the release
// version, listing its dependencies (the Vault SDK among them).
func requireSBOM(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct{ Name, Version string } `json:"component"`
		} `json:"metadata"`
		Components []struct{ Name, Version string } `json:"components"`
	}
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Fatalf("SBOM %s is not JSON: %v", filepath.Base(path), err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
		t.Errorf("SBOM format %q %q, want CycloneDX", bom.BOMFormat, bom.SpecVersion)
	}
	if c := bom.Metadata.Component; c.Name != "github.com/vault-plugin-salesforce/vault-plugin-salesforce" || c.Version != releaseVersion {
		t.Errorf("SBOM describes %s %s, want the plugin's module at %s", c.Name, c.Version, releaseVersion)
	}
	found := false
	for _, c := range bom.Components {
		if c.Name == "github.com/hashicorp/vault/sdk" && c.Version != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("SBOM lists %d components, not the Vault SDK", len(bom.Components))
	}
}

// requireContainerfileCopies checks the Containerfile against the release: its COPY source,
// expanded for the release's version and linux/amd64, is the binary `make release` wrote into
// the build context (dist), and its ENTRYPOINT runs the COPY's destination.
func requireContainerfileCopies(t *testing.T, root, dist, bin string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	cp := regexp.MustCompile(`(?m)^COPY (\S+) (\S+)$`).FindStringSubmatch(text)
	entry := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]$`).FindStringSubmatch(text)
	if cp == nil || entry == nil {
		t.Fatalf("Containerfile: want one `COPY SRC DST` and an exec-form ENTRYPOINT:\n%s", text)
	}
	for _, arg := range []string{"VERSION", "TARGETARCH"} {
		if !regexp.MustCompile(`(?m)^ARG ` + arg + `$`).MatchString(text) {
			t.Errorf("Containerfile does not declare ARG %s", arg)
		}
	}
	src := strings.NewReplacer("${VERSION}", releaseVersion, "${TARGETARCH}", "amd64").Replace(cp[1])
	if src != bin {
		t.Errorf("Containerfile copies %s (for %s linux/amd64), but make release writes %s", src, releaseVersion, bin)
	}
	if _, err := os.Stat(filepath.Join(dist, src)); err != nil {
		t.Errorf("the Containerfile's COPY source is not in the release folder: %v", err)
	}
	if entry[1] != cp[2] {
		t.Errorf("ENTRYPOINT runs %s, but the binary is copied to %s", entry[1], cp[2])
	}
	if !bytes.Contains(b, []byte("FROM ")) {
		t.Error("Containerfile has no FROM")
	}
}
