package e2e

// Helpers of the key-rotation tests (rotation_test.go, rotation_ha_test.go): reading the
// rotation state and the key ring through Vault's API, reading the emulator's app, the
// invariant "the app only ever holds certificates whose key Vault still has", a pool of
// concurrent creds readers, and killing the plugin process.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// rotationTickTimeout bounds a wait that needs the plugin's periodic func: Vault's rollback
// manager calls it every 60 s (not configurable), and a step may need two ticks (a probe that
// comes just before the certificate propagated, then the next one).
const rotationTickTimeout = 150 * time.Second

// MetadataAPIFields are the connection fields of a metadata_api rotation against the
// emulator's demo seed: the deploy user is pre-authorised and may modify metadata. No
// verify_username: the first role's user (the integration user, in every test) proves a new
// key. Naming that user as verify_username would make it privileged, and roles could no longer
// mint for it (unless allow_privileged_roles=true).
func (e *Env) MetadataAPIFields(extra map[string]any) map[string]any {
	d := map[string]any{
		"deploy":          "metadata_api",
		"app_type":        "connected_app", // the seed's app is a Connected App (still supported)
		"app_name":        e.Emu.AppName,
		"deploy_username": e.Emu.DeployUsername,
	}
	maps.Copy(d, extra)
	return d
}

// rotationStatus is connections/<name>/rotation.
type rotationStatus struct {
	State, Trigger, LastError, DeployID, RollbackDeployID string
	StartedAt, DeployedAt, NextAttemptAt, LastCompletedAt string
	PendingVersion, PreviousVersion, Attempts             int64
}

func (s rotationStatus) String() string {
	out := fmt.Sprintf("state=%s trigger=%q pending=%d previous=%d attempts=%d deploy_id=%q rollback_deploy_id=%q next_attempt_at=%q",
		s.State, s.Trigger, s.PendingVersion, s.PreviousVersion, s.Attempts, s.DeployID, s.RollbackDeployID, s.NextAttemptAt)
	if s.LastError != "" {
		out += fmt.Sprintf(" last_error=%q", s.LastError)
	}
	return out
}

func (s rotationStatus) inFlight() bool {
	switch s.State {
	case "deploying", "verifying", "promoting", "rolling_back":
		return true
	}
	return false
}

// readRotation reads connections/<conn>/rotation; errors are returned, not fatal, so that a
// poll can ride out a restart.
func readRotation(c *api.Client, conn string) (rotationStatus, error) {
	s, err := c.Logical().Read(Mount + "/connections/" + conn + "/rotation")
	if err != nil {
		return rotationStatus{}, err
	}
	if s == nil || s.Data == nil {
		return rotationStatus{}, fmt.Errorf("connections/%s/rotation: empty response", conn)
	}
	d := s.Data
	return rotationStatus{
		State: dataString(d, "state"), Trigger: dataString(d, "trigger"), LastError: dataString(d, "last_error"),
		DeployID: dataString(d, "deploy_id"), RollbackDeployID: dataString(d, "rollback_deploy_id"),
		StartedAt: dataString(d, "started_at"), DeployedAt: dataString(d, "deployed_at"), NextAttemptAt: dataString(d, "next_attempt_at"),
		LastCompletedAt: dataString(d, "last_completed_at"),
		PendingVersion:  dataInt(d, "pending_key_version"), PreviousVersion: dataInt(d, "previous_key_version"),
		Attempts: dataInt(d, "attempts"),
	}, nil
}

func dataString(d map[string]any, k string) string {
	if s, ok := d[k].(string); ok {
		return s
	}
	return ""
}

func dataInt(d map[string]any, k string) int64 {
	switch v := d[k].(type) {
	case json.Number:
		n, _ := v.Int64()
		return n
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	case float64:
		return int64(v)
	}
	return 0
}

// rotationWatch polls a connection's rotation and logs every change of its state, so that a
// test knows which states it saw (and their triggers), not only where the rotation ended.
type rotationWatch struct {
	t    testing.TB
	conn string
	mu   sync.Mutex
	last rotationStatus
	seen []rotationStatus // one entry per change of state, trigger, deploy id or attempts
}

func newRotationWatch(t testing.TB, conn string) *rotationWatch {
	return &rotationWatch{t: t, conn: conn}
}

// observe reads the rotation through c and records it if it changed.
func (w *rotationWatch) observe(c *api.Client) (rotationStatus, error) {
	st, err := readRotation(c, w.conn)
	if err != nil {
		return st, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 || st.State != w.last.State || st.Trigger != w.last.Trigger ||
		st.DeployID != w.last.DeployID || st.RollbackDeployID != w.last.RollbackDeployID || st.Attempts != w.last.Attempts {
		w.seen = append(w.seen, st)
		w.t.Logf("rotation of %s: %s", w.conn, st)
	}
	w.last = st
	return st, nil
}

// until polls through c (every 200 ms) until done(status) returns nil, failing the test after
// timeout. It returns the status that satisfied done.
func (w *rotationWatch) until(t testing.TB, c *api.Client, timeout time.Duration, what string, done func(rotationStatus) error) rotationStatus {
	t.Helper()
	var st rotationStatus
	WaitFor(t, timeout, what, func() error {
		var err error
		if st, err = w.observe(c); err != nil {
			return err
		}
		return done(st)
	})
	return st
}

// statesSeen lists the states observed, in order, without repeats.
func (w *rotationWatch) statesSeen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, s := range w.seen {
		if len(out) == 0 || out[len(out)-1] != s.State {
			out = append(out, s.State)
		}
	}
	return out
}

// triggersSeen lists the non-empty triggers observed while a rotation was in flight.
func (w *rotationWatch) triggersSeen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	set := map[string]bool{}
	for _, s := range w.seen {
		if s.inFlight() && s.Trigger != "" {
			set[s.Trigger] = true
		}
	}
	return sortedKeys(set)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// rotationKey is one version of a connection's key ring as Vault lists it.
type rotationKey struct {
	Version     int
	Status      string
	Certificate string // PEM, empty when destroyed
	DER         []byte
}

// readKeyRing lists connections/<conn>/keys (relRing) and reads every version that is not
// destroyed (its certificate). Fails the test on any error: call it only when the plugin is up.
func readKeyRing(t testing.TB, v *Vault, conn string) map[int]rotationKey {
	t.Helper()
	ring := map[int]rotationKey{}
	for n, k := range relMustRing(t, v, conn) {
		rk := rotationKey{Version: n, Status: k.Status}
		if rk.Status != "destroyed" {
			r := v.Read(t, fmt.Sprintf("%s/connections/%s/keys/%d", Mount, conn, n))
			rk.Certificate = StringField(t, r, "certificate")
			if got := dataString(r.Data, "status"); got != rk.Status {
				t.Fatalf("key %d: list says %s, read says %s", n, rk.Status, got)
			}
			var err error
			if rk.DER, err = certDER(rk.Certificate); err != nil {
				t.Fatalf("key %d certificate: %v", n, err)
			}
		}
		ring[n] = rk
	}
	return ring
}

// keyStatuses renders a ring as "1:archived 2:active".
func keyStatuses(ring map[int]rotationKey) string {
	return ringStatuses(ring, func(k rotationKey) string { return k.Status })
}

// ringStatuses renders any key ring as "1:archived 2:active", in version order.
func ringStatuses[K any](ring map[int]K, status func(K) string) string {
	var vs []int
	for v := range ring {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%d:%s", v, status(ring[v])))
	}
	return strings.Join(parts, " ")
}

// requireKeyRing fails unless the ring holds exactly the given version → status pairs.
func requireKeyRing(t testing.TB, ring map[int]rotationKey, want map[int]string) {
	t.Helper()
	wantRing := map[int]rotationKey{}
	for v, s := range want {
		wantRing[v] = rotationKey{Status: s}
	}
	if got, exp := keyStatuses(ring), keyStatuses(wantRing); got != exp {
		t.Fatalf("key ring is %q, want %q", got, exp)
	}
}

// certDER decodes a certificate given as PEM or as the bare base64 body a Metadata API read
// returns.
func certDER(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "-----BEGIN") {
		b, rest := pem.Decode([]byte(s))
		if b == nil || b.Type != "CERTIFICATE" {
			return nil, errors.New("not a PEM certificate")
		}
		if strings.TrimSpace(string(rest)) != "" {
			return nil, errors.New("more than one PEM block")
		}
		return b.Bytes, nil
	}
	clean := strings.Join(strings.Fields(s), "")
	if clean == "" {
		return nil, errors.New("empty certificate")
	}
	return base64.StdEncoding.DecodeString(clean)
}

func derFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

// emulatorApp is the emulator's view of a connected app: its definition, the certificate
// stored on it and the certificates that validate a JWT right now (they differ during the
// propagation delay).
type emulatorApp struct {
	Definition     map[string]any // everything except the certificate fields and computed views
	CertificatePEM string
	Accepted       []string
}

// readEmulatorApp reads GET /__emulator/apps/{consumer_key}.
func readEmulatorApp(t testing.TB, emu *Emulator) emulatorApp {
	t.Helper()
	var view map[string]any
	b := emu.admin(t, http.MethodGet, "/__emulator/apps/"+url.PathEscape(emu.ConsumerKey), nil)
	if err := json.Unmarshal(b, &view); err != nil {
		t.Fatalf("emulator app: %v: %s", err, b)
	}
	app := emulatorApp{Definition: view}
	app.CertificatePEM, _ = view["certificate_pem"].(string)
	acc, ok := view["accepted_certificates"].([]any)
	if !ok {
		t.Fatalf("emulator app view has no accepted_certificates: %s", b)
	}
	for _, c := range acc {
		app.Accepted = append(app.Accepted, fmt.Sprint(c))
	}
	delete(view, "certificate_pem")
	// What the emulator computes for the view (not part of the app's definition, which
	// trustConnectionAtOnce posts back): the certificates and consumer keys valid right now.
	delete(view, "accepted_certificates")
	delete(view, "accepted_consumer_keys")
	return app
}

// trustConnectionAtOnce puts the connection's active certificate on the emulator's app as test
// setup, taking effect at once: the app has trusted it for long. (TrustConnection models an
// admin's upload, which goes through the emulator's propagation delay: with a delay on, the app
// would accept no certificate at all until it passed.) It re-creates the app through the admin
// API with every other setting unchanged, and returns the certificate.
func trustConnectionAtOnce(t testing.TB, e *Env, v *Vault, conn string) string {
	t.Helper()
	cert := StringField(t, v.Read(t, Mount+"/connections/"+conn+"/certificate"), "certificate")
	app := readEmulatorApp(t, e.Emu)
	def := maps.Clone(app.Definition)
	def["certificate_pem"] = cert
	e.Emu.admin(t, http.MethodPost, "/__emulator/apps", def)
	app = readEmulatorApp(t, e.Emu)
	if len(app.Accepted) != 1 || !sameCertificate(app.Accepted[0], cert) || !sameCertificate(app.CertificatePEM, cert) {
		t.Fatalf("the emulator's app does not accept the connection's certificate at once: %+v", app)
	}
	return cert
}

func sameCertificate(a, b string) bool {
	da, err1 := certDER(a)
	db, err2 := certDER(b)
	return err1 == nil && err2 == nil && string(da) == string(db)
}

// versionOf names the key version whose certificate is cert ("?" when none).
func versionOf(ring map[int]rotationKey, cert string) string {
	der, err := certDER(cert)
	if err != nil {
		return "unparseable (" + err.Error() + ")"
	}
	for v, k := range ring {
		if k.DER != nil && string(k.DER) == string(der) {
			return strconv.Itoa(v)
		}
	}
	return "? (" + derFingerprint(der) + ")"
}

// requireCertIsVersion fails unless cert (PEM or base64) is key version want's certificate.
func requireCertIsVersion(t testing.TB, what string, ring map[int]rotationKey, cert string, want int) {
	t.Helper()
	if got := versionOf(ring, cert); got != strconv.Itoa(want) {
		t.Fatalf("%s is the certificate of key version %s, want version %d (ring %s)", what, got, want, keyStatuses(ring))
	}
}

// requireAcceptedAre fails unless the app accepts exactly the certificates of versions want.
func requireAcceptedAre(t testing.TB, ring map[int]rotationKey, app emulatorApp, want ...int) {
	t.Helper()
	var got, exp []string
	for _, c := range app.Accepted {
		got = append(got, versionOf(ring, c))
	}
	for _, v := range want {
		exp = append(exp, strconv.Itoa(v))
	}
	sort.Strings(got)
	sort.Strings(exp)
	if strings.Join(got, ",") != strings.Join(exp, ",") {
		t.Fatalf("the emulator's app accepts the certificates of key versions [%s], want [%s] (ring %s)",
			strings.Join(got, ","), strings.Join(exp, ","), keyStatuses(ring))
	}
}

// requireAppKeysKnown is the rotation's safety invariant: every certificate the emulator's app
// stores or accepts belongs to a key version Vault still has (listed, not destroyed). If it
// did not, Salesforce would only accept a key Vault can no longer sign with: an outage that no
// retry fixes. It returns the ring and the app it checked.
func requireAppKeysKnown(t testing.TB, v *Vault, emu *Emulator, conn string) (map[int]rotationKey, emulatorApp) {
	t.Helper()
	ring := readKeyRing(t, v, conn)
	app := readEmulatorApp(t, emu)
	var accepted []string
	for _, c := range app.Accepted {
		accepted = append(accepted, versionOf(ring, c))
	}
	stored := versionOf(ring, app.CertificatePEM)
	t.Logf("invariant: app stores the certificate of version %s, accepts versions %v; Vault's ring: %s", stored, accepted, keyStatuses(ring))
	if strings.HasPrefix(stored, "?") || strings.HasPrefix(stored, "unparseable") {
		t.Fatalf("the emulator's app stores a certificate (%s) whose key Vault does not have (ring %s)", stored, keyStatuses(ring))
	}
	for _, a := range accepted {
		if strings.HasPrefix(a, "?") || strings.HasPrefix(a, "unparseable") {
			t.Fatalf("the emulator's app accepts a certificate (%s) whose key Vault does not have (ring %s)", a, keyStatuses(ring))
		}
	}
	if len(app.Accepted) == 0 {
		t.Fatalf("the emulator's app accepts no certificate at all")
	}
	return ring, app
}

// requireSameAppSettings fails if anything but the certificate changed on the app: a deploy
// replaces the whole component, so the plugin must send back every other setting it read.
func requireSameAppSettings(t testing.TB, before, after emulatorApp) {
	t.Helper()
	b, _ := json.Marshal(before.Definition)
	a, _ := json.Marshal(after.Definition)
	if string(a) != string(b) {
		t.Fatalf("the app's settings other than its certificate changed:\nbefore %s\nafter  %s", b, a)
	}
}

// credsReaders are applications reading creds/ continuously. Every failed read is recorded
// (the first 50 kept); with readersOptions.emu every new access token is checked against the
// emulator's userinfo endpoint as an application would use it.
type credsReaders struct {
	emu  *Emulator    // nil: tokens are not checked
	gate sync.RWMutex // readers hold it for reading; pause() takes it for writing
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	served   map[string]int
	failed   int
	failures []string
	checked  map[string]bool
	inFlight atomic.Int64 // reads that started while the watcher saw the rotation in flight
	during   atomic.Bool
}

// readerSpec is how many readers read a role, and how often each reads.
type readerSpec struct {
	Role  string
	N     int
	Pause time.Duration
}

// readersOptions say how startReaders' readers authenticate and what they check.
type readersOptions struct {
	emu    *Emulator // check every new token at its userinfo endpoint (nil: no check)
	policy bool      // each reader has its own Vault token limited to reading creds (else root)
}

// startCredsReaders starts readers with their own creds-only tokens, through clients of node v,
// checking every token at emu's userinfo endpoint.
func startCredsReaders(t testing.TB, v *Vault, emu *Emulator, specs ...readerSpec) *credsReaders {
	t.Helper()
	return startReaders(t, v, readersOptions{emu: emu, policy: true}, specs...)
}

// startReaders starts the readers, through clients of node v.
func startReaders(t testing.TB, v *Vault, o readersOptions, specs ...readerSpec) *credsReaders {
	t.Helper()
	if o.policy {
		v.Write(t, "sys/policies/acl/rotation-reader", map[string]any{
			"policy": fmt.Sprintf(`path "%s/creds/*" { capabilities = ["read"] }`, Mount),
		})
	}
	r := &credsReaders{emu: o.emu, stop: make(chan struct{}), served: map[string]int{}, checked: map[string]bool{}}
	for _, sp := range specs { // all before any reader runs: readers write served under r.mu
		r.served[sp.Role] = 0
	}
	for _, sp := range specs {
		for i := 0; i < sp.N; i++ {
			token := ""
			if o.policy {
				tok, err := v.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"rotation-reader"}, NoDefaultPolicy: true, TTL: "1h"})
				if err != nil {
					t.Fatal(err)
				}
				token = tok.Auth.ClientToken
			}
			c := v.NewClient(t, token)
			r.wg.Add(1)
			go r.run(c, sp.Role, sp.Pause)
		}
	}
	t.Cleanup(r.halt) // a failing test must not leave readers hitting a dead Vault
	return r
}

func (r *credsReaders) run(c *api.Client, role string, pause time.Duration) {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		r.gate.RLock()
		if r.during.Load() {
			r.inFlight.Add(1)
		}
		s, _, err := relRead(c, role)
		at := time.Now().Format("15:04:05.000")
		r.gate.RUnlock()
		if err == nil && r.emu != nil {
			tok, _ := s.Data["access_token"].(string)
			err = r.check(tok)
		}
		r.mu.Lock()
		if err != nil {
			r.failed++
			if len(r.failures) < 50 {
				r.failures = append(r.failures, fmt.Sprintf("%s creds/%s: %s", at, role, strings.Join(strings.Fields(err.Error()), " ")))
			}
		} else {
			r.served[role]++
		}
		r.mu.Unlock()
		select {
		case <-r.stop:
			return
		case <-time.After(pause):
		}
	}
}

// check uses a token the first time it is seen: userinfo must accept it.
func (r *credsReaders) check(tok string) error {
	r.mu.Lock()
	seen := r.checked[tok]
	r.checked[tok] = true
	r.mu.Unlock()
	if seen {
		return nil
	}
	req, err := http.NewRequest(http.MethodGet, r.emu.URL+"/services/oauth2/userinfo", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := r.emu.http.Do(req)
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("userinfo refused the token Vault handed out: HTTP %d", resp.StatusCode)
	}
	return nil
}

// pause stops every reader before its next read (reads in progress finish first) until the
// returned function is called.
func (r *credsReaders) pause() (resume func()) {
	r.gate.Lock()
	return r.gate.Unlock
}

// markInFlight tells the readers whether the rotation is in flight, to count the reads served
// during it.
func (r *credsReaders) markInFlight(on bool) { r.during.Store(on) }

func (r *credsReaders) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

// finish stops the readers and fails the test if any read failed; it logs how many were
// served.
func (r *credsReaders) finish(t testing.TB) {
	t.Helper()
	r.halt()
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0
	for role, n := range r.served {
		total += n
		t.Logf("creds/%s: %d reads served", role, n)
	}
	t.Logf("creds reads: %d served (%d while the rotation was in flight), %d failed, %d distinct tokens checked at userinfo",
		total, r.inFlight.Load(), r.failed, len(r.checked))
	if r.failed > 0 {
		shown := r.failures
		if len(shown) > 20 {
			shown = shown[:20]
		}
		t.Errorf("%d creds reads failed; the first:\n%s", r.failed, strings.Join(shown, "\n"))
	}
	if total == 0 {
		t.Errorf("no creds read was served")
	}
	for role, n := range r.served {
		if n == 0 {
			t.Errorf("no read of creds/%s was served", role)
		}
	}
}

// results stops the readers and returns how many reads were served and failed, and the first
// errors.
func (r *credsReaders) results() (served, failed int64, errs []string) {
	r.halt()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.served {
		served += int64(n)
	}
	return served, int64(r.failed), append([]string(nil), r.failures...)
}

// killPlugin kills the plugin process of a dev Vault with SIGKILL and waits until Vault has
// seen it exit. It returns the dead process id. Callers pause their readers first: a request
// racing the kill gets Vault's raw transport error (Vault's behaviour, not the plugin's).
func killPlugin(t testing.TB, v *Vault) int {
	t.Helper()
	pid := v.PluginPID(t)
	t.Logf("kill -9 %d (the plugin, child of vault %d)", pid, v.PID())
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 15*time.Second, fmt.Sprintf("plugin process %d to be gone", pid), func() error {
		if processAlive(pid) {
			return errNotYet
		}
		return nil
	})
	v.WaitForLog(t, 15*time.Second, "plugin process exited", fmt.Sprintf("id=%d", pid))
	return pid
}

// awaitPluginRestart makes requests until Vault has restarted the plugin (the first request
// after the exit does it) and returns the rotation the restarted plugin reads from storage.
func awaitPluginRestart(t testing.TB, v *Vault, w *rotationWatch, dead int) rotationStatus {
	t.Helper()
	st := w.until(t, v.Client, 30*time.Second, "Vault to restart the plugin", func(rotationStatus) error { return nil })
	if next := v.PluginPID(t); next == dead {
		t.Fatalf("plugin pid %d unchanged after kill", dead)
	} else {
		t.Logf("Vault restarted the plugin as pid %d; it reads the rotation as %s", next, st)
	}
	return st
}

// logCount counts the lines of a node's log that contain every one of parts.
func logCount(t testing.TB, v *Vault, parts ...string) int {
	t.Helper()
	b, err := os.ReadFile(v.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
lines:
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n
}
