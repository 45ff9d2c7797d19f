package e2e

// Helpers of the reliability and security suite (reliability_*_test.go): environments with
// extra Vault configuration (raw storage listing, trace logs, file storage), the summary line
// every test logs per class, key-ring snapshots and the storage-consistency check, background
// creds readers, process measurements, and the emulator's apps.
//
// Every identifier here starts with "rel" so that it cannot clash with the helpers other test
// files of this package define.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// relReport logs the machine-readable summary line of one class:
//
//	RELIABILITY kind=fault class=token_status_503 injected=6 served=9 failed=2 keys_lost=0
//
// docs/RELIABILITY.md is generated from these lines (see relReportCommand there).
func relReport(t testing.TB, kind, class string, kv ...any) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "RELIABILITY kind=%s class=%s", kind, class)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if d, ok := v.(time.Duration); ok {
			v = d.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, " %v=%v", kv[i], v)
	}
	t.Log(b.String())
}

// relEnvOptions say how newRelEnv starts Vault.
type relEnvOptions struct {
	emuFlags []string
	trace    bool // -log-level=trace (plugin log lines included)
}

// newRelEnv is NewEnv with the raw storage endpoint on (so tests can list the plugin's storage
// keys; values under keys/ are never read), and optionally trace logging.
func newRelEnv(t testing.TB, o relEnvOptions) *Env {
	t.Helper()
	cfg := LoadConfig(t)
	e := &Env{Cfg: cfg}
	e.Emu = StartEmulator(t, cfg, o.emuFlags...)
	opts := DevVaultOptions{ExtraConfig: "raw_storage_endpoint = true\n"}
	if o.trace {
		opts.ExtraArgs = []string{"-log-level=trace"}
	}
	e.Vault, e.PluginSHA = StartDevVaultWith(t, cfg, opts)
	t.Cleanup(func() { e.Vault.Rec.AssertNoPrivateKey(t) })
	e.Vault.RegisterPlugin(t, e.PluginSHA, e.Cfg.PluginVersion)
	e.Vault.EnablePlugin(t, Mount)
	return e
}

// relKey is one key version as connections/<name>/keys lists it.
type relKey struct{ Status, Fingerprint string }

// relRing lists a connection's key versions (errors returned, so a poll can ride out restarts).
func relRing(c *api.Client, conn string) (map[int]relKey, error) {
	l, err := c.Logical().List(Mount + "/connections/" + conn + "/keys")
	if err != nil {
		return nil, err
	}
	if l == nil || l.Data == nil {
		return nil, fmt.Errorf("connections/%s/keys: empty list", conn)
	}
	info, _ := l.Data["key_info"].(map[string]any)
	out := map[int]relKey{}
	for _, k := range anyStrings(l.Data["keys"]) {
		n, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("key %q is not a version", k)
		}
		ki, _ := info[k].(map[string]any)
		fp, _ := ki["fingerprint_sha256"].(string)
		st, _ := ki["status"].(string)
		out[n] = relKey{Status: st, Fingerprint: NormalizeFingerprint(fp)}
	}
	return out, nil
}

func relMustRing(t testing.TB, v *Vault, conn string) map[int]relKey {
	t.Helper()
	r, err := relRing(v.Client, conn)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func relRingString(r map[int]relKey) string {
	return ringStatuses(r, func(k relKey) string { return k.Status })
}

// relKeysLost counts the versions that had a private key before (any status but destroyed) and
// lost it after: gone from the ring, destroyed, or with another fingerprint. Status changes
// (pending → active → archived) are not losses.
func relKeysLost(before, after map[int]relKey) (lost int, what []string) {
	for v, b := range before {
		if b.Status == "destroyed" {
			continue
		}
		a, ok := after[v]
		switch {
		case !ok:
			what = append(what, fmt.Sprintf("version %d (%s) vanished", v, b.Status))
		case a.Status == "destroyed":
			what = append(what, fmt.Sprintf("version %d (%s) was destroyed", v, b.Status))
		case a.Fingerprint != b.Fingerprint:
			what = append(what, fmt.Sprintf("version %d changed fingerprint", v))
		default:
			continue
		}
		lost++
	}
	sort.Strings(what)
	return lost, what
}

// relMountUUID is the storage UUID of the plugin's mount: its storage lives under
// logical/<uuid>/ in Vault's barrier.
func relMountUUID(t testing.TB, v *Vault) string {
	t.Helper()
	s := v.Read(t, "sys/mounts/"+Mount)
	if s == nil || s.Data == nil {
		t.Fatalf("sys/mounts/%s: empty", Mount)
	}
	u, _ := s.Data["uuid"].(string)
	if u == "" {
		t.Fatalf("sys/mounts/%s has no uuid: %v", Mount, s.Data)
	}
	return u
}

// relRawList lists storage keys under the plugin's storage prefix (sys/raw; only listing,
// never reading: values under keys/ are private keys).
func relRawList(c *api.Client, uuid, prefix string) ([]string, error) {
	s, err := c.Logical().List("sys/raw/logical/" + uuid + "/" + prefix)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Data == nil {
		return nil, nil
	}
	return anyStrings(s.Data["keys"]), nil
}

// relStorageProblems checks a connection's storage against its key ring, below the API: every
// version that is not destroyed has its private key in storage, a destroyed one has none, and
// no key material lies there that the ring does not name (an orphan left by a half-done write).
// It returns what is wrong.
func relStorageProblems(c *api.Client, uuid, conn string) ([]string, error) {
	ring, err := relRing(c, conn)
	if err != nil {
		return nil, err
	}
	stored, err := relRawList(c, uuid, "keys/"+conn+"/")
	if err != nil {
		return nil, err
	}
	have := map[int]bool{}
	var problems []string
	for _, k := range stored {
		n, err := strconv.Atoi(k)
		if err != nil {
			problems = append(problems, fmt.Sprintf("unexpected storage key keys/%s/%s", conn, k))
			continue
		}
		have[n] = true
		if _, ok := ring[n]; !ok {
			problems = append(problems, fmt.Sprintf("orphan key material keys/%s/%d (not in the ring %s)", conn, n, relRingString(ring)))
		}
	}
	for n, k := range ring {
		switch {
		case k.Status == "destroyed" && have[n]:
			problems = append(problems, fmt.Sprintf("version %d is destroyed but its key material is still stored", n))
		case k.Status != "destroyed" && !have[n]:
			problems = append(problems, fmt.Sprintf("version %d (%s) has no key material in storage", n, k.Status))
		}
	}
	sort.Strings(problems)
	return problems, nil
}

// relRequireStorage fails the test if relStorageProblems finds anything.
func relRequireStorage(t testing.TB, v *Vault, uuid, conn string) {
	t.Helper()
	p, err := relStorageProblems(v.Client, uuid, conn)
	if err != nil {
		t.Fatalf("storage check of %s: %v", conn, err)
	}
	if len(p) > 0 {
		t.Fatalf("storage of connection %s is inconsistent:\n%s", conn, strings.Join(p, "\n"))
	}
}

// relRead reads creds/<role> and times it.
func relRead(c *api.Client, role string) (*api.Secret, time.Duration, error) {
	start := time.Now()
	s, err := c.Logical().Read(Mount + "/creds/" + role)
	d := time.Since(start)
	if err == nil && (s == nil || s.Data == nil || s.Data["access_token"] == nil || s.Data["access_token"] == "") {
		err = errors.New("empty creds response")
	}
	return s, d, err
}

// relReaders read one role in the background and count what they get.
type relReaders struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	served atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   []string
	tokens map[string]bool
	leases []string
}

// relStartReaders starts n readers of role through clients of v, each pausing between reads.
func relStartReaders(t testing.TB, v *Vault, role string, n int, pause time.Duration) *relReaders {
	t.Helper()
	r := &relReaders{stop: make(chan struct{}), tokens: map[string]bool{}}
	for i := 0; i < n; i++ {
		c := v.NewClient(t, "")
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				select {
				case <-r.stop:
					return
				default:
				}
				s, _, err := relRead(c, role)
				r.mu.Lock()
				if err != nil {
					r.failed.Add(1)
					if len(r.errs) < 50 {
						r.errs = append(r.errs, fmt.Sprintf("%s creds/%s: %s", time.Now().Format("15:04:05.000"), role, strings.Join(strings.Fields(err.Error()), " ")))
					}
				} else {
					r.served.Add(1)
					r.tokens[s.Data["access_token"].(string)] = true
					if s.LeaseID != "" {
						r.leases = append(r.leases, s.LeaseID)
					}
				}
				r.mu.Unlock()
				select {
				case <-r.stop:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
	t.Cleanup(r.halt)
	return r
}

func (r *relReaders) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

// finish stops the readers and returns the counts and the first errors.
func (r *relReaders) finish() (served, failed int64, errs []string) {
	r.halt()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.served.Load(), r.failed.Load(), append([]string(nil), r.errs...)
}

// relCounter reads one numeric emulator counter without failing on absence (0).
func relCounter(t testing.TB, emu *Emulator, name string) int64 {
	t.Helper()
	var n int64
	_ = json.Unmarshal(emu.Counters(t)[name], &n)
	return n
}

// relFault is an emulator fault spec (the admin API's JSON).
type relFault map[string]any

// relApp creates (or replaces) an app of the emulator's demo org, with users (default: both
// demo users) pre-authorised and certPEM registered at once (no propagation delay applies to a
// created app).
func relApp(t testing.TB, emu *Emulator, name, consumerKey, certPEM string, users ...string) {
	t.Helper()
	if len(users) == 0 {
		users = []string{emu.Username, emu.DeployUsername}
	}
	emu.admin(t, http.MethodPost, "/__emulator/apps", map[string]any{
		"name": name, "org_id": emu.OrgID, "consumer_key": consumerKey, "certificate_pem": certPEM,
		"admin_approved": true, "pre_authorized_users": users,
		"label": name, "contact_email": "ops@example.com", "callback_url": "https://localhost/callback",
		"scopes": []string{"Api", "RefreshToken"},
	})
}

// relAppCertificate is the certificate an emulator app stores now.
func relAppCertificate(t testing.TB, emu *Emulator, consumerKey string) string {
	t.Helper()
	var view map[string]any
	b := emu.admin(t, http.MethodGet, "/__emulator/apps/"+url.PathEscape(consumerKey), nil)
	if err := json.Unmarshal(b, &view); err != nil {
		t.Fatal(err)
	}
	s, _ := view["certificate_pem"].(string)
	return s
}

// relProcKB reads a "kB" field (VmRSS, VmHWM) of /proc/<pid>/status.
func relProcKB(pid int, field string) (int64, error) {
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

// relProcCount counts the entries of /proc/<pid>/<dir> (fd: open files and sockets; task:
// threads).
func relProcCount(pid int, dir string) (int, error) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/%s", pid, dir))
	return len(es), err
}

// relLogLines returns the lines of a log file.
func relLogLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}

// relPanics returns the log lines that report a panic.
func relPanics(t testing.TB, v *Vault) []string {
	t.Helper()
	var out []string
	for _, l := range relLogLines(t, v.LogPath) {
		if strings.Contains(l, "panic:") || strings.Contains(l, "goroutine ") && strings.Contains(l, "[running]") ||
			strings.Contains(strings.ToLower(l), "recovered from panic") {
			out = append(out, l)
		}
	}
	return out
}

// relFileVault is a single Vault server on file storage, initialised with one unseal key: a
// production-like node that can be sealed, unsealed, killed and restarted on the same data.
type relFileVault struct {
	*Vault
	UnsealKey string
	PluginSHA string
	top       testing.TB // owns the server processes, across subtests
}

// startRelFileVault starts the node, initialises and unseals it, and mounts the plugin.
func startRelFileVault(t testing.TB, cfg Config) *relFileVault {
	t.Helper()
	home := t.TempDir()
	pluginDir, sha := PluginDirCopy(t, cfg)
	port, clusterPort := FreePort(t), FreePort(t)
	data := filepath.Join(home, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`storage "file" {
  path = %q
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr             = "http://127.0.0.1:%d"
cluster_addr         = "https://127.0.0.1:%d"
plugin_directory     = %q
disable_mlock        = true
ui                   = false
raw_storage_endpoint = true
log_level            = "debug"
`, data, port, clusterPort, port, clusterPort, pluginDir)
	confPath := filepath.Join(home, "file.hcl")
	writeFile(t, confPath, conf)
	v := newVault(t, cfg, "vault-file", fmt.Sprintf("http://127.0.0.1:%d", port), home, "server", "-config="+confPath)
	v.start(t)
	init, err := v.Client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("operator init: %v", err)
	}
	f := &relFileVault{Vault: v, UnsealKey: init.KeysB64[0], PluginSHA: sha, top: t}
	v.setToken(init.RootToken)
	f.Unseal(t)
	v.RegisterPlugin(t, sha, cfg.PluginVersion)
	v.EnablePlugin(t, Mount)
	t.Cleanup(func() { v.Rec.AssertNoPrivateKey(t) })
	t.Logf("vault on file storage at %s (pid %d, data %s, log %s)", v.Addr, v.PID(), data, v.LogPath)
	return f
}

// Unseal submits the key until the node is unsealed and active.
func (f *relFileVault) Unseal(t testing.TB) {
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
func (f *relFileVault) Seal(t testing.TB) {
	t.Helper()
	f.CLI(t, "operator", "seal")
	WaitFor(t, 30*time.Second, f.Name+" to be sealed", func() error { return expectHealth(f.Vault, 503) })
}

// Restart ends the server (kill: SIGKILL to its process group, a crash; otherwise SIGTERM, a
// service stop), starts it again on the same data and unseals it.
func (f *relFileVault) Restart(t testing.TB, kill bool) {
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
