package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRotationRollbackVsReadPromotion: Salesforce applies the new certificate late — after
// propagation_timeout, while the plugin's rollback deploy (the old certificate back) is still in
// progress. A creds read then finds the active key refused and the pending key accepted, and
// promotes the pending key although the rotation is rolling back. The rollback deploy still
// completes at Salesforce and puts the old certificate back on the app. Whatever happens in
// between, once nothing is in flight any more the app's certificate must be the active key's
// ("the app must end with a certificate Vault signs for", docs/rotation.md § Rollback);
// otherwise every token request fails once the rollback propagates, with the rotation idle and
// nothing left to repair it.
//
// Salesforce finishes a deploy whether or not anyone polls it; the emulator moves a deploy along
// only when its status is polled, so the test polls it (as the deploy user) once the plugin has
// stopped. A 503 fault on the deploy status endpoint keeps the plugin's rollback in progress over
// the moment the new certificate takes effect (a busy org's deploy queue does the same).
func TestRotationRollbackVsReadPromotion(t *testing.T) {
	t.Parallel()
	// The new certificate takes effect 80 s after the deploy; propagation_timeout is 1 min, so the
	// rollback starts at about 61 s, before it does.
	const propagation = 80 * time.Second
	e := NewEnv(t, "-propagation-delay", propagation.String(), "-propagation-overlap", "old")
	v := e.Vault
	const conn = "rollback"
	e.CreateConnection(t, v, conn, e.MetadataAPIFields(map[string]any{"propagation_timeout": "1m"}))
	trustConnectionAtOnce(t, e, v, conn)
	e.CreateRole(t, v, "leased", conn, map[string]any{"token_mode": "per_lease"})
	e.Emu.ResetCounters(t)

	w := newRotationWatch(t, conn)
	v.Write(t, Mount+"/connections/"+conn+"/rotate", nil)
	w.until(t, v.Client, 30*time.Second, "the new certificate to be deployed", func(st rotationStatus) error {
		if st.State == "verifying" && st.DeployedAt != "" {
			return nil
		}
		return fmt.Errorf("rotation %s", st)
	})
	e.Emu.SetFault(t, map[string]any{"endpoint": "deploy_status", "kind": "status", "status": 503})

	// Probes every 30 s; a `rotate` call drives the rotation in flight at once, so the probe after
	// propagation_timeout is not left to the next 60 s tick.
	rb := w.until(t, v.Client, 90*time.Second, "the plugin to start deploying the old certificate back", func(st rotationStatus) error {
		if st.State == "rolling_back" && st.RollbackDeployID != "" {
			return nil
		}
		if st.State != "verifying" {
			t.Fatalf("the rotation went %s instead of rolling back: %s", st.State, st)
		}
		if st.NextAttemptAt != "" && time.Until(parseTime(t, st.NextAttemptAt)) <= 0 &&
			(time.Since(parseTime(t, st.DeployedAt)) > 62*time.Second || time.Since(parseTime(t, st.DeployedAt)) < 55*time.Second) {
			v.Write(t, Mount+"/connections/"+conn+"/rotate", nil)
		}
		return fmt.Errorf("rotation %s", st)
	})
	if left := propagation - time.Since(parseTime(t, rb.DeployedAt)); left < 5*time.Second {
		t.Fatalf("the rollback started only %s before the new certificate takes effect: the scenario did not arise", left)
	}
	ring := readKeyRing(t, v, conn)
	requireKeyRing(t, ring, map[int]string{1: "active", 2: "pending"})

	// Salesforce applies the new certificate (late), with the rollback deploy still in progress.
	WaitFor(t, propagation, "Salesforce to apply the new certificate", func() error {
		app := readEmulatorApp(t, e.Emu)
		if len(app.Accepted) == 1 && versionOf(ring, app.Accepted[0]) == "2" {
			return nil
		}
		return errNotYet
	})
	// An application reads creds: it must get a working token.
	s := ReadCreds(t, v.Client, "leased")
	tok, instance := s.Data["access_token"].(string), s.Data["instance_url"].(string)
	e.Emu.RequireTokenAccepted(t, tok)
	t.Logf("creds read during the rollback: key_version %d", Int(t, s, "key_version"))

	// Salesforce finishes the rollback deploy it was running.
	e.Emu.ClearFaults(t)
	finishDeploy(t, e.Emu, instance, tok, rb.RollbackDeployID)

	// Let the plugin settle: it polls the rollback again on its retry schedule (a `rotate` call
	// drives it at once when due), unless the rotation is no longer in flight.
	final := w.until(t, v.Client, 90*time.Second, "the rotation to settle", func(st rotationStatus) error {
		if !st.inFlight() {
			return nil
		}
		if st.NextAttemptAt != "" && time.Until(parseTime(t, st.NextAttemptAt)) <= 0 {
			v.Write(t, Mount+"/connections/"+conn+"/rotate", nil)
		}
		return fmt.Errorf("rotation %s", st)
	})
	t.Logf("rotation states seen: %v", w.statesSeen())
	ring, app := requireAppKeysKnown(t, v, e.Emu, conn)
	active := 0
	for n, k := range ring {
		if k.Status == "active" {
			active = n
		}
	}
	if stored := versionOf(ring, app.CertificatePEM); stored != fmt.Sprint(active) {
		t.Fatalf("BUG: the rotation ended %s with key version %d active (ring %s), but the app's certificate is key version %s's "+
			"(the rollback deploy completed after a creds read had promoted the pending key). Once the rollback propagates, "+
			"Salesforce refuses every assertion Vault signs, and nothing in the plugin will repair it. last_error=%q",
			final.State, active, keyStatuses(ring), stored, final.LastError)
	}
}

// finishDeploy polls a deploy as Salesforce's API client would, until it is done (the emulator
// applies a deploy when its status is polled); token is any session of the org.
func finishDeploy(t testing.TB, emu *Emulator, instanceURL, token, id string) {
	t.Helper()
	WaitFor(t, 30*time.Second, "deploy "+id+" to finish", func() error {
		req, err := http.NewRequest(http.MethodGet, strings.TrimRight(instanceURL, "/")+"/services/data/v62.0/metadata/deployRequest/"+id, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := emu.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out struct {
			DeployResult struct {
				Done    bool   `json:"done"`
				Status  string `json:"status"`
				Success bool   `json:"success"`
			} `json:"deployResult"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
			return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
		}
		if !out.DeployResult.Done {
			return fmt.Errorf("deploy %s", out.DeployResult.Status)
		}
		if !out.DeployResult.Success {
			t.Fatalf("the rollback deploy failed: %s", b)
		}
		return nil
	})
}
