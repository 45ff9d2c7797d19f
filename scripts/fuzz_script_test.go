package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGo is a `go` on PATH that plays one fuzzing outcome per call, from the lines of $PLAN:
// "pass", "deadline" (the coordinator's bare deadline failure), "crash" (a failing input
// written to the corpus, as go test does), "other" (a failure that is neither).
const fakeGo = `#!/usr/bin/env bash
n=$(cat "$STATE" 2>/dev/null || echo 0); echo $((n+1)) > "$STATE"
case "$1" in test) ;; *) exit 2 ;; esac
if [[ " $* " == *" -fuzz "* ]]; then
  step=$(sed -n "$((n+1))p" "$PLAN")
else
  step=replay
fi
case "$step" in
  pass|replay) echo PASS; exit 0 ;;
  deadline) echo "--- FAIL: FuzzX (10.03s)"; echo "    context deadline exceeded"; exit 1 ;;
  crash) mkdir -p pkg/testdata/fuzz/FuzzX; echo "go test fuzz v1" > pkg/testdata/fuzz/FuzzX/abc123; echo "--- FAIL: FuzzX"; exit 1 ;;
  *) echo "--- FAIL: FuzzX"; echo "    panic: boom"; exit 1 ;;
esac
`

// scripts/fuzz.sh fails on a written failing input, retries Go's deadline race, and never
// hides a failure that is neither.
func TestFuzzScriptTellsFindingsFromTheDeadlineRace(t *testing.T) {
	script, err := filepath.Abs("fuzz.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, plan string
		wantOK     bool
		wantOut    string
	}{
		{"pass", "pass", true, "0 ended by the fuzzer's deadline race"},
		{"deadline then pass", "deadline\npass", true, "retry"},
		{"deadline twice", "deadline\ndeadline", true, "1 ended by the fuzzer's deadline race"},
		{"crash", "crash", false, "FAILING INPUT"},
		{"deadline then crash", "deadline\ncrash", false, "FAILING INPUT"},
		{"other failure", "other", false, "not at the deadline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			// fuzz.sh runs from the directory above itself: give it a copy in dir/scripts.
			if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
				t.Fatal(err)
			}
			body, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			write := func(p, s string, mode os.FileMode) {
				if err := os.WriteFile(filepath.Join(dir, p), []byte(s), mode); err != nil {
					t.Fatal(err)
				}
			}
			write("scripts/fuzz.sh", string(body), 0o755)
			if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			write("bin/go", fakeGo, 0o755)
			write("plan", c.plan+"\n", 0o644)
			cmd := exec.Command(filepath.Join(dir, "scripts", "fuzz.sh"), "pkg:FuzzX")
			cmd.Env = append(os.Environ(), "PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"),
				"PLAN="+filepath.Join(dir, "plan"), "STATE="+filepath.Join(dir, "state"), "FUZZTIME=1s")
			out, err := cmd.CombinedOutput()
			if (err == nil) != c.wantOK || !strings.Contains(string(out), c.wantOut) {
				t.Fatalf("exit ok=%v, want %v; output:\n%s", err == nil, c.wantOK, out)
			}
		})
	}
}
