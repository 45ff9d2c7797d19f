package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// FileVault is a single Vault server on file storage, initialised with one unseal key and
// unsealed, with the plugin registered: a production-like node that can be sealed, unsealed,
// killed and restarted on the same data. The reliability tests run on it, and so does the
// benchmark (bench.Server), whose storage bytes can be measured there (each entry is a file
// under the mount's UUID) but not in a dev server's memory.
type FileVault struct {
	*Vault
	UnsealKey string
	PluginSHA string
	DataDir   string     // the file backend's path
	top       testing.TB // owns the server processes, across subtests
}

// FileVaultOptions change how StartFileVault configures the node.
type FileVaultOptions struct {
	DataDir    string   // the file backend's path (default: data/ in the test's temporary directory)
	LogLevel   string   // Vault's log level (default debug)
	RawStorage bool     // raw_storage_endpoint = true (sys/raw, to list the plugin's storage keys)
	PluginBin  string   // the plugin binary to register (default: the built one, cfg.PluginBin)
	PluginEnv  []string // environment variables of the plugin process (its catalog entry's env)
}

// StartFileVault starts the node, initialises and unseals it, and registers the plugin binary (a
// private copy, so a rebuild of bin/plugins meanwhile changes nothing). It does not mount it.
func StartFileVault(t testing.TB, cfg Config, o FileVaultOptions) *FileVault {
	t.Helper()
	home := t.TempDir()
	if o.PluginBin != "" {
		cfg.PluginBin = o.PluginBin
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	pluginDir, sha := PluginDirCopy(t, cfg)
	port, clusterPort := FreePort(t), FreePort(t)
	data := o.DataDir
	if data == "" {
		data = filepath.Join(home, "data")
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`storage "file" {
  path = %q
}
raw_storage_endpoint = %t
`, data, o.RawStorage) + serverHCL(port, clusterPort, pluginDir, o.LogLevel)
	confPath := filepath.Join(home, "file.hcl")
	writeFile(t, confPath, conf)
	v := newVault(t, cfg, "vault-file", fmt.Sprintf("http://127.0.0.1:%d", port), home, "server", "-config="+confPath)
	v.start(t)
	init, err := v.Client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("operator init: %v", err)
	}
	f := &FileVault{Vault: v, UnsealKey: init.KeysB64[0], PluginSHA: sha, DataDir: data, top: t}
	v.setToken(init.RootToken)
	f.Unseal(t)
	v.RegisterPlugin(t, sha, cfg.PluginVersion, o.PluginEnv...)
	return f
}

// serverHCL is the part of a Vault server's configuration that every node the suite starts
// shares: the loopback listener without TLS on port, the cluster listener on clusterPort, the
// plugin directory and the log level.
func serverHCL(port, clusterPort int, pluginDir, logLevel string) string {
	return fmt.Sprintf(`listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "https://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
ui               = false
log_level        = %q
`, port, clusterPort, port, clusterPort, pluginDir, logLevel)
}

// Unseal submits the key until the node is unsealed and active.
func (f *FileVault) Unseal(t testing.TB) {
	t.Helper()
	WaitFor(t, 60*time.Second, f.Name+" to unseal and become active", func() error {
		st, err := f.Client.Sys().SealStatus()
		if err != nil {
			return err
		}
		if st.Sealed {
			if _, err := f.Client.Sys().Unseal(f.UnsealKey); err != nil {
				return err
			}
		}
		return expectHealth(f.Vault, 200)
	})
}

// Seal seals the node as an operator does and waits until it reports sealed.
func (f *FileVault) Seal(t testing.TB) {
	t.Helper()
	f.CLI(t, "operator", "seal")
	WaitFor(t, 30*time.Second, f.Name+" to be sealed", func() error { return expectHealth(f.Vault, 503) })
}

// Restart ends the server (kill: SIGKILL to its process group, a crash; otherwise SIGTERM, a
// service stop), starts it again on the same data and unseals it.
func (f *FileVault) Restart(t testing.TB, kill bool) {
	t.Helper()
	if kill {
		t.Logf("kill -9 vault (pid %d) and its plugins", f.PID())
		f.Kill()
	} else {
		t.Logf("SIGTERM vault (pid %d)", f.PID())
		f.proc.Stop(60 * time.Second)
	}
	// The new process belongs to the test that started the node, not to a subtest calling
	// Restart: a subtest's end must not kill it.
	f.proc = StartProcess(f.top, f.Name, f.LogPath, []string{"HOME=" + f.home}, f.bin, f.args...)
	WaitFor(t, 60*time.Second, f.Name+" to listen", func() error {
		if exited, err := f.proc.Exited(); exited {
			t.Fatalf("%s exited during start-up: %v", f.Name, err)
		}
		_, err := f.HealthStatus()
		return err
	})
	f.Unseal(t)
	t.Logf("vault restarted (pid %d)", f.PID())
}
