#!/usr/bin/env bash
# The full performance benchmark (`make bench`, after `make build emulator`):
#   1. in-process `go test -bench` of package backend (benchstat format, kept in bin/bench/);
#   2. bench.TestBench with BENCH_FULL=1: a real Vault (file storage) with the built plugin and
#      the Salesforce emulator, every measurement in several rounds with its baseline in the same
#      run; it folds in the results of step 1 and writes docs/BENCHMARKS.md.
# Takes about 15 minutes on 2 cores. Numbers are medians and ratios; nothing here is pass/fail on
# timing (the run fails only if something is wrong: a stampede with more than one token request,
# a failed read, a rotation that does not complete).
#
#   BENCH_COUNT   -count of the in-process benchmarks (default 6)
#   BENCH_DOC     where to write the report (default docs/BENCHMARKS.md)
#   BENCH_PPROF   a directory: also take CPU profiles of the plugin and of Vault under load
#                 (bench.TestProfile), for `go tool pprof`
set -euo pipefail
cd "$(dirname "$0")/.."

out=bin/bench
mkdir -p "$out"
count="${BENCH_COUNT:-6}"

echo "== in-process benchmarks (package backend) -> $out/backend.txt"
go test -run '^$' -bench 'SignAssertion|CredsCachedHit|CredsPerLease|Tick' -count "$count" ./backend/ | tee "$out/backend.txt"
echo "== key generation -> $out/keygen.txt"
go test -run '^$' -bench 'KeyGenerate' -benchtime 5x -count 5 ./backend/ | tee "$out/keygen.txt"

vault_bin="$(scripts/vault.sh)"
echo "== Vault + plugin + emulator (bench.TestBench, BENCH_FULL=1)"
VAULT_BIN="$vault_bin" PLUGIN_DIR="$PWD/bin/plugins" PLUGIN_VERSION="${PLUGIN_VERSION:-v0.1.0}" \
  EMULATOR_BIN="$PWD/bin/salesforce-emulator" \
  BENCH_FULL=1 BENCH_INPROC="$PWD/$out/backend.txt,$PWD/$out/keygen.txt" \
  go test -count=1 -run '^TestBench$' -v -timeout 60m ./bench/ 2>&1 | tee "$out/bench.txt"

if [ -n "${BENCH_PPROF:-}" ]; then
  echo "== CPU profiles of the plugin and Vault under load -> $BENCH_PPROF"
  VAULT_BIN="$vault_bin" PLUGIN_DIR="$PWD/bin/plugins" EMULATOR_BIN="$PWD/bin/salesforce-emulator" \
    BENCH_PPROF="$(realpath -m "$BENCH_PPROF")" go test -count=1 -run '^TestProfile$' -v -timeout 20m ./bench/
fi
