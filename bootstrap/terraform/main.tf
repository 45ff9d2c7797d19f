# The Vault side of vault-plugin-salesforce: catalog entry, mount, one connection, one role and
# the three policies of ../policies. Durations are written in seconds, as the plugin returns
# them, so that reads compare equal and plans stay empty.

locals {
  plugin = "vault-plugin-salesforce"
  # The policy files name the mount salesforce/; keep the two in step.
  mount = "salesforce"
}

# Register the binary. It must already be in plugin_directory, under plugin_command, on every
# Vault node. A new plugin_version or sha256 registers a new catalog entry (create_before_destroy:
# before the mount moves to it), then deregisters the old one once the mount runs the new one.
resource "vault_plugin" "salesforce" {
  type    = "secret"
  name    = local.plugin
  command = var.plugin_command
  version = var.plugin_version
  sha256  = var.plugin_sha256

  lifecycle {
    create_before_destroy = true
  }
}

# The mount, pinned to plugin_version: without a pin Vault mounts the newest registered version.
# On upgrades the provider tunes the pin (vault secrets tune -plugin-version=...).
resource "vault_mount" "salesforce" {
  path           = local.mount
  type           = vault_plugin.salesforce.name
  plugin_version = vault_plugin.salesforce.version
  description    = "Salesforce access tokens (JWT bearer flow)"
}

# A mount moved to a new version keeps running the old process until the plugin is reloaded
# (vault plugin reload -plugin=vault-plugin-salesforce). This write does it whenever the pinned
# version changes, and once at creation, harmlessly. In an HA cluster it reloads the node that
# serves the request, which is the active node: the only one running the plugin in Vault CE.
# The provider has no resource for a reload, so this one Vault endpoint stays generic.
resource "vault_generic_endpoint" "reload" {
  path           = "sys/plugins/reload/backend"
  disable_read   = true
  disable_delete = true

  data_json = jsonencode({
    plugin = local.plugin
  })

  depends_on = [vault_mount.salesforce]

  lifecycle {
    replace_triggered_by = [vault_mount.salesforce.plugin_version]
  }
}

# The connection: creating it generates key version 1 and returns its certificate. Destroying
# it destroys every key of the ring for good, and the app then needs a new certificate: think
# twice before `terraform destroy`, or protect it with
#   lifecycle { prevent_destroy = true }
resource "vault_generic_endpoint" "connection" {
  path = "${vault_mount.salesforce.path}/connections/${var.connection_name}"

  # Reads return many more fields (key ring, rotation state): compare only the ones set here.
  ignore_absent_fields = true

  data_json = jsonencode({
    consumer_key        = var.consumer_key
    login_url           = var.login_url
    deploy              = "manual"
    key_rotation_period = var.key_rotation_period_seconds
  })

  # After the reload, so the connection is not written while the plugin restarts.
  depends_on = [vault_generic_endpoint.reload]
}

resource "vault_generic_endpoint" "role" {
  path                 = "${vault_mount.salesforce.path}/roles/${var.role_name}"
  ignore_absent_fields = true

  data_json = jsonencode({
    connection      = var.connection_name
    username        = var.username
    token_mode      = "shared"
    ttl             = 900
    session_timeout = var.session_timeout_seconds
  })

  # Written after the connection and removed before it: Vault refuses to delete a connection
  # that roles use.
  depends_on = [vault_generic_endpoint.connection]
}

# The certificate to register on the app, read fresh at every plan (it changes with each
# rotation). Not a secret.
data "vault_generic_secret" "certificate" {
  path = "${vault_mount.salesforce.path}/connections/${var.connection_name}/certificate"

  depends_on = [vault_generic_endpoint.connection]
}

resource "vault_policy" "app" {
  name = "salesforce-app"
  # app.hcl grants read on salesforce/creds/app: point it at this role.
  policy = replace(file("${path.module}/../policies/app.hcl"), "salesforce/creds/app\"", "salesforce/creds/${var.role_name}\"")
}

resource "vault_policy" "operator" {
  # The role operator: roles and resets; connections read-only.
  name   = "salesforce-operator"
  policy = file("${path.module}/../policies/operator.hcl")
}

resource "vault_policy" "connection_admin" {
  # Connections (where assertions go) and their keys; roles read-only.
  name   = "salesforce-connection-admin"
  policy = file("${path.module}/../policies/connection-admin.hcl")
}

resource "vault_policy" "auditor" {
  name   = "salesforce-auditor"
  policy = file("${path.module}/../policies/auditor.hcl")
}
