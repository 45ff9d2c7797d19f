#!/usr/bin/env bash
# make compat: runs the real-Vault e2e core against each Vault version in COMPAT_VERSIONS and
# writes the measured table into docs/COMPATIBILITY.md (between its compat:begin/end markers;
# the prose around it is left alone). Run before a release and commit the table.
#   COMPAT_VERSIONS  Vault versions to try (default: the tested ones)
#   PLUGIN_DIR, PLUGIN_VERSION, EMULATOR_BIN  as for `make e2e` (the Makefile builds both binaries)
# Each version comes from scripts/vault.sh with VAULT_VERSION set: that exact version, from PATH,
# the cache or a build from the Go module proxy (~20 min cold on 2 cores each). A version that
# does not build is recorded with the reason (the build log's last error line) and the run goes on.
set -uo pipefail
cd "$(dirname "$0")/.."
COMPAT_VERSIONS="${COMPAT_VERSIONS:-1.21.0 1.21.4}"
# The e2e core: register (versioned), mount + connection lifecycle, creds shared and per_lease,
# a manual rotation through an External Client App (and another with metrics and events), and
# a plugin upgrade on a live mount.
CORE_TESTS="TestPluginRegistration TestConnectionLifecycle TestCredsSharedOneLogin TestCredsPerLease TestBootstrapExternalClientApp TestMetricsAndEvents TestPluginUpgrade"
doc=docs/COMPATIBILITY.md
mkdir -p bin/compat
rows=""
failed=0
measured="$(date -u +%Y-%m-%d), plugin $(git rev-parse --short HEAD 2>/dev/null)"
for v in $COMPAT_VERSIONS; do
  buildlog="bin/compat/build-$v.log"
  echo "compat: Vault $v: getting the binary (scripts/vault.sh; progress in $buildlog)" >&2
  if ! bin=$(VAULT_VERSION="$v" scripts/vault.sh 2>"$buildlog"); then
    why=$(grep -E 'error|cannot|not enough|does not|failed' "$buildlog" | grep -v '^\[vault.sh\] \[' | head -n 1 | sed 's/|/\\|/g' | cut -c1-200)
    rows+="| $v | no | not run | ${why:-see $buildlog} | $measured |"$'\n'
    failed=1
    continue
  fi
  testlog="bin/compat/e2e-$v.log"
  echo "compat: Vault $v: running the e2e core ($testlog)" >&2
  VAULT_BIN="$bin" PLUGIN_DIR="${PLUGIN_DIR:-$PWD/bin/plugins}" PLUGIN_VERSION="${PLUGIN_VERSION:-v0.1.0}" \
    go test -count=1 -parallel 4 -v -timeout 20m -run "^($(echo "$CORE_TESTS" | tr ' ' '|'))\$" ./e2e/ >"$testlog" 2>&1
  rc=$?
  passed=() fails=()
  for t in $CORE_TESTS; do
    if grep -q "^--- PASS: $t " "$testlog"; then passed+=("$t"); else fails+=("$t"); fi
  done
  if [ "$rc" -eq 0 ] && [ ${#fails[@]} -eq 0 ]; then
    result="passed (${#passed[@]}/${#passed[@]})"
  else
    result="**failed** (${#passed[@]} of $(echo "$CORE_TESTS" | wc -w) passed; failed: ${fails[*]:-go test exit $rc})"
    failed=1
  fi
  reported=$("$bin" version | head -n 1 | sed 's/, built .*//; s/|/\\|/g') # the build date changes every run
  rows+="| $v | yes | $result | \`$reported\` | $measured |"$'\n'
done

# Rows of versions not tried in this run stay as they were measured before.
if [ -f "$doc" ]; then
  for v in $COMPAT_VERSIONS; do ran+="|$v|"; done
  while IFS= read -r line; do
    v=$(printf '%s' "$line" | sed -n 's/^| \([0-9][0-9.]*\) |.*/\1/p')
    [ -n "$v" ] && [[ "${ran:-}" != *"|$v|"* ]] && rows+="$line"$'\n'
  done < <(sed -n '/<!-- compat:begin/,/<!-- compat:end -->/p' "$doc")
fi
rows=$(printf '%s' "$rows" | sort -t'|' -k2,2V)$'\n'
table="| Vault | built here | e2e core | notes | measured |"$'\n'"|---|---|---|---|---|"$'\n'"$rows"
stamp="Last run $(date -u +%Y-%m-%d) by \`make compat\` for $COMPAT_VERSIONS ($(go env GOVERSION), $(nproc) cores); each row says when it was measured."
block="<!-- compat:begin (written by scripts/compat.sh; do not edit by hand) -->"$'\n'"$stamp"$'\n\n'"$table<!-- compat:end -->"
if grep -q '<!-- compat:begin' "$doc" 2>/dev/null; then
  block="$block" awk '/<!-- compat:begin/{print ENVIRON["block"]; skip=1; next} /<!-- compat:end -->/{skip=0; next} !skip' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
else
  printf '# Compatibility\n\n%s\n' "$block" >"$doc"
fi
printf '%s' "$table"
exit "$failed"
