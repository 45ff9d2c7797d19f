package e2e

// Consumer key/secret rotation through the staged-credentials API, in a real Vault, of a
// client-credentials connection and of a jwt_bearer connection on an External Client App: a
// manual rotation under concurrent readers, and kill -9 of the plugin while a rotation is held
// at a step, each driven to completion by the periodic func.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// ccRotationTimeout bounds a wait for the periodic func to finish a rotation: the 1-minute
// overlap, then up to two ticks of Vault's 60-second rollback manager (one may come just before
// the overlap ends).
const ccRotationTimeout = 200 * time.Second

// consumerFlow is a kind of connection "cc" (the rotated connection of these tests) whose
// consumer key the staged-credentials API rotates: client_credentials on the demo ECA, or
// jwt_bearer on an External Client App of its own (the consumer key rotates, the certificate
// stays).
type consumerFlow struct {
	name string
	// create writes connection "cc" with the settings given and returns the role fields its
	// roles need and its first consumer key.
	create func(t *testing.T, e *Env, settings map[string]any) (roleFields map[string]any, key string)
	// accepts reports whether Salesforce takes key (with secret, for client credentials) now.
	accepts func(t *testing.T, e *Env, key, secret string) bool
	// proverReads: the user who proves a new key (the run-as user) is also the readers' (a
	// client-credentials token is always the run-as user's).
	proverReads bool
}

var consumerFlows = []consumerFlow{
	{name: "client_credentials", create: createCCConnection, accepts: func(t *testing.T, e *Env, key, secret string) bool {
		return ccTokenStatus(t, e.Emu, key, secret) == http.StatusOK
	}, proverReads: true},
	{name: "jwt_bearer", create: createJWTECAConnection, accepts: func(t *testing.T, e *Env, key, _ string) bool {
		return slices.Contains(acceptedConsumerKeys(t, e.Emu, key), key)
	}},
}

// newCCRotationEnv is a Vault and the emulator's demo org set up for the staged-credentials API
// (the deploy user holds External Client App Developer and View Client Secret, the org setting
// is on): connection "admin" (jwt_bearer, logs in as the deploy user) rotates connection "cc"
// (of flow f, credentials_overlap 1m); role "shared" caches, role "leased" mints on every read.
// It returns cc's first consumer key.
func newCCRotationEnv(t *testing.T, f consumerFlow) (*Env, string) {
	t.Helper()
	e := NewEnv(t)
	v := e.Vault
	e.Emu.SetPermissions(t, e.Emu.DeployUsername, emulator.PermExternalClientAppDeveloper, emulator.PermViewClientSecret)
	e.Emu.SetOrgSettings(t, map[string]any{"allow_eca_consumer_secret_rest": true})
	e.CreateConnection(t, v, "admin", map[string]any{"deploy_username": e.Emu.DeployUsername})
	trustConnectionAtOnce(t, e, v, "admin")
	roleFields, key := f.create(t, e, map[string]any{"credentials_rotation_connection": "admin", "credentials_overlap": "1m"})
	v.Write(t, Mount+"/roles/shared", withFields(map[string]any{"connection": "cc"}, roleFields))
	v.Write(t, Mount+"/roles/leased", withFields(map[string]any{"connection": "cc", "token_mode": "per_lease"}, roleFields))
	ReadCreds(t, v.Client, "leased")
	e.Emu.ResetCounters(t)
	return e, key
}

func withFields(d, extra map[string]any) map[string]any {
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// createCCConnection is the client-credentials "cc" on the demo ECA.
func createCCConnection(t *testing.T, e *Env, settings map[string]any) (map[string]any, string) {
	e.Vault.Write(t, Mount+"/connections/cc", withFields(map[string]any{
		"auth_flow": "client_credentials", "consumer_key": e.Emu.CCConsumerKey, "consumer_secret": e.Emu.CCConsumerSecret,
		"login_url": e.Emu.URL, "allow_non_salesforce_host": true, "ca_cert": e.Emu.CAPEM,
	}, settings))
	return nil, e.Emu.CCConsumerKey
}

// createJWTECAConnection makes an External Client App for the JWT bearer flow (the integration
// user and the run-as user pre-authorised), and the jwt_bearer "cc" on it, whose certificate the
// app trusts at once; the run-as user, whom nothing else logs in as in this flow, proves new
// consumer keys (verify_username), so that a fault on its logins holds a rotation at verifying
// while the readers' and the rotating connection's logins go on.
func createJWTECAConnection(t *testing.T, e *Env, settings map[string]any) (map[string]any, string) {
	def := map[string]any{"name": "Vault_JWT_ECA", "type": "external_client_app", "id": "0xI5g00000DeMoJ", "org_id": e.Emu.OrgID,
		"admin_approved": true, "pre_authorized_users": []string{e.Emu.Username, e.Emu.RunAsUsername}, "scopes": []string{"Api"}}
	var app struct {
		ConsumerKey string `json:"consumer_key"`
	}
	if err := json.Unmarshal(e.Emu.admin(t, http.MethodPost, "/__emulator/apps", def), &app); err != nil || app.ConsumerKey == "" {
		t.Fatalf("creating the JWT ECA: %v", err)
	}
	e.CreateConnection(t, e.Vault, "cc", withFields(map[string]any{"consumer_key": app.ConsumerKey, "app_type": "external_client_app",
		"verify_username": e.Emu.RunAsUsername}, settings))
	def["consumer_key"] = app.ConsumerKey
	def["certificate_pem"] = StringField(t, e.Vault.Read(t, Mount+"/connections/cc/certificate"), "certificate")
	e.Emu.admin(t, http.MethodPost, "/__emulator/apps", def)
	return map[string]any{"username": e.Emu.Username}, app.ConsumerKey
}

// acceptedConsumerKeys is the emulator's list of the consumer keys that authenticate key's app
// now; nil when key names no app any more (a deleted previous key).
func acceptedConsumerKeys(t *testing.T, emu *Emulator, key string) []string {
	t.Helper()
	status, b := emu.do(t, http.MethodGet, "/__emulator/apps/"+url.PathEscape(key), nil, nil)
	if status == http.StatusNotFound {
		return nil
	}
	var a struct {
		Accepted []string `json:"accepted_consumer_keys"`
	}
	if err := json.Unmarshal(b, &a); status != http.StatusOK || err != nil {
		t.Fatalf("emulator app: HTTP %d: %v", status, err)
	}
	return a.Accepted
}

// startCCReaders starts 8 readers: 6 of the cached role, 2 minting on every read (slowly enough
// to stay far below the run-as user's 3,600 logins an hour), each token checked at userinfo.
func startCCReaders(t *testing.T, e *Env) *credsReaders {
	t.Helper()
	return startCredsReaders(t, e.Vault, e.Emu,
		readerSpec{Role: "shared", N: 6, Pause: 100 * time.Millisecond},
		readerSpec{Role: "leased", N: 2, Pause: time.Second})
}

// ccRotation is connections/cc/credentials/rotation; an error when it cannot be read (the
// plugin restarting).
func ccRotation(c *api.Client) (map[string]any, error) {
	s, err := c.Logical().Read(Mount + "/connections/cc/credentials/rotation")
	if err != nil {
		return nil, err
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("empty rotation response")
	}
	return s.Data, nil
}

// awaitCCRotation polls the rotation until done accepts it.
func awaitCCRotation(t *testing.T, v *Vault, timeout time.Duration, what string, done func(st map[string]any) bool) map[string]any {
	t.Helper()
	var last map[string]any
	WaitFor(t, timeout, what, func() error {
		st, err := ccRotation(v.Client)
		if err != nil {
			return err
		}
		last = st
		if !done(st) {
			return fmt.Errorf("rotation state=%v attempts=%v last_error=%v", st["state"], st["attempts"], st["last_error"])
		}
		return nil
	})
	return last
}

func ccCompleted(st map[string]any) bool {
	return st["state"] == "idle" && dataString(st, "last_completed_at") != ""
}

// ccVersions is connections/cc/credentials, by version: its status.
func ccVersions(t *testing.T, v *Vault) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	vs, ok := v.Read(t, Mount+"/connections/cc/credentials").Data["versions"].([]any)
	if !ok {
		t.Fatal("connections/cc/credentials has no versions")
	}
	for _, x := range vs {
		m := x.(map[string]any)
		if _, secret := m["consumer_secret"]; secret {
			t.Fatalf("the credentials table returns a consumer secret")
		}
		out[dataInt(m, "version")] = dataString(m, "status")
	}
	return out
}

// ccTokenStatus is the emulator's answer to a client-credentials token request with a pair.
func ccTokenStatus(t *testing.T, emu *Emulator, key, secret string) int {
	t.Helper()
	resp, err := emu.http.PostForm(emu.URL+"/services/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {key}, "client_secret": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ccApp is the emulator's demo ECA, found by its consumer key (old keys stay an alias while
// valid): the active key and secret.
func ccApp(t *testing.T, emu *Emulator, key string) (activeKey, secret string) {
	t.Helper()
	var a struct {
		ConsumerKey    string `json:"consumer_key"`
		ConsumerSecret string `json:"consumer_secret"`
	}
	if err := json.Unmarshal(emu.admin(t, http.MethodGet, "/__emulator/apps/"+url.PathEscape(key), nil), &a); err != nil {
		t.Fatal(err)
	}
	return a.ConsumerKey, a.ConsumerSecret
}

// requireCCRotated checks a finished rotation: one pair staged and promoted at Salesforce, the
// table with version 2 active and version 1 deleted, the connection on Salesforce's active key
// (and, jwt_bearer, the JWTs it sends naming it), the previous key refused, and no consumer secret
// in any response or in Vault's log.
func requireCCRotated(t *testing.T, e *Env, f consumerFlow, oldKey, oldSecret string) {
	t.Helper()
	v := e.Vault
	requireCounter(t, e.Emu, "credentials_staged", 1)
	requireCounter(t, e.Emu, "credential_rotations", 1)
	if vs := ccVersions(t, v); len(vs) != 2 || vs[1] != "deleted" || vs[2] != "active" {
		t.Fatalf("credential versions %v, want 1 deleted and 2 active", vs)
	}
	key := StringField(t, v.Read(t, Mount+"/connections/cc"), "consumer_key")
	active, secret := ccApp(t, e.Emu, key)
	if key == oldKey || active != key {
		t.Fatalf("the connection's consumer_key is not Salesforce's new active key")
	}
	if f.accepts(t, e, oldKey, oldSecret) {
		t.Errorf("the previous consumer key still authenticates after its deletion")
	}
	if !f.accepts(t, e, active, secret) {
		t.Errorf("the new consumer key does not authenticate")
	}
	e.Emu.ResetCounters(t)
	ReadCreds(t, v.Client, "leased")
	if f.name == "jwt_bearer" {
		var by map[string]int
		if err := json.Unmarshal(e.Emu.Counters(t)["jwt_tokens_by_issuer"], &by); err != nil || by[active] != 1 || len(by) != 1 {
			t.Errorf("a read after the rotation sent iss %v (%v), want only the new key", by, err)
		}
	}
	requireNoConsumerSecret(t, v, oldSecret, secret)
}

// requireNoConsumerSecret fails if a secret is in a response the tests got or in Vault's log.
func requireNoConsumerSecret(t *testing.T, v *Vault, secrets ...string) {
	t.Helper()
	logs, err := os.ReadFile(v.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(logs), s) {
			t.Errorf("a consumer secret is in Vault's log")
		}
		for _, x := range v.Rec.Exchanges() {
			if strings.Contains(string(x.Body), s) {
				t.Errorf("a consumer secret is in the response to %s %s", x.Method, x.Path)
			}
		}
	}
}

// A manual rotation under 8 concurrent readers, for both flows: the new key serves at once,
// both keys are valid during the overlap, the periodic func deletes the previous one after it,
// and no read fails.
func TestCredentialsRotationManualUnderReaders(t *testing.T) {
	for _, f := range consumerFlows {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			e, oldKey := newCCRotationEnv(t, f)
			_, oldSecret := ccApp(t, e.Emu, oldKey)
			v := e.Vault
			readers := startCCReaders(t, e)
			time.Sleep(time.Second)
			readers.markInFlight(true)
			r := v.Write(t, Mount+"/connections/cc/credentials/rotate", nil)
			if st := dataString(r.Data, "state"); st != "overlap" {
				t.Fatalf("rotate answered state %q, want overlap (stage, rotate, verify and switch are done inline)", st)
			}
			if vs := ccVersions(t, v); vs[1] != "previous" || vs[2] != "active" {
				t.Fatalf("credential versions after rotate %v, want 1 previous and 2 active", vs)
			}
			if !f.accepts(t, e, oldKey, oldSecret) {
				t.Fatalf("the previous consumer key is refused during the overlap")
			}
			awaitCCRotation(t, v, ccRotationTimeout, "the periodic func to delete the previous pair after the overlap", ccCompleted)
			readers.markInFlight(false)
			readers.finish(t)
			requireCCRotated(t, e, f, oldKey, oldSecret)
		})
	}
}

// A scheduled rotation under 8 concurrent readers (client credentials): nothing happens before
// the scheduled minute; after it the periodic func stages, promotes, proves and switches, then
// deletes the previous pair after the overlap, with no read failed. The schedule names one
// minute of the day, so no second rotation follows within the test.
func TestCredentialsRotationScheduledUnderReaders(t *testing.T) {
	t.Parallel()
	f := consumerFlows[0]
	e, oldKey := newCCRotationEnv(t, f)
	_, oldSecret := ccApp(t, e.Emu, oldKey)
	v := e.Vault
	at := time.Now().UTC().Add(2 * time.Minute).Truncate(time.Minute)
	v.Write(t, Mount+"/connections/cc", map[string]any{"credentials_rotation_schedule": fmt.Sprintf("%d %d * * *", at.Minute(), at.Hour())})
	readers := startCCReaders(t, e)
	readers.markInFlight(true)
	time.Sleep(time.Until(at) - 5*time.Second)
	requireCounter(t, e.Emu, "credentials_staged", 0)
	if st, err := ccRotation(v.Client); err != nil || st["state"] != "idle" {
		t.Fatalf("before the scheduled minute: rotation %v (%v), want idle", st, err)
	}
	awaitCCRotation(t, v, ccRotationTimeout, "the scheduled rotation to complete", ccCompleted)
	readers.markInFlight(false)
	readers.finish(t)
	requireCCRotated(t, e, f, oldKey, oldSecret)
}

// kill -9 of the plugin while a rotation is held at a step, for both flows: the restarted plugin
// reads the same rotation from storage and the periodic func finishes it, with exactly one staged
// pair made and promoted, the previous key deleted only after the switch, and no read failed.
// verifying is held by a fault on the run-as user's logins, who proves new keys: for jwt_bearer
// (its verify_username) the readers read on through it; a client-credentials reader is the
// run-as user too, so its readers pause before the fault and resume once it is cleared.
// switching does no I/O that a fault could hold; the unit test crashes before its write.
func TestCredentialsRotationSurvivesKill(t *testing.T) {
	cases := []struct {
		name  string
		fault func(e *Env) map[string]any // holds the rotation at the step; nil: overlap holds it
		held  string
	}{
		{"staging", func(*Env) map[string]any {
			return map[string]any{"endpoint": "staged_credentials", "kind": "status", "status": 503, "method": "POST"}
		}, "staging"},
		{"rotating", func(*Env) map[string]any {
			return map[string]any{"endpoint": "staged_credentials", "kind": "status", "status": 503, "method": "PATCH"}
		}, "rotating"},
		{"verifying", func(e *Env) map[string]any {
			return map[string]any{"endpoint": "token", "kind": "status", "status": 503, "username": e.Emu.RunAsUsername}
		}, "verifying"},
		{"overlap", nil, "overlap"},
	}
	for _, f := range consumerFlows {
		for _, c := range cases {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				testSurvivesKill(t, f, c.fault, c.held)
			})
		}
	}
}

func testSurvivesKill(t *testing.T, f consumerFlow, fault func(e *Env) map[string]any, heldAt string) {
	e, oldKey := newCCRotationEnv(t, f)
	_, oldSecret := ccApp(t, e.Emu, oldKey)
	v := e.Vault
	readers := startCCReaders(t, e)
	readers.markInFlight(true)
	var resume func()
	if fault != nil {
		if heldAt == "verifying" && f.proverReads {
			resume = readers.pause() // the fault refuses the readers' logins too
		}
		e.Emu.SetFault(t, fault(e))
	}
	// A rotate held by a fault answers 502 (retried by the periodic func); its state is
	// stored all the same.
	_, _ = v.Client.Logical().Write(Mount+"/connections/cc/credentials/rotate", nil)
	held := awaitCCRotation(t, v, 30*time.Second, "the rotation to be held at "+heldAt, func(st map[string]any) bool {
		return st["state"] == heldAt
	})
	switch heldAt {
	case "rotating":
		requireCounter(t, e.Emu, "credentials_staged", 1)
		requireCounter(t, e.Emu, "credential_rotations", 0)
	case "verifying":
		requireCounter(t, e.Emu, "credential_rotations", 1)
		if vs := ccVersions(t, v); vs[1] != "active" || vs[2] != "staged" {
			t.Fatalf("reads moved before the new key was proven: %v", vs)
		}
	}
	if resume == nil {
		resume = readers.pause()
	}
	dead := killPlugin(t, v)
	after := awaitCCRotation(t, v, 30*time.Second, "Vault to restart the plugin", func(map[string]any) bool { return true })
	if pid := v.PluginPID(t); pid == dead {
		t.Fatalf("plugin pid %d unchanged after kill", dead)
	}
	if after["started_at"] != held["started_at"] || after["version"] != held["version"] {
		t.Fatalf("the restarted plugin reads another rotation: before the kill %v, after %v", held, after)
	}
	e.Emu.ClearFaults(t)
	resume()
	awaitCCRotation(t, v, ccRotationTimeout+60*time.Second, "the periodic func to resume and finish the rotation", ccCompleted)
	readers.markInFlight(false)
	readers.finish(t)
	requireCCRotated(t, e, f, oldKey, oldSecret)
}
