#!/usr/bin/env bash
# Provides Terraform and the hashicorp/vault provider at pinned versions, for running
# bootstrap/terraform offline, and prints a folder holding `terraform` and `terraformrc`:
#
#   d=$(scripts/terraform.sh)
#   export PATH="$d:$PATH" TF_CLI_CONFIG_FILE="$d/terraformrc"
#   terraform init && terraform apply    # in a copy of bootstrap/terraform
#
# terraformrc installs hashicorp/vault from a local filesystem mirror holding the provider built
# here, so `terraform init` works as it does for a user (lock file and all) without the registry.
#
# Why build from source: neither Terraform nor its providers can be downloaded on our machines,
# but both are Go modules on the module proxy.
#   - Terraform's go.mod replaces nine remote-state backends (s3, gcs, azurerm, ...) and
#     internal/legacy with nested modules that its module zip does not carry. We drop those
#     requires and replaces and cut the nine backends out of internal/backend/init/init.go;
#     local state (all we need) is untouched.
#   - The provider's module path has no /v5 suffix, so its v5.x tags are not Go module versions:
#     the proxy serves it only as a pseudo-version. We pin main as of the 5.9.0 release
#     (2026-04-22; its CHANGELOG and version/VERSION say 5.9.0) and build it as is.
# A cold build of both, measured on 2 cores with empty Go caches, takes ~7 min and leaves ~2.4 GB
# in the module cache and ~1.6 GB in the build cache. The binaries (73 MB and 48 MB) are cached
# outside the checkout, so fresh clones on the same machine reuse them; a cached run takes 0.2 s.
set -euo pipefail

TERRAFORM_VERSION="${TERRAFORM_VERSION:-1.15.0}"
VAULT_PROVIDER_VERSION=5.9.0
VAULT_PROVIDER_MODULE=github.com/hashicorp/terraform-provider-vault@v1.9.1-0.20260422134934-5e9fcd457a99
VAULT_CACHE_DIR="${VAULT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-salesforce}"
tools="$VAULT_CACHE_DIR/tools"
tf="$tools/terraform-$TERRAFORM_VERSION/terraform"
mirror="$tools/terraform-provider-vault-$VAULT_PROVIDER_VERSION"
provider="$mirror/registry.terraform.io/hashicorp/vault/$VAULT_PROVIDER_VERSION/$(go env GOOS)_$(go env GOARCH)/terraform-provider-vault_v$VAULT_PROVIDER_VERSION"
out="$tools/terraform-$TERRAFORM_VERSION-vault-$VAULT_PROVIDER_VERSION"

log() { echo "[terraform.sh] $*" >&2; }

tf_ok() { # not `| grep -q`: with pipefail, terraform dying of SIGPIPE would read as a mismatch
  local v
  [ -x "$tf" ] && v=$(TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1 "$tf" version -json 2>/dev/null) &&
    [[ $v == *"\"terraform_version\": \"$TERRAFORM_VERSION\""* ]]
}
ready() { tf_ok && [ -x "$provider" ] && [ -L "$out/terraform" ] && [ -f "$out/terraformrc" ]; }

if ready; then echo "$out"; exit 0; fi

mkdir -p "$tools"
# One build at a time: a second caller waits for the first and then reuses its binaries.
exec 9>"$tools/build.lock"
flock 9
if ready; then echo "$out"; exit 0; fi

export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"

module_copy() { # $1: module@version, $2: destination; copies the module's source, writable
  local dir
  dir=$(cd "$tools" && GOFLAGS= go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { log "download of $1 failed"; exit 1; }
  rm -rf "$2"
  cp -r "$dir" "$2"
  chmod -R u+w "$2"
}

if ! tf_ok; then
  log "building Terraform v$TERRAFORM_VERSION from the Go module proxy (cold: ~5 min)"
  work="$tools/src-terraform-$TERRAFORM_VERSION"
  module_copy "github.com/hashicorp/terraform@v$TERRAFORM_VERSION" "$work"
  (
    cd "$work"
    for mod in $(go mod edit -json | sed -n 's/.*"Path": "\(github.com\/hashicorp\/terraform\/internal\/[^"]*\)".*/\1/p' | sort -u); do
      go mod edit -dropreplace="$mod" -droprequire="$mod"
    done
    cut='azure|consul|cos|gcs|kubernetes|oci|oss|pg|s3'
    sed -i -E "/remote-state\/($cut)\"/d; /backend(Azure|Consul|Cos|GCS|Kubernetes|OCI|OSS|Pg|S3)\.New\(\)/d" \
      internal/backend/init/init.go
    mkdir -p "$(dirname "$tf")"
    go build -trimpath -ldflags "-s -w -X github.com/hashicorp/terraform/version.dev=no" -o "$tf.tmp" .
    mv "$tf.tmp" "$tf"
  )
  rm -rf "$work"
  tf_ok || { log "built terraform does not report v$TERRAFORM_VERSION"; exit 1; }
fi

if [ ! -x "$provider" ]; then
  log "building terraform-provider-vault v$VAULT_PROVIDER_VERSION from the Go module proxy (cold: ~3 min)"
  work="$tools/src-terraform-provider-vault-$VAULT_PROVIDER_VERSION"
  module_copy "$VAULT_PROVIDER_MODULE" "$work"
  grep -qx "$VAULT_PROVIDER_VERSION" "$work/version/VERSION" || { log "$VAULT_PROVIDER_MODULE is not $VAULT_PROVIDER_VERSION"; exit 1; }
  mkdir -p "$(dirname "$provider")"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$provider.tmp" .)
  mv "$provider.tmp" "$provider"
  rm -rf "$work"
fi

mkdir -p "$out"
ln -sfn "$tf" "$out/terraform"
cat >"$out/terraformrc.tmp" <<EOF
# Written by scripts/terraform.sh: hashicorp/vault comes from the local mirror, nothing else is
# installed, and Terraform does not phone home.
disable_checkpoint = true

provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/vault"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/vault"]
  }
}
EOF
mv "$out/terraformrc.tmp" "$out/terraformrc"
log "ready: Terraform v$TERRAFORM_VERSION, hashicorp/vault v$VAULT_PROVIDER_VERSION"
echo "$out"
