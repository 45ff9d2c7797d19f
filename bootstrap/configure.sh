#!/usr/bin/env bash
# Register the locally built plugin with a running Vault, mount it, and write the policies in
# bootstrap/policies/. Safe to run again: a new build is registered under its version and the
# existing mount is moved to it and reloaded.
#
# Usage:
#   VAULT_ADDR=https://vault.example.com:8200 VAULT_TOKEN=... bootstrap/configure.sh
#
# Environment:
#   VAULT_ADDR, VAULT_TOKEN  required: a token allowed to write sys/plugins/catalog, sys/mounts
#                            and sys/policy (a root or admin token)
#   PLUGIN_BIN               the plugin binary (default: bin/plugins/vault-plugin-salesforce,
#                            what `make build` writes). Vault runs the copy in its own
#                            plugin_directory, which must hold a file of the same name and
#                            checksum; this script only computes the checksum.
#   PLUGIN_VERSION           the version the binary reports (default: v0.1.0, the Makefile's).
#                            Vault refuses a registration whose version differs.
#   MOUNT                    mount path (default: salesforce). The policies name salesforce/;
#                            they are rewritten for another mount and named <mount>-app,
#                            <mount>-operator and <mount>-auditor (slashes become dashes).
#   VAULT_BIN                the vault CLI (default: vault on PATH)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
plugin=vault-plugin-salesforce
plugin_bin=${PLUGIN_BIN:-$root/bin/plugins/$plugin}
version=${PLUGIN_VERSION:-v0.1.0}
mount=${MOUNT:-salesforce}
mount=${mount%/}
vault_bin=${VAULT_BIN:-vault}

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
  echo "configure: $*" >&2
  exit 1
}

case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    usage >&2
    exit 2
    ;;
esac

[ -n "${VAULT_ADDR:-}" ] || die "VAULT_ADDR is not set"
[ -n "${VAULT_TOKEN:-}" ] || die "VAULT_TOKEN is not set"
command -v "$vault_bin" >/dev/null || die "no vault CLI ($vault_bin); set VAULT_BIN"
[ -f "$plugin_bin" ] || die "no plugin binary at $plugin_bin: run 'make build' or set PLUGIN_BIN"
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "PLUGIN_VERSION must look like v1.2.3, not $version"
[[ $mount =~ ^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$ ]] || die "MOUNT $mount is not a plain mount path"

v() { "$vault_bin" "$@"; }

sha=$(sha256sum "$plugin_bin" | cut -d' ' -f1)
command_name=$(basename "$plugin_bin")

echo "==> registering $plugin $version (sha256 $sha, command $command_name)"
v plugin register -sha256="$sha" -command="$command_name" -version="$version" secret "$plugin"

if v secrets list -format=json | grep -q "\"$mount/\""; then
  echo "==> $mount/ is mounted: moving it to $version and reloading"
  v secrets tune -plugin-version="$version" "$mount/"
  v plugin reload -plugin="$plugin"
else
  echo "==> mounting $plugin $version at $mount/"
  v secrets enable -path="$mount" -plugin-version="$version" \
    -description="Salesforce access tokens (JWT bearer flow)" "$plugin"
fi

for f in "$here"/policies/*.hcl; do
  name="${mount//\//-}-$(basename "$f" .hcl)"
  echo "==> policy $name"
  # The files name the mount salesforce/; point them at $mount/ instead.
  sed "s#\"salesforce/#\"$mount/#g" "$f" | v policy write "$name" -
done

cat <<EOF

Done. Next:
  vault write $mount/connections/prod consumer_key=... login_url=https://<MyDomain>.my.salesforce.com
  vault read -field=certificate $mount/connections/prod/certificate > vault.crt
  (register vault.crt on the app: bootstrap/salesforce/deploy-certificate.sh, or Setup)
  vault write $mount/roles/app connection=prod username=integration@example.com
  vault token create -policy=${mount//\//-}-app     # for the application
  vault read $mount/creds/app
EOF
