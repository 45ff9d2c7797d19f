package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/e2e"
)

// Server is one Vault server on file storage, initialised and unsealed, with the plugin
// registered. The e2e harness's dev server keeps its storage in memory, where storage bytes
// cannot be measured; a single-node file backend can (each entry is a file under the mount's
// UUID), and with Vault's default physical cache its reads are served from memory like dev
// mode's.
type Server struct {
	Addr      string // http://127.0.0.1:PORT
	Token     string // the root token
	DataDir   string // the file backend's path
	StorageOn string // where DataDir lives, for the report
	LogPath   string
	API       *api.Client
	PluginSHA string
	Version   string // "1.21.0"
	proc      *e2e.Process
}

// ServerOptions change what StartServer registers: another plugin binary (the profiling build)
// and environment variables for the plugin process (through the catalog entry).
type ServerOptions struct {
	PluginBin string
	PluginEnv []string
}

// StartServer starts `vault server` with a file backend, log level info (the production default;
// debug would log every mint), inits it with one key share, unseals it and registers the
// plugin binary (a private copy, so a rebuild of bin/plugins meanwhile changes nothing).
func StartServer(t testing.TB, cfg e2e.Config, opts ServerOptions) *Server {
	t.Helper()
	home := t.TempDir()
	if opts.PluginBin != "" {
		cfg.PluginBin = opts.PluginBin
	}
	pluginDir, sha := e2e.PluginDirCopy(t, cfg)
	port := e2e.FreePort(t)
	s := &Server{
		Addr:      fmt.Sprintf("http://127.0.0.1:%d", port),
		DataDir:   filepath.Join(home, "data"),
		StorageOn: "the test's temporary directory (" + home + ")",
		LogPath:   filepath.Join(home, "vault.log"),
		PluginSHA: sha,
	}
	// Storage on tmpfs by default: the benchmark measures Vault and the plugin, not the disk
	// (a shared VM disk whose latency other work on the machine moves). Registered before the
	// process starts, so the directory is removed after the server is killed.
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
		s.DataDir, s.StorageOn = filepath.Join(d, "data"), root
	}
	conf := fmt.Sprintf(`storage "file" {
  path = %q
}
listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}
api_addr         = %q
plugin_directory = %q
disable_mlock    = true
ui               = false
log_level        = "info"
`, s.DataDir, port, s.Addr, pluginDir)
	confPath := filepath.Join(home, "vault.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.proc = e2e.StartProcess(t, "vault", s.LogPath, []string{"HOME=" + home}, cfg.VaultBin, "server", "-config="+confPath)

	apiConf := api.DefaultConfig()
	apiConf.Address = s.Addr
	apiConf.MaxRetries = 0
	apiConf.Timeout = 2 * time.Minute
	c, err := api.NewClient(apiConf)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearNamespace()
	s.API = c
	e2e.WaitFor(t, 60*time.Second, "vault to listen", func() error {
		if exited, err := s.proc.Exited(); exited {
			t.Fatalf("vault exited during start-up: %v (log %s)", err, s.LogPath)
		}
		_, err := s.health()
		return err
	})
	init, err := c.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("operator init: %v", err)
	}
	s.Token = init.RootToken
	c.SetToken(s.Token)
	if _, err := c.Sys().Unseal(init.KeysB64[0]); err != nil {
		t.Fatalf("unseal: %v", err)
	}
	e2e.WaitFor(t, 60*time.Second, "vault to be active", func() error {
		code, err := s.health()
		if err == nil && code != 200 {
			err = fmt.Errorf("sys/health: HTTP %d", code)
		}
		return err
	})
	if h, err := c.Sys().Health(); err == nil {
		s.Version = h.Version
	}
	if err := c.Sys().RegisterPlugin(&api.RegisterPluginInput{
		Name: e2e.PluginName, Type: api.PluginTypeSecrets, Command: e2e.PluginName, SHA256: sha, Version: cfg.PluginVersion,
		Env: opts.PluginEnv,
	}); err != nil {
		t.Fatalf("register plugin: %v", err)
	}
	t.Logf("vault %s on file storage at %s (pid %d, log %s)", s.Version, s.Addr, s.PID(), s.LogPath)
	return s
}

func (s *Server) health() (int, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(s.Addr + "/v1/sys/health")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// PID is the Vault server's process id.
func (s *Server) PID() int { return s.proc.PID() }

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
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return sec
}

// Read reads path as root and fails the test on error or an empty answer.
func (s *Server) Read(t testing.TB, path string) *api.Secret {
	t.Helper()
	sec, err := s.API.Logical().Read(path)
	if err != nil || sec == nil {
		t.Fatalf("read %s: %v (%v)", path, err, sec)
	}
	return sec
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

// PluginPID is the plugin process under this server (one process serves every mount).
func (s *Server) PluginPID(t testing.TB) int {
	t.Helper()
	var pid int
	e2e.WaitFor(t, 30*time.Second, "one plugin process", func() error {
		pids := childPIDs(s.PID(), e2e.PluginName)
		if len(pids) != 1 {
			return fmt.Errorf("plugin processes: %v", pids)
		}
		pid = pids[0]
		return nil
	})
	return pid
}

// RSS is a process's resident set size from /proc/<pid>/status (VmRSS), in bytes.
func RSS(pid int) (int64, error) {
	return procStatusKB(pid, "VmRSS:")
}

// HWM is a process's peak resident set size (VmHWM), in bytes.
func HWM(pid int) (int64, error) {
	return procStatusKB(pid, "VmHWM:")
}

func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// childPIDs lists live processes whose parent is ppid and whose command line contains match.
func childPIDs(ppid int, match string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		st := string(stat)
		i := strings.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(st[i+1:])
		if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(ppid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), match) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}
