package backend

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRotationScheduleInput(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	for _, c := range []struct {
		name  string
		data  map[string]any
		field string
	}{
		{"schedule and period", map[string]any{"rotation_schedule": "0 2 * * *", "rotation_period": "720h"}, "rotation_schedule"},
		{"schedule and legacy period", map[string]any{"rotation_schedule": "0 2 * * *", "key_rotation_period": "720h"}, "rotation_schedule"},
		{"bad cron", map[string]any{"rotation_schedule": "every sunday PRIVATEKEYMATERIAL"}, "rotation_schedule"},
		{"window without schedule", map[string]any{"rotation_window": "2h"}, "rotation_window"},
		{"short window", map[string]any{"rotation_schedule": "0 2 * * *", "rotation_window": "10m"}, "rotation_window"},
		{"alias conflict", map[string]any{"rotation_period": "720h", "key_rotation_period": "360h"}, "rotation_period"},
		{"short period", map[string]any{"rotation_period": "10m"}, "rotation_period"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := e.do(logical.UpdateOperation, "connections/prod", c.data)
			if err != nil {
				t.Fatal(err)
			}
			mustErr(t, resp, c.field)
			if strings.Contains(resp.Error().Error(), "PRIVATEKEYMATERIAL") {
				t.Fatal("the error quotes the schedule")
			}
		})
	}
	d := mustOK(t, e.write("connections/prod", map[string]any{"rotation_period": "720h"})).Data
	if d["key_rotation_period"] != int64(720*3600) || d["rotation_period"] != int64(720*3600) {
		t.Fatalf("rotation_period is not key_rotation_period's alias: %v %v", d["key_rotation_period"], d["rotation_period"])
	}
	d = mustOK(t, e.write("connections/prod", map[string]any{"rotation_period": 0, "rotation_schedule": "0 2 * * SAT", "rotation_window": "3h"})).Data
	if d["rotation_schedule"] != "0 2 * * SAT" || d["rotation_window"] != int64(3*3600) || d["next_vault_rotation"] == "" || d["last_vault_rotation"] == "" {
		t.Fatalf("read: %v", d)
	}
}

// The schedule's arithmetic, from a table: when the next rotation may start.
func TestScheduledRotationAtRespectsTheWindow(t *testing.T) {
	since := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday
	ring := &keyRing{Versions: []*keyVersion{{Version: 1, Status: statusActive, ActivatedAt: since, NotAfter: since.Add(365 * 24 * time.Hour)}}}
	conn := &connectionEntry{RotationSchedule: "0 2 * * *", RotationWindow: time.Hour, CertificateRenewBefore: 720 * time.Hour}
	at := func(h, m int) time.Time { return since.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	for _, c := range []struct {
		now, want time.Time
	}{
		{at(0, 30), at(2, 0)},   // before the first window: at 02:00
		{at(2, 30), at(2, 0)},   // inside it: due (already)
		{at(3, 1), at(26, 0)},   // closed: tomorrow's
		{at(50, 0), at(50, 0)},  // two days later, 02:00 sharp: that day's window opens now
		{at(51, 30), at(74, 0)}, // after it closed: the next day's
	} {
		if got := scheduledRotationAt(conn, ring, c.now); !got.Equal(c.want) {
			t.Errorf("now %v: next %v, want %v", c.now, got, c.want)
		}
	}
	conn.RotationWindow = 0 // no window: any time after the scheduled one
	if got := scheduledRotationAt(conn, ring, at(80, 0)); !got.Equal(at(2, 0)) {
		t.Errorf("without a window: %v", got)
	}
	conn.DisableAutomatedRotation = true
	if got := scheduledRotationAt(conn, ring, at(80, 0)); !got.IsZero() {
		t.Errorf("disabled: %v", got)
	}
	// Renewal before expiry also waits for a scheduled time.
	conn.DisableAutomatedRotation = false
	ring.Versions[0].NotAfter = since.Add(720*time.Hour + 5*time.Hour) // renew from 05:00 on day 1
	conn.RotationWindow = time.Hour
	if got := scheduledRotationAt(conn, ring, at(0, 0)); !got.Equal(at(2, 0)) {
		t.Errorf("renewal: %v", got)
	}
}

// End to end through the periodic func: a scheduled rotation starts only inside its window.
func TestScheduledRotationStartsOnlyInsideItsWindow(t *testing.T) {
	e := newTestEnv(t)
	now := e.clock.Now()
	in1h, in2h := now.Add(time.Hour), now.Add(2*time.Hour)
	daily := func(t time.Time) string { return fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour()) }
	sched := daily(in2h)
	e.createConnection("open", map[string]any{"rotation_schedule": sched, "rotation_window": "1h"})
	// missed's window (in 1h, for 1h) closes before the first tick that could see it.
	e.createConnection("missed", map[string]any{"rotation_schedule": daily(in1h), "rotation_window": "1h"})
	e.createConnection("off", map[string]any{"rotation_schedule": sched, "rotation_window": "1h", "disable_automated_rotation": true})
	for _, c := range []string{"open", "missed", "off"} {
		e.createRole("r-"+c, c, nil)
	}
	e.tick()
	if r := e.rotation("open"); r["state"] != stateIdle {
		t.Fatalf("started before the window: %v", r)
	}
	e.clock.Advance(2*time.Hour + 10*time.Minute)
	e.tick()
	e.b.wg.Wait()
	if r := e.rotation("open"); r["state"] == stateIdle && r["last_completed_at"] == "" {
		t.Fatalf("no rotation inside the window: %v", r)
	}
	if r := e.rotation("off"); r["state"] != stateIdle || r["pending_key_version"] != 0 {
		t.Fatalf("disable_automated_rotation still rotated: %v", r)
	}
	if r := e.rotation("missed"); r["pending_key_version"] != 0 || r["state"] != stateIdle {
		t.Fatalf("started outside the window: %v", r)
	}
	want := in1h.Add(24 * time.Hour).Truncate(time.Minute).UTC().Format(time.RFC3339)
	if got := e.rotation("missed")["next_vault_rotation"]; got != want {
		t.Fatalf("next_vault_rotation %v, want tomorrow's window %v", got, want)
	}
}
