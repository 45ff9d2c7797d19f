#!/usr/bin/env bash
# Signs and verifies a release's checksums with OpenSSH signatures (ssh-keygen -Y).
#
#   scripts/release.sh sign KEY DIST
#       sign DIST/SHA256SUMS with the OpenSSH private key KEY into DIST/SHA256SUMS.sig, and write
#       DIST/allowed_signers (the key's public half, for verifiers; they must compare it with
#       the key the project publishes, never trust the copy next to the signature alone)
#   scripts/release.sh verify DIST ALLOWED_SIGNERS
#       check DIST/SHA256SUMS.sig against ALLOWED_SIGNERS, then every file DIST/SHA256SUMS
#       lists against its checksum; exits non-zero on any mismatch
#
# Why ssh-keygen: it is in Debian's openssh-client (on every developer machine and CI already),
# signs with an ed25519 key in one command, and verifies with one; no signing service, no
# transparency log, nothing to build. cosign would have to be built from source with its large
# dependency tree (Sigstore and cloud KMS clients) for the same detached signature. The
# signature covers SHA256SUMS, which lists every binary and its SBOM.
# The namespace binds a signature to this use: one made for git commits or ssh logins with the
# same key does not verify as a release signature.
set -euo pipefail

namespace=vault-plugin-salesforce-release
identity=release@vault-plugin-salesforce

die() { echo "release: $*" >&2; exit 1; }
command -v ssh-keygen >/dev/null || die "ssh-keygen is needed (Debian: apt-get install openssh-client)"

case "${1:-}" in
  sign)
    [ $# -eq 3 ] || die "usage: $0 sign KEY DIST"
    key=$2 dist=$3
    [ -f "$key" ] || die "no signing key at $key: set RELEASE_SIGNING_KEY to an OpenSSH private key (ssh-keygen -t ed25519 -f release-key)"
    [ -f "$dist/SHA256SUMS" ] || die "no $dist/SHA256SUMS to sign"
    rm -f "$dist/SHA256SUMS.sig"
    ssh-keygen -q -Y sign -f "$key" -n "$namespace" "$dist/SHA256SUMS"
    [ -s "$dist/SHA256SUMS.sig" ] || die "ssh-keygen made no signature"
    printf '%s namespaces="%s" %s\n' "$identity" "$namespace" "$(ssh-keygen -y -f "$key" | cut -d' ' -f1,2)" >"$dist/allowed_signers"
    echo "signed $dist/SHA256SUMS -> SHA256SUMS.sig (verify: $0 verify $dist ALLOWED_SIGNERS)"
    ;;
  verify)
    [ $# -eq 3 ] || die "usage: $0 verify DIST ALLOWED_SIGNERS"
    dist=$2 signers=$3
    for f in SHA256SUMS SHA256SUMS.sig; do [ -f "$dist/$f" ] || die "no $dist/$f"; done
    ssh-keygen -Y verify -f "$signers" -I "$identity" -n "$namespace" -s "$dist/SHA256SUMS.sig" \
      <"$dist/SHA256SUMS" || die "the signature on SHA256SUMS does not verify: do not use this release"
    (cd "$dist" && sha256sum --strict -c SHA256SUMS) || die "a file does not match SHA256SUMS: do not use this release"
    ;;
  *) die "usage: $0 sign KEY DIST | verify DIST ALLOWED_SIGNERS" ;;
esac
