#!/usr/bin/env bash
# Runs the end-to-end tests against a real Vault and says plainly what ran: each test's result,
# then "e2e: N passed, N failed, N skipped". The full -v log (CLI commands, Vault and emulator
# logs on failure) goes to bin/e2e.log; its tail is printed if anything fails.
#   VAULT_BIN, PLUGIN_DIR, PLUGIN_VERSION  as set by `make e2e`
#   extra arguments                        passed to go test (e.g. -run TestRotation)
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
log=bin/e2e.log
go test -race -count=1 -parallel 8 -v -timeout 30m "$@" ./e2e/... >"$log" 2>&1
rc=$?
grep -E '^--- (PASS|FAIL|SKIP)|^(ok|FAIL)[[:space:]]|^panic:' "$log"
passed=$(grep -c '^--- PASS' "$log")
failed=$(grep -c '^--- FAIL' "$log")
skipped=$(grep -c '^--- SKIP' "$log")
if [ "$rc" -ne 0 ]; then
  echo "==== last 100 lines of $log ===="
  tail -n 100 "$log"
  # Tests run in parallel, so a failure's lines are scattered through the log and a tail can
  # miss them (CI once showed only other tests' output). Print each failed top-level test's own
  # lines, found by the "=== RUN/CONT/NAME <test>" headers go test -v writes before each chunk;
  # the server and emulator logs a failed test dumps are left to $log.
  echo "==== the failed tests' own output (server logs left out: see $log) ===="
  awk -f scripts/failed-tests.awk "$log" "$log"
fi
echo "e2e: $passed passed, $failed failed, $skipped skipped"
if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "e2e: no test ran (is VAULT_BIN set?)" >&2
  exit 1
fi
exit "$rc"
