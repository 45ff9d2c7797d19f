terraform {
  required_version = ">= 1.5.0"

  required_providers {
    vault = {
      source  = "hashicorp/vault"
      version = ">= 4.0.0"
    }
  }
}

# Address and token come from VAULT_ADDR and VAULT_TOKEN (and VAULT_CACERT and friends). The
# token needs sys/plugins/catalog, sys/plugins/reload, sys/mounts, sys/policy and the mount.
provider "vault" {}
