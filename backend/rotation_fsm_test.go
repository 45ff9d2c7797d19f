package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// Every rotation state × every outcome of its step, without the emulator: the state machine is
// pure, so the table is the specification.
func TestRotationTransitions(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	p := rotationParams{connection: "prod", appName: "Vault_JWT", activeVersion: 1, propagationTimeout: 15 * time.Minute}
	fresh := now.Add(-time.Minute)    // started or deployed a minute ago
	expired := now.Add(-time.Hour)    // past propagation_timeout
	transientErr := errors.New("503") // the outcome's error, when it has one

	type row struct {
		from    rotationState
		out     outcome
		state   string     // state after
		ring    ringChange // change to the key versions
		errHas  string     // substring of last_error after ("" : not checked)
		unmoved bool       // nothing at all may change
	}
	deploying := rotationState{State: stateDeploying, StartedAt: fresh, PendingVersion: 2}
	deployed := rotationState{State: stateDeploying, StartedAt: fresh, PendingVersion: 2, DeployID: "0Af1"}
	stuck := rotationState{State: stateDeploying, StartedAt: expired, PendingVersion: 2, DeployID: "0Af1"}
	verifying := rotationState{State: stateVerifying, StartedAt: fresh, DeployedAt: fresh, PendingVersion: 2}
	verifyingDeployed := rotationState{State: stateVerifying, StartedAt: expired, DeployedAt: expired, DeployID: "0Af1", PendingVersion: 2}
	verifyingManual := rotationState{State: stateVerifying, StartedAt: expired, DeployedAt: expired, PendingVersion: 2}
	lastTry := rotationState{State: stateVerifying, StartedAt: fresh, DeployedAt: fresh, PendingVersion: 2, Attempts: maxStepAttempts - 1}
	rolling := rotationState{State: stateRollingBack, StartedAt: expired, DeployID: "0Af1", RollbackReason: "not accepted", PendingVersion: 2, Attempts: maxStepAttempts + 3}
	rollingSent := rolling
	rollingSent.RollbackID = "0Af2"
	failed := rotationState{State: stateFailed, StartedAt: expired, LastError: "stalled: upload it", PendingVersion: 2, Failures: 1}
	promoting := rotationState{State: statePromoting, StartedAt: fresh, PendingVersion: 2, Failures: 2}
	idle := rotationState{State: stateIdle}

	out := func(k outcomeKind) outcome {
		return outcome{kind: k, err: transientErr, detail: "InProgress", verifier: "v@x.com"}
	}
	rows := map[string]row{
		"deploying/started":          {from: deploying, out: outcome{kind: outDeployStarted, deployID: "0Af9"}, state: stateDeploying},
		"deploying/running":          {from: deployed, out: out(outDeployRunning), state: stateDeploying},
		"deploying/running too long": {from: stuck, out: out(outDeployRunning), state: stateFailed, errHas: "still InProgress after propagation_timeout"},
		"deploying/succeeded":        {from: deployed, out: out(outDeploySucceeded), state: stateVerifying},
		"deploying/failed":           {from: deployed, out: outcome{kind: outDeployFailed, detail: "FIELD_INTEGRITY"}, state: stateFailed, errHas: "FIELD_INTEGRITY"},
		"deploying/refused":          {from: deploying, out: out(outRefused), state: stateFailed, errHas: "deploying the new certificate"},
		"deploying/transient":        {from: deploying, out: out(outTransient), state: stateDeploying, errHas: "503"},
		"deploying/pending gone":     {from: deploying, out: out(outPendingGone), state: stateFailed, errHas: "pending key is gone"},
		"deploying/accepted":         {from: deploying, out: out(outAccepted), unmoved: true},
		"deploying/key refused":      {from: deploying, out: out(outKeyRefused), unmoved: true},
		"deploying/no verifier":      {from: deploying, out: out(outNoVerifier), unmoved: true},
		"deploying/none":             {from: deploying, out: out(outNone), unmoved: true},

		"verifying/accepted":                  {from: verifying, out: out(outAccepted), state: statePromoting},
		"verifying/key refused, in time":      {from: verifying, out: out(outKeyRefused), state: stateVerifying, errHas: "waiting for Salesforce"},
		"verifying/key refused, deployed":     {from: verifyingDeployed, out: out(outKeyRefused), state: stateRollingBack, errHas: "deploying the previous certificate back"},
		"verifying/key refused, manual":       {from: verifyingManual, out: out(outKeyRefused), state: stateFailed, errHas: "stalled"},
		"verifying/transient":                 {from: verifying, out: out(outTransient), state: stateVerifying, errHas: "proving the pending key as v@x.com"},
		"verifying/refused":                   {from: verifying, out: out(outRefused), state: stateVerifying, errHas: "proving the pending key"},
		"verifying/transient, last attempt":   {from: lastTry, out: out(outTransient), state: stateFailed, errHas: "gave up after 8 attempts"},
		"verifying/no verifier":               {from: verifying, out: out(outNoVerifier), state: stateVerifying, errHas: "verify_username"},
		"verifying/no verifier, last attempt": {from: lastTry, out: out(outNoVerifier), state: stateFailed, errHas: "gave up"},
		"verifying/pending gone":              {from: verifying, out: out(outPendingGone), state: stateFailed, errHas: "pending key is gone"},
		"verifying/deploy started":            {from: verifying, out: out(outDeployStarted), unmoved: true},
		"verifying/none":                      {from: verifying, out: out(outNone), unmoved: true},

		"rolling_back/started":     {from: rolling, out: outcome{kind: outDeployStarted, deployID: "0Af2"}, state: stateRollingBack},
		"rolling_back/running":     {from: rollingSent, out: out(outDeployRunning), state: stateRollingBack},
		"rolling_back/succeeded":   {from: rollingSent, out: out(outDeploySucceeded), state: stateFailed, ring: ringArchivePending, errHas: "rolled back to key version 1: not accepted"},
		"rolling_back/failed":      {from: rollingSent, out: outcome{kind: outDeployFailed, detail: "LOCKED"}, state: stateRollingBack, errHas: "rollback deploy failed, retrying: LOCKED"},
		"rolling_back/transient":   {from: rolling, out: out(outTransient), state: stateRollingBack, errHas: "rolling back to key version 1"},
		"rolling_back/refused":     {from: rolling, out: out(outRefused), state: stateRollingBack, errHas: "rolling back"}, // never given up
		"rolling_back/accepted":    {from: rolling, out: out(outAccepted), unmoved: true},
		"rolling_back/key refused": {from: rolling, out: out(outKeyRefused), unmoved: true},

		"failed/accepted":     {from: failed, out: out(outAccepted), state: statePromoting},
		"failed/key refused":  {from: failed, out: out(outKeyRefused), state: stateFailed, errHas: "stalled: upload it"},
		"failed/transient":    {from: failed, out: out(outTransient), state: stateFailed, errHas: "stalled: upload it"},
		"failed/no verifier":  {from: failed, out: out(outNoVerifier), state: stateFailed, errHas: "stalled: upload it"},
		"failed/pending gone": {from: failed, out: out(outPendingGone), state: stateFailed, errHas: "pending key is gone"},

		"promoting/none": {from: promoting, out: out(outNone), state: stateIdle, ring: ringPromotePending},

		"idle/anything": {from: idle, out: out(outAccepted), unmoved: true},
	}
	for name, r := range rows {
		t.Run(name, func(t *testing.T) {
			got := r.from.next(r.out, p, now)
			if r.unmoved {
				if fmt.Sprint(got.state) != fmt.Sprint(r.from) || got.ring != ringKeep {
					t.Fatalf("an outcome that cannot happen in %s changed it: %+v", r.from.State, got)
				}
				return
			}
			if got.state.State != r.state || got.ring != r.ring {
				t.Fatalf("state %s ring %d, want %s ring %d (last_error %q)", got.state.State, got.ring, r.state, r.ring, got.state.LastError)
			}
			if r.errHas != "" && !strings.Contains(got.state.LastError, r.errHas) {
				t.Fatalf("last_error %q, want it to contain %q", got.state.LastError, r.errHas)
			}
			if got.state.State != stateIdle && got.state.StartedAt != r.from.StartedAt {
				t.Fatal("a step must keep the rotation's identity (started_at)")
			}
			if r.state == stateFailed && r.from.State != stateFailed && got.state.Failures != r.from.Failures+1 {
				t.Fatalf("failures %d after a failure from %d", got.state.Failures, r.from.Failures)
			}
			if got.state.State != stateIdle && !got.state.NextAttemptAt.After(now.Add(-time.Second)) {
				t.Fatalf("next_attempt_at %v is before the step", got.state.NextAttemptAt)
			}
		})
	}
	// A deploy's id is kept once known, and a promotion resets the failure count.
	if got := deploying.next(outcome{kind: outDeployStarted, deployID: "0Af9"}, p, now); got.state.DeployID != "0Af9" {
		t.Fatal("deploy id not recorded")
	}
	if got := promoting.next(outcome{}, p, now); got.state.Failures != 0 || !got.state.LastCompletedAt.Equal(now) {
		t.Fatalf("after a promotion: %+v", got.state)
	}
	// Backoff of transient failures doubles and is capped.
	st := verifying
	var delays []time.Duration
	for i := 0; i < 6; i++ {
		st = st.next(outcome{kind: outTransient, err: transientErr}, p, now).state
		delays = append(delays, st.NextAttemptAt.Sub(now))
	}
	if delays[0] != retryBase || delays[1] != 2*retryBase || delays[5] != retryMax {
		t.Fatalf("retry delays %v", delays)
	}
}

// The drive side of the machine: a whole metadata_api rotation, deploy polls included, logs the
// deploy user in once per drive and revokes that session at the end.
func TestOneMetadataSessionPerDrive(t *testing.T) {
	e := newTestEnv(t, func(c *emulator.Config) { c.DeployPolls = 3 })
	e.createConnection("prod", metadataConn(e, nil))
	e.createRole("app", "prod", nil)
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	for i := 0; i < 10 && e.rotation("prod")["state"] != stateIdle; i++ {
		e.clock.Advance(time.Minute)
		e.tick()
	}
	if r := e.rotation("prod"); r["state"] != stateIdle || e.keyStatus("prod", "2") != statusActive {
		t.Fatalf("rotation did not complete: %v", r)
	}
	c := e.emu.Counters()
	if c.DeployPolls < 3 {
		t.Fatalf("setup: %d deploy polls", c.DeployPolls)
	}
	if n := c.TokenRequestsByUser[e.seed.Deployer.Username]; n != 1 {
		t.Fatalf("the deploy user logged in %d times for one deploy and %d polls, want once", n, c.DeployPolls)
	}
	if c.Revocations < 1 {
		t.Fatal("the deploy session was not revoked at the end of the drive")
	}
}

// A crash between a step's outcome and its write resumes from storage: the driver applies a
// transition only to the rotation it observed, so a stale outcome is dropped, not applied to a
// newer rotation.
func TestStaleOutcomeIsNotApplied(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", nil)
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	_, ring, _ := e.b.loadConnection(context.Background(), e.storage, "prod")
	observed := ring.Rotation
	observed.StartedAt = observed.StartedAt.Add(-time.Hour) // an older rotation's view
	tr := observed.next(outcome{kind: outAccepted}, rotationParams{}, e.clock.Now())
	if err := e.b.apply(context.Background(), e.storage, "prod", observed, tr); err != nil {
		t.Fatal(err)
	}
	if r := e.rotation("prod"); r["state"] != stateVerifying {
		t.Fatalf("a stale outcome moved the rotation to %v", r["state"])
	}
}
