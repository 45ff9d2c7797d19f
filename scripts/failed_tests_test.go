// Package scripts holds tests of the project's shell tooling.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A module whose parallel tests interleave their output: TestFails (with a subtest and a dumped
// server log) fails, TestPasses does not.
const sampleTests = `package sample

import (
	"testing"
	"time"
)

func TestFails(t *testing.T) {
	t.Parallel()
	t.Log("fails: first line")
	time.Sleep(30 * time.Millisecond)
	t.Run("sub", func(t *testing.T) { t.Log("fails: subtest line") })
	t.Logf("==== last 2 lines of the vault-dev log (x) ====\nserver line 1\nserver line 2\n==== end of the vault-dev log ====")
	t.Error("fails: the failure message")
}

func TestPasses(t *testing.T) {
	t.Parallel()
	for i := 0; i < 4; i++ {
		t.Log("passes: line", i)
		time.Sleep(10 * time.Millisecond)
	}
}
`

// TestFailedTestsAWK runs a real go test -v with parallel tests and checks that
// failed-tests.awk (what scripts/e2e.sh prints when the e2e suite fails) picks out exactly the
// failed test's own lines: its messages and its subtest's, not the passing test's, and not the
// server log it dumped.
func TestFailedTestsAWK(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":         "module sample\n\ngo 1.22\n",
		"sample_test.go": sampleTests,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-count=1", "-v", "-parallel", "2", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the sample's go test passed; it must fail:\n%s", out)
	}
	logPath := filepath.Join(dir, "test.log")
	if err := os.WriteFile(logPath, out, 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := exec.Command("awk", "-f", "failed-tests.awk", logPath, logPath).CombinedOutput()
	if err != nil {
		t.Fatalf("awk: %v\n%s", err, got)
	}
	report := string(got)
	for _, want := range []string{
		"TestFails: ", "fails: first line", "fails: subtest line", "fails: the failure message",
		"--- FAIL: TestFails", "==== last 2 lines of the vault-dev log (x) ==== [left out]",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	for _, notWant := range []string{"passes: line", "TestPasses", "server line"} {
		if strings.Contains(report, notWant) {
			t.Errorf("the report holds %q", notWant)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(report), "\n") {
		if !strings.HasPrefix(line, "TestFails: ") {
			t.Errorf("a line not attributed to TestFails: %q", line)
		}
	}
	if t.Failed() {
		t.Logf("go test output:\n%s\nreport:\n%s", out, report)
	}
}
