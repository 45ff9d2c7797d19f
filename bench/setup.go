package bench

import (
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/e2e"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// Mount points of this run.
const (
	Mount      = "salesforce" // the plugin: every measurement but scale
	ScaleMount = "scale"      // the plugin again, fresh, for the scale measurement's storage bytes
	KVMount    = "kv"         // KV-v2: the read-path floor
	kvSecret   = KVMount + "/data/creds-copy"
)

// byokCertificate is the emulator org's BYOK certificate that tenant secrets are wrapped for.
const byokCertificate = "Bench_BYOK"

// KeyPair is a key made by the harness, imported into a connection with its certificate, and
// registered on an emulator app at the app's creation (so it takes effect at once). The raw
// baseline of a cold mint signs with the same key the plugin signs with.
type KeyPair struct {
	Key     *rsa.PrivateKey
	KeyPEM  string
	CertPEM string
}

func newKeyPair(cn string) (KeyPair, error) {
	key, err := keyutil.Generate(nil, keyutil.RSA2048)
	if err != nil {
		return KeyPair{}, err
	}
	der, err := keyutil.MarshalPrivateKey(key)
	if err != nil {
		return KeyPair{}, err
	}
	now := time.Now()
	certPEM, _, err := keyutil.SelfSign(nil, key, keyutil.CertRequest{Subject: pkix.Name{CommonName: cn}, Now: now, NotAfter: now.Add(365 * 24 * time.Hour)})
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Key: key, KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), CertPEM: certPEM}, nil
}

// App is an emulator connected app of this run, with its key.
type App struct {
	Name        string
	ConsumerKey string
	Keys        KeyPair
}

// Env is everything the measurements share: one Vault on file storage with the plugin at
// salesforce/ and KV-v2 at kv/, one emulator process, the load client and the raw baseline
// client.
type Env struct {
	Plan      Plan
	Cfg       e2e.Config
	S         *Server
	Emu       *e2e.Emulator
	H         *HTTP
	Main      App // connection "main": roles shared, leased, stampede-N; the scale connections
	Rot       App // connection "rot": the rotation-under-load roles
	Big       App // connection "big": key_type of the key-generation measurement
	Raw       *salesforce.Client
	RawClaims salesforce.Claims
	PluginPID int
	// Sizes of one answer, to show the KV-v2 floor reads as much as a creds read.
	CredsBytes, KVBytes int
	// PprofAddr is the profiling plugin's net/http/pprof address (BENCH_PPROF set), else "".
	PprofAddr string
}

// Setup starts the emulator and Vault, and creates the connections, roles and KV secret of the
// measurements.
func Setup(t testing.TB, plan Plan) *Env {
	t.Helper()
	cfg := e2e.LoadConfig(t)
	e := &Env{Plan: plan, Cfg: cfg}

	var keys [3]KeyPair
	var wg sync.WaitGroup
	var kerr error
	var mu sync.Mutex
	for i, cn := range []string{"bench main", "bench rot", "bench big"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kp, err := newKeyPair(cn)
			mu.Lock()
			defer mu.Unlock()
			keys[i] = kp
			if err != nil {
				kerr = err
			}
		}()
	}
	wg.Wait()
	if kerr != nil {
		t.Fatal(kerr)
	}

	// Logins per user are unlimited (a cold-mint window alone makes thousands); each request is
	// not logged (the log would be the emulator's main cost); certificate changes propagate
	// after a small delay, so a rotation goes through the "old certificate still valid" phase.
	// Tenant secrets of a type may be uploaded again at once (Salesforce waits 24 h or more), so
	// that the tenant-secret rotation can be timed over rounds.
	e.Emu = e2e.StartEmulator(t, cfg, "-login-rate-limit", "-1", "-quiet",
		"-propagation-delay", plan.PropagationDelay.String(), "-propagation-overlap", "old",
		"-tenant-secret-min-interval", "1ms")
	// The deploy user may rotate External Client App credentials (with the org setting on) and
	// upload tenant secrets for the org's BYOK certificate.
	e.Emu.SetPermissions(t, e.Emu.DeployUsername, emulator.PermExternalClientAppDeveloper, emulator.PermViewClientSecret, emulator.PermManageEncryptionKeys)
	e.Emu.SetOrgSettings(t, map[string]any{"allow_eca_consumer_secret_rest": true})
	e.Emu.AddBYOKCertificate(t, byokCertificate)
	mk := func(name string, kp KeyPair) App {
		a := App{Name: name, ConsumerKey: "3MVG9" + name + strings.Repeat("0", 80-len(name)), Keys: kp}
		e.Emu.AddApp(t, a.Name, a.ConsumerKey, a.Keys.CertPEM)
		return a
	}
	e.Main, e.Rot, e.Big = mk("Bench_Main", keys[0]), mk("Bench_Rot", keys[1]), mk("Bench_Big", keys[2])

	var opts ServerOptions
	if os.Getenv("BENCH_PPROF") != "" {
		opts, e.PprofAddr = pprofPlugin(t)
	}
	e.S = StartServer(t, cfg, opts)
	e.S.Mount(t, Mount, e2e.PluginName, nil)
	e.S.Mount(t, KVMount, "kv", map[string]string{"version": "2"})
	e.PluginPID = e.S.PluginPID(t)

	e.CreateConnection(t, Mount, "main", e.Main, nil)
	metadata := func(a App, extra map[string]any) map[string]any {
		// No verify_username: the first role's user (the integration user) proves new keys.
		// Naming it would make it privileged, and the roles below could not mint for it.
		d := map[string]any{"deploy": "metadata_api", "app_type": "connected_app", "app_name": a.Name, // AddApp makes a Connected App
			"deploy_username": e.Emu.DeployUsername}
		for k, v := range extra {
			d[k] = v
		}
		return d
	}
	e.CreateConnection(t, Mount, "rot", e.Rot, metadata(e.Rot, nil))
	e.CreateConnection(t, Mount, "big", e.Big, metadata(e.Big, map[string]any{"key_type": plan.KeyType}))
	leased := map[string]any{"token_mode": "per_lease", "ttl": "1h", "max_ttl": "1h"}
	e.CreateRole(t, Mount, "shared", "main", nil)
	e.CreateRole(t, Mount, "leased", "main", leased)
	e.CreateRole(t, Mount, "rot-shared", "rot", nil)
	e.CreateRole(t, Mount, "rot-leased", "rot", leased)
	e.CreateRole(t, Mount, "big-shared", "big", nil)
	e.CreateRole(t, Mount, "big-leased", "big", leased)
	// A client-credentials connection on the seed's External Client App: the same mint without
	// a signature, for the app's run-as user (so its role names no username). Connection
	// "ccadmin" (the deploy user's login) rotates its consumer key and secret, with the shortest
	// overlap the plugin allows.
	e.CreateConnection(t, Mount, "ccadmin", e.Main, map[string]any{"deploy_username": e.Emu.DeployUsername})
	e.S.Write(t, Mount+"/connections/cc", map[string]any{"auth_flow": "client_credentials",
		"consumer_key": emulator.DemoCCConsumerKey, "consumer_secret": emulator.DemoCCConsumerSecret,
		"login_url": e.Emu.URL, "allow_non_salesforce_host": true, "ca_cert": e.Emu.CAPEM,
		"credentials_rotation_connection": "ccadmin", "credentials_overlap": "1m"})
	e.S.Write(t, Mount+"/roles/cc-leased", map[string]any{"connection": "cc", "token_mode": "per_lease", "ttl": "1h", "max_ttl": "1h"})
	e.S.Write(t, Mount+"/roles/cc-shared", map[string]any{"connection": "cc"})
	// Connection "ts" uploads the org's data tenant secret with the deploy user's login; its roles
	// are read while it does.
	e.CreateConnection(t, Mount, "ts", e.Main, map[string]any{"deploy_username": e.Emu.DeployUsername})
	e.S.Write(t, Mount+"/connections/ts/tenant-secrets/data", map[string]any{"certificate_name": byokCertificate})
	e.CreateRole(t, Mount, "ts-shared", "ts", nil)
	e.CreateRole(t, Mount, "ts-leased", "ts", leased)

	e.H = NewHTTP(e.S.Addr, e.S.Token, 128)
	t.Cleanup(e.H.Close)

	// The KV-v2 secret holds exactly what a creds read returns.
	creds := e.S.Read(t, Mount+"/creds/shared")
	e2e.WaitFor(t, 30*time.Second, "the KV-v2 mount to take writes", func() error {
		_, err := e.S.API.Logical().Write(kvSecret, map[string]any{"data": creds.Data})
		return err
	})
	e.CredsBytes = e.bodySize(t, "GET", Mount+"/creds/shared")
	e.KVBytes = e.bodySize(t, "GET", kvSecret)

	raw, err := salesforce.New(salesforce.Options{LoginURL: e.Emu.URL, CACertPEM: e.Emu.CAPEM, AllowNonSalesforceHost: true, UserAgent: "bench-raw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	e.Raw = raw
	e.RawClaims = salesforce.Claims{Issuer: e.Main.ConsumerKey, Subject: e.Emu.Username, Audience: salesforce.DefaultAudience(e.Emu.URL)}
	return e
}

func (e *Env) bodySize(t testing.TB, method, path string) int {
	t.Helper()
	status, b, err := e.H.Do(method, path, nil)
	if err != nil || status != 200 {
		t.Fatalf("%s %s: %v HTTP %d %s", method, path, err, status, b)
	}
	return len(b)
}

// CreateConnection writes <mount>/connections/<name> to the emulator with the app's consumer
// key and imported key.
func (e *Env) CreateConnection(t testing.TB, mount, name string, a App, extra map[string]any) {
	t.Helper()
	e.S.Write(t, mount+"/connections/"+name, e.connectionData(a, extra))
}

func (e *Env) connectionData(a App, extra map[string]any) map[string]any {
	d := map[string]any{
		"consumer_key":              a.ConsumerKey,
		"login_url":                 e.Emu.URL,
		"allow_non_salesforce_host": true,
		"ca_cert":                   e.Emu.CAPEM,
		"private_key":               a.Keys.KeyPEM,
		"certificate":               a.Keys.CertPEM,
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// CreateRole writes <mount>/roles/<name> for the emulator's integration user.
func (e *Env) CreateRole(t testing.TB, mount, name, conn string, extra map[string]any) {
	t.Helper()
	d := map[string]any{"connection": conn, "username": e.Emu.Username}
	for k, v := range extra {
		d[k] = v
	}
	e.S.Write(t, mount+"/roles/"+name, d)
}

// TokenRequests is the emulator's token request counter.
func (e *Env) TokenRequests(t testing.TB) int64 { return e.Emu.Counter(t, "token_requests") }

// rotationView is what the measurements read of a rotation: connections/<name>/rotation (the
// key) or connections/<name>/credentials/rotation (the consumer credentials).
type rotationView struct {
	State            string `json:"state"`
	LastError        string `json:"last_error"`
	DeletePreviousAt string `json:"delete_previous_at"` // consumer credentials: the overlap's end
}

func (e *Env) readRotation(path string) (rotationView, error) {
	status, b, err := e.H.Do("GET", path, nil)
	if err != nil {
		return rotationView{}, err
	}
	if status != 200 {
		return rotationView{}, fmt.Errorf("rotation state: HTTP %d: %.200s", status, b)
	}
	var out struct {
		Data rotationView `json:"data"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return rotationView{}, err
	}
	if out.Data.State == "failed" {
		return out.Data, fmt.Errorf("rotation failed: %s", out.Data.LastError)
	}
	return out.Data, nil
}

// RotationState reads connections/<name>/rotation's state.
func (e *Env) RotationState(mount, name string) (string, error) {
	v, err := e.readRotation(mount + "/connections/" + name + "/rotation")
	return v.State, err
}

// WaitIdle polls the rotation until it is idle, calling nudge between polls, and returns how
// long it took. nudge is a cold read of a role on the connection: with the emulator's "old"
// propagation overlap, the plugin's own probe of the new key comes 30 s after a refusal (and
// then only on Vault's once-a-minute periodic tick), while a cold read whose active key is
// refused tries the pending key and promotes it — so under read load a rotation completes as
// soon as the certificate has propagated.
func (e *Env) WaitIdle(mount, name string, timeout time.Duration, nudge func() error) (time.Duration, error) {
	var n func(rotationView) error
	if nudge != nil {
		n = func(rotationView) error { return nudge() }
	}
	return e.waitIdle(mount+"/connections/"+name+"/rotation", timeout, n)
}

// waitIdle polls the rotation at path until it is idle, calling nudge (if not nil) with each
// state seen that is not.
func (e *Env) waitIdle(path string, timeout time.Duration, nudge func(rotationView) error) (time.Duration, error) {
	start := time.Now()
	for {
		v, err := e.readRotation(path)
		if err != nil {
			return time.Since(start), err
		}
		if v.State == "idle" {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("rotation at %s still %s after %s", path, v.State, timeout)
		}
		if nudge != nil {
			if err := nudge(v); err != nil {
				return time.Since(start), fmt.Errorf("during the rotation: %w", err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ActiveKeyVersion reads connections/<name>'s active_key_version.
func (e *Env) ActiveKeyVersion(t testing.TB, mount, name string) int64 {
	t.Helper()
	return e2e.Int(t, e.S.Read(t, mount+"/connections/"+name), "active_key_version")
}

// pprofPlugin builds bench/cmd/pprof-plugin (the plugin plus net/http/pprof on loopback) and
// returns the options that register it, with the address its profiles are served on.
func pprofPlugin(t testing.TB) (ServerOptions, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), e2e.PluginName)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pprof-plugin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the profiling plugin: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))
	// BENCH_PLUGIN_ENV (space-separated NAME=value) adds to the plugin's environment, as
	// `vault plugin register -env` would: e.g. GOGC=50 to measure what it trades.
	env := append([]string{"BENCH_PPROF_ADDR=" + addr}, strings.Fields(os.Getenv("BENCH_PLUGIN_ENV"))...)
	return ServerOptions{PluginBin: bin, PluginEnv: env}, addr
}
