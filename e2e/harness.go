// Package e2e holds the end-to-end tests of vault-plugin-salesforce: a real Vault (a dev server,
// and a 3-node Raft cluster on loopback) running the built plugin binary, with the Salesforce
// emulator as the upstream. Tests talk to Vault only through its HTTP API and its CLI, the way an
// operator or an application would.
//
// The tests need:
//
//	VAULT_BIN       path of the pinned vault binary (scripts/vault.sh prints it). Unset: skip.
//	PLUGIN_DIR      folder holding the built vault-plugin-salesforce (default ../bin/plugins)
//	PLUGIN_VERSION  the version the plugin binary reports (default v0.1.0)
//	EMULATOR_BIN    the Salesforce emulator binary (default ../bin/salesforce-emulator)
//
// `make e2e` sets the first three and builds both binaries first.
//
// Files: harness.go (configuration, processes, waiting), vault.go (a Vault node, its API client
// and CLI), emulator.go (the emulator process and its admin API), cluster.go (the Raft cluster),
// env.go (a ready dev Vault + emulator + mounted plugin), leakcheck.go (no private key in any
// response).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PluginName is the catalog name the plugin is registered under (api.md, "Examples assume…").
const PluginName = "vault-plugin-salesforce"

// Config is what the environment tells the harness.
type Config struct {
	VaultBin      string
	PluginDir     string // the folder the plugin was built into
	PluginBin     string // PluginDir/PluginName
	PluginVersion string
	EmulatorBin   string
}

// LoadConfig reads the environment. It skips the test when VAULT_BIN is unset (a plain
// `go test ./...` on a laptop without the pinned Vault) and fails it when something else is
// missing: under `make e2e` and in CI everything must be there, and a silent skip would hide it.
func LoadConfig(t testing.TB) Config {
	t.Helper()
	vaultBin := os.Getenv("VAULT_BIN")
	if vaultBin == "" {
		t.Skip("SKIPPED: VAULT_BIN is not set, so no real Vault to test against. " +
			"Run `make e2e` (it builds the plugin and the emulator and finds the pinned Vault " +
			"with scripts/vault.sh). CI must never take this branch.")
	}
	root := RepoRoot(t)
	c := Config{
		VaultBin:      vaultBin,
		PluginDir:     envOr("PLUGIN_DIR", filepath.Join(root, "bin", "plugins")),
		PluginVersion: envOr("PLUGIN_VERSION", "v0.1.0"),
		EmulatorBin:   envOr("EMULATOR_BIN", filepath.Join(root, "bin", "salesforce-emulator")),
	}
	c.PluginBin = filepath.Join(c.PluginDir, PluginName)
	for what, path := range map[string]string{
		"VAULT_BIN":                    c.VaultBin,
		"the plugin (make build)":      c.PluginBin,
		"the emulator (make emulator)": c.EmulatorBin,
	} {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s: no executable at %s (err=%v); run `make e2e`, which builds it", what, path, err)
		}
	}
	return c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// repoRoot is the folder holding go.mod, found from the test's working directory (the package
// folder under `go test`).
// RepoRoot is the checkout this test runs in (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// PluginDirCopy copies the built plugin into a fresh plugin directory owned by the test: a
// rebuild of bin/plugins while the suite runs (others work in the same checkout) must not change
// the binary under a registered sha256. It returns the directory and the binary's sha256.
func PluginDirCopy(t testing.TB, cfg Config) (dir, sha string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(cfg.PluginBin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dir, PluginName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, hex.EncodeToString(h.Sum(nil))
}

// Ports for the servers the tests start come from below Linux's ephemeral range (32768-60999),
// where the emulators' ":0" listeners and every client socket get theirs, and are never handed
// out twice in one test process. A port that was merely free a moment ago can otherwise be taken,
// before the server meant for it binds, by another test's server or by an outgoing connection;
// a dev server that then fails to bind, or a health check answered by another test's Vault,
// fails a test for no reason of its own. The port above each one is free too, and reserved with
// it: a dev server binds its cluster listener at the API port + 1.
const (
	portRangeLow  = 20000
	portRangeHigh = 32000
)

var ports struct {
	sync.Mutex
	next int
	used map[int]bool
}

// FreePort returns a loopback TCP port, free together with the port above it, that no other
// test in this process has been given.
func FreePort(t testing.TB) int {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
		// Start at a random even port, so that test processes run one after another (e2e, then
		// the benchmark's smoke) do not walk the same sequence into each other's lingering sockets.
		ports.next = portRangeLow + 2*rand.IntN((portRangeHigh-portRangeLow)/2)
	}
	for tries := 0; tries < (portRangeHigh-portRangeLow)/2; tries++ {
		p := ports.next
		ports.next += 2
		if ports.next >= portRangeHigh {
			ports.next = portRangeLow
		}
		if ports.used[p] || !portFree(p) || !portFree(p+1) {
			continue
		}
		ports.used[p], ports.used[p+1] = true, true
		return p
	}
	t.Fatalf("no free pair of loopback ports in %d-%d", portRangeLow, portRangeHigh)
	return 0
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// RunTool runs an operator's command-line tool (terraform, sf, a bootstrap script) in dir with
// exactly env (nothing inherited, so a test controls HOME, PATH and credentials), bounded by
// timeout. It logs the command and how long it took, and returns stdout and stderr together.
func RunTool(t testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("$ %s %s (%s)", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
	return out.String(), err
}

// WaitFor polls check every interval until it returns nil, and fails the test with the last error
// after timeout. Every wait in the suite is bounded this way.
func WaitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	start := time.Now()
	if err := poll(timeout, 200*time.Millisecond, check); err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Logf("waited %s for %s", d.Round(100*time.Millisecond), what)
	}
}

func poll(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// Process is a child process whose output goes to a log file. It runs in its own process group so
// that killing it also kills what it started (Vault's plugin processes).
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	waitErr error
}

// StartProcess starts bin with args, logging to logPath (appended: a restarted node keeps its
// history). The process is killed when the test ends, and on failure the log tail is dumped.
func StartProcess(t testing.TB, name, logPath string, env []string, bin string, args ...string) *Process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logFile, "==== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		// A restarted node appends to the same log: dump it once.
		if t.Failed() {
			if _, dumped := dumpedLogs.LoadOrStore(fmt.Sprintf("%p %s", t, logPath), true); !dumped {
				dumpLog(t, name, logPath)
			}
		}
	})
	return p
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Kill sends SIGKILL to the process group and waits (bounded) for the process to be reaped.
// Safe to call more than once.
func (p *Process) Kill() {
	if exited, _ := p.Exited(); exited {
		return
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// Stop asks the process to end (SIGTERM, as an operator's service manager would) and kills the
// group if it has not ended within timeout.
func (p *Process) Stop(timeout time.Duration) {
	if exited, _ := p.Exited(); exited {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL) // leftovers in the group, if any
	case <-time.After(timeout):
		p.Kill()
	}
}

// dumpLog writes the tail of a log file into the test output.
func dumpLog(t testing.TB, name, path string) {
	const maxLines = 400
	f, err := os.Open(path)
	if err != nil {
		t.Logf("%s log %s: %v", name, path, err)
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1024*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > maxLines {
			lines = lines[1:]
		}
	}
	t.Logf("==== last %d lines of the %s log (%s) ====\n%s\n==== end of the %s log ====",
		len(lines), name, path, strings.Join(lines, "\n"), name)
}

// ChildPIDs lists the live processes whose parent is ppid and whose command line contains
// match, read from /proc (Linux), so that the tests need no pgrep. The benchmark uses it too.
func ChildPIDs(ppid int, match string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || fmt.Sprint(pid) != e.Name() {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// stat is "pid (comm) state ppid …"; comm may hold spaces, so split after the last ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var state string
		var parent int
		if _, err := fmt.Sscanf(s[i+1:], " %s %d", &state, &parent); err != nil || parent != ppid || state == "Z" {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), match) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// ProcStatusKB reads a "kB" field (VmRSS, VmHWM) of /proc/<pid>/status, in kB.
func ProcStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

var errNotYet = errors.New("not yet")

// dumpedLogs remembers which logs were dumped for which test.
var dumpedLogs sync.Map
