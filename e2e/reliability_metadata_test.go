package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// relMDCase is one Metadata API fault during a metadata_api rotation.
type relMDCase struct {
	class string
	fault relFault
	// propagationTimeout for the connection ("" = default 15m).
	propagationTimeout string
	// deployUser: the connection deploys as its own user (so that a token fault filtered on
	// that user hits this rotation only).
	deployUser bool
	// want is the state the rotation ends in; wantError what its last_error must name.
	want      string
	wantError []string
	// wantRetry: the first step fails transiently and is retried later (attempts ≥ 1, the
	// cause in last_error) before the rotation completes.
	wantRetry bool
	timeout   time.Duration
	// wantRing is the key ring at the end (default: 1:active 2:pending when failed,
	// 1:archived 2:active when completed).
	wantRing string
}

// relMDConn is one rotation under a fault: its connection, app, role and readers.
type relMDConn struct {
	c          relMDCase
	name, key  string
	app        string
	ringBefore map[int]relKey
	certBefore string
	readers    []*credsReaders
	injected   int64
	sawRetry   bool
	retries    int64 // the most step attempts the rotation recorded
}

// TestReliabilityMetadataFaults runs metadata_api rotations while the Metadata API fails:
// deploys that end Failed (errorMessage, componentFailures), a readMetadata SOAP fault, a
// deploy request burst the client's retries absorb, a deploy stuck InProgress past
// propagation_timeout, and a transient outage of the deploy user's token requests that the
// rotation retries with backoff on the next periodic tick. Each rotation has its own
// connection and emulator app, and applications read creds from it throughout. For each: the
// rotation ends where it must (failed with the reason, or completed), no read fails, the app
// keeps a certificate Vault has the key for, and no key is lost (the pending key of a failed
// rotation stays pending, for a retry).
func TestReliabilityMetadataFaults(t *testing.T) {
	t.Parallel()
	e := newRelEnv(t, relEnvOptions{})
	v := e.Vault
	uuid := relMountUUID(t, v)

	quick := []relMDCase{
		{class: "deploy_fail", fault: relFault{"endpoint": "deploy", "kind": "deploy_fail", "count": 1},
			want: "failed", wantError: []string{"deploying the new certificate", "UNKNOWN_EXCEPTION"}},
		{class: "deploy_component_failure", fault: relFault{"endpoint": "deploy", "kind": "component_failure", "count": 1},
			want: "failed", wantError: []string{"deploying the new certificate", "An unexpected error occurred"}},
		{class: "read_metadata_soap_fault", fault: relFault{"endpoint": "read_metadata", "kind": "status", "status": 500, "count": 1},
			want: "failed", wantError: []string{"UNKNOWN_EXCEPTION"}},
		{class: "deploy_request_reset_burst", fault: relFault{"endpoint": "deploy", "kind": "reset", "count": 2},
			want: "idle"},
	}
	// These two need Vault's periodic func (a tick a minute): they run side by side.
	slow := []relMDCase{
		{class: "deploy_stuck", fault: relFault{"endpoint": "deploy", "kind": "stuck", "count": 1}, propagationTimeout: "1m",
			want: "failed", wantError: []string{"still InProgress after propagation_timeout"}, timeout: 3 * time.Minute},
		{class: "deploy_user_token_outage", deployUser: true, want: "idle", wantRetry: true,
			wantError: []string{"HTTP 503"}, timeout: 3 * time.Minute},
		// Salesforce never accepts the deployed certificate (a second emulator whose apps take
		// 10 minutes to switch): after propagation_timeout the old certificate is deployed
		// back, the new key archived, and the rotation reported failed.
		{class: "certificate_never_accepted_rollback", propagationTimeout: "1m", want: "failed",
			wantError: []string{"rolled back to key version 1"}, wantRing: "1:active 2:archived", timeout: 3 * time.Minute},
	}

	// The tick-bound rotations that cannot take the quick cases' faults start first, so that
	// their wait for Vault's periodic func overlaps the quick cases: the stuck deploy (it only
	// polls its deploy once submitted) and the rollback (on its own emulator).
	stuck := relMDSetup(t, e, 10, slow[0])
	outage := relMDSetup(t, e, 11, slow[1])
	slowEmu := &Env{Cfg: e.Cfg, Vault: v, PluginSHA: e.PluginSHA,
		Emu: StartEmulator(t, e.Cfg, "-propagation-delay", "10m", "-propagation-overlap", "old")}
	rollback := relMDSetup(t, slowEmu, 12, slow[2])
	before := relCounter(t, e.Emu, "faults_injected")
	e.Emu.SetFault(t, stuck.c.fault)
	relMDRotate(t, e, stuck)
	WaitFor(t, 60*time.Second, "the stuck deploy to be submitted", func() error {
		st, err := readRotation(v.Client, stuck.name)
		if err != nil {
			return err
		}
		if st.DeployID == "" {
			return fmt.Errorf("rotation %s", st)
		}
		return nil
	})
	stuck.injected = relCounter(t, e.Emu, "faults_injected") - before
	relMDRotate(t, slowEmu, rollback)
	rollback.injected = 1 // one deploy Salesforce never takes

	for i, c := range quick {
		t.Run(c.class, func(t *testing.T) {
			m := relMDSetup(t, e, i, c)
			e.Emu.SetFault(t, c.fault)
			before := relCounter(t, e.Emu, "faults_injected")
			relMDRotate(t, e, m)
			relMDWait(t, e, 60*time.Second, m)
			m.injected = relCounter(t, e.Emu, "faults_injected") - before
			e.Emu.ClearFaults(t)
			relMDFinish(t, e, uuid, m)
		})
	}

	t.Run("tick-driven", func(t *testing.T) {
		// The deploy user of the outage rotation loses its token requests for three attempts:
		// the first step fails transiently and is retried on a later tick.
		before := relCounter(t, e.Emu, "faults_injected")
		e.Emu.SetFault(t, relFault{"endpoint": "token", "kind": "status", "status": 503, "count": 3, "username": relMDUser(outage)})
		relMDRotate(t, e, outage)
		relMDWait(t, e, slow[0].timeout, stuck, outage, rollback)
		outage.injected = relCounter(t, e.Emu, "faults_injected") - before
		e.Emu.ClearFaults(t)
		relMDFinish(t, e, uuid, stuck)
		relMDFinish(t, e, uuid, outage)
		relMDFinish(t, slowEmu, uuid, rollback)
	})
}

func relMDUser(m *relMDConn) string { return "deployer-" + m.app + "@example.com" }

// relMDSetup makes the connection (metadata_api, on its own app and optionally its own deploy
// user), its app holding the connection's certificate, two roles and their readers.
func relMDSetup(t *testing.T, e *Env, i int, c relMDCase) *relMDConn {
	t.Helper()
	v := e.Vault
	m := &relMDConn{c: c, name: fmt.Sprintf("md-%d", i), key: fmt.Sprintf("RelMetadataFaultKey%d", i), app: fmt.Sprintf("Rel_MD_%d", i)}
	fields := e.MetadataAPIFields(map[string]any{"consumer_key": m.key, "app_name": m.app})
	if c.propagationTimeout != "" {
		fields["propagation_timeout"] = c.propagationTimeout
	}
	deployer := e.Emu.DeployUsername
	if c.deployUser {
		deployer = relMDUser(m)
		e.Emu.admin(t, http.MethodPost, "/__emulator/users", map[string]any{
			"org_id": e.Emu.OrgID, "username": deployer, "can_modify_metadata": true, "email": deployer,
		})
		fields["deploy_username"] = deployer
	}
	cert := StringField(t, e.CreateConnection(t, v, m.name, fields), "certificate")
	e.Emu.AddApp(t, m.app, m.key, cert, e.Emu.Username, deployer)
	e.CreateRole(t, v, m.name+"-shared", m.name, nil)
	e.CreateRole(t, v, m.name+"-leased", m.name, map[string]any{"token_mode": "per_lease"})
	ReadCreds(t, v.Client, m.name+"-shared")
	m.ringBefore = relMustRing(t, v, m.name)
	m.certBefore = cert
	m.readers = []*credsReaders{
		relStartReaders(t, v, m.name+"-shared", 1, 300*time.Millisecond),
		relStartReaders(t, v, m.name+"-leased", 1, time.Second),
	}
	return m
}

func relMDRotate(t *testing.T, e *Env, m *relMDConn) {
	t.Helper()
	r := e.Vault.Write(t, Mount+"/connections/"+m.name+"/rotate", nil)
	StringField(t, r, "pending_certificate")
}

// relMDWait polls the rotations until all have ended (idle after completing, or failed),
// noting for each whether a transient failure was recorded on the way.
func relMDWait(t *testing.T, e *Env, timeout time.Duration, ms ...*relMDConn) {
	t.Helper()
	WaitFor(t, timeout, "the rotations to end", func() error {
		var pending []string
		for _, m := range ms {
			st, err := readRotation(e.Vault.Client, m.name)
			if err != nil {
				return err
			}
			if st.inFlight() && st.Attempts > 0 && st.LastError != "" {
				if !m.sawRetry {
					t.Logf("%s: transient failure recorded, retried later: %s", m.c.class, st)
				}
				m.sawRetry = true
				m.retries = max(m.retries, st.Attempts)
				if !containsAny(st.LastError, m.c.wantError) {
					t.Errorf("%s: the retried step's last_error %q does not name %q", m.c.class, st.LastError, m.c.wantError)
				}
			}
			ended := st.State == "failed" || st.State == "idle" && st.LastCompletedAt != ""
			if !ended {
				pending = append(pending, fmt.Sprintf("%s: %s", m.c.class, st))
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("rotations in flight: %s", strings.Join(pending, "; "))
		}
		return nil
	})
}

// relMDFinish checks where the rotation ended, what readers saw, the app and the key ring.
func relMDFinish(t *testing.T, e *Env, uuid string, m *relMDConn) {
	t.Helper()
	v := e.Vault
	st, err := readRotation(v.Client, m.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: rotation ended %s", m.c.class, st)
	if st.State != m.c.want {
		t.Errorf("%s: the rotation ended %s, want %s: %s", m.c.class, st.State, m.c.want, st)
	}
	if m.c.want == "failed" && !containsAny(st.LastError, m.c.wantError) {
		t.Errorf("%s: last_error %q does not name %q", m.c.class, st.LastError, m.c.wantError)
	}
	if m.c.wantRetry && !m.sawRetry {
		t.Errorf("%s: the rotation never recorded a transient failure to retry", m.c.class)
	}
	ring := relMustRing(t, v, m.name)
	appCert := relAppCertificate(t, e.Emu, m.key)
	switch {
	case m.c.wantRing != "":
		if got := relRingString(ring); got != m.c.wantRing {
			t.Errorf("%s: key ring %s, want %s", m.c.class, got, m.c.wantRing)
		}
		if !sameCertificate(appCert, m.certBefore) {
			t.Errorf("%s: the app does not hold the old certificate after the rollback", m.c.class)
		}
	case m.c.want == "failed":
		// The app keeps the old certificate, the old key keeps signing, the new key waits.
		if !sameCertificate(appCert, m.certBefore) {
			t.Errorf("%s: the failed rotation changed the app's certificate", m.c.class)
		}
		if ring[1].Status != "active" || ring[2].Status != "pending" {
			t.Errorf("%s: key ring %s after a failed rotation, want 1:active 2:pending", m.c.class, relRingString(ring))
		}
	case m.c.want == "idle":
		if ring[1].Status != "archived" || ring[2].Status != "active" {
			t.Errorf("%s: key ring %s after the rotation, want 1:archived 2:active", m.c.class, relRingString(ring))
		}
		cert := StringField(t, v.Read(t, Mount+"/connections/"+m.name+"/certificate"), "certificate")
		if !sameCertificate(appCert, cert) {
			t.Errorf("%s: the app does not hold the new active certificate", m.c.class)
		}
	}
	var served, failed int64
	var errs []string
	for _, r := range m.readers {
		s, f, es := r.results()
		served, failed, errs = served+s, failed+f, append(errs, es...)
	}
	if failed > 0 {
		t.Errorf("%s: %d creds reads failed during the rotation:\n%s", m.c.class, failed, strings.Join(errs, "\n"))
	}
	if served == 0 {
		t.Errorf("%s: no creds read was served during the rotation", m.c.class)
	}
	// Minting works after, signed by the active key.
	s := ReadCreds(t, v.Client, m.name+"-leased")
	e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
	served++
	lost, what := relKeysLost(m.ringBefore, ring)
	if lost > 0 {
		t.Errorf("%s: keys lost: %v", m.c.class, what)
	}
	relRequireStorage(t, v, uuid, m.name)
	relReport(t, "fault", "metadata_"+m.c.class, "injected", m.injected, "served", served, "failed", failed, "keys_lost", lost,
		"rotation", st.State, "step_retries", m.retries)
}
