package backend

import (
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/automatedrotationutil"
	"github.com/hashicorp/vault/sdk/rotation"
)

// Vault's automated rotation settings, spelled as its engines spell them (database static
// roles, the root rotation of Vault 1.19+): rotation_period (today's key_rotation_period, which
// stays an alias), rotation_schedule (cron, parsed by the SDK's scheduler), rotation_window
// (how long after each scheduled time a rotation may start) and disable_automated_rotation.

// addRotationFields adds the SDK's schema of the four fields to a path's fields.
func addRotationFields(fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	automatedrotationutil.AddAutomatedRotationFields(fields)
	fields["rotation_period"].Description = "Rotate when the active key is this old (0: off); the name Vault's engines use for key_rotation_period, which stays an alias. Mutually exclusive with rotation_schedule."
	fields["rotation_schedule"].Description = "Cron schedule (minute hour day-of-month month day-of-week, UTC) at which the key is rotated, e.g. \"0 2 * * SAT\"; \"\" turns it off. Mutually exclusive with rotation_period."
	fields["rotation_window"].Description = "With rotation_schedule: how long after each scheduled time a rotation may still start (at least 1h; 0: any time after it). A rotation never starts outside its window; one that cannot start waits for the next, and the active key keeps signing."
	fields["disable_automated_rotation"].Description = "Stop scheduled rotations (rotate by hand still works); the schedule settings are kept."
	return fields
}

// applyRotationFields reads the four fields into c and checks them together. Errors never
// quote the schedule back.
func applyRotationFields(c *connectionEntry, d *framework.FieldData) *fieldError {
	period, periodSet, ferr := durationField(d, "rotation_period", minKeyRotationPeriod, maxCertificateTTL, true)
	if ferr != nil {
		return ferr
	}
	if periodSet {
		if legacy, ok := d.GetOk("key_rotation_period"); ok && seconds(legacy) != period {
			return fieldErr("rotation_period", "and key_rotation_period (its alias) were both given with different values: give one of them")
		}
		c.KeyRotationPeriod = period
	}
	if ferr := cronField(d, "rotation_schedule", &c.RotationSchedule); ferr != nil {
		return ferr
	}
	if ferr := windowField(d, "rotation_window", &c.RotationWindow); ferr != nil {
		return ferr
	}
	if v, ok := d.GetOk("disable_automated_rotation"); ok {
		c.DisableAutomatedRotation = v.(bool)
	}
	switch {
	case c.RotationSchedule != "" && c.KeyRotationPeriod > 0:
		return fieldErr("rotation_schedule", "and rotation_period (key_rotation_period) are mutually exclusive: set the other to 0 or \"\"")
	case c.RotationWindow > 0 && c.RotationSchedule == "":
		return fieldErr("rotation_window", "applies to rotation_schedule only: set a schedule, or the window to 0")
	}
	return nil
}

// scheduledRotationAt is when the active key is next due for rotation: at its age limit (period)
// or the next scheduled time after it became active, or earlier when its certificate nears
// expiry; with a schedule and a window, moved to the first window that has not closed by now.
// Zero when automated rotation is off.
func scheduledRotationAt(conn *connectionEntry, ring *keyRing, now time.Time) time.Time {
	a := ring.active()
	if !conn.rotationEnabled() || a == nil {
		return time.Time{}
	}
	since := a.ActivatedAt
	if since.IsZero() {
		since = a.CreatedAt
	}
	renew := a.NotAfter.Add(-conn.CertificateRenewBefore)
	if conn.RotationSchedule == "" {
		return minTime(since.Add(conn.KeyRotationPeriod), renew)
	}
	sched, err := rotation.DefaultScheduler.Parse(conn.RotationSchedule)
	if err != nil {
		return time.Time{} // validated at write
	}
	due := sched.Next(since)
	if renew.Before(due) {
		due = sched.Next(renew.Add(-time.Second)) // renewal, too, starts at a scheduled time
		if renew.Before(since) {
			due = sched.Next(since)
		}
	}
	return inOpenWindow(sched, due, conn.RotationWindow, now)
}

// cronField reads an optional cron schedule field into dst ("" turns it off). The error never
// quotes the schedule back.
func cronField(d *framework.FieldData, field string, dst *string) *fieldError {
	v, ok := d.GetOk(field)
	if !ok {
		return nil
	}
	if s := v.(string); s != "" {
		if _, err := rotation.DefaultScheduler.Parse(s); err != nil {
			return fieldErr(field, "is not a cron schedule: give five fields, minute hour day-of-month month day-of-week, e.g. \"0 2 * * SAT\"")
		}
	}
	*dst = v.(string)
	return nil
}

// windowField reads an optional rotation window into dst: 0, or at least Vault's 1h.
func windowField(d *framework.FieldData, field string, dst *time.Duration) *fieldError {
	v, ok := d.GetOk(field)
	if !ok {
		return nil
	}
	w := seconds(v)
	if w != 0 {
		if err := rotation.DefaultScheduler.ValidateRotationWindow(int(w.Seconds())); err != nil {
			return fieldErr(field, "must be at least 1h (or 0 for no window)")
		}
	}
	*dst = w
	return nil
}

// inOpenWindow moves a scheduled time due whose window (when there is one) closed before now to
// the window that is open now, or the next one: a rotation never starts outside its window.
func inOpenWindow(sched interface{ Next(time.Time) time.Time }, due time.Time, window time.Duration, now time.Time) time.Time {
	if window > 0 && now.After(due.Add(window)) {
		return sched.Next(now.Add(-window))
	}
	return due
}

// lastVaultRotation is when the key last changed: the last completed rotation, else when the
// active key became active.
func lastVaultRotation(ring *keyRing) time.Time {
	if !ring.Rotation.LastCompletedAt.IsZero() {
		return ring.Rotation.LastCompletedAt
	}
	if a := ring.active(); a != nil {
		return a.ActivatedAt
	}
	return time.Time{}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
