// Package bootstrap holds no code: it is the operator kit for vault-plugin-salesforce
// (Salesforce metadata, Vault policies, Terraform and scripts). Its test checks what a machine
// without Salesforce or Terraform can: that the metadata, policies and scripts are consistent.
package bootstrap
