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
	"sort"
	"strconv"
	"strings"
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

// relStartReaders starts n readers of role through root clients of v, each pausing between
// reads (credsReaders without the userinfo check); results gives what they got.
func relStartReaders(t testing.TB, v *Vault, role string, n int, pause time.Duration) *credsReaders {
	t.Helper()
	return startReaders(t, v, readersOptions{}, readerSpec{Role: role, N: n, Pause: pause})
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

// startRelFileVault starts a FileVault with the raw storage endpoint on and mounts the plugin.
func startRelFileVault(t testing.TB, cfg Config) *FileVault {
	t.Helper()
	f := StartFileVault(t, cfg, FileVaultOptions{RawStorage: true})
	f.EnablePlugin(t, Mount)
	t.Cleanup(func() { f.Rec.AssertNoPrivateKey(t) })
	t.Logf("vault on file storage at %s (pid %d, data %s, log %s)", f.Addr, f.PID(), f.DataDir, f.LogPath)
	return f
}
