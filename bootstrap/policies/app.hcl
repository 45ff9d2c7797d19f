# salesforce-app: what one application needs, and nothing more.
#
# An application reads an access token for exactly one role. Copy this file per application
# and replace "app" with the role's name; give each application its own role, so that
# roles/<name> usage fields, bound_cidrs and roles/<name>/reset apply to that application alone.
#
# Only "read" is granted: a creds read is what mints (or hands out the cached) token. The
# application cannot see the connection, the certificate, the key ring or other roles, and
# cannot change or reset anything.
path "salesforce/creds/app" {
  capabilities = ["read"]
}
