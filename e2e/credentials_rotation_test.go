package e2e

// Consumer key/secret rotation of a client-credentials connection through the staged-credentials
// API, in a real Vault: a manual rotation under concurrent readers, and kill -9 of the plugin
// while a rotation is held at a step, each driven to completion by the periodic func.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
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

// newCCRotationEnv is a Vault and the emulator's demo org set up for the staged-credentials API
// (the deploy user holds External Client App Developer and View Client Secret, the org setting
// is on): connection "admin" (jwt_bearer, logs in as the deploy user) rotates connection "cc"
// (client_credentials on the demo ECA, credentials_overlap 1m); role "shared" caches, role
// "leased" mints on every read.
func newCCRotationEnv(t *testing.T) *Env {
	t.Helper()
	e := NewEnv(t)
	v := e.Vault
	e.Emu.admin(t, http.MethodPut, "/__emulator/users/"+url.PathEscape(e.Emu.DeployUsername)+"/permissions",
		map[string]any{"permissions": []string{emulator.PermExternalClientAppDeveloper, emulator.PermViewClientSecret}})
	e.Emu.admin(t, http.MethodPut, "/__emulator/orgs/"+url.PathEscape(e.Emu.OrgID)+"/settings",
		map[string]any{"allow_eca_consumer_secret_rest": true})
	e.CreateConnection(t, v, "admin", map[string]any{"deploy_username": e.Emu.DeployUsername})
	trustConnectionAtOnce(t, e, v, "admin")
	v.Write(t, Mount+"/connections/cc", map[string]any{
		"auth_flow": "client_credentials", "consumer_key": e.Emu.CCConsumerKey, "consumer_secret": e.Emu.CCConsumerSecret,
		"login_url": e.Emu.URL, "allow_non_salesforce_host": true, "ca_cert": e.Emu.CAPEM,
		"credentials_rotation_connection": "admin", "credentials_overlap": "1m",
	})
	v.Write(t, Mount+"/roles/shared", map[string]any{"connection": "cc"})
	v.Write(t, Mount+"/roles/leased", map[string]any{"connection": "cc", "token_mode": "per_lease"})
	ReadCreds(t, v.Client, "leased")
	e.Emu.ResetCounters(t)
	return e
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
// table with version 2 active and version 1 deleted, the connection on Salesforce's active key,
// the previous pair refused, and no consumer secret in any response or in Vault's log.
func requireCCRotated(t *testing.T, e *Env) {
	t.Helper()
	v := e.Vault
	requireCounter(t, e.Emu, "credentials_staged", 1)
	requireCounter(t, e.Emu, "credential_rotations", 1)
	if vs := ccVersions(t, v); len(vs) != 2 || vs[1] != "deleted" || vs[2] != "active" {
		t.Fatalf("credential versions %v, want 1 deleted and 2 active", vs)
	}
	key := StringField(t, v.Read(t, Mount+"/connections/cc"), "consumer_key")
	active, secret := ccApp(t, e.Emu, key)
	if key == e.Emu.CCConsumerKey || active != key {
		t.Fatalf("the connection's consumer_key is not Salesforce's new active key")
	}
	if got := ccTokenStatus(t, e.Emu, e.Emu.CCConsumerKey, e.Emu.CCConsumerSecret); got != http.StatusBadRequest {
		t.Errorf("the previous pair still gets HTTP %d at the token endpoint after its deletion", got)
	}
	if got := ccTokenStatus(t, e.Emu, active, secret); got != http.StatusOK {
		t.Errorf("the new pair gets HTTP %d at the token endpoint", got)
	}
	ReadCreds(t, v.Client, "leased")
	requireNoConsumerSecret(t, v, e.Emu.CCConsumerSecret, secret)
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

// A manual rotation under 8 concurrent readers: the new pair serves at once, both pairs are valid
// during the overlap, the periodic func deletes the previous pair after it, and no read fails.
func TestCredentialsRotationManualUnderReaders(t *testing.T) {
	e := newCCRotationEnv(t)
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
	if got := ccTokenStatus(t, e.Emu, e.Emu.CCConsumerKey, e.Emu.CCConsumerSecret); got != http.StatusOK {
		t.Fatalf("the previous pair gets HTTP %d during the overlap, want 200", got)
	}
	awaitCCRotation(t, v, ccRotationTimeout, "the periodic func to delete the previous pair after the overlap", ccCompleted)
	readers.markInFlight(false)
	readers.finish(t)
	requireCCRotated(t, e)
}

// kill -9 of the plugin while a rotation is held at a step: the restarted plugin reads the same
// rotation from storage and the periodic func finishes it, with exactly one staged pair made and
// promoted, the previous pair deleted only after the switch, and no read failed.
func TestCredentialsRotationSurvivesKill(t *testing.T) {
	cases := []struct {
		name  string
		fault map[string]any // holds the rotation at the step; nil: overlap holds it
		held  string
	}{
		{"staging", map[string]any{"endpoint": "staged_credentials", "kind": "status", "status": 503, "method": "POST"}, "staging"},
		{"rotating", map[string]any{"endpoint": "staged_credentials", "kind": "status", "status": 503, "method": "PATCH"}, "rotating"},
		{"overlap", nil, "overlap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newCCRotationEnv(t)
			v := e.Vault
			if c.fault != nil {
				e.Emu.SetFault(t, c.fault)
			}
			readers := startCCReaders(t, e)
			readers.markInFlight(true)
			// A rotate held by a fault answers 502 (retried by the periodic func); its state is
			// stored all the same.
			_, _ = v.Client.Logical().Write(Mount+"/connections/cc/credentials/rotate", nil)
			held := awaitCCRotation(t, v, 30*time.Second, "the rotation to be held at "+c.held, func(st map[string]any) bool {
				return st["state"] == c.held
			})
			if c.held == "rotating" {
				requireCounter(t, e.Emu, "credentials_staged", 1)
				requireCounter(t, e.Emu, "credential_rotations", 0)
			}
			resume := readers.pause()
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
			requireCCRotated(t, e)
		})
	}
}
