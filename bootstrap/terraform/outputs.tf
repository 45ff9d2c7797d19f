output "certificate" {
  description = "The active certificate (PEM) to register on the Salesforce app."
  # The provider marks every field of a vault_generic_secret sensitive; a certificate is not.
  value = nonsensitive(data.vault_generic_secret.certificate.data["certificate"])
}

output "certificate_fingerprint_sha256" {
  description = "Its SHA-256 fingerprint, to compare with what Setup shows."
  value       = nonsensitive(data.vault_generic_secret.certificate.data["certificate_fingerprint_sha256"])
}

output "creds_path" {
  description = "What the application reads."
  value       = "${vault_mount.salesforce.path}/creds/${var.role_name}"
}
