# salesforce-auditor: read-only view of the engine for security review and monitoring.
#
# It sees every setting, the certificates and their fingerprints, the key table (status,
# dates, origin), rotation progress, and each role's usage counters. It cannot mint a token,
# write, rotate, reset or delete anything. Nothing it can read holds private key material or
# an access token.

path "salesforce/connections/" {
  capabilities = ["list"]
}
path "salesforce/connections/+" {
  capabilities = ["read"]
}
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

# Roles and their usage (tokens_minted, last_minted_at, last_key_version, last_error).
path "salesforce/roles/" {
  capabilities = ["list"]
}
path "salesforce/roles/+" {
  capabilities = ["read"]
}

path "salesforce/info" {
  capabilities = ["read"]
}

# The engine's Prometheus metrics (counts by connection, role and username; never a token).
path "salesforce/metrics" {
  capabilities = ["read"]
}

# Never mint: the deny beats broader grants elsewhere (a "salesforce/*" rule), though not an
# exact "salesforce/creds/<role>" grant, which is more specific: keep auditors and applications
# apart.
path "salesforce/creds/*" {
  capabilities = ["deny"]
}
