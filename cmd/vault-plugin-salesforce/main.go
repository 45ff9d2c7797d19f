// Command vault-plugin-salesforce serves the Salesforce secrets engine to Vault.
package main

import "github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/pluginmain"

func main() { pluginmain.Serve() }
