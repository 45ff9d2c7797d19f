variable "plugin_sha256" {
  description = "SHA-256 of the plugin binary in Vault's plugin_directory (sha256sum bin/plugins/vault-plugin-salesforce)."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.plugin_sha256))
    error_message = "plugin_sha256 must be 64 lower-case hex digits."
  }
}

variable "plugin_version" {
  description = "Version the binary reports (vX.Y.Z). Vault refuses a registration whose version differs."
  type        = string
  default     = "v0.1.0"

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.plugin_version))
    error_message = "plugin_version must look like v1.2.3."
  }
}

variable "plugin_command" {
  description = "File name of the binary inside plugin_directory. Give each version its own file name to keep the previous one for a rollback."
  type        = string
  default     = "vault-plugin-salesforce"
}

variable "consumer_key" {
  description = "Consumer key of the Connected App or External Client App (the JWT iss). For a new app, \"placeholder\" until Salesforce shows the real one."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._]{1,256}$", var.consumer_key))
    error_message = "consumer_key must be the app's consumer key: up to 256 letters, digits, dots or underscores."
  }
}

variable "login_url" {
  description = "https URL of login.salesforce.com, test.salesforce.com, the org's My Domain or an Experience Cloud site. Give it as the plugin stores it: lower-case host, no trailing slash."
  type        = string
  default     = "https://login.salesforce.com"

  validation {
    condition     = can(regex("^https://[a-z0-9.-]+(/[^/?#]+)*$", var.login_url))
    error_message = "login_url must be an https URL with a lower-case host and no trailing slash, query or fragment."
  }
}

variable "username" {
  description = "Salesforce username the role's tokens are minted for (the JWT sub)."
  type        = string
}

variable "connection_name" {
  description = "Name of the connection (salesforce/connections/<name>)."
  type        = string
  default     = "prod"
}

variable "role_name" {
  description = "Name of the role (salesforce/roles/<name>); the app policy grants read on salesforce/creds/<name>."
  type        = string
  default     = "app"
}

variable "key_rotation_period_seconds" {
  description = "Rotate the signing key when it is this old, in seconds (0: off; 7776000 is 90 days). With deploy=manual every rotation needs an operator to upload the new certificate."
  type        = number
  default     = 0
}

variable "session_timeout_seconds" {
  description = "The app's session timeout in seconds (the Connected App's session policy or the ECA's sessionTimeoutInMinutes); 7200 matches the bootstrap metadata."
  type        = number
  default     = 7200
}
