package backend

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/rotation"
)

// The consumer key/secret rotation of a client-credentials connection, through Salesforce's
// staged-credentials API, as a state machine: what each outcome of a step does to the
// rotation's state and to the table of credential versions, as pure functions. The I/O is in
// consumer_rotation_run.go; the driver writes each new state before the next side effect, so a
// crash, reload or leader change at any point resumes from storage.
//
//	idle → staging (the intent is stored; POST …/staged, or the pair already staged is read
//	back; the pair is sealed in storage before the state moves on) → rotating (PATCH
//	{"command":"rotate"}: the new pair becomes Salesforce's active one, the previous one stays
//	valid) → verifying (a client-credentials token request with the new pair at the
//	connection's origin; for a jwt_bearer connection's consumer key a JWT bearer request signed
//	by its active key with the new key as iss, consumer_jwt.go) → switching (reads move to the new pair) → overlap (the previous pair
//	stays valid for credentials_overlap) → DELETE of the previous pair → idle
//
// Salesforce does not take a staged pair at the token endpoint before it is promoted, so the
// proof comes after the rotate and before anything depends on the new pair: reads move only
// once it is proven, and the previous pair, still valid at Salesforce, is deleted only after.
// A rotation whose new pair cannot be proven ends failed with reads on the previous pair, and
// keeps probing the new one slowly.

// Consumer credential rotation states, as stored and reported.
const (
	ccStateIdle      = "idle"
	ccStateStaging   = "staging"
	ccStateRotating  = "rotating"
	ccStateVerifying = "verifying"
	ccStateSwitching = "switching"
	ccStateOverlap   = "overlap"
	ccStateFailed    = "failed"
)

// Credential version statuses (connections/:name/credentials).
const (
	credStaged   = "staged"
	credActive   = "active"
	credPrevious = "previous"
	credDeleted  = "deleted"
)

// defaultVerifyTimeout is how long a promoted pair may take to be accepted by the token
// endpoint before the rotation is reported failed (and then probed slowly).
const defaultVerifyTimeout = 15 * time.Minute

// credentialsRotation is the persisted progress of a connection's consumer credential rotation.
type credentialsRotation struct {
	State           string    `json:"state"`
	Trigger         string    `json:"trigger,omitempty"`
	Version         int       `json:"version,omitempty"`          // the new pair's version
	PreviousVersion int       `json:"previous_version,omitempty"` // active when it started
	StagedID        string    `json:"staged_id,omitempty"`        // Salesforce's staged record
	StartedAt       time.Time `json:"started_at,omitempty"`
	RotatedAt       time.Time `json:"rotated_at,omitempty"` // Salesforce promoted the new pair
	DeleteAt        time.Time `json:"delete_at,omitempty"`  // the end of the overlap
	LastAttemptAt   time.Time `json:"last_attempt_at,omitempty"`
	NextAttemptAt   time.Time `json:"next_attempt_at,omitempty"`
	Attempts        int       `json:"attempts,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	FailedIn        string    `json:"failed_in,omitempty"` // the state a failure stopped in
	LastCompletedAt time.Time `json:"last_completed_at,omitempty"`
	Failures        int       `json:"failures,omitempty"` // failed rotations in a row
}

// credVersion is one consumer key of the connection; its secret, when Vault holds it, is
// sealed under secrets/ (consumerSecretPath).
type credVersion struct {
	Version     int       `json:"version"`
	Status      string    `json:"status"`
	ConsumerKey string    `json:"consumer_key,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitempty"`
	DeletedAt   time.Time `json:"deleted_at,omitempty"`
}

// credRing is the table of a connection's consumer credential versions and its rotation. It
// holds no secret.
type credRing struct {
	Versions []*credVersion      `json:"versions"`
	Rotation credentialsRotation `json:"rotation"`
	// AppID and ConsumerID are what discovery found (eca_app_id / eca_consumer_id unset).
	AppID      string `json:"app_id,omitempty"`
	ConsumerID string `json:"consumer_id,omitempty"`
}

func (r *credRing) version(v int) *credVersion {
	for _, cv := range r.Versions {
		if cv.Version == v {
			return cv
		}
	}
	return nil
}

func (r *credRing) withStatus(status string) *credVersion {
	for _, cv := range r.Versions {
		if cv.Status == status {
			return cv
		}
	}
	return nil
}

func (r *credRing) active() *credVersion { return r.withStatus(credActive) }

func (r *credRing) nextVersion() int {
	n := 0
	for _, cv := range r.Versions {
		n = max(n, cv.Version)
	}
	return n + 1
}

func (st credentialsRotation) inFlight() bool {
	switch st.State {
	case ccStateStaging, ccStateRotating, ccStateVerifying, ccStateSwitching, ccStateOverlap:
		return true
	}
	return false
}

// probing reports a failed rotation whose new pair is Salesforce's active one: it keeps being
// proven, slowly, and no new rotation starts over it.
func (st credentialsRotation) probing() bool {
	return st.State == ccStateFailed && st.FailedIn == ccStateVerifying
}

// ccOutcomeKind is what a step's I/O met.
type ccOutcomeKind int

const (
	ccNone        ccOutcomeKind = iota // a step with no I/O (switching)
	ccStaged                           // a staged pair is held, new or found again: key, stagedID
	ccRotated                          // Salesforce promoted the staged pair (now, or before a crash)
	ccStagedGone                       // the staged pair is gone or expired before its promotion
	ccAccepted                         // a token request with the new pair succeeded
	ccPairRefused                      // the token endpoint refused the new pair: err
	ccDeleted                          // the previous pair is deleted (or already gone)
	ccSlotBusy                         // the staged slot holds a pair this rotation did not stage
	ccRefused                          // a refusal only the operator can fix: err
	ccTransient                        // a failure that may pass by itself: err
)

type ccOutcome struct {
	kind          ccOutcomeKind
	key, stagedID string
	err           error
}

// ccChange is what a transition does to the version table, in the same write as the state.
type ccChange int

const (
	ccKeep           ccChange = iota
	ccRecordStaged            // the new version gets its consumer key
	ccActivateNew             // new → active, active → previous
	ccDeletePrevious          // previous → deleted
	ccDiscardNew              // a new version that never served → deleted
)

type ccTransition struct {
	state  credentialsRotation
	change ccChange
	log    string
	warn   bool
}

type ccParams struct {
	connection    string
	overlap       time.Duration
	verifyTimeout time.Duration
}

// newCredentialsRotation is the state of a rotation starting now toward version v, carrying
// over what outlives one rotation.
func newCredentialsRotation(prev credentialsRotation, v, previous int, trigger string, now time.Time) credentialsRotation {
	return credentialsRotation{State: ccStateStaging, Trigger: trigger, Version: v, PreviousVersion: previous,
		StartedAt: now, NextAttemptAt: now, LastCompletedAt: prev.LastCompletedAt, Failures: prev.Failures}
}

// next is the state after outcome o of the current step, at now.
func (st credentialsRotation) next(o ccOutcome, p ccParams, now time.Time) ccTransition {
	switch st.State {
	case ccStateStaging:
		switch o.kind {
		case ccStaged:
			st.State, st.StagedID = ccStateRotating, o.stagedID
			st.Attempts, st.LastError, st.LastAttemptAt, st.NextAttemptAt = 0, "", now, now
			return ccTransition{state: st, change: ccRecordStaged, log: "consumer credentials staged; rotating them"}
		case ccSlotBusy, ccRefused:
			t := st.fail("staging new consumer credentials: "+errText(o.err), now)
			t.change = ccDiscardNew
			return t
		}
	case ccStateRotating:
		switch o.kind {
		case ccRotated:
			st.State, st.RotatedAt = ccStateVerifying, now
			st.Attempts, st.LastError, st.LastAttemptAt, st.NextAttemptAt = 0, "", now, now
			return ccTransition{state: st, log: "Salesforce promoted the new consumer credentials; verifying them"}
		case ccStagedGone, ccRefused:
			t := st.fail("rotating the staged consumer credentials: "+errText(o.err), now)
			t.change = ccDiscardNew
			return t
		}
	case ccStateVerifying, ccStateFailed:
		if st.State == ccStateFailed && !st.probing() {
			return ccTransition{state: st}
		}
		return st.afterVerify(o, p, now)
	case ccStateSwitching:
		st.State, st.DeleteAt = ccStateOverlap, now.Add(p.overlap)
		st.Attempts, st.LastError, st.LastAttemptAt, st.NextAttemptAt = 0, "", now, st.DeleteAt
		return ccTransition{state: st, change: ccActivateNew, log: "reads moved to the new consumer credentials; the previous ones are deleted after credentials_overlap"}
	case ccStateOverlap:
		switch o.kind {
		case ccDeleted:
			done := credentialsRotation{State: ccStateIdle, Trigger: st.Trigger, Version: st.Version, PreviousVersion: st.PreviousVersion,
				StartedAt: st.StartedAt, LastCompletedAt: now}
			return ccTransition{state: done, change: ccDeletePrevious, log: "consumer credential rotation complete: the previous credentials are deleted"}
		case ccRefused, ccTransient:
			// Never given up: the previous pair must not stay valid unknown to the plugin.
			return st.retryForever("deleting the previous consumer credentials (retrying): "+errText(o.err), now)
		}
		return ccTransition{state: st}
	default:
		return ccTransition{state: st} // idle: nothing is driven
	}
	if o.kind == ccTransient && st.State == ccStateRotating {
		// Never given up either: the rotate may have happened with its answer lost, which only
		// the next look at the staged slot can tell.
		return st.retryForever("rotating the staged consumer credentials (retrying): "+errText(o.err), now)
	}
	if o.kind == ccTransient {
		t := st.retryLater(o.err, now)
		if t.state.State == ccStateFailed && st.State != ccStateVerifying {
			t.change = ccDiscardNew
		}
		return t
	}
	return ccTransition{state: st} // not an outcome of this step: nothing changes
}

// afterVerify handles a token request with the new pair.
func (st credentialsRotation) afterVerify(o ccOutcome, p ccParams, now time.Time) ccTransition {
	if o.kind == ccAccepted {
		st.State, st.FailedIn = ccStateSwitching, ""
		st.Attempts, st.LastError, st.LastAttemptAt, st.NextAttemptAt = 0, "", now, now
		return ccTransition{state: st, log: "the new consumer credentials work; switching reads to them"}
	}
	if st.State == ccStateFailed { // a slow probe: the failure's reason stays
		st.LastAttemptAt, st.NextAttemptAt = now, now.Add(stalledProbeInterval)
		return ccTransition{state: st}
	}
	switch o.kind {
	case ccPairRefused:
		if now.After(st.RotatedAt.Add(p.verifyTimeout)) {
			return st.fail(fmt.Sprintf("the token endpoint has not accepted the new consumer credentials within %s: %s; reads stay on the previous credentials, which Salesforce keeps valid for 30 days after the rotation; the plugin keeps checking", p.verifyTimeout, errText(o.err)), now)
		}
		st.LastAttemptAt, st.NextAttemptAt = now, now.Add(probeInterval)
		st.LastError = "waiting for the token endpoint to accept the new consumer credentials: " + errText(o.err)
		return ccTransition{state: st}
	case ccRefused, ccTransient:
		return st.retryLater(fmt.Errorf("proving the new consumer credentials: %s", errText(o.err)), now)
	}
	return ccTransition{state: st}
}

// retryLater records a transient failure and when it is retried; after maxStepAttempts the
// rotation fails.
func (st credentialsRotation) retryLater(cause error, now time.Time) ccTransition {
	if cause == nil {
		cause = errors.New("failed")
	}
	st.Attempts++
	st.LastAttemptAt, st.LastError = now, cause.Error()
	st.NextAttemptAt = now.Add(min(retryBase<<min(st.Attempts-1, 5), retryMax))
	if st.Attempts >= maxStepAttempts {
		return st.fail(fmt.Sprintf("%s gave up after %d attempts: %s", st.State, st.Attempts, cause), now)
	}
	return ccTransition{state: st}
}

// retryForever records a failure of a step that must not be given up, and its next attempt.
func (st credentialsRotation) retryForever(reason string, now time.Time) ccTransition {
	st.Attempts++
	st.LastAttemptAt, st.LastError = now, reason
	st.NextAttemptAt = now.Add(min(retryBase<<min(st.Attempts-1, 5), retryMax))
	return ccTransition{state: st, log: reason, warn: true}
}

func (st credentialsRotation) fail(reason string, now time.Time) ccTransition {
	st.FailedIn = st.State
	st.State = ccStateFailed
	st.Failures++
	st.LastError, st.LastAttemptAt = reason, now
	st.NextAttemptAt = now.Add(stalledProbeInterval)
	return ccTransition{state: st, log: "consumer credential rotation failed: " + reason, warn: true}
}

// applyChange makes transition t's change to the version table, for outcome o, at now.
func (r *credRing) applyChange(t ccTransition, o ccOutcome, now time.Time) {
	st := t.state
	nv := r.version(st.Version)
	switch t.change {
	case ccRecordStaged:
		if nv != nil {
			nv.ConsumerKey = o.key
		}
	case ccActivateNew:
		if a := r.active(); a != nil && a != nv {
			a.Status = credPrevious
		}
		if nv != nil {
			nv.Status, nv.ActivatedAt = credActive, now
		}
	case ccDeletePrevious:
		if pv := r.version(st.PreviousVersion); pv != nil && pv.Status == credPrevious {
			pv.Status, pv.DeletedAt = credDeleted, now
		}
	case ccDiscardNew:
		if nv != nil && nv.Status == credStaged {
			nv.Status, nv.DeletedAt = credDeleted, now
		}
	}
}

// nextCredentialsWork is when the connection's consumer rotation next needs the periodic
// func: zero for never.
func nextCredentialsWork(conn *connectionEntry, ring *credRing, now time.Time) time.Time {
	st := ring.Rotation
	if st.inFlight() || st.probing() {
		if st.NextAttemptAt.IsZero() {
			return now
		}
		return st.NextAttemptAt
	}
	at := scheduledCredentialsRotationAt(conn, ring, now)
	if !at.IsZero() && st.State == ccStateFailed {
		at = laterOf(at, st.LastAttemptAt.Add(failureBackoff(st.Failures)))
	}
	return at
}

// scheduledCredentialsRotationAt is when the active pair is due for rotation: at its age limit,
// or the next scheduled time after it became active, moved into an open window. Zero when the
// rotation is off.
func scheduledCredentialsRotationAt(conn *connectionEntry, ring *credRing, now time.Time) time.Time {
	a := ring.active()
	if !conn.credentialsRotationEnabled() || a == nil {
		return time.Time{}
	}
	since := a.ActivatedAt
	if since.IsZero() {
		since = a.CreatedAt
	}
	if conn.CredentialsRotationSchedule == "" {
		return since.Add(conn.CredentialsRotationPeriod)
	}
	sched, err := rotation.DefaultScheduler.Parse(conn.CredentialsRotationSchedule)
	if err != nil {
		return time.Time{} // validated at write
	}
	return inOpenWindow(sched, sched.Next(since), conn.CredentialsRotationWindow, now)
}
