package bench

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/e2e"
)

// Server is one Vault server on file storage (an e2e.FileVault: initialised with one key share,
// unsealed, the plugin registered), with an API client of its own for the measurements. The e2e
// harness's dev server keeps its storage in memory, where storage bytes cannot be measured; a
// single-node file backend can (each entry is a file under the mount's UUID), and with Vault's
// default physical cache its reads are served from memory like dev mode's.
type Server struct {
	*e2e.FileVault
	StorageOn string      // where DataDir lives, for the report
	API       *api.Client // root; unlike the harness's client it keeps no copy of the responses
	Version   string      // "1.21.0"
}

// ServerOptions change what StartServer registers: another plugin binary (the profiling build)
// and environment variables for the plugin process (through the catalog entry).
type ServerOptions struct {
	PluginBin string
	PluginEnv []string
}

// StartServer starts the server with log level info (the production default; debug would log
// every mint).
func StartServer(t testing.TB, cfg e2e.Config, opts ServerOptions) *Server {
	t.Helper()
	o := e2e.FileVaultOptions{LogLevel: "info", PluginBin: opts.PluginBin, PluginEnv: opts.PluginEnv}
	// Storage on tmpfs by default: the benchmark measures Vault and the plugin, not the disk
	// (a shared VM disk whose latency other work on the machine moves). Registered before the
	// process starts, so the directory is removed after the server is killed.
	var storageOn string
	root := os.Getenv("BENCH_DATA_DIR")
	if root == "" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			root = "/dev/shm"
		}
	}
	if root != "" {
		d, err := os.MkdirTemp(root, "vault-bench-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		o.DataDir, storageOn = filepath.Join(d, "data"), root
	}
	s := &Server{FileVault: e2e.StartFileVault(t, cfg, o), StorageOn: storageOn}
	if s.StorageOn == "" {
		s.StorageOn = "the test's temporary directory (" + filepath.Dir(s.DataDir) + ")"
	}
	apiConf := api.DefaultConfig()
	apiConf.Address = s.Addr
	apiConf.MaxRetries = 0
	apiConf.Timeout = 2 * time.Minute
	c, err := api.NewClient(apiConf)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearNamespace()
	c.SetToken(s.Token)
	s.API = c
	if h, err := c.Sys().Health(); err == nil {
		s.Version = h.Version
	}
	t.Logf("vault %s on file storage at %s (pid %d, log %s)", s.Version, s.Addr, s.PID(), s.LogPath)
	return s
}

// Mount enables a secrets engine at path with the given type and options; it returns the
// mount's UUID (its storage lives under logical/<uuid>/).
func (s *Server) Mount(t testing.TB, path, typ string, options map[string]string) string {
	t.Helper()
	if err := s.API.Sys().Mount(path, &api.MountInput{Type: typ, Options: options}); err != nil {
		t.Fatalf("mount %s (%s): %v", path, typ, err)
	}
	m, err := s.API.Sys().GetMount(path)
	if err != nil {
		t.Fatalf("read mount %s: %v", path, err)
	}
	return m.UUID
}

// Write writes path as root and fails the test on error.
func (s *Server) Write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.API.Logical().Write(path, data)
	return e2e.MustSecret(t, "write", path, sec, err)
}

// Read reads path as root and fails the test on error or an empty answer.
func (s *Server) Read(t testing.TB, path string) *api.Secret {
	t.Helper()
	sec, err := s.API.Logical().Read(path)
	if err == nil && sec == nil {
		err = errors.New("empty answer")
	}
	return e2e.MustSecret(t, "read", path, sec, err)
}

// MountBytes is the size of a mount's storage on the file backend: the apparent size (sum of
// file sizes: JSON-wrapped, base64 of the barrier-encrypted entry) and the allocated size
// (blocks: at least one filesystem block per entry), and the number of entries.
func (s *Server) MountBytes(t testing.TB, uuid string) (apparent, allocated int64, entries int) {
	t.Helper()
	root := filepath.Join(s.DataDir, "logical", uuid)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		} else if err != nil {
			return err
		}
		apparent += info.Size()
		allocated += blocks(info) * 512
		entries++
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return apparent, allocated, entries
}

// RSS is a process's resident set size from /proc/<pid>/status (VmRSS), in bytes.
func RSS(pid int) (int64, error) {
	kb, err := e2e.ProcStatusKB(pid, "VmRSS")
	return kb * 1024, err
}

// HWM is a process's peak resident set size (VmHWM), in bytes.
func HWM(pid int) (int64, error) {
	kb, err := e2e.ProcStatusKB(pid, "VmHWM")
	return kb * 1024, err
}
