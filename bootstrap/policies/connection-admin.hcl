# salesforce-connection-admin: owns the connections. Creates, changes and deletes them, rotates,
# promotes and imports keys, and destroys archived keys. It cannot write roles nor mint.
#
# This is the most sensitive duty of the engine, so give it to few people (or to a pipeline):
#   - login_url, audience, ca_cert, allow_non_salesforce_host and allow_community_login (a
#     connection's origin) decide where signed assertions go. Changing them on an existing
#     connection starts a re-key: the existing keys keep signing only for the previous origin,
#     and a new key must be proven at the new one before it signs anything there. So a
#     re-pointed connection cannot send the real org's assertions or tokens elsewhere; but it
#     can send the engine's future reads to a host the admin controls, once that host "proves"
#     the new key.
#   - allowed_roles, allowed_usernames and allow_privileged_roles bound what the role operator
#     (operator.hcl) may write: which role names may use the connection, for which Salesforce
#     users, and whether a role may mint for the deploy or verify user.
#   - deploy_username's token changes the app's certificate through the Metadata API.
# Roles stay with the role operator, so that neither duty alone can both aim a connection and
# choose who gets tokens from it.
#
# It never mints: creds/ is denied below.

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
# rotate's deploy_imported=true deploys an imported pending key's certificate with
# deploy=metadata_api; without it an imported pending key is archived and a fresh one made.
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

# Roles, read-only: which roles use a connection (a connection in use cannot be deleted), to
# set allowed_roles and allowed_usernames knowingly. Writing and resetting roles is the
# operator's.
path "salesforce/roles/" {
  capabilities = ["list"]
}
path "salesforce/roles/+" {
  capabilities = ["read"]
}

# The running plugin's version, for upgrades and support.
path "salesforce/info" {
  capabilities = ["read"]
}

# Never mint. As in operator.hcl: the deny beats broader grants (a "salesforce/*" rule), though
# not an exact "salesforce/creds/<role>" grant on the same token. Keep identities separate.
path "salesforce/creds/*" {
  capabilities = ["deny"]
}
