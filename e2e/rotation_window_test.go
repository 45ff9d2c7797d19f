package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRotationScheduleWindow: a connection with rotation_schedule and rotation_window starts its
// rotation only inside the window, on a real clock in a real Vault. The schedule is one minute
// of each hour, the first whole minute at least 62 s away: Vault's rollback manager calls the
// periodic func every 60 s, so at least one tick falls before the window opens. Both the
// scheduled connection and a control connection have a certificate that is overdue for renewal,
// so without a schedule either would rotate at the first tick; the control (no schedule,
// deploy=manual, so it never touches the app) does, which proves a tick ran while the scheduled
// one stayed idle with nothing deployed. Once the window opens, the next tick starts the
// scheduled rotation, which deploys through the Metadata API and completes with version 2
// active. (A window that closes is an hour at the least: the unit tests cover that on a fake
// clock, backend/rotation_window_test.go.)
func TestRotationScheduleWindow(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	v := e.Vault
	const conn, control = "windowed", "control"

	opens := firstMinuteAtOrAfter(time.Now().Add(62 * time.Second))
	// Each certificate (24h) is due for renewal 10 s after it is made (renew_before 23h59m50s).
	overdue := func(fields map[string]any) map[string]any {
		fields["certificate_ttl"], fields["certificate_renew_before"] = "24h", "86390s"
		return fields
	}
	e.CreateConnection(t, v, conn, e.MetadataAPIFields(overdue(map[string]any{
		"rotation_schedule": fmt.Sprintf("%d * * * *", opens.Minute()), "rotation_window": "1h",
	})))
	trustConnectionAtOnce(t, e, v, conn)
	e.CreateRole(t, v, "app", conn, nil)
	e.CreateConnection(t, v, control, overdue(map[string]any{"rotation_period": "8760h"}))
	e.CreateRole(t, v, "ctl", control, nil)
	e.Emu.ResetCounters(t)

	// The next rotation is the window's opening, although the certificate is due before it.
	if next := parseTime(t, StringField(t, v.Read(t, Mount+"/connections/"+conn+"/rotation"), "next_vault_rotation")); !next.Equal(opens) {
		t.Fatalf("next_vault_rotation %s, want the window's opening %s", next, opens)
	}

	// Before the window: a tick starts the control's rotation and leaves the scheduled one idle.
	w := newRotationWatch(t, conn)
	idleBeforeWindow := func() {
		t.Helper()
		st, err := w.observe(v.Client)
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().Before(opens) && (st.State != "idle" || st.LastCompletedAt != "") {
			t.Fatalf("the scheduled rotation started before its window opens at %s: %s", opens, st)
		}
	}
	cw := newRotationWatch(t, control)
	ctl := cw.until(t, v.Client, rotationTickTimeout, "a periodic tick to start the control's rotation", func(st rotationStatus) error {
		idleBeforeWindow()
		if st.inFlight() {
			return nil
		}
		return fmt.Errorf("control rotation %s", st)
	})
	tick := parseTime(t, ctl.StartedAt)
	if !tick.Before(opens) {
		t.Fatalf("the control's rotation started at %s, not before the window (%s): no tick ran before it", tick, opens)
	}
	idleBeforeWindow()
	requireCounter(t, e.Emu, "deploy_requests", 0)
	t.Logf("tick at %s started the control's rotation; the scheduled one waits for %s", tick, opens)

	// Inside the window: the next tick starts the scheduled rotation, and it completes.
	final := w.until(t, v.Client, time.Until(opens)+rotationTickTimeout, "the scheduled rotation to start in its window and complete", func(st rotationStatus) error {
		switch {
		case time.Now().Before(opens) && (st.State != "idle" || st.LastCompletedAt != ""):
			t.Fatalf("the scheduled rotation started before its window opens at %s: %s", opens, st)
		case st.State == "failed" || st.State == "rolling_back":
			t.Fatalf("the scheduled rotation did not complete: %s", st)
		case st.State == "idle" && st.LastCompletedAt != "":
			return nil
		}
		return fmt.Errorf("rotation %s", st)
	})
	started := rotationStartLogged(t, v, conn)
	if started.Before(opens) || !started.Before(opens.Add(time.Hour)) {
		t.Errorf("Vault logged the scheduled rotation's start at %s, outside its window [%s, +1h)", started, opens)
	}
	if done := parseTime(t, final.LastCompletedAt); done.Before(opens) {
		t.Errorf("last_completed_at %s is before the window opened (%s)", done, opens)
	}
	t.Logf("window opened %s; rotation started %s, completed %s", opens, started, final.LastCompletedAt)
	if got := w.triggersSeen(); len(got) > 0 && (len(got) != 1 || got[0] != "scheduled") {
		t.Errorf("rotation triggers seen %v, want [scheduled]", got)
	}
	requireKeyRing(t, readKeyRing(t, v, conn), map[int]string{1: "archived", 2: "active"})
	requireCounter(t, e.Emu, "deploys_succeeded", 1)
	if got := Int(t, ReadCreds(t, v.Client, "app"), "key_version"); got != 2 {
		t.Errorf("creds key_version %d after the rotation, want 2", got)
	}
	// The next one is the same minute an hour on, not at once (the new certificate is overdue too).
	if next := parseTime(t, StringField(t, v.Read(t, Mount+"/connections/"+conn+"/rotation"), "next_vault_rotation")); !next.Equal(opens.Add(time.Hour)) {
		t.Errorf("next_vault_rotation %s after the rotation, want %s", next, opens.Add(time.Hour))
	}
}

// firstMinuteAtOrAfter is the first whole minute (UTC) at or after t.
func firstMinuteAtOrAfter(t time.Time) time.Time {
	m := t.UTC().Truncate(time.Minute)
	if m.Before(t) {
		m = m.Add(time.Minute)
	}
	return m
}

// rotationStartLogged is the time on Vault's log line "key rotation started" for conn (there
// must be exactly one).
func rotationStartLogged(t *testing.T, v *Vault, conn string) time.Time {
	t.Helper()
	b, err := os.ReadFile(v.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var found []time.Time
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "key rotation started") || !strings.Contains(line, "connection="+conn+" ") {
			continue
		}
		stamp, _, _ := strings.Cut(line, " ")
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("vault log line without a leading RFC 3339 time: %q", line)
		}
		found = append(found, ts)
	}
	if len(found) != 1 {
		t.Fatalf("vault log: %d lines \"key rotation started\" for connection %s, want 1", len(found), conn)
	}
	return found[0]
}
