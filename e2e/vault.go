package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Vault is one Vault server process (a dev server or a Raft node), with a root-token API client
// and a CLI runner pointed at it.
type Vault struct {
	Name    string
	Addr    string // http://127.0.0.1:PORT
	Token   string // root token ("root" in dev mode; set after init on a cluster)
	LogPath string
	Client  *api.Client
	Rec     *Recorder // every API response and CLI output, for the private-key scan

	bin  string
	args []string
	home string // HOME for the server and the CLI, so no ~/.vault-token outside the test
	proc *Process
}

// newVault prepares a node; start launches it.
func newVault(t testing.TB, cfg Config, name, addr, home string, args ...string) *Vault {
	t.Helper()
	v := &Vault{
		Name:    name,
		Addr:    addr,
		LogPath: filepath.Join(home, name+".log"),
		Rec:     &Recorder{},
		bin:     cfg.VaultBin,
		args:    args,
		home:    home,
	}
	v.Client = v.NewClient(t, "")
	return v
}

// start launches (or relaunches) the server process and waits until its HTTP listener answers.
func (v *Vault) start(t testing.TB) {
	t.Helper()
	var logStart int64
	if fi, err := os.Stat(v.LogPath); err == nil {
		logStart = fi.Size() // a restarted node appends to its log
	}
	v.proc = StartProcess(t, v.Name, v.LogPath, []string{"HOME=" + v.home}, v.bin, v.args...)
	WaitFor(t, 60*time.Second, v.Name+" to listen", func() error {
		if exited, err := v.proc.Exited(); exited {
			t.Fatalf("%s exited during start-up: %v", v.Name, err)
		}
		// Vault prints this once its listeners are bound: an answer on the address before
		// then would come from some other server.
		if !logContainsSince(v.LogPath, logStart, "==> Vault server started!") {
			return fmt.Errorf("%s has not reported that it started", v.Name)
		}
		_, err := v.HealthStatus()
		return err
	})
}

// PID is the server's process id.
func (v *Vault) PID() int { return v.proc.PID() }

// Running reports whether the server process is alive.
func (v *Vault) Running() bool {
	if v.proc == nil {
		return false
	}
	exited, _ := v.proc.Exited()
	return !exited
}

// Kill ends the server at once (SIGKILL to its process group, plugins included): a crash.
func (v *Vault) Kill() { v.proc.Kill() }

// NewClient returns an API client for this node with the given token (root when empty). Retries
// are off: a test must see what Vault answered, not what a retry eventually got.
func (v *Vault) NewClient(t testing.TB, token string) *api.Client {
	t.Helper()
	conf := api.DefaultConfig()
	conf.Address = v.Addr
	conf.MaxRetries = 0
	conf.Timeout = 90 * time.Second
	conf.HttpClient.Transport = &recordingTransport{base: conf.HttpClient.Transport, rec: v.Rec}
	c, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearNamespace()
	if token == "" {
		token = v.Token
	}
	c.SetToken(token)
	return c
}

// setToken sets the root token on the node and its client.
func (v *Vault) setToken(token string) {
	v.Token = token
	v.Client.SetToken(token)
}

// HealthStatus is the HTTP status of /v1/sys/health: 200 active, 429 standby, 501 not
// initialised, 503 sealed.
func (v *Vault) HealthStatus() (int, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(v.Addr + "/v1/sys/health")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Read, Write, List and Delete call the logical API as root and fail the test on error.

func (v *Vault) Read(t testing.TB, path string) *api.Secret {
	t.Helper()
	s, err := v.Client.Logical().Read(path)
	return MustSecret(t, "read", path, s, err)
}

func (v *Vault) Write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := v.Client.Logical().Write(path, data)
	return MustSecret(t, "write", path, s, err)
}

func (v *Vault) List(t testing.TB, path string) *api.Secret {
	t.Helper()
	s, err := v.Client.Logical().List(path)
	return MustSecret(t, "list", path, s, err)
}

// MustSecret returns what a logical API call (op: read, write, list) of path answered, and fails
// the test if the call failed.
func MustSecret(t testing.TB, op, path string, s *api.Secret, err error) *api.Secret {
	t.Helper()
	if err != nil {
		t.Fatalf("%s %s: %v", op, path, err)
	}
	return s
}

func (v *Vault) Delete(t testing.TB, path string) {
	t.Helper()
	if _, err := v.Client.Logical().Delete(path); err != nil {
		t.Fatalf("delete %s: %v", path, err)
	}
}

// CLI runs `vault ARGS…` against this node as root, logs it as an operator would type it, and
// fails the test when the command fails. It returns stdout.
func (v *Vault) CLI(t testing.TB, args ...string) string {
	t.Helper()
	stdout, stderr, err := v.TryCLI(t, args...)
	if err != nil {
		t.Fatalf("$ vault %s\nfailed: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// TryCLI runs `vault ARGS…` and returns its output and error, for commands expected to fail.
func (v *Vault) TryCLI(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Logf("$ vault %s", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.bin, args...)
	cmd.Env = v.cliEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	v.Rec.add("CLI", "vault "+strings.Join(args, " "), 0, out.Bytes())
	v.Rec.add("CLI", "vault "+strings.Join(args, " ")+" (stderr)", 0, errOut.Bytes())
	return out.String(), errOut.String(), err
}

// CLIJSON runs a CLI command with -format=json added after the subcommand words and decodes its
// output into out.
func (v *Vault) CLIJSON(t testing.TB, out any, words []string, args ...string) {
	t.Helper()
	full := append(append(append([]string{}, words...), "-format=json"), args...)
	stdout := v.CLI(t, full...)
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		t.Fatalf("vault %s: output is not JSON: %v\n%s", strings.Join(full, " "), err, stdout)
	}
}

// cliEnv is the environment of a CLI run: the caller's, minus any VAULT_* setting that could
// point the CLI elsewhere, plus this node's address and token.
func (v *Vault) cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token, "HOME="+v.home, "VAULT_CLI_NO_COLOR=1")
}

// RegisterPlugin registers the plugin binary with its sha256 and version, and environment
// variables env (KEY=VALUE) for its process, as an operator types it.
func (v *Vault) RegisterPlugin(t testing.TB, sha, version string, env ...string) {
	t.Helper()
	args := []string{"plugin", "register", "-sha256=" + sha, "-version=" + version}
	for _, kv := range env {
		args = append(args, "-env="+kv)
	}
	v.CLI(t, append(args, "secret", PluginName)...)
}

// EnablePlugin mounts the plugin at path, as an operator types it.
func (v *Vault) EnablePlugin(t testing.TB, path string) {
	t.Helper()
	v.CLI(t, "secrets", "enable", "-path="+path, PluginName)
}

// PluginPIDs lists the plugin processes this Vault server started.
func (v *Vault) PluginPIDs(t testing.TB) []int {
	t.Helper()
	pids, err := ChildPIDs(v.PID(), PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// PluginPID waits for exactly one plugin process under this server (the plugin multiplexes every
// mount in one process) and returns it.
func (v *Vault) PluginPID(t testing.TB) int {
	t.Helper()
	var pid int
	WaitFor(t, 30*time.Second, "one "+PluginName+" process under "+v.Name, func() error {
		pids := v.PluginPIDs(t)
		if len(pids) != 1 {
			return fmt.Errorf("plugin processes: %v", pids)
		}
		pid = pids[0]
		return nil
	})
	return pid
}

// StatusCode is the HTTP status of a failed API call (0 if err is not an API response).
func StatusCode(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// Recorder keeps every response body a node sent to the tests (and every CLI output), so that a
// test can assert that no private key ever left the plugin.
type Recorder struct {
	mu        sync.Mutex
	exchanges []Exchange
}

// Exchange is one recorded response.
type Exchange struct {
	Method, Path string
	Status       int
	Body         []byte
}

func (r *Recorder) add(method, path string, status int, body []byte) {
	if len(body) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = append(r.exchanges, Exchange{method, path, status, append([]byte(nil), body...)})
}

// Exchanges returns a copy of what was recorded so far.
func (r *Recorder) Exchanges() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exchange(nil), r.exchanges...)
}

type recordingTransport struct {
	base http.RoundTripper
	rec  *Recorder
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	rt.rec.add(req.Method, req.URL.Path, resp.StatusCode, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// WaitForLog waits until a line of the server's log contains every one of parts.
func (v *Vault) WaitForLog(t testing.TB, timeout time.Duration, parts ...string) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("%s to log %q", v.Name, parts), func() error {
		b, err := os.ReadFile(v.LogPath)
		if err != nil {
			return err
		}
	lines:
		for _, line := range strings.Split(string(b), "\n") {
			for _, p := range parts {
				if !strings.Contains(line, p) {
					continue lines
				}
			}
			return nil
		}
		return errNotYet
	})
}

// logContainsSince reports whether the file holds s after byte offset off.
func logContainsSince(path string, off int64, s string) bool {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return false
	}
	return bytes.Contains(b[off:], []byte(s))
}
