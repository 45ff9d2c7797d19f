package backend

import (
	"errors"
	"fmt"
	"time"
)

// This file is the key rotation as a state machine: what each outcome of a step does to the
// rotation's state, as pure functions. The I/O that produces the outcomes (deploy, poll,
// probe) is in rotation_run.go; the driver writes each new state before it performs the next
// side effect, so a crash, reload or leader change at any point resumes from storage.
//
//	idle → deploying (metadata_api: certificate sent to the app) → verifying (a real token
//	request with the pending key) → promoting (pending → active, active → archived) → idle
//
// deploy=manual, imports and re-keys skip deploying: the operator uploads the certificate and
// verifying waits for Salesforce to accept it. If the new key is not accepted within
// propagation_timeout, a deployed rotation goes rolling_back (the old certificate is deployed
// again) and ends failed; an undeployed one ends failed and keeps being probed slowly while
// its key is pending. A failed rotation with nothing pending falls back to the schedule.

// Rotation states, as stored and as the API reports them.
const (
	stateIdle        = "idle"
	stateDeploying   = "deploying"
	stateVerifying   = "verifying"
	statePromoting   = "promoting"
	stateRollingBack = "rolling_back"
	stateFailed      = "failed"
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

// inFlightStates are the states in which a rotation is being driven.
var inFlightStates = map[string]bool{stateDeploying: true, stateVerifying: true, statePromoting: true, stateRollingBack: true}

const (
	// maxStepAttempts bounds retries of a step failing for transient reasons (network, 5xx).
	maxStepAttempts = 8
	retryBase       = 30 * time.Second
	retryMax        = 10 * time.Minute
	// probeInterval paces token requests that wait for a certificate to propagate; each is a
	// Salesforce login for the verify user, far below its 3,600 an hour.
	probeInterval = 30 * time.Second
	// stalledProbeInterval paces probes of a failed rotation whose key is still pending.
	stalledProbeInterval = 10 * time.Minute
	// deployPollInterval paces deploy status polls; Salesforce finishes a one-component deploy
	// in seconds.
	deployPollInterval = 2 * time.Second
)

// outcomeKind is what a step's I/O met, typed so that no two outcomes look alike (a deploy
// started, still running and timed out are three things).
type outcomeKind int

const (
	outNone            outcomeKind = iota // a step with no I/O (promoting)
	outDeployStarted                      // Salesforce took the deploy: deployID
	outDeployRunning                      // the deploy is still in progress
	outDeploySucceeded                    // the deploy finished and succeeded
	outDeployFailed                       // the deploy finished with failures: detail
	outAccepted                           // Salesforce accepted the pending key
	outKeyRefused                         // Salesforce refused the key as a missing certificate explains: err
	outRefused                            // a refusal only the operator can fix: err
	outTransient                          // a failure that may pass by itself: err
	outNoVerifier                         // no user to prove the pending key with
	outPendingGone                        // the pending key is gone (destroyed, promoted elsewhere)
)

type outcome struct {
	kind     outcomeKind
	deployID string
	detail   string
	verifier string // the user a probe proved the key as
	err      error
}

// ringChange is what a transition does to the key versions, in the same write as the state.
type ringChange int

const (
	ringKeep           ringChange = iota
	ringPromotePending            // pending → active, active → archived, rotation → idle
	ringArchivePending            // a rolled-back key: pending → archived
)

// rotationParams are the connection's settings a transition reads.
type rotationParams struct {
	connection         string
	appName            string
	activeVersion      int
	propagationTimeout time.Duration
}

// transition is a new rotation state, the change to the key versions that goes with it, and
// the line to log once both are written.
type transition struct {
	state rotationState
	ring  ringChange
	log   string
	warn  bool // log at warning (or error, for a failure) level
}

// next is the state after outcome o of the current step, at now.
func (st rotationState) next(o outcome, p rotationParams, now time.Time) transition {
	switch st.State {
	case stateDeploying:
		return st.afterDeploy(o, p, now)
	case stateRollingBack:
		return st.afterRollback(o, p, now)
	case stateVerifying, stateFailed:
		return st.afterProbe(o, p, now)
	case statePromoting:
		return transition{state: rotationState{State: stateIdle, LastCompletedAt: now}, ring: ringPromotePending,
			log: "key rotation complete: promoted the pending key"}
	}
	return transition{state: st} // idle: nothing is driven
}

// afterDeploy handles the deploy of the new certificate: started, polled, done.
func (st rotationState) afterDeploy(o outcome, p rotationParams, now time.Time) transition {
	switch o.kind {
	case outPendingGone:
		return st.fail("the pending key is gone", now)
	case outDeployStarted:
		st.DeployID, st.LastAttemptAt, st.NextAttemptAt = o.deployID, now, now.Add(deployPollInterval)
		return transition{state: st, log: "deploy started"}
	case outDeployRunning:
		st.LastAttemptAt, st.NextAttemptAt = now, now.Add(deployPollInterval)
		if now.Sub(st.StartedAt) > p.propagationTimeout {
			return st.fail(fmt.Sprintf("deploy %s still %s after propagation_timeout (%s): check Setup > Deployment Status", st.DeployID, o.detail, p.propagationTimeout), now)
		}
		return transition{state: st}
	case outDeploySucceeded:
		st.State = stateVerifying
		st.DeployedAt, st.NextAttemptAt, st.Attempts, st.LastError = now, now, 0, ""
		return transition{state: st, log: "new certificate deployed; verifying it"}
	case outDeployFailed:
		return st.fail(fmt.Sprintf("deploying the new certificate to %s failed: %s", p.appName, o.detail), now)
	case outTransient:
		return st.retryLater(o.err, now)
	case outRefused:
		return st.fail("deploying the new certificate: "+errText(o.err), now)
	}
	return transition{state: st} // not an outcome of a deploy: nothing changes
}

// afterRollback handles the deploy of the previous certificate back. It never gives up: the app
// must end with a certificate Vault signs for.
func (st rotationState) afterRollback(o outcome, p rotationParams, now time.Time) transition {
	switch o.kind {
	case outDeployStarted:
		st.RollbackID, st.LastAttemptAt, st.NextAttemptAt = o.deployID, now, now.Add(deployPollInterval)
		return transition{state: st, log: "rollback deploy started"}
	case outDeployRunning:
		st.LastAttemptAt, st.NextAttemptAt = now, now.Add(deployPollInterval)
		return transition{state: st}
	case outDeploySucceeded:
		t := st.fail(fmt.Sprintf("rolled back to key version %d: %s", p.activeVersion, st.RollbackReason), now)
		t.ring = ringArchivePending
		return t
	case outDeployFailed:
		st.RollbackID, st.Attempts = "", st.Attempts+1
		st.LastError = "rollback deploy failed, retrying: " + o.detail
		st.NextAttemptAt = now.Add(retryBase)
		return transition{state: st, log: "rollback deploy failed; retrying", warn: true}
	case outTransient, outRefused:
		return st.retryLater(fmt.Errorf("rolling back to key version %d: %s", p.activeVersion, errText(o.err)), now)
	}
	return transition{state: st} // not an outcome of a deploy: nothing changes
}

// afterProbe handles a token request with the pending key: the proof a new key needs.
func (st rotationState) afterProbe(o outcome, p rotationParams, now time.Time) transition {
	if o.kind == outPendingGone {
		return st.fail("the pending key is gone (destroyed or promoted elsewhere)", now)
	}
	if o.kind == outAccepted {
		st.State = statePromoting
		st.Attempts, st.LastError, st.LastAttemptAt, st.NextAttemptAt = 0, "", now, now
		return transition{state: st, log: "Salesforce accepted the pending key"}
	}
	if st.State == stateFailed {
		// A slow probe of a failed rotation: whatever it met, the failure's reason stays (it
		// is what the operator must act on); only the next probe is scheduled.
		st.LastAttemptAt, st.NextAttemptAt = now, now.Add(stalledProbeInterval)
		return transition{state: st}
	}
	switch o.kind {
	case outNoVerifier:
		return st.retryLater(errors.New("cannot prove the pending key: set verify_username on the connection or create a role for it (or promote with force=true)"), now)
	case outTransient, outRefused:
		return st.retryLater(fmt.Errorf("proving the pending key as %s: %s", o.verifier, errText(o.err)), now)
	case outKeyRefused:
	default:
		return transition{state: st} // not an outcome of a probe: nothing changes
	}
	// Not accepted yet: the certificate is propagating (or, manual, not uploaded yet).
	if now.After(st.DeployedAt.Add(p.propagationTimeout)) {
		if st.DeployID != "" { // we changed the app's certificate: put the old one back
			st.State = stateRollingBack
			st.RollbackReason = fmt.Sprintf("Salesforce did not accept the new key within propagation_timeout (%s): %s; deploying the previous certificate back", p.propagationTimeout, errText(o.err))
			st.LastError = st.RollbackReason
			st.Attempts, st.NextAttemptAt = 0, now
			return transition{state: st, log: "the new key was not accepted in time; rolling back", warn: true}
		}
		return st.fail(fmt.Sprintf("stalled: Salesforce has not accepted the pending key within propagation_timeout (%s): upload pending_certificate from connections/%s/certificate to the app; the plugin keeps checking", p.propagationTimeout, p.connection), now)
	}
	st.LastAttemptAt, st.NextAttemptAt = now, now.Add(probeInterval)
	st.LastError = "waiting for Salesforce to accept the new certificate: " + errText(o.err)
	return transition{state: st}
}

// retryLater records a transient failure of the current step and when it will be retried;
// after maxStepAttempts the rotation fails (or, deploying the old certificate back, keeps
// trying: that must not be given up).
func (st rotationState) retryLater(cause error, now time.Time) transition {
	st.Attempts++
	st.LastAttemptAt = now
	st.LastError = cause.Error()
	st.NextAttemptAt = now.Add(min(retryBase<<min(st.Attempts-1, 5), retryMax))
	if st.Attempts >= maxStepAttempts && st.State != stateRollingBack {
		return st.fail(fmt.Sprintf("%s gave up after %d attempts: %s", st.State, st.Attempts, cause), now)
	}
	return transition{state: st}
}

// fail ends the rotation failed, with reason; a pending key left behind is still probed.
func (st rotationState) fail(reason string, now time.Time) transition {
	st.State = stateFailed
	st.Failures++
	st.LastError = reason
	st.LastAttemptAt = now
	st.NextAttemptAt = now.Add(stalledProbeInterval)
	return transition{state: st, log: "key rotation failed: " + reason, warn: true}
}

func (r rotationState) inFlight() bool { return inFlightStates[r.State] }

func errText(err error) string {
	if err == nil {
		return "refused"
	}
	return err.Error()
}
