package backend

import (
	"context"
	"crypto/rsa"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The driver of key rotations: it loads the ring, performs the I/O the state calls for, feeds
// the outcome to the state machine (rotation_fsm.go) and writes the result before the next
// side effect. Network calls happen without the connection lock; each outcome is applied
// under it, to the ring as stored then, and only if the rotation is still the one the step
// started from.

const (
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

// rotate starts a rotation of connection name (or returns the one in flight) and reports the
// connection and ring as written. The new key is generated before the connection lock is
// taken (an RSA-4096 key takes seconds, and nothing should wait for it), then the ring is
// re-read under the lock and the key used only if one is still needed.
func (b *backend) rotate(ctx context.Context, s logical.Storage, name, trigger string, deployImported bool) (*connectionEntry, *keyRing, error) {
	conn, ring, err := b.loadConnection(ctx, s, name)
	if err != nil || conn == nil || ring == nil {
		return nil, nil, err
	}
	var key *rsa.PrivateKey
	if !ring.Rotation.inFlight() && needsNewKey(conn, ring, deployImported) {
		if key, err = keyutil.Generate(nil, conn.KeyType); err != nil {
			return nil, nil, err
		}
	}
	defer b.lockConn(name)()
	if conn, ring, err = b.loadConnection(ctx, s, name); err != nil || conn == nil || ring == nil {
		return nil, nil, err
	}
	if key != nil && keyutil.TypeOf(key) != conn.KeyType {
		key = nil // key_type changed meanwhile: generate under the lock, rarely
	}
	return conn, ring, b.startRotation(ctx, s, name, conn, ring, trigger, deployImported, key)
}

// needsNewKey reports whether a rotation starting now makes a key rather than reusing the
// pending one: a pending key left by a failed rotation is reused, unless it was imported (and
// deployImported is not set) or made for an origin the connection no longer names.
func needsNewKey(conn *connectionEntry, ring *keyRing, deployImported bool) bool {
	p := ring.pending()
	return p == nil || (p.Origin == originImported && !deployImported) || !ring.boundToCurrent(p, conn)
}

// startRotation creates the pending key (from key when given, else generated) and the
// rotation state in one ring write, after the key material is stored; or leaves the rotation
// already in flight. Called with the connection lock held.
func (b *backend) startRotation(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, trigger string, deployImported bool, key *rsa.PrivateKey) error {
	now := b.now().UTC()
	if ring.Rotation.inFlight() {
		return nil
	}
	if err := keyRotationHeldBack(ctx, s, name); err != nil {
		return err
	}
	pending := ring.pending()
	created := false
	if needsNewKey(conn, ring, deployImported) {
		if pending != nil { // never deployed unasked, never proven for an origin left behind
			pending.Status, pending.ArchivedAt = statusArchived, now
		}
		v, err := b.newKeyVersion(ctx, s, name, conn, ring, statusPending, keySource{key: key, generated: true})
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
	b.metrics.rotation(keyRotation(name), ring.Rotation.State)
	b.events.rotationStarted(keyRotation(name), rotationDataPath(name), trigger, pending.Version, ring.Rotation.PreviousVersion)
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
// done, or ctx ends. Whatever the exit, the connection is rescheduled from what storage holds
// then (or, if storage cannot be read, retried soon), and the drive's Metadata API session is
// revoked.
func (b *backend) drive(ctx context.Context, s logical.Storage, name string) {
	if !b.rotor.tryStart(name) {
		return
	}
	defer b.rotor.done(name)
	d := &driveSession{}
	defer b.endDrive(name, d) // after the reschedule: the revoke is a network call
	defer b.reschedule(s, name, d)
	var conn *connectionEntry
	var ring *keyRing
	d.retryAt = b.driveSteps(ctx, "rotation", name, func() (time.Time, error) {
		var err error
		if conn, ring, err = b.loadConnection(ctx, s, name); err != nil || conn == nil || ring == nil {
			return time.Time{}, err
		}
		at := nextRotationWork(conn, ring, b.now())
		if ring.Rotation.inFlight() || ring.stalled() {
			return at, nil
		}
		return b.holdBack(at, keyRotationHeldBack(ctx, s, name))
	}, func() (string, error) {
		err := b.step(ctx, s, name, conn, ring, d)
		return ring.Rotation.State, err
	})
}

// driveSteps is the loop of every rotation's drive: read what storage holds and when the next
// work is due (zero: none), wait out a short wait inline, do one step; again, until the work
// must wait longer, is done, or ctx ends. A failed read or step is logged and answers when to
// retry.
func (b *backend) driveSteps(ctx context.Context, what, name string, next func() (time.Time, error), step func() (state string, err error)) (retryAt time.Time) {
	var waited time.Duration
	for ctx.Err() == nil {
		at, err := next()
		if err != nil {
			b.Logger().Error(what+": reading connection", "connection", name, "error", err)
			return b.now().Add(retryBase)
		}
		if at.IsZero() {
			return time.Time{}
		}
		if wait := at.Sub(b.now()); wait > 0 {
			if !b.sleepInline(ctx, wait, &waited) {
				return time.Time{}
			}
			continue
		}
		if state, err := step(); err != nil {
			b.Logger().Error(what+" step failed", "connection", name, "state", state, "error", err)
			return b.now().Add(retryBase)
		}
	}
	return time.Time{}
}

// sleepInline waits out a short wait inside a drive (at most inlineWait, and maxInlineWaiting
// in all); false: the wait is long, or ctx ended, and the drive hands back to the periodic func.
func (b *backend) sleepInline(ctx context.Context, wait time.Duration, waited *time.Duration) bool {
	if wait > inlineWait || *waited+wait > maxInlineWaiting || b.sleep(ctx, wait) != nil {
		return false
	}
	*waited += wait
	return true
}

// reschedule puts the connection back on the schedule after a drive: at the retry a failed
// step asked for, else when storage says the next work is due.
func (b *backend) reschedule(s logical.Storage, name string, d *driveSession) {
	if !d.retryAt.IsZero() {
		b.sched.set(name, d.retryAt)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, ring, err := b.loadConnection(ctx, s, name)
	if err != nil {
		b.sched.set(name, b.now().Add(retryBase))
		return
	}
	b.scheduleConnection(name, conn, ring)
}

func (b *backend) loadConnection(ctx context.Context, s logical.Storage, name string) (*connectionEntry, *keyRing, error) {
	conn, err := getConnection(ctx, s, name)
	if err != nil || conn == nil {
		return nil, nil, err
	}
	ring, err := getKeyRing(ctx, s, name)
	return conn, ring, err
}

// step performs the work due for one connection: advance an in-flight or stalled rotation, or
// (idle, or failed with nothing pending) destroy archived keys beyond keep_archived_keys and start a
// rotation that is due.
func (b *backend) step(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, d *driveSession) error {
	st := ring.Rotation
	if st.inFlight() || ring.stalled() {
		o := b.perform(ctx, s, name, conn, ring, d)
		return b.apply(ctx, s, name, st, st.next(o, paramsOf(name, conn, ring), b.now().UTC()))
	}
	if len(ring.archived()) > conn.KeepArchivedKeys {
		if err := b.enforceRetention(ctx, s, name, conn); err != nil {
			return err
		}
	}
	if due, trigger := nextStartAt(conn, ring, b.now()); !due.IsZero() && !due.After(b.now()) {
		_, _, err := b.rotate(ctx, s, name, trigger, false)
		return err
	}
	return nil
}

// perform does the I/O the rotation's state calls for, and reports what it met. It writes
// nothing.
func (b *backend) perform(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, d *driveSession) outcome {
	st := ring.Rotation
	switch st.State {
	case stateDeploying:
		p := ring.pending()
		if p == nil {
			return outcome{kind: outPendingGone}
		}
		return b.deployStep(ctx, s, name, conn, ring, d, st.DeployID, p.Certificate)
	case stateRollingBack:
		a := ring.active()
		if a == nil {
			return outcome{kind: outTransient, err: errNoActiveKey}
		}
		return b.deployStep(ctx, s, name, conn, ring, d, st.RollbackID, a.Certificate)
	case stateVerifying, stateFailed:
		return b.probe(ctx, s, name, conn, ring)
	}
	return outcome{kind: outNone}
}

// probe proves the pending key with a real token request.
func (b *backend) probe(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing) outcome {
	pending := ring.pending()
	if pending == nil {
		return outcome{kind: outPendingGone}
	}
	username, err := b.verifyUsername(ctx, s, name, conn)
	if err != nil {
		return outcome{kind: outTransient, err: err}
	}
	if username == "" {
		return outcome{kind: outNoVerifier}
	}
	tok, k, err := b.prove(ctx, s, name, conn, ring, pending, username)
	switch {
	case err == nil:
		b.revokeQuietly(ctx, name, k.client, tok.AccessToken)
		return outcome{kind: outAccepted, verifier: username}
	case salesforce.KeyRefused(err):
		return outcome{kind: outKeyRefused, err: err, verifier: username}
	}
	return outcome{kind: outTransient, err: err, verifier: username}
}

func paramsOf(name string, conn *connectionEntry, ring *keyRing) rotationParams {
	p := rotationParams{connection: name, appName: conn.AppName, propagationTimeout: conn.PropagationTimeout}
	if a := ring.active(); a != nil {
		p.activeVersion = a.Version
	}
	return p
}

// apply writes transition t to the stored ring under the connection lock, if the rotation is
// still the one observed as st, and logs it once written.
func (b *backend) apply(ctx context.Context, s logical.Storage, name string, st rotationState, t transition) error {
	defer b.lockConn(name)()
	ring, err := getKeyRing(ctx, s, name)
	if err != nil {
		return err
	}
	if ring == nil || ring.Rotation.StartedAt != st.StartedAt || ring.Rotation.State != st.State {
		return nil // changed under us (promoted by a read, deleted, restarted): nothing to do
	}
	now := b.now().UTC()
	pending := ring.pending()
	switch t.ring {
	case ringPromotePending:
		if pending != nil {
			ring.activate(pending, now)
		}
	case ringArchivePending:
		if pending != nil {
			pending.Status, pending.ArchivedAt = statusArchived, now
		}
	}
	ring.Rotation = t.state
	if err := b.putKeyRing(ctx, s, name, ring); err != nil {
		return err
	}
	b.noteKeyTransition(name, st, t, ring)
	if t.log != "" {
		args := []any{"connection", name, "state", t.state.State, "pending_version", st.PendingVersion}
		if t.state.DeployID != "" {
			args = append(args, "deploy_id", t.state.DeployID)
		}
		switch {
		case t.state.State == stateFailed && st.State != stateFailed:
			b.Logger().Error(t.log, args...)
		case t.warn:
			b.Logger().Warn(t.log, args...)
		default:
			b.Logger().Info(t.log, args...)
		}
	}
	return nil
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
	r, err := b.cachedRole(ctx, s, roles[0])
	if err != nil || r == nil {
		return "", err
	}
	return r.Username, nil
}

// promoteProven makes version active once it is proven (or forced): the pending key, which ends
// the rotation, or an archived key promoted back (rolling back to an older certificate).
func (b *backend) promoteProven(ctx context.Context, s logical.Storage, name string, version int) error {
	defer b.lockConn(name)()
	conn, ring, err := b.loadConnection(ctx, s, name)
	if err != nil || conn == nil || ring == nil {
		return err
	}
	v := ring.version(version)
	now := b.now().UTC()
	msg := "promoted the proven pending key: key rotation complete"
	previous := activeVersion(ring)
	completed := false // a rotation ended here, not an archived key promoted back
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
		ring.activate(v, now)
		ring.Rotation = rotationState{State: stateIdle, LastCompletedAt: now}
		completed = true
	case v.Status == statusArchived && !ring.Rotation.inFlight():
		ring.activate(v, now)
		msg = "promoted an archived key back to active"
	default:
		return fieldErr("version", "%d is %s and cannot be promoted now", version, v.Status)
	}
	if err := b.putKeyRing(ctx, s, name, ring); err != nil {
		return err
	}
	if completed {
		b.events.rotationCompleted(keyRotation(name), rotationDataPath(name), version, previous)
	}
	b.Logger().Info(msg, "connection", name, "key_version", version)
	b.scheduleConnection(name, conn, ring)
	return nil
}

// enforceRetention destroys archived versions beyond keep_archived_keys, oldest first.
func (b *backend) enforceRetention(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) error {
	defer b.lockConn(name)()
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
