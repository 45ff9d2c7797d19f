package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRotationHALeaderLoss: a metadata_api rotation is in flight (the new certificate deployed,
// Salesforce still propagating it) when the leader of a 3-node Raft cluster steps down, and then
// the node that took over is killed. The rotation lives in replicated storage: the last leader's
// periodic func resumes it and completes it exactly once (one deploy, two key versions), the old
// key stays archived with its certificate, and standbys forward mints throughout.
//
// It runs its own cluster: TestHACluster's emulator has no propagation delay, and the delay is an
// emulator start-up flag.
func TestRotationHALeaderLoss(t *testing.T) {
	t.Parallel()
	cfg := LoadConfig(t)
	// Long enough to cover a step-down, a kill and two elections with the new key still refused,
	// short enough to be over by the first periodic tick of the last leader (60 s after it
	// became active).
	const propagation = 50 * time.Second
	e := &Env{Cfg: cfg, Emu: StartEmulator(t, cfg, "-propagation-delay", propagation.String(), "-propagation-overlap", "old")}
	c := StartCluster(t, cfg)
	const conn = "ha"

	first := c.Leader(t)
	e.CreateConnection(t, first, conn, e.MetadataAPIFields(nil))
	trustConnectionAtOnce(t, e, first, conn)
	e.CreateRole(t, first, "shared", conn, nil)
	e.CreateRole(t, first, "leased", conn, map[string]any{"token_mode": "per_lease"})
	before := readKeyRing(t, first, conn)
	e.Emu.ResetCounters(t)

	w := newRotationWatch(t, conn)
	first.Write(t, Mount+"/connections/"+conn+"/rotate", nil)
	held := w.until(t, first.Client, 30*time.Second, "the new certificate to be deployed and its first probe refused", func(st rotationStatus) error {
		if st.State == "verifying" && strings.Contains(st.LastError, "waiting for Salesforce") {
			return nil
		}
		return fmt.Errorf("rotation %s", st)
	})
	ring, app := requireAppKeysKnown(t, first, e.Emu, conn)
	requireKeyRing(t, ring, map[int]string{1: "active", 2: "pending"})
	requireCertIsVersion(t, "the emulator app's certificate", ring, app.CertificatePEM, 2)
	requireAcceptedAre(t, ring, app, 1)

	// Step-down: the rotation is read from replicated storage by the new leader.
	old, second := c.StepDown(t)
	requireSameRotation(t, held, w.until(t, second.Client, 30*time.Second, second.Name+" to serve the rotation", inFlight))
	mintOldKeyViaStandby(t, e, c, ring, held, propagation)

	// Crash of the node that took over.
	c.KillNode(t, second)
	last := c.Leader(t)
	t.Logf("after killing %s: leader %s (stepped-down leader was %s)", second.Name, last.Name, old.Name)
	requireSameRotation(t, held, w.until(t, last.Client, 30*time.Second, last.Name+" to serve the rotation", inFlight))
	mintOldKeyViaStandby(t, e, c, ring, held, propagation)

	// No mint from here on: only the last leader's periodic func can finish the rotation.
	final := w.until(t, last.Client, rotationTickTimeout, last.Name+"'s periodic func to finish the rotation", func(st rotationStatus) error {
		switch {
		case st.State == "failed" || st.State == "rolling_back":
			t.Fatalf("the rotation did not complete: %s", st)
		case st.State == "idle" && st.LastCompletedAt != "":
			return nil
		}
		return fmt.Errorf("rotation %s", st)
	})
	t.Logf("rotation states seen: %v; completed at %s", w.statesSeen(), final.LastCompletedAt)
	if n := logCount(t, last, "key rotation complete"); n != 1 {
		t.Errorf("%s logged %d rotation completions, want 1", last.Name, n)
	}
	for _, n := range c.Nodes {
		if n != last {
			if k := logCount(t, n, "key rotation complete"); k != 0 {
				t.Errorf("%s also logged %d rotation completions", n.Name, k)
			}
		}
	}

	// Exactly one rotation, no lost key.
	ring, app = requireAppKeysKnown(t, last, e.Emu, conn)
	requireKeyRing(t, ring, map[int]string{1: "archived", 2: "active"})
	if !bytes.Equal(ring[1].DER, before[1].DER) {
		t.Fatalf("archived version 1 no longer has its original certificate")
	}
	requireCertIsVersion(t, "the emulator app's certificate", ring, app.CertificatePEM, 2)
	requireAcceptedAre(t, ring, app, 2)
	requireCounter(t, e.Emu, "deploy_requests", 1)
	requireCounter(t, e.Emu, "deploys_succeeded", 1)

	// The crashed node comes back as a standby; every standby forwards mints, signed by v2.
	c.RestartNode(t, second)
	for _, s := range c.Standbys(t) {
		for _, role := range []string{"shared", "leased"} {
			cr := ReadCreds(t, s.Client, role)
			e.Emu.RequireTokenAccepted(t, cr.Data["access_token"].(string))
			if got := Int(t, cr, "key_version"); got != 2 {
				t.Errorf("creds/%s through %s: key_version %d, want 2", role, s.Name, got)
			}
		}
		requireKeyRing(t, readKeyRing(t, s, conn), map[int]string{1: "archived", 2: "active"})
	}
}

func inFlight(st rotationStatus) error {
	if st.State == "verifying" {
		return nil
	}
	return fmt.Errorf("rotation %s", st)
}

// requireSameRotation fails unless after is the rotation observed as held (same start, same
// pending key, same deploy): a new leader must resume it, not start another.
func requireSameRotation(t testing.TB, held, after rotationStatus) {
	t.Helper()
	if after.StartedAt != held.StartedAt || after.PendingVersion != held.PendingVersion || after.DeployID != held.DeployID {
		t.Fatalf("the new leader reads another rotation:\nbefore %s (started %s)\nafter  %s (started %s)", held, held.StartedAt, after, after.StartedAt)
	}
}

// mintOldKeyViaStandby mints through a standby while the new certificate propagates: the token
// is signed by version 1, and the app still accepts only version 1 after it (so the mint did not
// promote version 2 itself: the mint fallback cannot have finished the rotation). When less than
// 10 s of the propagation window is left (a slow election), it skips the mint rather than race
// the window.
func mintOldKeyViaStandby(t testing.TB, e *Env, c *Cluster, ring map[int]rotationKey, held rotationStatus, propagation time.Duration) {
	t.Helper()
	if left := propagation - time.Since(parseTime(t, held.DeployedAt)); left < 10*time.Second {
		t.Logf("only %s of the propagation window left: no mid-rotation mint", left.Round(time.Second))
		return
	}
	s := c.Standbys(t)[0]
	cr := ReadCreds(t, s.Client, "leased")
	e.Emu.RequireTokenAccepted(t, cr.Data["access_token"].(string))
	if got := Int(t, cr, "key_version"); got != 1 {
		t.Fatalf("creds through standby %s mid-rotation: key_version %d, want 1", s.Name, got)
	}
	requireAcceptedAre(t, ring, readEmulatorApp(t, e.Emu), 1)
	t.Logf("standby %s forwarded a mint (key version 1) mid-rotation", s.Name)
}
