package backend

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// Rotation states. The state is stored in the key ring, and written before every external side
// effect, so a crash, restart, reload or leader change at any point resumes from storage:
//
//	idle → deploying (metadata_api: certificate sent to the app) → verifying (a real token
//	request with the pending key) → promoting (pending → active, active → archived) → idle
//
// deploy=manual skips deploying: the operator uploads the certificate, and verifying waits for
// Salesforce to accept it. If the new key is not accepted within propagation_timeout, a
// metadata_api rotation goes rolling_back (the old certificate is deployed again) and ends
// failed; a manual one ends failed (stalled) and keeps being probed slowly.
const (
	stateIdle        = "idle"
	stateDeploying   = "deploying"
	stateVerifying   = "verifying"
	statePromoting   = "promoting"
	stateRollingBack = "rolling_back"
	stateFailed      = "failed"
)

const (
	// maxStepAttempts bounds retries of a step failing for transient reasons (network, 5xx).
	maxStepAttempts = 8
	retryBase       = 30 * time.Second
	retryMax        = 10 * time.Minute
	// probeInterval paces token requests that wait for a certificate to propagate; each is a
	// Salesforce login for verify_username, far below its 3,600 an hour.
	probeInterval = 30 * time.Second
	// stalledProbeInterval paces probes of a stalled manual rotation.
	stalledProbeInterval = 10 * time.Minute
	// inlineWait is the longest wait a driver sleeps through instead of handing the rotation
	// back to the periodic func (deploy polls take seconds).
	inlineWait = 3 * time.Second
	// maxInlineWaiting bounds all inline waits of one drive: a deploy stuck in progress is
	// polled a few times, then left to later ticks instead of holding this one (and the
	// connections behind it) for the whole drive budget.
	maxInlineWaiting = 12 * time.Second
	// driveBudget bounds one drive of a rotation: the periodic func must finish well inside
	// Vault's 90-second rollback deadline.
	driveBudget = 45 * time.Second
)

// rotationState is the persisted progress of a connection's key rotation.
type rotationState struct {
	State           string    `json:"state"`
	Trigger         string    `json:"trigger,omitempty"` // manual, scheduled, import
	PendingVersion  int       `json:"pending_version,omitempty"`
	PreviousVersion int       `json:"previous_version,omitempty"` // active when it started
	StartedAt       time.Time `json:"started_at,omitempty"`
	LastAttemptAt   time.Time `json:"last_attempt_at,omitempty"`
	NextAttemptAt   time.Time `json:"next_attempt_at,omitempty"`
	Attempts        int       `json:"attempts,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	DeployID        string    `json:"deploy_id,omitempty"`
	DeployedAt      time.Time `json:"deployed_at,omitempty"` // certificate handed to Salesforce
	RollbackID      string    `json:"rollback_deploy_id,omitempty"`
	RollbackReason  string    `json:"rollback_reason,omitempty"` // why the rollback started; last_error may change while it runs
	LastCompletedAt time.Time `json:"last_completed_at,omitempty"`
	// Failures counts rotations failed in a row; it spaces out automatic restarts and is reset
	// by a promotion.
	Failures int `json:"failures,omitempty"`
}

// Rotation triggers.
const (
	triggerManual    = "manual"
	triggerScheduled = "scheduled"
	triggerImport    = "import"
	// triggerOriginChange is a re-key: the connection names a new origin (login_url, audience,
	// trust settings), and a key made for it must be proven there before it signs anything.
	triggerOriginChange = "origin_change"
)

// failureBackoff is how long after a failed rotation the next automatic one may start: an
// hour, doubling with each failure in a row, at most a day. A rotation that keeps failing
// must neither stop rotation for good nor hammer the org.
func failureBackoff(failures int) time.Duration {
	if failures < 1 {
		failures = 1
	}
	d := time.Hour << min(failures-1, 5)
	return min(d, 24*time.Hour)
}

func (r rotationState) inFlight() bool {
	switch r.State {
	case stateDeploying, stateVerifying, statePromoting, stateRollingBack:
		return true
	}
	return false
}

// newRotation starts the state of a rotation toward pending version v, carrying over what
// outlives one rotation.
func newRotation(conn *connectionEntry, ring *keyRing, v *keyVersion, trigger string, deployImported bool, now time.Time) rotationState {
	prev := ring.Rotation
	st := rotationState{State: stateVerifying, Trigger: trigger, PendingVersion: v.Version, StartedAt: now, DeployedAt: now,
		NextAttemptAt: now, LastCompletedAt: prev.LastCompletedAt, Failures: prev.Failures}
	active := ring.active()
	if active != nil {
		st.PreviousVersion = active.Version
	}
	if conn.Deploy == deployMetadataAPI && mayDeploy(conn, ring, active, v, trigger, deployImported) {
		st.State, st.DeployedAt = stateDeploying, time.Time{}
	}
	return st
}

// mayDeploy reports whether the plugin itself may put pending's certificate on the app.
// Never for an imported key unless asked (its holder would gain a key the app trusts), never
// for an import's own rotation (its certificate is normally on the app already), and never in
// a re-key: the deploy user's session comes from the old origin, and only someone with rights
// in the org the new origin names may vouch for it by uploading the certificate there.
func mayDeploy(conn *connectionEntry, ring *keyRing, active, pending *keyVersion, trigger string, deployImported bool) bool {
	switch {
	case trigger == triggerImport, trigger == triggerOriginChange:
		return false
	case pending.Origin == originImported && !deployImported:
		return false
	case active == nil || !ring.boundToCurrent(active, conn) || !ring.boundToCurrent(pending, conn):
		return false
	}
	return true
}

// rotationRuns makes sure one connection's rotation is driven by one goroutine at a time
// (the periodic func and a driver started by rotate may both want it).
type rotationRuns struct {
	mu      sync.Mutex
	running map[string]bool
}

func newRotationRuns() *rotationRuns { return &rotationRuns{running: map[string]bool{}} }

func (r *rotationRuns) tryStart(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[name] {
		return false
	}
	r.running[name] = true
	return true
}

func (r *rotationRuns) done(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, name)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// startRotation creates the pending key and the rotation state (one ring write, after the key
// material is stored), or returns the rotation already in flight. A pending key left by a
// failed rotation is reused, unless it was imported (and deployImported is not set) or made for
// an origin the connection no longer names: then it is archived and a fresh key made. Called
// with the connection lock held.
func (b *backend) startRotation(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, trigger string, deployImported bool) error {
	now := b.now().UTC()
	if ring.Rotation.inFlight() {
		return nil
	}
	pending := ring.pending()
	if pending != nil && ((pending.Origin == originImported && !deployImported) || !ring.boundToCurrent(pending, conn)) {
		pending.Status, pending.ArchivedAt = statusArchived, now
		pending = nil
	}
	created := false
	if pending == nil {
		v, err := b.newKeyVersion(ctx, s, name, conn, ring, statusPending, nil, nil)
		if err != nil {
			return err
		}
		ring.Versions = append(ring.Versions, v)
		pending, created = v, true
	}
	ring.Rotation = newRotation(conn, ring, pending, trigger, deployImported, now)
	if err := b.putKeyRing(ctx, s, name, ring); err != nil {
		if created {
			_ = s.Delete(ctx, keyMaterialPath(name, pending.Version))
		}
		return err
	}
	b.Logger().Info("key rotation started", "connection", name, "trigger", trigger, "pending_version", pending.Version, "state", ring.Rotation.State)
	return nil
}

// driveInBackground advances a rotation right away instead of waiting for the next periodic
// tick. It stops at the first step that must wait, or when the backend is cleaned up.
func (b *backend) driveInBackground(s logical.Storage, name string) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(b.ctx, driveBudget)
		defer cancel()
		b.drive(ctx, s, name)
	}()
}

// drive runs rotation steps for one connection until it must wait longer than inlineWait, is
// done, or ctx ends; then it reschedules the connection.
func (b *backend) drive(ctx context.Context, s logical.Storage, name string) {
	if !b.rotor.tryStart(name) {
		return
	}
	defer b.rotor.done(name)
	var waited time.Duration
	for ctx.Err() == nil {
		conn, ring, err := b.loadConnection(ctx, s, name)
		if err != nil {
			b.Logger().Error("rotation: reading connection", "connection", name, "error", err)
			b.sched.set(name, b.now().Add(retryBase))
			return
		}
		if conn == nil || ring == nil {
			b.unscheduleConnection(name)
			return
		}
		next := nextRotationWork(conn, ring, b.now())
		if next.IsZero() {
			b.unscheduleConnection(name)
			return
		}
		if wait := next.Sub(b.now()); wait > 0 {
			if wait > inlineWait || waited+wait > maxInlineWaiting || b.sleep(ctx, wait) != nil {
				b.sched.set(name, next)
				return
			}
			waited += wait
			continue
		}
		if err := b.step(ctx, s, name, conn, ring); err != nil {
			b.Logger().Error("rotation step failed", "connection", name, "state", ring.Rotation.State, "error", err)
			b.sched.set(name, b.now().Add(retryBase))
			return
		}
	}
	if conn, ring, err := b.loadConnection(context.Background(), s, name); err == nil {
		b.scheduleConnection(name, conn, ring)
	}
}

func (b *backend) loadConnection(ctx context.Context, s logical.Storage, name string) (*connectionEntry, *keyRing, error) {
	conn, err := getConnection(ctx, s, name)
	if err != nil || conn == nil {
		return nil, nil, err
	}
	ring, err := getKeyRing(ctx, s, name)
	return conn, ring, err
}

// step performs the work due for one connection: start a scheduled rotation, advance an
// in-flight one, or destroy archived keys beyond keep_archived_keys. Network calls happen
// without the connection lock; each outcome is applied under it, to the ring as stored then,
// and only if the rotation is still the one the step started from.
func (b *backend) step(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing) error {
	st := ring.Rotation
	switch st.State {
	case stateDeploying:
		return b.stepDeploy(ctx, s, name, conn, ring)
	case stateVerifying:
		return b.stepVerify(ctx, s, name, conn, ring)
	case stateFailed:
		if ring.pending() != nil { // still probed: the operator may register it late
			return b.stepVerify(ctx, s, name, conn, ring)
		}
	case statePromoting:
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) { b.promote(name, r, now) })
	case stateRollingBack:
		return b.stepRollback(ctx, s, name, conn, ring)
	}
	// Idle, or failed with nothing pending: retention first, then a rotation if one is due.
	if len(ring.archived()) > conn.KeepArchivedKeys {
		if err := b.enforceRetention(ctx, s, name, conn); err != nil {
			return err
		}
	}
	if due, trigger := nextStartAt(conn, ring); !due.IsZero() && !due.After(b.now()) {
		lock := b.connLock(name)
		lock.Lock()
		defer lock.Unlock()
		conn, ring, err := b.loadConnection(ctx, s, name)
		if err != nil || conn == nil || ring == nil || ring.Rotation.inFlight() {
			return err
		}
		return b.startRotation(ctx, s, name, conn, ring, trigger, false)
	}
	return nil
}

// commit applies change to the stored ring under the connection lock, if the rotation is still
// the one observed as st, and writes it in one put.
func (b *backend) commit(ctx context.Context, s logical.Storage, name string, st rotationState, change func(*keyRing, time.Time)) error {
	lock := b.connLock(name)
	lock.Lock()
	defer lock.Unlock()
	ring, err := getKeyRing(ctx, s, name)
	if err != nil {
		return err
	}
	if ring == nil || ring.Rotation.StartedAt != st.StartedAt || ring.Rotation.State != st.State {
		return nil // changed under us (promoted by a read, deleted, restarted): nothing to do
	}
	change(ring, b.now().UTC())
	if err := b.putKeyRing(ctx, s, name, ring); err != nil {
		return err
	}
	return nil
}

// retryLater records a transient failure of the current step and when it will be retried;
// after maxStepAttempts the rotation fails (or, deploying the old certificate back, keeps
// trying: that must not be given up).
func (b *backend) retryLater(ctx context.Context, s logical.Storage, name string, st rotationState, cause error) error {
	return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
		r.Rotation.Attempts++
		r.Rotation.LastAttemptAt = now
		r.Rotation.LastError = cause.Error()
		delay := retryBase << min(r.Rotation.Attempts-1, 5)
		if delay > retryMax {
			delay = retryMax
		}
		r.Rotation.NextAttemptAt = now.Add(delay)
		if r.Rotation.Attempts >= maxStepAttempts && r.Rotation.State != stateRollingBack {
			b.failRotation(name, r, fmt.Sprintf("%s gave up after %d attempts: %s", r.Rotation.State, r.Rotation.Attempts, cause), now)
		}
	})
}

func (b *backend) failRotation(name string, r *keyRing, reason string, now time.Time) {
	r.Rotation.State = stateFailed
	r.Rotation.Failures++
	r.Rotation.LastError = reason
	r.Rotation.LastAttemptAt = now
	r.Rotation.NextAttemptAt = now.Add(stalledProbeInterval)
	b.Logger().Error("key rotation failed", "connection", name, "reason", reason, "pending_version", r.Rotation.PendingVersion)
}

// stepVerify proves the pending key with a real token request.
func (b *backend) stepVerify(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing) error {
	st := ring.Rotation
	pending := ring.pending()
	if pending == nil {
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
			b.failRotation(name, r, "the pending key is gone (destroyed or promoted elsewhere)", now)
		})
	}
	username, err := b.verifyUsername(ctx, s, name, conn)
	if err != nil {
		return err
	}
	if username == "" {
		return b.retryLater(ctx, s, name, st, errors.New("cannot prove the pending key: set verify_username on the connection or create a role for it (or promote with force=true)"))
	}
	probe, k, err := b.prove(ctx, s, name, conn, ring, pending, username)
	now := b.now().UTC()
	if err == nil {
		b.revokeQuietly(ctx, name, k.client, probe.AccessToken)
		b.Logger().Info("Salesforce accepted the pending key", "connection", name, "pending_version", pending.Version)
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
			r.Rotation.State = statePromoting
			r.Rotation.Attempts, r.Rotation.LastError, r.Rotation.LastAttemptAt, r.Rotation.NextAttemptAt = 0, "", now, now
		})
	}
	if st.State == stateFailed {
		// A slow probe of a failed rotation: whatever it met, the failure's reason stays (it is
		// what the operator must act on); only the next probe is scheduled.
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
			r.Rotation.LastAttemptAt, r.Rotation.NextAttemptAt = now, now.Add(stalledProbeInterval)
		})
	}
	if !salesforce.KeyRefused(err) {
		return b.retryLater(ctx, s, name, st, fmt.Errorf("proving the pending key as %s: %w", username, err))
	}
	// Not accepted yet: the certificate is propagating (or, manual, not uploaded yet).
	deadline := st.DeployedAt.Add(conn.PropagationTimeout)
	if now.After(deadline) {
		return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
			if st.DeployID != "" { // we changed the app's certificate: put the old one back
				r.Rotation.State = stateRollingBack
				r.Rotation.RollbackReason = fmt.Sprintf("Salesforce did not accept the new key within propagation_timeout (%s): %s; deploying the previous certificate back", conn.PropagationTimeout, err)
				r.Rotation.LastError = r.Rotation.RollbackReason
				r.Rotation.Attempts, r.Rotation.NextAttemptAt = 0, now
				return
			}
			b.failRotation(name, r, fmt.Sprintf("stalled: Salesforce has not accepted the pending key within propagation_timeout (%s): upload pending_certificate from connections/%s/certificate to the app; the plugin keeps checking", conn.PropagationTimeout, name), now)
		})
	}
	return b.commit(ctx, s, name, st, func(r *keyRing, now time.Time) {
		r.Rotation.LastAttemptAt = now
		r.Rotation.LastError = "waiting for Salesforce to accept the new certificate: " + err.Error()
		r.Rotation.NextAttemptAt = now.Add(probeInterval)
	})
}

// verifyUsername is the user whose token request proves a key: verify_username, else the first
// role of the connection (by name).
func (b *backend) verifyUsername(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) (string, error) {
	if conn.VerifyUsername != "" {
		return conn.VerifyUsername, nil
	}
	roles, err := b.rolesUsing(ctx, s, name)
	if err != nil || len(roles) == 0 {
		return "", err
	}
	sort.Strings(roles)
	r, err := b.getRole(ctx, s, roles[0])
	if err != nil || r == nil {
		return "", err
	}
	return r.Username, nil
}

// promote makes the pending key active, archives the previous one and ends the rotation.
func (b *backend) promote(name string, r *keyRing, now time.Time) {
	p := r.pending()
	if p == nil {
		return
	}
	prev := r.active()
	r.activate(p, now)
	r.Rotation = rotationState{State: stateIdle, LastCompletedAt: now}
	from := 0
	if prev != nil {
		from = prev.Version
	}
	b.Logger().Info("key rotation complete: promoted pending key", "connection", name, "new_active_version", p.Version, "archived_version", from)
}

// promoteProven makes version active once it is proven (or forced): the pending key, which ends
// the rotation, or an archived key promoted back (rolling back to an older certificate).
func (b *backend) promoteProven(ctx context.Context, s logical.Storage, name string, version int) error {
	lock := b.connLock(name)
	lock.Lock()
	defer lock.Unlock()
	conn, ring, err := b.loadConnection(ctx, s, name)
	if err != nil || conn == nil || ring == nil {
		return err
	}
	v := ring.version(version)
	switch {
	case v == nil || v.Status == statusActive:
		return nil // gone, or already promoted
	case v.Status == statusPending && ring.Rotation.State == stateRollingBack:
		// The old certificate is being deployed back: promoting now would leave Vault signing
		// with a key whose certificate the app is about to lose. The read that proved the key
		// is still served; the rollback decides.
		b.Logger().Warn("Salesforce accepts the pending key, but a rollback is deploying the previous certificate; not promoting", "connection", name, "key_version", version)
		return nil
	case v.Status == statusPending:
		b.promote(name, ring, b.now().UTC())
	case v.Status == statusArchived && !ring.Rotation.inFlight():
		ring.activate(v, b.now().UTC())
		b.Logger().Info("promoted an archived key back to active", "connection", name, "key_version", version)
	default:
		return fmt.Errorf("key version %d is %s and cannot be promoted now", version, v.Status)
	}
	if err := b.putKeyRing(ctx, s, name, ring); err != nil {
		return err
	}
	b.scheduleConnection(name, conn, ring)
	return nil
}

// enforceRetention destroys archived versions beyond keep_archived_keys, oldest first.
func (b *backend) enforceRetention(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) error {
	lock := b.connLock(name)
	lock.Lock()
	defer lock.Unlock()
	ring, err := getKeyRing(ctx, s, name)
	if err != nil || ring == nil || ring.Rotation.inFlight() {
		return err // a rotation in flight may need an archived key to roll back to
	}
	archived := ring.archived()
	if len(archived) <= conn.KeepArchivedKeys {
		return nil
	}
	excess := archived[conn.KeepArchivedKeys:]
	if err := b.destroyVersions(ctx, s, name, ring, excess); err != nil {
		return err
	}
	for _, v := range excess {
		b.Logger().Info("destroyed archived key version beyond keep_archived_keys", "connection", name, "key_version", v.Version)
	}
	return nil
}
