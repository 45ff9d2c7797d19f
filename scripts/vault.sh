#!/usr/bin/env bash
# Provides a `vault` binary at the pinned version and prints its path.
#
# Order of preference:
#   1. $VAULT_BIN, if set and at the pinned version;
#   2. a `vault` on PATH at the pinned version;
#   3. the cached build in $VAULT_CACHE_DIR;
#   4. a fresh build from the Go module proxy into $VAULT_CACHE_DIR.
#
# Why build from source: no Vault binary can be downloaded on our machines, but Vault is a Go
# module. Its go.mod has `replace` lines pointing api/ and sdk/ into folders that the module zip
# does not carry, so we build from a copy of the module with those two replaces dropped; the
# published sdk v0.20.0 and api v1.22.0 (the versions the module requires) then satisfy it.
# Vault v1.21.0 builds as is that way; later 1.21.x need source patches, so we pin v1.21.0.
#
# A cold build downloads ~4 GB of modules and compiles for 15-25 minutes on 2 cores; the binary
# (~500 MB) is cached outside the checkout, so fresh clones on the same machine reuse it.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-1.21.0}"
VAULT_CACHE_DIR="${VAULT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-salesforce}"
target="$VAULT_CACHE_DIR/vault-$VAULT_VERSION/vault"

log() { echo "[vault.sh] $*" >&2; }

version_ok() { # $1: a vault binary
  "$1" version 2>/dev/null | grep -q "^Vault v${VAULT_VERSION}[ (]"
}

if [ -n "${VAULT_BIN:-}" ] && version_ok "$VAULT_BIN"; then echo "$VAULT_BIN"; exit 0; fi
if command -v vault >/dev/null 2>&1 && version_ok "$(command -v vault)"; then command -v vault; exit 0; fi
if [ -x "$target" ] && version_ok "$target"; then echo "$target"; exit 0; fi

log "building Vault v$VAULT_VERSION from the Go module proxy (cold: ~4 GB download, 15-25 min)"
mkdir -p "$VAULT_CACHE_DIR" "$(dirname "$target")"
# One build at a time: a second caller waits for the first and then reuses its binary.
exec 9>"$VAULT_CACHE_DIR/build.lock"
flock 9
if [ -x "$target" ] && version_ok "$target"; then echo "$target"; exit 0; fi

src_dir=$(cd "$VAULT_CACHE_DIR" && GOFLAGS= go mod download -json "github.com/hashicorp/vault@v$VAULT_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src_dir" ] || { log "module download failed"; exit 1; }

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
GOFLAGS=-mod=mod go mod download
commit=$(printf '%s' "$VAULT_VERSION" | sha256sum | cut -c1-40)
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$target.tmp" \
  -ldflags "-X github.com/hashicorp/vault/version.GitCommit=$commit -X github.com/hashicorp/vault/version.Version=$VAULT_VERSION" .
mv "$target.tmp" "$target"
rm -rf "$work"
version_ok "$target" || { log "built binary does not report v$VAULT_VERSION: $("$target" version)"; exit 1; }
log "built $("$target" version)"
echo "$target"
