#!/usr/bin/env bash
# Register a connection's certificate on the Salesforce app: read it from Vault, write it into
# the app's metadata, and deploy with the Salesforce CLI.
#
# Usage:
#   deploy-certificate.sh -c CONNECTION -o TARGET_ORG [-m MOUNT] [-t APP_TYPE] [-p] [-C] [-n]
#
#   -c CONNECTION  the Vault connection (salesforce/connections/CONNECTION)
#   -o TARGET_ORG  the org, as the Salesforce CLI knows it (alias or username)
#   -m MOUNT       Vault mount path (default: salesforce)
#   -t APP_TYPE    external_client_app (the Vault_JWT_ECA files) or connected_app
#                  (connectedApps/Vault_JWT). Default: the connection's app_type, read from
#                  Vault (external_client_app for a new connection; a connection made for a
#                  Connected App says connected_app), so the deploy goes to the app it uses
#   -p             deploy the pending certificate (a rotation with deploy=manual) instead of
#                  the active one
#   -C             certificate only, for an External Client App that already exists: deploy
#                  just its global OAuth settings. Without it the whole app (and the permission
#                  sets it names) is deployed, which also creates it the first time. A Connected
#                  App is always deployed whole: its certificate is part of the one component.
#   -n             dry run: build the deploy directory, print the sf command, deploy nothing
#
# Needs: vault (VAULT_ADDR and VAULT_TOKEN set; read on the certificate path, and without -t on
# the connection) and sf (logged in
# to TARGET_ORG; `export PATH="$(scripts/sf.sh):$PATH"` provides the pinned one). The files in force-app/ are not changed: the deploy is built in a temporary
# copy. Only the certificate and its fingerprint are read from Vault; neither is a secret.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/force-app/main/default

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
  echo "deploy-certificate: $*" >&2
  exit 1
}

connection='' org='' mount=salesforce app_type='' pending=false cert_only=false dry_run=false
while getopts ':c:o:m:t:pCnh' opt; do
  case $opt in
    c) connection=$OPTARG ;;
    o) org=$OPTARG ;;
    m) mount=${OPTARG%/} ;;
    t) app_type=$OPTARG ;;
    p) pending=true ;;
    C) cert_only=true ;;
    n) dry_run=true ;;
    h)
      usage
      exit 0
      ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || {
  usage >&2
  exit 2
}
[ -n "$connection" ] || die "-c CONNECTION is required"
[ -n "$org" ] || die "-o TARGET_ORG is required"

command -v vault >/dev/null || die "the vault CLI is not on PATH"
if [ -z "$app_type" ]; then
  app_type=$(vault read -field=app_type "$mount/connections/$connection" 2>/dev/null) ||
    die "could not read the app_type of $mount/connections/$connection: give -t external_client_app or -t connected_app"
fi
# The files that carry the certificate, and what a whole-app deploy sends.
case $app_type in
  connected_app)
    cert_file=connectedApps/Vault_JWT.connectedApp-meta.xml
    files=(permissionsets/Vault_Integration.permissionset-meta.xml
      permissionsets/Vault_Certificate_Deployer.permissionset-meta.xml
      "$cert_file")
    ;;
  external_client_app)
    cert_file=extlClntAppGlobalOauthSets/Vault_JWT_ECA_glbloauth.ecaGlblOauth-meta.xml
    files=(permissionsets/Vault_Integration.permissionset-meta.xml
      permissionsets/Vault_Certificate_Deployer.permissionset-meta.xml
      externalClientApps/Vault_JWT_ECA.eca-meta.xml
      "$cert_file"
      extlClntAppOauthSettings/Vault_JWT_ECA_oauth.ecaOauth-meta.xml
      extlClntAppOauthPolicies/Vault_JWT_ECA_oauthPlcy.ecaOauthPlcy-meta.xml
      extlClntAppPolicies/Vault_JWT_ECA_plcy.ecaPlcy-meta.xml)
    if $cert_only; then files=("$cert_file"); fi
    ;;
  *) die "-t must be connected_app or external_client_app, not $app_type" ;;
esac

$dry_run || command -v sf >/dev/null || die "the Salesforce CLI (sf) is not on PATH"

field=certificate
$pending && field=pending_certificate
path="$mount/connections/$connection/certificate"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT # a dry run that gets to the end keeps it, to be looked at

# Read the certificate into a file; it never goes through the terminal.
if ! vault read -field="$field" "$path" >"$work/vault.crt" 2>"$work/vault.err"; then
  cat "$work/vault.err" >&2
  if $pending; then die "no pending certificate at $path: is a rotation in flight?"; fi
  die "could not read $path"
fi
grep -q -- '-----BEGIN CERTIFICATE-----' "$work/vault.crt" || die "$path field $field is not a PEM certificate"
fingerprint=$(vault read -field="${field}_fingerprint_sha256" "$path")
echo "certificate: $path ($field), SHA-256 fingerprint $fingerprint"

# A minimal project: sfdx-project.json and the files to deploy.
cp "$here/sfdx-project.json" "$work/"
for f in "${files[@]}"; do
  mkdir -p "$work/force-app/main/default/$(dirname "$f")"
  cp "$src/$f" "$work/force-app/main/default/$f"
done

# Put the certificate between <certificate> and </certificate>, replacing whatever is there
# (the placeholder, or a certificate from an earlier run). Exactly one such element must exist.
target=$work/force-app/main/default/$cert_file
awk -v certfile="$work/vault.crt" '
  function cert(   line, out, n) {
    while ((getline line < certfile) > 0) { out = (n++ ? out "\n" : "") line }
    close(certfile)
    return out
  }
  skipping {
    i = index($0, "</certificate>")
    if (i) { print substr($0, i); skipping = 0 }
    next
  }
  index($0, "<certificate>") {
    found++
    i = index($0, "<certificate>") + length("<certificate>")
    printf "%s%s", substr($0, 1, i - 1), cert()
    rest = substr($0, i)
    j = index(rest, "</certificate>")
    if (j) { print substr(rest, j) } else { skipping = 1 }
    next
  }
  { print }
  END { if (found != 1 || skipping) exit 3 }
' "$target" >"$target.new" || die "$cert_file must hold exactly one certificate element"
mv "$target.new" "$target"

args=(project deploy start --target-org "$org" --wait 10)
for f in "${files[@]}"; do
  args+=(--source-dir "force-app/main/default/$f")
done

if $dry_run; then
  trap - EXIT
  printf 'deploy directory kept: %s\nwould run there:\n  sf' "$work"
  printf ' %q' "${args[@]}"
  echo
  exit 0
fi

echo "deploying ${#files[@]} file(s) to $org"
(cd "$work" && sf "${args[@]}")

cat <<EOF
Deployed. Salesforce takes 2-10 minutes to accept a new certificate.
EOF
if $pending; then
  echo "The plugin promotes the pending key once Salesforce accepts it; follow it with:"
  echo "  vault read $mount/connections/$connection/rotation"
else
  echo "Check it with a token read, e.g.: vault read $mount/creds/<role>"
fi
