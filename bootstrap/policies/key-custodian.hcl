# salesforce-key-custodian: the ROLE key custodian. Manages the org's Shield Platform
# Encryption BYOK tenant secrets: configures them, rotates them, destroys and restores
# versions. Nothing else: it cannot mint tokens, change connections or roles, or read keys.
#
# Why a separate role: destroying a tenant secret makes the data Salesforce encrypted under it
# unreadable. That power belongs to the few people who own the org's encryption policy, not to
# the operator who runs roles nor to the connection admin who manages JWT keys. No path returns
# a tenant secret: the custodian sees versions, Salesforce ids and SHA-256 hashes only.

path "salesforce/connections/" {
  capabilities = ["list"]
}

# Settings per connection and type (certificate_name, rotation_period, keep_archived,
# auto_destroy); delete is refused by the plugin while Salesforce holds versions.
path "salesforce/connections/+/tenant-secrets/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "salesforce/connections/+/tenant-secrets/+/rotate" {
  capabilities = ["update"]
}
path "salesforce/connections/+/tenant-secrets/+/versions/" {
  capabilities = ["list"]
}
path "salesforce/connections/+/tenant-secrets/+/versions/+" {
  capabilities = ["read"]
}
path "salesforce/connections/+/tenant-secrets/+/versions/+/destroy" {
  capabilities = ["update"]
}
path "salesforce/connections/+/tenant-secrets/+/versions/+/restore" {
  capabilities = ["update"]
}

# Never a token: the custodian cannot act as any Salesforce user.
path "salesforce/creds/*" {
  capabilities = ["deny"]
}
