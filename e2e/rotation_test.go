package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The rotation tests wait for Vault's rollback manager, which calls the plugin's periodic func
// every 60 s; they run in parallel with each other (each on its own Vault and emulator) so that
// their tick waits overlap.

// TestRotationScheduledMetadataAPI: a rotation the periodic func starts by itself (the active
// certificate entered its certificate_renew_before window) deploys the new certificate through
// the Metadata API while Salesforce (the emulator) takes 20 s to propagate it, accepting only
// the old one meanwhile. Applications read creds the whole time and none of their reads fails;
// the rotation ends idle with version 2 active, version 1 archived with its certificate, and the
// app holding version 2's certificate with every other setting intact.
func TestRotationScheduledMetadataAPI(t *testing.T) {
	t.Parallel()
	e := NewEnv(t, "-propagation-delay", "20s", "-propagation-overlap", "old")
	v := e.Vault
	const conn = "scheduled"

	// Rotation on, not due yet: the operator registers the certificate on the app first.
	e.CreateConnection(t, v, conn, e.MetadataAPIFields(map[string]any{
		"key_rotation_period": "8760h", "certificate_ttl": "24h", "certificate_renew_before": "1h",
	}))
	trustConnectionAtOnce(t, e, v, conn)
	e.CreateRole(t, v, "shared", conn, nil)
	e.CreateRole(t, v, "leased", conn, map[string]any{"token_mode": "per_lease"})
	before := readKeyRing(t, v, conn)
	requireKeyRing(t, before, map[int]string{1: "active"})
	appBefore := readEmulatorApp(t, e.Emu)
	requireCertIsVersion(t, "the app's certificate", before, appBefore.CertificatePEM, 1)
	e.Emu.ResetCounters(t)

	readers := startCredsReaders(t, v, e.Emu,
		readerSpec{Role: "shared", N: 6, Pause: 200 * time.Millisecond},
		readerSpec{Role: "leased", N: 3, Pause: 500 * time.Millisecond})

	// Make version 1 due: its certificate (24h) now expires within certificate_renew_before
	// (23h59m50s). New certificates get 48h, so version 2 will not be due for a day: no
	// rotation loop. The next periodic tick starts the rotation; nothing else does.
	v.Write(t, Mount+"/connections/"+conn, map[string]any{"certificate_ttl": "48h", "certificate_renew_before": "86390s"})
	if due := parseTime(t, StringField(t, v.Read(t, Mount+"/connections/"+conn), "next_scheduled_rotation")); time.Until(due) > 15*time.Second {
		t.Fatalf("next_scheduled_rotation %s: want it due now", due)
	}

	w := newRotationWatch(t, conn)
	w.until(t, v.Client, rotationTickTimeout, "the periodic func to start the scheduled rotation", func(st rotationStatus) error {
		if st.inFlight() || st.LastCompletedAt != "" {
			return nil
		}
		return fmt.Errorf("rotation %s", st)
	})
	readers.markInFlight(true)

	sawPropagation := false
	final := w.until(t, v.Client, rotationTickTimeout, "the scheduled rotation to complete", func(st rotationStatus) error {
		switch {
		case st.State == "failed" || st.State == "rolling_back":
			t.Fatalf("the rotation did not complete: %s", st)
		case st.State == "verifying" && !sawPropagation:
			// Mid-rotation: the app stores the new certificate but still accepts only the old
			// one (the propagation delay), and both keys are in Vault.
			ring, app := requireAppKeysKnown(t, v, e.Emu, conn)
			if versionOf(ring, app.CertificatePEM) == "2" && len(app.Accepted) == 1 && versionOf(ring, app.Accepted[0]) == "1" {
				sawPropagation = true
			}
		case st.State == "idle" && st.LastCompletedAt != "":
			return nil
		}
		return fmt.Errorf("rotation %s", st)
	})
	readers.markInFlight(false)
	t.Logf("rotation states seen: %v; completed at %s", w.statesSeen(), final.LastCompletedAt)
	readers.finish(t)

	if !sawPropagation {
		t.Errorf("never saw the propagation window (app storing version 2 while accepting only version 1): the test did not exercise it")
	}
	if got := w.triggersSeen(); !slices.Equal(got, []string{"scheduled"}) {
		t.Errorf("rotation triggers seen %v, want [scheduled]", got)
	}
	if n := logCount(t, v, "key rotation started", "trigger=scheduled"); n != 1 {
		t.Errorf("vault log: %d scheduled rotation starts, want 1", n)
	}

	ring, app := requireAppKeysKnown(t, v, e.Emu, conn)
	requireKeyRing(t, ring, map[int]string{1: "archived", 2: "active"})
	if !bytes.Equal(ring[1].DER, before[1].DER) {
		t.Fatalf("archived version 1 no longer has its original certificate")
	}
	r := v.Read(t, Mount+"/connections/"+conn)
	if got := Int(t, r, "active_key_version"); got != 2 {
		t.Fatalf("active_key_version %d, want 2", got)
	}
	requireCertIsVersion(t, "the connection's certificate", ring, StringField(t, r, "certificate"), 2)
	requireCertIsVersion(t, "the emulator app's certificate", ring, app.CertificatePEM, 2)
	requireAcceptedAre(t, ring, app, 2)
	requireSameAppSettings(t, appBefore, app)

	// The new certificate follows the updated certificate_ttl, so the next rotation is a day away.
	if na := ParseCertificate(t, ring[2].Certificate).NotAfter; time.Until(na) < 47*time.Hour {
		t.Errorf("version 2's certificate expires %s, want about 48h from now", na)
	}
	if next := parseTime(t, StringField(t, r, "next_scheduled_rotation")); time.Until(next) < 23*time.Hour {
		t.Errorf("next_scheduled_rotation %s: the new key is due again at once", next)
	}
	requireCounter(t, e.Emu, "deploy_requests", 1)
	requireCounter(t, e.Emu, "deploys_succeeded", 1)

	// Tokens minted from now on are signed by version 2, and Salesforce takes them.
	s := ReadCreds(t, v.Client, "leased")
	if got := Int(t, s, "key_version"); got != 2 {
		t.Errorf("creds key_version %d after the rotation, want 2", got)
	}
	e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
}

// killCase is one step of a rotation at which the plugin process is killed.
type killCase struct {
	name     string
	emuFlags []string
	conn     map[string]any // connection fields beyond metadata_api's
	// arm runs before the rotation starts (inject a fault).
	arm func(t *testing.T, e *Env)
	// hold returns nil when the rotation is at the step to kill it in.
	hold        func(t *testing.T, e *Env, st rotationStatus) error
	holdTimeout time.Duration
	// release runs once Vault has restarted the plugin (clear the fault).
	release func(t *testing.T, e *Env)
	// readers read creds during the case (default: shared and per_lease readers).
	readers []readerSpec
	// want is the state the rotation must end in; check asserts the rest.
	want  string
	check func(t *testing.T, e *Env, final rotationStatus, ring map[int]rotationKey, app emulatorApp)
}

// TestRotationSurvivesPluginKill: the plugin process is killed (kill -9) while a metadata_api
// rotation is at each step it can be held at. Vault restarts the plugin on the next request, the
// restarted plugin reads the rotation from storage, and the periodic func finishes it. After
// every kill and at the end, the emulator's app never holds or accepts a certificate whose key
// Vault lacks, and creds reads keep working (they are paused only around the kill itself).
func TestRotationSurvivesPluginKill(t *testing.T) {
	t.Parallel()
	completed := func(t *testing.T, e *Env, final rotationStatus, ring map[int]rotationKey, app emulatorApp) {
		requireKeyRing(t, ring, map[int]string{1: "archived", 2: "active"})
		requireCertIsVersion(t, "the emulator app's certificate", ring, app.CertificatePEM, 2)
		requireAcceptedAre(t, ring, app, 2)
		requireCounter(t, e.Emu, "deploys_succeeded", 1)
	}
	// completedOnce is completed, with exactly one deploy request.
	completedOnce := func(t *testing.T, e *Env, final rotationStatus, ring map[int]rotationKey, app emulatorApp) {
		completed(t, e, final, ring, app)
		requireCounter(t, e.Emu, "deploy_requests", 1)
	}
	rollbackKicked := false // the rolling_back case's second rotate, made once
	cases := []killCase{
		{
			// Killed while the deploy request is on the wire (the emulator holds it): the deploy
			// never happened, and the restarted plugin deploys again.
			name: "deploying/deploy request in flight",
			arm: func(t *testing.T, e *Env) {
				e.Emu.SetFault(t, map[string]any{"endpoint": "deploy", "kind": "hang"})
			},
			hold: func(t *testing.T, e *Env, st rotationStatus) error {
				if st.State != "deploying" || st.DeployID != "" {
					return fmt.Errorf("rotation %s", st)
				}
				if n := e.Emu.Counter(t, "deploy_requests"); n < 1 {
					return fmt.Errorf("no deploy request yet")
				}
				return nil
			},
			release: func(t *testing.T, e *Env) { e.Emu.ClearFaults(t) },
			want:    "idle",
			check:   completed,
		},
		{
			// Killed while Salesforce runs the deploy (InProgress for 5 polls, 2 s apart): the
			// restarted plugin polls the deploy it recorded instead of deploying again.
			name:     "deploying/deploy in progress",
			emuFlags: []string{"-deploy-polls", "5"},
			hold: func(t *testing.T, e *Env, st rotationStatus) error {
				if st.State != "deploying" || st.DeployID == "" {
					return fmt.Errorf("rotation %s", st)
				}
				return nil
			},
			want:  "idle",
			check: completedOnce,
		},
		{
			// Killed while the new certificate propagates (the app stores it but accepts only
			// the old one for 25 s). Only shared-mode readers, whose token is cached: no mint
			// falls back to the pending key, so the restarted plugin's periodic func, not a
			// read, must prove and promote it.
			name:     "verifying",
			emuFlags: []string{"-propagation-delay", "25s", "-propagation-overlap", "old"},
			readers:  []readerSpec{{Role: "shared", N: 3, Pause: 250 * time.Millisecond}},
			hold: func(t *testing.T, e *Env, st rotationStatus) error {
				if st.State != "verifying" {
					return fmt.Errorf("rotation %s", st)
				}
				return nil
			},
			want: "idle",
			check: func(t *testing.T, e *Env, final rotationStatus, ring map[int]rotationKey, app emulatorApp) {
				completedOnce(t, e, final, ring, app)
				if n := logCount(t, e.Vault, "while refusing the active one"); n != 0 {
					t.Errorf("a creds read promoted the pending key (%d log lines); the periodic func should have", n)
				}
				if n := logCount(t, e.Vault, "Salesforce accepted the pending key", "pending_version=2"); n != 1 {
					t.Errorf("vault log: %d proofs of the pending key by the rotation, want 1", n)
				}
			},
		},
		{
			// The new certificate never propagates within propagation_timeout (1m): the plugin
			// deploys the old certificate back, and is killed while that deploy runs. The
			// restarted plugin finishes the rollback and the rotation fails with its reason.
			// Once the timeout has passed, a second `rotate` (which returns the rotation in
			// flight and drives it) starts the rollback without waiting for one more tick.
			name:     "rolling_back",
			emuFlags: []string{"-propagation-delay", "10m", "-propagation-overlap", "old", "-deploy-polls", "3"},
			conn:     map[string]any{"propagation_timeout": "1m"},
			hold: func(t *testing.T, e *Env, st rotationStatus) error {
				if st.State == "failed" || st.State == "idle" && st.LastCompletedAt != "" {
					t.Fatalf("the rotation ended before the rollback deploy could be caught: %s", st)
				}
				if st.State == "verifying" && st.DeployedAt != "" && st.NextAttemptAt != "" &&
					time.Since(parseTime(t, st.DeployedAt)) > 62*time.Second && time.Until(parseTime(t, st.NextAttemptAt)) <= 0 && !rollbackKicked {
					rollbackKicked = true
					r := e.Vault.Write(t, Mount+"/connections/killed/rotate", nil)
					if got := Int(t, r, "pending_key_version"); got != st.PendingVersion {
						t.Fatalf("rotate during a rotation made pending key version %d, want the one in flight (%d)", got, st.PendingVersion)
					}
				}
				if st.State != "rolling_back" || st.RollbackDeployID == "" {
					return fmt.Errorf("rotation %s", st)
				}
				return nil
			},
			holdTimeout: rotationTickTimeout,
			want:        "failed",
			check: func(t *testing.T, e *Env, final rotationStatus, ring map[int]rotationKey, app emulatorApp) {
				if !strings.Contains(final.LastError, "rolled back to key version 1") {
					t.Errorf("last_error %q: want the rollback named", final.LastError)
				}
				requireKeyRing(t, ring, map[int]string{1: "active", 2: "archived"})
				requireCertIsVersion(t, "the emulator app's certificate", ring, app.CertificatePEM, 1)
				requireAcceptedAre(t, ring, app, 1)
				requireCounter(t, e.Emu, "deploy_requests", 2) // the new certificate, then the old one back
				requireCounter(t, e.Emu, "deploys_succeeded", 2)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runKillCase(t, c)
		})
	}
}

func runKillCase(t *testing.T, c killCase) {
	e := NewEnv(t, c.emuFlags...)
	v := e.Vault
	const conn = "killed"
	e.CreateConnection(t, v, conn, e.MetadataAPIFields(c.conn))
	trustConnectionAtOnce(t, e, v, conn)
	e.CreateRole(t, v, "shared", conn, nil)
	e.CreateRole(t, v, "leased", conn, map[string]any{"token_mode": "per_lease"})
	e.Emu.ResetCounters(t)
	if c.arm != nil {
		c.arm(t, e)
	}
	specs := c.readers
	if specs == nil {
		specs = []readerSpec{
			{Role: "shared", N: 2, Pause: 250 * time.Millisecond},
			{Role: "leased", N: 1, Pause: 500 * time.Millisecond},
		}
	}
	readers := startCredsReaders(t, v, e.Emu, specs...)

	w := newRotationWatch(t, conn)
	resp := v.Write(t, Mount+"/connections/"+conn+"/rotate", nil)
	StringField(t, resp, "pending_certificate")
	readers.markInFlight(true)
	timeout := c.holdTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	held := w.until(t, v.Client, timeout, "the rotation to reach the step to kill it in", func(st rotationStatus) error {
		return c.hold(t, e, st)
	})

	resume := readers.pause()
	dead := killPlugin(t, v)
	after := awaitPluginRestart(t, v, w, dead)
	// The step, and the deploy it waits for, were in storage before the kill.
	if after.State != held.State || after.StartedAt != held.StartedAt || after.DeployID != held.DeployID ||
		after.RollbackDeployID != held.RollbackDeployID || after.PendingVersion != held.PendingVersion {
		t.Fatalf("the restarted plugin reads another rotation:\nbefore the kill %s\nafter           %s", held, after)
	}
	requireAppKeysKnown(t, v, e.Emu, conn)
	resume()
	if c.release != nil {
		c.release(t, e)
	}

	final := w.until(t, v.Client, rotationTickTimeout, "the periodic func to resume and finish the rotation", func(st rotationStatus) error {
		if st.State == "idle" && st.LastCompletedAt != "" || st.State == "failed" {
			return nil
		}
		return fmt.Errorf("rotation %s", st)
	})
	readers.markInFlight(false)
	t.Logf("rotation states seen: %v", w.statesSeen())
	if final.State == "failed" && strings.TrimSpace(final.LastError) == "" {
		t.Fatalf("the rotation failed without a reason: %s", final)
	}
	if final.State != c.want {
		t.Fatalf("the rotation ended %s, want %s: %s", final.State, c.want, final)
	}
	ring, app := requireAppKeysKnown(t, v, e.Emu, conn)
	c.check(t, e, final, ring, app)
	readers.finish(t)

	// Minting works after, with the key Salesforce holds.
	s := ReadCreds(t, v.Client, "leased")
	e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
	active := 2
	if c.want == "failed" {
		active = 1
	}
	if got := Int(t, s, "key_version"); got != int64(active) {
		t.Errorf("creds key_version %d, want %d", got, active)
	}
}

// requireCounter fails unless an emulator counter has exactly the value want.
func requireCounter(t testing.TB, emu *Emulator, name string, want int64) {
	t.Helper()
	if got := emu.Counter(t, name); got != want {
		t.Errorf("emulator counter %s = %d, want %d", name, got, want)
	}
}

func parseTime(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("not an RFC 3339 time: %q", s)
	}
	return ts
}
