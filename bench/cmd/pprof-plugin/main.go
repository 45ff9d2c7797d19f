// Command pprof-plugin is vault-plugin-salesforce with net/http/pprof on a loopback address, for
// profiling the plugin inside a real Vault (the bench harness registers it under the plugin's
// name when BENCH_PPROF is set). It serves the plugin exactly as cmd/vault-plugin-salesforce
// does (internal/pluginmain); only the profiling listener is added, and only when
// BENCH_PPROF_ADDR (passed through the plugin catalog's env) names a loopback address.
package main

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/pluginmain"
)

func main() {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host).IsLoopback() {
			go func() { _ = http.ListenAndServe(addr, nil) }()
		}
	}
	pluginmain.Serve()
}
