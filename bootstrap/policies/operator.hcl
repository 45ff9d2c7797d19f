# salesforce-operator: runs the engine day to day. Creates and changes connections and roles,
# rotates, promotes and imports keys, destroys archived keys, resets a role's shared token.
#
# It never mints: creds/ is denied below, so an operator token cannot act as any Salesforce
# user. Keep the two duties apart; an operator who needs a token for a test uses an app token.

# List connections, then create, read, update and delete one. "create" and "update" are both
# needed: Vault asks for "create" when the connection does not exist yet, "update" when it
# does. Deleting a connection destroys its private keys for good.
path "salesforce/connections/" {
  capabilities = ["list"]
}
path "salesforce/connections/+" {
  capabilities = ["create", "read", "update", "delete"]
}

# The certificate to register on the Salesforce app (no key material is ever returned).
path "salesforce/connections/+/certificate" {
  capabilities = ["read"]
}

# The key ring: list versions, read one, destroy an archived one (delete erases its private key).
path "salesforce/connections/+/keys/" {
  capabilities = ["list"]
}
path "salesforce/connections/+/keys/+" {
  capabilities = ["read", "delete"]
}

# Rotation: start one, finish one by hand, bring in an existing key, and watch progress.
path "salesforce/connections/+/rotate" {
  capabilities = ["update"]
}
path "salesforce/connections/+/promote" {
  capabilities = ["update"]
}
path "salesforce/connections/+/import" {
  capabilities = ["update"]
}
path "salesforce/connections/+/rotation" {
  capabilities = ["read"]
}

# Roles: what each application may ask for. reset revokes a role's shared token (incident
# response).
path "salesforce/roles/" {
  capabilities = ["list"]
}
path "salesforce/roles/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "salesforce/roles/+/reset" {
  capabilities = ["update"]
}

# The running plugin's version, for upgrades and support.
path "salesforce/info" {
  capabilities = ["read"]
}

# Never mint. The deny beats broader grants on the same token (a "salesforce/*" rule, say), but
# Vault applies the most specific path first: an application policy granting the exact
# "salesforce/creds/<role>" still wins. Keep operator and application identities separate.
path "salesforce/creds/*" {
  capabilities = ["deny"]
}

# Revoking per_lease tokens in bulk during an incident needs Vault's lease API, which is
# sudo-protected. Uncomment if operators, not the Vault admins, handle that:
# path "sys/leases/revoke-prefix/salesforce/creds/*" {
#   capabilities = ["update", "sudo"]
# }
