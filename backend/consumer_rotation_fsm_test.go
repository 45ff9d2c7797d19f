package backend

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Every transition of the consumer credential rotation, without the emulator.
func TestCredentialsRotationTransitions(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := ccParams{connection: "cc", overlap: time.Hour, verifyTimeout: 15 * time.Minute}
	at := func(state string, mod ...func(*credentialsRotation)) credentialsRotation {
		st := credentialsRotation{State: state, Version: 2, PreviousVersion: 1, StartedAt: now.Add(-time.Minute), RotatedAt: now.Add(-time.Minute)}
		for _, m := range mod {
			m(&st)
		}
		return st
	}
	attempts := func(n int) func(*credentialsRotation) { return func(s *credentialsRotation) { s.Attempts = n } }
	failedIn := func(in string) func(*credentialsRotation) {
		return func(s *credentialsRotation) { s.FailedIn, s.LastError = in, "the reason" }
	}
	boom := errors.New("boom")
	cases := []struct {
		name      string
		st        credentialsRotation
		o         ccOutcome
		state     string
		change    ccChange
		next      time.Duration // NextAttemptAt - now; -1: not checked
		errSubstr string
	}{
		{"staged", at(ccStateStaging), ccOutcome{kind: ccStaged, key: "K2", stagedID: "0Sx1"}, ccStateRotating, ccRecordStaged, 0, ""},
		{"slot busy", at(ccStateStaging), ccOutcome{kind: ccSlotBusy, err: boom}, ccStateFailed, ccDiscardNew, stalledProbeInterval, "boom"},
		{"staging refused", at(ccStateStaging), ccOutcome{kind: ccRefused, err: boom}, ccStateFailed, ccDiscardNew, -1, "staging"},
		{"staging transient", at(ccStateStaging), ccOutcome{kind: ccTransient, err: boom}, ccStateStaging, ccKeep, retryBase, "boom"},
		{"staging gives up", at(ccStateStaging, attempts(maxStepAttempts-1)), ccOutcome{kind: ccTransient, err: boom}, ccStateFailed, ccDiscardNew, -1, "gave up"},
		{"rotated", at(ccStateRotating), ccOutcome{kind: ccRotated}, ccStateVerifying, ccKeep, 0, ""},
		{"staged pair gone", at(ccStateRotating), ccOutcome{kind: ccStagedGone, err: boom}, ccStateFailed, ccDiscardNew, -1, "boom"},
		{"rotating refused", at(ccStateRotating), ccOutcome{kind: ccRefused, err: boom}, ccStateFailed, ccDiscardNew, -1, "rotating"},
		{"rotating never gives up", at(ccStateRotating, attempts(20)), ccOutcome{kind: ccTransient, err: boom}, ccStateRotating, ccKeep, retryMax, "retrying"},
		{"accepted", at(ccStateVerifying), ccOutcome{kind: ccAccepted}, ccStateSwitching, ccKeep, 0, ""},
		{"not accepted yet", at(ccStateVerifying), ccOutcome{kind: ccPairRefused, err: boom}, ccStateVerifying, ccKeep, probeInterval, "waiting"},
		{"not accepted in time", at(ccStateVerifying, func(s *credentialsRotation) { s.RotatedAt = now.Add(-time.Hour) }),
			ccOutcome{kind: ccPairRefused, err: boom}, ccStateFailed, ccKeep, stalledProbeInterval, "previous credentials"},
		{"verify transient", at(ccStateVerifying), ccOutcome{kind: ccTransient, err: boom}, ccStateVerifying, ccKeep, retryBase, "proving"},
		{"verify gives up, keeps the new pair", at(ccStateVerifying, attempts(maxStepAttempts-1)), ccOutcome{kind: ccTransient, err: boom}, ccStateFailed, ccKeep, -1, "gave up"},
		{"failed probe accepted", at(ccStateFailed, failedIn(ccStateVerifying)), ccOutcome{kind: ccAccepted}, ccStateSwitching, ccKeep, 0, ""},
		{"failed probe refused", at(ccStateFailed, failedIn(ccStateVerifying)), ccOutcome{kind: ccPairRefused, err: boom}, ccStateFailed, ccKeep, stalledProbeInterval, "the reason"},
		{"failed staging is not probed", at(ccStateFailed, failedIn(ccStateStaging)), ccOutcome{kind: ccAccepted}, ccStateFailed, ccKeep, -1, "the reason"},
		{"switch", at(ccStateSwitching), ccOutcome{}, ccStateOverlap, ccActivateNew, time.Hour, ""},
		{"deleted", at(ccStateOverlap), ccOutcome{kind: ccDeleted}, ccStateIdle, ccDeletePrevious, -1, ""},
		{"delete refused", at(ccStateOverlap), ccOutcome{kind: ccRefused, err: boom}, ccStateOverlap, ccKeep, retryBase, "boom"},
		{"delete never gives up", at(ccStateOverlap, attempts(30)), ccOutcome{kind: ccTransient, err: boom}, ccStateOverlap, ccKeep, retryMax, "boom"},
		{"idle", at(ccStateIdle), ccOutcome{kind: ccAccepted}, ccStateIdle, ccKeep, -1, ""},
		{"stray outcome", at(ccStateStaging), ccOutcome{kind: ccDeleted}, ccStateStaging, ccKeep, -1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := c.st.next(c.o, p, now)
			if tr.state.State != c.state || tr.change != c.change {
				t.Fatalf("got %s/%d, want %s/%d (%+v)", tr.state.State, tr.change, c.state, c.change, tr.state)
			}
			if c.next >= 0 && !tr.state.NextAttemptAt.Equal(now.Add(c.next)) {
				t.Fatalf("next attempt in %s, want %s", tr.state.NextAttemptAt.Sub(now), c.next)
			}
			if !strings.Contains(tr.state.LastError, c.errSubstr) {
				t.Fatalf("last_error %q does not contain %q", tr.state.LastError, c.errSubstr)
			}
			if tr.state.State == ccStateFailed && c.st.State != ccStateFailed && (tr.state.Failures != c.st.Failures+1 || tr.state.FailedIn != c.st.State) {
				t.Fatalf("a failure must count and say where it stopped: %+v", tr.state)
			}
			if c.state == ccStateIdle && c.st.State == ccStateOverlap && !tr.state.LastCompletedAt.Equal(now) {
				t.Fatal("completion time not recorded")
			}
		})
	}
}

// The version table follows the transitions: the new version gets its key, becomes active
// (the old one previous), and the previous one is deleted; a new version that never served
// is deleted when its rotation fails.
func TestCredentialsRingChanges(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ring := &credRing{Versions: []*credVersion{{Version: 1, Status: credActive, ConsumerKey: "K1"}, {Version: 2, Status: credStaged}}}
	st := credentialsRotation{Version: 2, PreviousVersion: 1}
	ring.applyChange(ccTransition{state: st, change: ccRecordStaged}, ccOutcome{key: "K2"}, now)
	ring.applyChange(ccTransition{state: st, change: ccActivateNew}, ccOutcome{}, now)
	if a := ring.active(); a == nil || a.Version != 2 || a.ConsumerKey != "K2" || !a.ActivatedAt.Equal(now) || ring.version(1).Status != credPrevious {
		t.Fatalf("after the switch: %+v %+v", ring.Versions[0], ring.Versions[1])
	}
	ring.applyChange(ccTransition{state: st, change: ccDeletePrevious}, ccOutcome{}, now)
	if v := ring.version(1); v.Status != credDeleted || !v.DeletedAt.Equal(now) {
		t.Fatalf("previous not deleted: %+v", v)
	}
	ring.applyChange(ccTransition{state: st, change: ccDiscardNew}, ccOutcome{}, now)
	if ring.version(2).Status != credActive {
		t.Fatal("discarding touched a version that serves")
	}
	ring.Versions = append(ring.Versions, &credVersion{Version: 3, Status: credStaged})
	ring.applyChange(ccTransition{state: credentialsRotation{Version: 3}, change: ccDiscardNew}, ccOutcome{}, now)
	if ring.version(3).Status != credDeleted || ring.nextVersion() != 4 {
		t.Fatalf("a failed new version is not deleted: %+v", ring.version(3))
	}
}

// When the periodic func next needs the rotation: in-flight steps at their attempt, a period,
// a schedule inside its window, a failure's backoff, and never when off.
func TestNextCredentialsWork(t *testing.T) {
	now := time.Date(2026, 1, 7, 12, 0, 0, 0, time.UTC) // a Wednesday
	since := now.Add(-2 * time.Hour)
	ring := func(st credentialsRotation) *credRing {
		return &credRing{Versions: []*credVersion{{Version: 1, Status: credActive, ActivatedAt: since}}, Rotation: st}
	}
	cc := func(mod func(*connectionEntry)) *connectionEntry {
		c := &connectionEntry{AuthFlow: authFlowClientCredentials, CredentialsRotationConnection: "admin"}
		mod(c)
		return c
	}
	period := cc(func(c *connectionEntry) { c.CredentialsRotationPeriod = 24 * time.Hour })
	cases := []struct {
		name string
		conn *connectionEntry
		ring *credRing
		want time.Time
	}{
		{"off", cc(func(*connectionEntry) {}), ring(credentialsRotation{State: ccStateIdle}), time.Time{}},
		{"no rotating connection", cc(func(c *connectionEntry) { c.CredentialsRotationPeriod, c.CredentialsRotationConnection = time.Hour, "" }), ring(credentialsRotation{}), time.Time{}},
		{"period", period, ring(credentialsRotation{State: ccStateIdle}), since.Add(24 * time.Hour)},
		{"in flight", period, ring(credentialsRotation{State: ccStateOverlap, NextAttemptAt: now.Add(time.Hour)}), now.Add(time.Hour)},
		{"in flight, no attempt time", period, ring(credentialsRotation{State: ccStateStaging}), now},
		{"probing", period, ring(credentialsRotation{State: ccStateFailed, FailedIn: ccStateVerifying, NextAttemptAt: now.Add(10 * time.Minute)}), now.Add(10 * time.Minute)},
		{"failure backoff", cc(func(c *connectionEntry) { c.CredentialsRotationPeriod = time.Hour }),
			ring(credentialsRotation{State: ccStateFailed, FailedIn: ccStateStaging, Failures: 2, LastAttemptAt: now}), now.Add(2 * time.Hour)},
		{"schedule", cc(func(c *connectionEntry) { c.CredentialsRotationSchedule = "0 3 * * SUN" }), ring(credentialsRotation{}),
			time.Date(2026, 1, 11, 3, 0, 0, 0, time.UTC)},
		{"schedule, window closed", cc(func(c *connectionEntry) {
			c.CredentialsRotationSchedule, c.CredentialsRotationWindow = "0 3 * * *", time.Hour
		}), &credRing{Versions: []*credVersion{{Version: 1, Status: credActive, ActivatedAt: now.Add(-48 * time.Hour)}}},
			time.Date(2026, 1, 8, 3, 0, 0, 0, time.UTC)},
		{"jwt connection", cc(func(c *connectionEntry) { c.AuthFlow, c.CredentialsRotationPeriod = authFlowJWTBearer, time.Hour }), ring(credentialsRotation{}), time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := nextCredentialsWork(c.conn, c.ring, now); !got.Equal(c.want) {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestTrimDeletedKeepsTheNewest(t *testing.T) {
	var vs []*credVersion
	for i := 1; i <= 15; i++ {
		vs = append(vs, &credVersion{Version: i, Status: credDeleted})
	}
	vs = append(vs, &credVersion{Version: 16, Status: credActive})
	out := trimDeleted(vs)
	if len(out) != maxDeletedCredVersions || out[0].Version != 7 || out[len(out)-1].Status != credActive {
		t.Fatalf("kept %d, first %d", len(out), out[0].Version)
	}
}
