# salesforce-operator: the ROLE operator. Runs the engine's roles day to day: creates, changes
# and deletes roles, and resets a role's shared token during an incident. It can see the
# connections, their certificates, key tables and rotation progress, but cannot change them.
#
# Why the operator may not write connections: a connection's login_url, audience and trust
# settings (ca_cert, allow_non_salesforce_host, allow_community_login) decide where signed
# assertions and tokens to revoke are sent, and its allowed_roles / allowed_usernames decide
# which roles may mint for which Salesforce users. Whoever can rewrite a connection can point
# the engine at a host they control, or widen what roles may ask for. The plugin re-keys a
# connection whose origin changes (the existing keys keep signing only for the previous host),
# but the duty stays with a smaller group: see connection-admin.hcl.
#
# It never mints: creds/ is denied below, so an operator token cannot act as any Salesforce
# user. Keep the duties apart; an operator who needs a token for a test uses an app token.

# Connections, read-only: which connections exist and how they are set (allowed_roles and
# allowed_usernames say which roles and users the operator may write for each).
path "salesforce/connections/" {
  capabilities = ["list"]
}
path "salesforce/connections/+" {
  capabilities = ["read"]
}

# The certificate, the key table and rotation progress, read-only (no key material is ever
# returned). Rotating, promoting, importing and destroying keys is the connection admin's.
path "salesforce/connections/+/certificate" {
  capabilities = ["read"]
}
path "salesforce/connections/+/keys/" {
  capabilities = ["list"]
}
path "salesforce/connections/+/keys/+" {
  capabilities = ["read"]
}
path "salesforce/connections/+/rotation" {
  capabilities = ["read"]
}

# Roles: what each application may ask for. "create" and "update" are both needed: Vault asks
# for "create" when the role does not exist yet, "update" when it does. The connection still
# decides: a role it does not allow (allowed_roles, allowed_usernames, allow_privileged_roles)
# is refused with a 400 when written and again at every mint.
path "salesforce/roles/" {
  capabilities = ["list"]
}
path "salesforce/roles/+" {
  capabilities = ["create", "read", "update", "delete"]
}
# reset revokes a role's shared token at Salesforce (incident response).
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
