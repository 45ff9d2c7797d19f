// Command pprof-plugin is vault-plugin-salesforce with net/http/pprof on a loopback address, for
// profiling the plugin inside a real Vault (the bench harness registers it under the plugin's
// name when BENCH_PPROF is set). It serves the same backend.Factory as
// cmd/vault-plugin-salesforce; only the profiling listener is added, and only when
// BENCH_PPROF_ADDR (passed through the plugin catalog's env) names a loopback address.
package main

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend"
)

func main() {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host).IsLoopback() {
			go func() { _ = http.ListenAndServe(addr, nil) }()
		}
	}
	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
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
