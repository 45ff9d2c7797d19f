#!/usr/bin/env bash
# Provides a `vault` binary and prints its path.
#
# Supported range: Vault >= 1.12.0 (VAULT_MIN_VERSION). The floor is what the plugin needs from
# Vault: the plugin binary reports its version to Vault (`vault plugin register -version=…`,
# `RunningVersion` in the SDK's framework.Backend) and is served multiplexed
# (plugin.ServeMultiplex, one process for every mount); Vault gained both in 1.12. Below the
# floor a `vault` is not used. Newer features degrade rather than fail: Vault events
# (logical.SendEvent) exist since 1.16 and are a no-op on older Vaults.
# Tested: the versions in VAULT_TESTED_VERSIONS (docs/COMPATIBILITY.md holds the measured table,
# written by `make compat`). An in-range Vault outside that list is used with a warning.
#
# Order of preference:
#   With VAULT_VERSION set (e.g. by scripts/compat.sh), exactly that version:
#     $VAULT_BIN, a `vault` on PATH, the cached build, else a build from the Go module proxy.
#   Without it, any Vault in the supported range:
#     1. $VAULT_BIN; 2. a `vault` on PATH; 3. the cached build of the pinned version
#     ($VAULT_DEFAULT_VERSION); 4. a fresh build of the pinned version into $VAULT_CACHE_DIR.
#
# Why build from source: no Vault binary can be downloaded on our machines, but Vault is a Go
# module. Its go.mod has `replace` lines pointing api/ and sdk/ into folders that the module zip
# does not carry, so we build from a copy of the module with those two replaces dropped; the
# published sdk v0.20.0 and api v1.22.0 (the versions the module requires) then satisfy it.
# Vault v1.21.0 builds as is that way; see docs/COMPATIBILITY.md for the other versions tried.
#
# A cold build downloads ~4 GB of modules and compiles for 15-25 minutes on 2 cores; the binary
# (~500 MB) is cached outside the checkout, so fresh clones on the same machine reuse it.
set -euo pipefail

VAULT_MIN_VERSION="1.12.0"
VAULT_TESTED_VERSIONS="1.21.0"
VAULT_DEFAULT_VERSION="1.21.0"
exact="${VAULT_VERSION:-}"
VAULT_VERSION="${VAULT_VERSION:-$VAULT_DEFAULT_VERSION}"
VAULT_CACHE_DIR="${VAULT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-salesforce}"
target="$VAULT_CACHE_DIR/vault-$VAULT_VERSION/vault"

log() { echo "[vault.sh] $*" >&2; }

# The X.Y.Z a vault binary reports ("Vault v1.21.0 (…)", "Vault v1.15.2+ent"), or nothing.
version_of() { # $1: a vault binary
  "$1" version 2>/dev/null | sed -n 's/^Vault v\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1
}
version_ge() { # $1 >= $2, both X.Y.Z
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

# usable BIN: prints BIN and succeeds when BIN may be used under the rules above.
usable() {
  local bin="$1" v
  [ -x "$bin" ] || return 1
  v=$(version_of "$bin")
  if [ -z "$v" ]; then
    log "$bin: not used: \`$bin version\` does not report a Vault version"
    return 1
  fi
  if [ -n "$exact" ]; then
    [ "$v" = "$exact" ] && { echo "$bin"; return 0; }
    return 1
  fi
  if ! version_ge "$v" "$VAULT_MIN_VERSION"; then
    log "$bin: not used: Vault v$v is below the supported floor v$VAULT_MIN_VERSION" \
      "(the plugin needs versioned registration and multiplexing, Vault 1.12+)"
    return 1
  fi
  case " $VAULT_TESTED_VERSIONS " in
    *" $v "*) ;;
    *) log "warning: using Vault v$v from $bin: in the supported range (>= v$VAULT_MIN_VERSION)" \
      "but not among the tested versions ($VAULT_TESTED_VERSIONS); see docs/COMPATIBILITY.md" ;;
  esac
  echo "$bin"
}

if [ -n "${VAULT_BIN:-}" ] && usable "$VAULT_BIN"; then exit 0; fi
if command -v vault >/dev/null 2>&1 && usable "$(command -v vault)"; then exit 0; fi
cached_ok() { [ -x "$target" ] && [ "$(version_of "$target")" = "$VAULT_VERSION" ]; }
if cached_ok; then echo "$target"; exit 0; fi

start=$SECONDS
step() { log "[$(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s] $*"; }
log "no usable vault on PATH or in VAULT_BIN; building Vault v$VAULT_VERSION from the Go module proxy."
log "This happens once per machine: a cold build downloads ~4 GB of modules and compiles for"
log "~20 minutes on 2 cores (less with more cores or a warm module cache); the binary is cached in"
log "$VAULT_CACHE_DIR and reused afterwards. Progress is printed every minute."
mkdir -p "$VAULT_CACHE_DIR" "$(dirname "$target")"
# One build at a time: a second caller waits for the first and then reuses its binary.
exec 9>"$VAULT_CACHE_DIR/build.lock"
if ! flock -n 9; then
  step "another build holds $VAULT_CACHE_DIR/build.lock; waiting for it to finish"
  flock 9
fi
if cached_ok; then echo "$target"; exit 0; fi

# A ticker prints the current phase every minute, so a long build is never silent. It holds
# neither the lock nor our stdout (the caller reads the path from it), and stops with us.
phase_file="$VAULT_CACHE_DIR/.phase-$$"
# (One-second sleeps: a sleep left behind when we stop keeps our stderr open at most a second.)
(n=0; while sleep 1 && kill -0 $$ 2>/dev/null; do
  n=$((n + 1))
  if [ $((n % 60)) -eq 0 ]; then
    step "still working on $(cat "$phase_file" 2>/dev/null) (a cold build takes ~20 min in all)"
  fi
done) >/dev/null 9>&- &
ticker=$!
trap 'kill "$ticker" 2>/dev/null; rm -f "$phase_file"; [ -z "${work:-}" ] || rm -rf "$work"' EXIT
phase() { echo "$*" >"$phase_file"; step "$*"; }

phase "1/4 downloading the Vault v$VAULT_VERSION module source (~50 MB)"
src_dir=$(cd "$VAULT_CACHE_DIR" && GOFLAGS= go mod download -json "github.com/hashicorp/vault@v$VAULT_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || src_dir=""
[ -d "$src_dir" ] || { log "module download failed: the Go module proxy does not serve github.com/hashicorp/vault@v$VAULT_VERSION"; exit 1; }

work="$VAULT_CACHE_DIR/src-$VAULT_VERSION"
rm -rf "$work"
cp -r "$src_dir" "$work"
chmod -R u+w "$work"
cd "$work"
# Drop every replace that points into the module's own folders (api, sdk, api/auth/*): the zip
# does not carry them. Replaces to other modules (e.g. the keyring fork) stay.
for mod in $(go mod edit -json | sed -n 's/.*"Path": "\(github.com\/hashicorp\/vault\/[^"]*\)".*/\1/p' | sort -u); do
  go mod edit -dropreplace="$mod"
done
# The module's go.sum lacks the published api/sdk sums (they were replaced); let go add them.
phase "2/4 downloading Vault's dependencies (~4 GB cold; a few minutes)"
GOFLAGS=-mod=mod go mod download
phase "3/4 compiling Vault (the long part: ~15 min cold on 2 cores)"
commit=$(printf '%s' "$VAULT_VERSION" | sha256sum | cut -c1-40)
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$target.tmp" \
  -ldflags "-X github.com/hashicorp/vault/version.GitCommit=$commit -X github.com/hashicorp/vault/version.Version=$VAULT_VERSION" .
phase "4/4 installing into $target"
mv "$target.tmp" "$target"
rm -rf "$work"
cached_ok || { log "built binary does not report v$VAULT_VERSION: $("$target" version)"; exit 1; }
step "built $("$target" version)"
echo "$target"
