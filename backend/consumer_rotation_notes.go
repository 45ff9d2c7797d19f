package backend

import (
	"cmp"
	"time"
)

// What a consumer credential rotation tells the metrics and the event bus: the same series and
// event types as the key rotation (metrics.go, events.go), with kind consumer_secret. Each note
// follows a write that succeeded, never precedes it: a metric or an event announces only what
// storage holds.

func credentialsRotationKey(connection string) rotationKey {
	return rotationKey{kind: kindConsumerSecret, connection: connection}
}

func credentialsRotationDataPath(connection string) string {
	return "connections/" + connection + "/credentials/rotation"
}

// nextScheduledCredentialsRotation is when the next rotation starts by the schedule, after a
// failed one's backoff (a failed rotation still probing is not restarted over). Zero: none.
func nextScheduledCredentialsRotation(conn *connectionEntry, ring *credRing, now time.Time) time.Time {
	st := ring.Rotation
	next := scheduledCredentialsRotationAt(conn, ring, now)
	if st.State == ccStateFailed && !next.IsZero() && !st.probing() {
		next = laterOf(next, st.LastAttemptAt.Add(failureBackoff(st.Failures)))
	}
	return next
}

// credRing records a connection's consumer credential rotation as ring holds it: its state and
// next scheduled rotation. Every reschedule ends here, the schedule's load at start included. A
// connection that cannot rotate its consumer credentials (jwt_bearer on a Connected App, or no
// credentials_rotation_connection) has no such series.
func (m *metrics) credRing(name string, conn *connectionEntry, ring *credRing, now time.Time) {
	k := credentialsRotationKey(name)
	if conn == nil || ring == nil || !conn.consumerRotatable() || conn.CredentialsRotationConnection == "" {
		m.forgetRotation(k)
		return
	}
	next := nextScheduledCredentialsRotation(conn, ring, now)
	m.updateRotation(k, func(s *rotationStatus) {
		s.state, s.nextAt, s.activeVersion = cmp.Or(ring.Rotation.State, ccStateIdle), next, activeCredVersion(ring)
	})
}

// activeCredVersion is the version reads use (0: none).
func activeCredVersion(ring *credRing) int {
	if a := ring.active(); a != nil {
		return a.Version
	}
	return 0
}

// noteCredentialsStarted reports a rotation whose intent was just written.
func (b *backend) noteCredentialsStarted(name string, ring *credRing) {
	k, st := credentialsRotationKey(name), ring.Rotation
	b.metrics.rotation(k, st.State)
	b.events.rotationStarted(k, credentialsRotationDataPath(name), st.Trigger, st.Version, st.PreviousVersion)
}

// noteCredentialsTransition reports a rotation step just written: st is the state it started
// from, t the transition, ring the table as written. Called with the connection lock held: it
// only records and queues. A rotation completes when the previous pair is deleted (the state
// reads last_completed_at then); it fails once, when it enters failed.
func (b *backend) noteCredentialsTransition(name string, st credentialsRotation, t ccTransition, ring *credRing) {
	k := credentialsRotationKey(name)
	b.metrics.rotation(k, t.state.State)
	active := activeCredVersion(ring)
	switch {
	case t.change == ccDeletePrevious:
		b.events.rotationCompleted(k, credentialsRotationDataPath(name), active, st.PreviousVersion)
	case t.state.State == ccStateFailed && st.State != ccStateFailed:
		b.metrics.rotationFailed(k)
		b.events.rotationFailed(k, credentialsRotationDataPath(name), st.Version, active)
	}
}
