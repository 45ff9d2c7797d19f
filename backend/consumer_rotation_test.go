package backend

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// newCCRotationEnv is the emulator's demo org set up for the staged-credentials API (the
// deployer holds both permissions, the org setting is on), a jwt_bearer connection "admin" that
// logs in as the deployer, and a client-credentials connection "cc" on the demo ECA that
// "admin" rotates, with a per_lease role "app" so every read mints.
func newCCRotationEnv(t testing.TB, extra map[string]any) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	if _, err := e.emu.SetUserPermissions(emulator.DemoDeployUsername, emulator.PermExternalClientAppDeveloper, emulator.PermViewClientSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.SetAllowECAConsumerSecretREST(emulator.DemoOrgID, true); err != nil {
		t.Fatal(err)
	}
	e.createConnection("admin", map[string]any{"deploy_username": emulator.DemoDeployUsername})
	d := map[string]any{"consumer_key": e.seed.CCApp.ConsumerKey, "consumer_secret": e.seed.CCApp.ConsumerSecret,
		"credentials_rotation_connection": "admin", "credentials_overlap": "10m"}
	for k, v := range extra {
		d[k] = v
	}
	mustOK(t, e.write("connections/cc", e.ccConnection(d)))
	mustOK(t, e.write("roles/app", map[string]any{"connection": "cc", "token_mode": "per_lease"}))
	return e
}

// ccApp is the demo ECA as the emulator holds it now (its active pair).
func (e *testEnv) ccApp() emulator.App {
	e.t.Helper()
	a, ok := e.emu.AppByName(emulator.DemoCCAppName)
	if !ok {
		e.t.Fatal("the demo ECA is gone")
	}
	return a
}

func (e *testEnv) credVersions(name string) map[int]map[string]any {
	e.t.Helper()
	out := map[int]map[string]any{}
	for _, v := range mustOK(e.t, e.read("connections/"+name+"/credentials")).Data["versions"].([]map[string]any) {
		out[v["version"].(int)] = v
	}
	return out
}

// A manual rotation stages, promotes, proves and switches at once; the previous pair stays valid
// for the overlap and is deleted by the periodic func after it.
func TestCredentialsRotationManual(t *testing.T) {
	e := newCCRotationEnv(t, nil)
	old := e.ccApp()
	first := mustOK(t, e.read("creds/app"))
	if first.Data["username"] != e.seed.RunAs.Username {
		t.Fatalf("setup: %v", first.Data)
	}
	r := mustOK(t, e.write("connections/cc/credentials/rotate", nil)).Data
	if r["state"] != ccStateOverlap || !strings.HasPrefix(r["eca_app_id"].(string), emulator.DemoCCAppID) || !strings.HasPrefix(r["eca_consumer_id"].(string), emulator.DemoCCConsumerID) {
		t.Fatalf("rotate: %v", r)
	}
	now := e.ccApp()
	if now.ConsumerKey == old.ConsumerKey || e.emu.Counters().CredentialRotations != 1 {
		t.Fatal("Salesforce's active pair did not change")
	}
	vs := e.credVersions("cc")
	if vs[1]["status"] != credPrevious || vs[2]["status"] != credActive || vs[2]["consumer_key"] != now.ConsumerKey || vs[2]["has_secret"] != true {
		t.Fatalf("versions: %v", vs)
	}
	if c := mustOK(t, e.read("connections/cc")).Data; c["consumer_key"] != now.ConsumerKey {
		t.Fatalf("the connection's consumer_key did not follow: %v", c["consumer_key"])
	}
	if got := e.emu.AcceptedConsumerKeys(now.ConsumerKey); len(got) != 2 {
		t.Fatalf("both pairs must be valid during the overlap: %v", got)
	}
	// Reads mint with the new pair: revoke-at-issuer works and the token is the run-as user's.
	lease := mustOK(t, e.read("creds/app"))
	if !e.emu.TokenActive(lease.Data["access_token"].(string)) {
		t.Fatal("a read after the switch got no working token")
	}
	sec, err := getConsumerSecret(context.Background(), e.storage, "cc")
	if err != nil || sec == nil || sec.Secret != now.ConsumerSecret || sec.ConsumerKey != now.ConsumerKey {
		t.Fatal("the active stored secret is not Salesforce's new one")
	}
	// The overlap ends: the periodic func deletes the previous pair.
	e.clock.Advance(11 * time.Minute)
	e.tick()
	r = mustOK(t, e.read("connections/cc/credentials/rotation")).Data
	if r["state"] != ccStateIdle || r["last_completed_at"] == "" {
		t.Fatalf("after the overlap: %v", r)
	}
	if got := e.emu.AcceptedConsumerKeys(now.ConsumerKey); len(got) != 1 {
		t.Fatalf("the previous pair is still valid: %v", got)
	}
	vs = e.credVersions("cc")
	if vs[1]["status"] != credDeleted || vs[1]["deleted_at"] == "" || vs[1]["has_secret"] != false {
		t.Fatalf("previous version: %v", vs[1])
	}
	mustOK(t, e.read("creds/app"))
	if err := e.revokeLease(first); err != nil {
		t.Fatalf("a lease minted before the rotation is revoked where it was issued: %v", err)
	}
	if strings.Contains(e.logs.String(), now.ConsumerSecret) || strings.Contains(e.logs.String(), old.ConsumerSecret) {
		t.Fatal("a consumer secret is in the log")
	}
}

// The schedule (credentials_rotation_period) starts a rotation from the periodic func; one
// already done is not repeated before the next period.
func TestCredentialsRotationScheduled(t *testing.T) {
	e := newCCRotationEnv(t, map[string]any{"credentials_rotation_period": "24h"})
	next := mustOK(t, e.read("connections/cc/credentials/rotation")).Data["next_scheduled_rotation"]
	if next == "" {
		t.Fatal("no next_scheduled_rotation")
	}
	e.tick()
	if e.emu.Counters().CredentialRotations != 0 {
		t.Fatal("rotated before it was due")
	}
	e.clock.Advance(25 * time.Hour)
	e.tick()
	if e.emu.Counters().CredentialRotations != 1 {
		t.Fatal("the due rotation did not run")
	}
	for i := 0; i < 3; i++ {
		e.clock.Advance(6 * time.Minute)
		e.tick()
	}
	if st := mustOK(t, e.read("connections/cc/credentials/rotation")).Data; st["state"] != ccStateIdle || st["trigger"] != triggerScheduled {
		t.Fatalf("scheduled rotation: %v", st)
	}
	if e.emu.Counters().CredentialRotations != 1 {
		t.Fatal("rotated twice in one period")
	}
	mustOK(t, e.read("creds/app"))
}

// Every refusal of the staged-credentials API is a 400 that says what to check, leaves reads
// on the previous pair and Salesforce's pair unchanged; an outage is a 502.
func TestCredentialsRotationRefusals(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *testEnv)
		want   []string
		status int
	}{
		{"permissions", func(e *testEnv) {
			_, _ = e.emu.SetUserPermissions(emulator.DemoDeployUsername, emulator.PermViewClientSecret)
		},
			[]string{"INSUFFICIENT_ACCESS", "External Client App Developer and View Client Secret"}, 400},
		{"org setting", func(e *testEnv) { _, _ = e.emu.SetAllowECAConsumerSecretREST(emulator.DemoOrgID, false) },
			[]string{"FUNCTIONALITY_NOT_ENABLED", "Allow access to External Client App consumer secrets via REST API"}, 400},
		{"packaged", func(e *testEnv) {
			a := e.seed.CCApp
			a.Packaged = true
			e.emu.AddApp(a)
			mustOK(e.t, e.write("connections/cc", map[string]any{"eca_app_id": emulator.DemoCCAppID, "eca_consumer_id": emulator.DemoCCConsumerID}))
		}, []string{"packaged", "local External Client Apps"}, 400},
		{"unknown app", func(e *testEnv) {
			mustOK(e.t, e.write("connections/cc", map[string]any{"eca_app_id": "0xI5g0000NoSuch", "eca_consumer_id": emulator.DemoCCConsumerID}))
		}, []string{"NOT_FOUND", "check eca_app_id"}, 400},
		{"not discoverable", func(e *testEnv) {
			a := e.seed.CCApp
			a.Type = "connected_app"
			a.ID = ""
			e.emu.AddApp(a)
		}, []string{"eca_app_id", "could not be discovered"}, 400},
		{"rotating user refused", func(e *testEnv) {
			e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 400, Username: emulator.DemoDeployUsername})
		}, []string{"credentials_rotation_connection admin"}, 0},
		{"outage", func(e *testEnv) {
			e.emu.AddFault(emulator.Fault{Endpoint: "staged_credentials", Kind: emulator.FaultStatus, Status: 503})
		}, []string{"retried by the periodic func", "503"}, http.StatusBadGateway},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newCCRotationEnv(t, nil)
			old := e.ccApp()
			c.setup(e)
			resp, err := e.do(logical.UpdateOperation, "connections/cc/credentials/rotate", nil)
			switch {
			case c.status == http.StatusBadGateway:
				wantBadGateway(t, resp, err, c.want...)
			case err != nil:
				t.Fatalf("a refusal must be a 400: %v", err)
			default:
				mustErr(t, resp, c.want...)
			}
			if got := e.ccApp(); got.ConsumerKey != old.ConsumerKey || e.emu.Counters().CredentialRotations != 0 {
				t.Fatal("Salesforce's pair changed on a refused rotation")
			}
			if a := e.credVersions("cc"); a[1]["status"] != credActive {
				t.Fatalf("reads left the previous pair: %v", a)
			}
			e.emu.ClearFaults()
			mustOK(t, e.read("creds/app"))
		})
	}
}

// The paths refuse what does not apply, naming why.
func TestCredentialsRotationPathsRefuse(t *testing.T) {
	e := newCCRotationEnv(t, nil)
	mustOK(t, e.write("connections/cc2", e.ccConnection(map[string]any{"consumer_key": e.seed.CCApp.ConsumerKey, "consumer_secret": e.seed.CCApp.ConsumerSecret})))
	e.createConnection("legacy", map[string]any{"app_type": "connected_app"})
	mustErr(t, e.write("connections/legacy/credentials/rotate", nil), "jwt_bearer", "Connected App")
	mustErr(t, e.read("connections/legacy/credentials/rotation"), "jwt_bearer", "Connected App")
	mustErr(t, e.write("connections/admin/credentials/rotate", nil), "credentials_rotation_connection")
	mustErr(t, e.write("connections/cc2/credentials/rotate", nil), "credentials_rotation_connection")
	mustErr(t, e.write("connections/nosuch/credentials/rotate", nil), "does not exist")
	mustErr(t, e.write("connections/cc/credentials/rotate", map[string]any{"force": true}), "force")
	if e.emu.Counters().StagedCredentials != 0 {
		t.Fatal("a refused request reached Salesforce")
	}
}

// Bad input of every new field: a 400 naming it, and the stored connection unchanged.
func TestCredentialsRotationFieldInput(t *testing.T) {
	e := newCCRotationEnv(t, nil)
	mustOK(t, e.write("connections/bare", e.connectionData(nil)))
	// cc2 is on another app: a connection of the same app could not rotate it (see "same key").
	mustOK(t, e.write("connections/cc2", e.ccConnection(map[string]any{"consumer_key": e.seed.App.ConsumerKey, "consumer_secret": e.seed.CCApp.ConsumerSecret,
		"credentials_rotation_connection": "cc"})))
	before := mustOK(t, e.read("connections/cc")).Data
	cases := []struct {
		name  string
		path  string
		data  map[string]any
		field string
		says  string
	}{
		{"itself", "connections/cc", map[string]any{"credentials_rotation_connection": "cc"}, "credentials_rotation_connection", "itself"},
		{"missing", "connections/cc", map[string]any{"credentials_rotation_connection": "nosuch"}, "credentials_rotation_connection", "no connection"},
		{"jwt without user", "connections/cc", map[string]any{"credentials_rotation_connection": "bare"}, "credentials_rotation_connection", "deploy_username"},
		{"each other", "connections/cc", map[string]any{"credentials_rotation_connection": "cc2"}, "credentials_rotation_connection", "each other"},
		{"bad app id", "connections/cc", map[string]any{"eca_app_id": "0xI/../x"}, "eca_app_id", "15- or 18-character"},
		{"bad consumer id", "connections/cc", map[string]any{"eca_consumer_id": "888"}, "eca_consumer_id", "15- or 18-character"},
		{"short period", "connections/cc", map[string]any{"credentials_rotation_period": "30m"}, "credentials_rotation_period", "between 1h"},
		{"period without connection", "connections/cc2", map[string]any{"credentials_rotation_connection": "", "credentials_rotation_period": "24h"}, "credentials_rotation_connection", "required"},
		{"bad schedule", "connections/cc", map[string]any{"credentials_rotation_schedule": "every sunday"}, "credentials_rotation_schedule", "cron"},
		{"schedule and period", "connections/cc", map[string]any{"credentials_rotation_schedule": "0 3 * * SUN", "credentials_rotation_period": "24h"}, "credentials_rotation_schedule", "mutually exclusive"},
		{"window without schedule", "connections/cc", map[string]any{"credentials_rotation_window": "2h"}, "credentials_rotation_window", "schedule"},
		{"short window", "connections/cc", map[string]any{"credentials_rotation_schedule": "0 3 * * SUN", "credentials_rotation_window": "30m"}, "credentials_rotation_window", "1h"},
		{"overlap 30 days", "connections/cc", map[string]any{"credentials_overlap": "720h"}, "credentials_overlap", "between"},
		{"overlap too short", "connections/cc", map[string]any{"credentials_overlap": "10s"}, "credentials_overlap", "between"},
		{"on a connected app", "connections/admin", map[string]any{"app_type": "connected_app", "credentials_rotation_period": "24h"}, "credentials_rotation_period", "External Client Apps only"},
		{"unknown field", "connections/cc", map[string]any{"credentials_rotation": "yes"}, "credentials_rotation", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := e.do(logical.UpdateOperation, c.path, c.data)
			if err != nil {
				t.Fatalf("a 500 instead of a 400: %v", err)
			}
			mustErr(t, resp, c.field, c.says)
			if strings.Contains(resp.Error().Error(), "every sunday") || strings.Contains(resp.Error().Error(), "0xI/../x") {
				t.Fatal("the error quotes the input back")
			}
		})
	}
	after := mustOK(t, e.read("connections/cc")).Data
	for k, v := range before {
		if k != "updated_at" && fmt.Sprint(after[k]) != fmt.Sprint(v) {
			t.Fatalf("a refused write changed %s: %v → %v", k, v, after[k])
		}
	}
	// A consumer_secret write while a rotation is in flight is refused: it would replace the
	// pair under the rotation.
	mustOK(t, e.write("connections/cc/credentials/rotate", nil))
	mustErr(t, e.write("connections/cc", map[string]any{"consumer_secret": "x" + e.seed.CCApp.ConsumerSecret}), "in flight")
}

// consumerFlow is one kind of connection whose consumer key the staged-credentials API rotates,
// as the crash and concurrency tests drive it: its environment (the rotation due every 24h),
// the rotated connection, a per_lease role on it, and the app as the emulator holds it now.
type consumerFlow struct {
	name       string
	env        func(t testing.TB, extra map[string]any) *testEnv
	conn, role string
	app        func(e *testEnv) emulator.App
}

var consumerFlows = []consumerFlow{
	{authFlowClientCredentials, newCCRotationEnv, "cc", "app", (*testEnv).ccApp},
	{authFlowJWTBearer, newJWTRotationEnv, "jwt", "japp", (*testEnv).jwtApp},
}

// runScheduledRotation drives a due rotation of conn on storage s until it is idle again, s
// dies, or 20 rounds pass, advancing the clock past waits.
func runScheduledRotation(e *testEnv, b *backend, s logical.Storage, name string, dead func() bool) {
	for i := 0; i < 20 && !dead(); i++ {
		b.driveCredentials(context.Background(), s, name)
		conn, _ := getConnection(context.Background(), e.storage, name)
		ring, _ := loadCredRing(context.Background(), e.storage, name, conn)
		if ring.Rotation.State == ccStateIdle && ring.Rotation.LastCompletedAt.After(time.Time{}) {
			return
		}
		e.clock.Advance(2 * time.Minute)
	}
}

// A crash before every write of a rotation, for both flows: a fresh backend on the same storage
// finishes it with exactly one pair staged and one promoted at Salesforce, the pair it holds the
// one Salesforce made active, no secret lost, and the previous pair deleted only after the switch.
func TestCredentialsRotationResumesAfterCrashAtEveryStep(t *testing.T) {
	for _, f := range consumerFlows {
		t.Run(f.name, func(t *testing.T) { testResumesAfterCrashAtEveryStep(t, f) })
	}
}

func testResumesAfterCrashAtEveryStep(t *testing.T, f consumerFlow) {
	var old emulator.App
	crashAtEveryWrite(t, crashPlan[*testEnv]{
		minWrites: 7,
		fresh: func(t *testing.T) *testEnv {
			e := f.env(t, map[string]any{"credentials_rotation_period": "24h"})
			e.clock.Advance(25 * time.Hour)
			old = f.app(e)
			return e
		},
		op: func(e *testEnv, s *crashStorage) { runScheduledRotation(e, e.b, s, f.conn, s.isDead) },
		counted: func(t *testing.T, e *testEnv) {
			if n := e.emu.Counters().CredentialRotations; n != 1 {
				t.Fatalf("setup: an uninterrupted rotation made %d rotations at Salesforce", n)
			}
		},
		resume: func(t *testing.T, e *testEnv, _, _ int) {
			// Until the switch is stored, reads use the previous pair, which still works.
			mustOK(t, e.read("creds/"+f.role))
			// kill -9: a new backend that knows only storage.
			e.b.Cleanup(context.Background())
			e.b = restartBackend(t, e)
			for i := 0; i < 20; i++ {
				e.tick()
				if r := mustOK(t, e.read("connections/"+f.conn+"/credentials/rotation")).Data; r["state"] == ccStateIdle && r["last_completed_at"] != "" {
					break
				}
				e.clock.Advance(2 * time.Minute)
			}
			r := mustOK(t, e.read("connections/"+f.conn+"/credentials/rotation")).Data
			if r["state"] != ccStateIdle || r["last_completed_at"] == "" {
				t.Fatalf("not resumed: %v", r)
			}
			now := f.app(e)
			c := e.emu.Counters()
			if c.CredentialRotations != 1 || c.CredentialsStaged != 1 || now.ConsumerKey == old.ConsumerKey {
				t.Fatalf("%d pairs staged and %d rotations at Salesforce, want exactly 1 each", c.CredentialsStaged, c.CredentialRotations)
			}
			sec, err := getConsumerSecret(context.Background(), e.storage, f.conn)
			if err != nil || sec == nil || sec.Secret != now.ConsumerSecret || sec.ConsumerKey != now.ConsumerKey {
				t.Fatal("the stored active pair is not the one Salesforce made active: a secret was lost")
			}
			if got := e.emu.AcceptedConsumerKeys(now.ConsumerKey); len(got) != 1 {
				t.Fatalf("the previous pair was not deleted: %v", got)
			}
			active := 0
			for _, v := range e.credVersions(f.conn) {
				if v["status"] == credActive {
					active++
				}
			}
			if active != 1 {
				t.Fatalf("%d active versions", active)
			}
			mustOK(t, e.read("creds/"+f.role))
		},
	})
}

// Eight readers mint throughout a rotation, the overlap and the deletion, for both flows: none
// fails.
func TestCredentialsRotationUnderConcurrentReaders(t *testing.T) {
	for _, f := range consumerFlows {
		t.Run(f.name, func(t *testing.T) { testUnderConcurrentReaders(t, f) })
	}
}

func testUnderConcurrentReaders(t *testing.T, f consumerFlow) {
	e := f.env(t, map[string]any{"credentials_rotation_period": "24h", "credentials_overlap": "1m"})
	// Make the rotation due before any reader starts: a 25-hour jump between a mint's token
	// request and its identity call would expire the session (2 h idle timeout) and fail a read
	// no real clock could fail. The 15-second steps below stay far inside it, and inside a JWT
	// assertion's 3 minutes of life plus Salesforce's 3 minutes of skew: a reader would have to
	// stall across 24 of them between signing and its token request for its assertion to expire.
	e.clock.Advance(25 * time.Hour)
	old := f.app(e).ConsumerKey
	var stop atomic.Bool
	var reads, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := e.do(logical.ReadOperation, "creds/"+f.role, nil)
				reads.Add(1)
				time.Sleep(10 * time.Millisecond) // below Salesforce's 3,600 logins an hour of the user
				if err != nil || resp == nil || resp.IsError() {
					if failed.Add(1) < 3 {
						t.Logf("failed read: %v %v", resp, err)
					}
				}
			}
		}()
	}
	for i := 0; i < 12; i++ { // 3 minutes: the 1-minute overlap and the DELETE after it
		e.tick()
		time.Sleep(20 * time.Millisecond)
		e.clock.Advance(15 * time.Second)
	}
	stop.Store(true)
	wg.Wait()
	if r := mustOK(t, e.read("connections/"+f.conn+"/credentials/rotation")).Data; r["state"] != ccStateIdle || r["last_completed_at"] == "" {
		t.Fatalf("the rotation did not complete: %v", r)
	}
	if f.app(e).ConsumerKey == old {
		t.Fatal("the consumer key did not change")
	}
	if failed.Load() != 0 || reads.Load() < 16 {
		t.Fatalf("%d of %d reads failed", failed.Load(), reads.Load())
	}
}
