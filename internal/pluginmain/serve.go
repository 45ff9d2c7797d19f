// Package pluginmain is the body of the plugin's main, shared by cmd/vault-plugin-salesforce
// and the benchmark's profiling build (bench/cmd/pprof-plugin), so both serve Vault the same way.
package pluginmain

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend"
)

// Serve reads the flags Vault passes to a plugin and serves the backend until Vault stops it.
// It exits the process on failure.
func Serve() {
	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	// ServeMultiplex: one process serves every mount of this plugin version on a node.
	// Nothing in the backend package is global, so mounts stay independent.
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: backend.Factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	})
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
