package backend

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Vault events (logical.SendEvent) for what operators want pushed rather than polled: a
// rotation started, completed, failed or rolled back, a certificate nearing expiry, and mints
// failing again and again. Subscribing to events needs Vault Enterprise; Community Edition
// accepts them and delivers them nowhere, and a Vault without event support makes sending a
// no-op (one debug line), never an error for the caller.
//
// Events are sent by one goroutine from a small queue, never by the caller: sending is a gRPC
// call to Vault, and the callers hold a connection lock (rotation steps) or serve a read (a
// mint). A full queue drops the event with a debug line; events are notifications, and the
// state they announce is always readable at their data_path.
//
// Metadata holds names, versions, states, times and fixed codes: never a secret, a token or
// an error text (which can quote Salesforce's answer; it is at data_path for who may read it).

// Event types, as subscribers filter them (vault events subscribe 'salesforce/*').
const (
	eventRotationStarted    = "salesforce/rotation-started"
	eventRotationCompleted  = "salesforce/rotation-completed"
	eventRotationFailed     = "salesforce/rotation-failed"
	eventRotationRolledBack = "salesforce/rotation-rolled-back"
	eventCertificateExpiry  = "salesforce/certificate-expiring"
	eventMintFailures       = "salesforce/mint-failures"
)

const (
	eventQueueSize = 64
	eventTimeout   = 5 * time.Second
	// mintFailureThreshold failures of one connection's mints within mintFailureWindow send one
	// event; the next can come one window later at the earliest.
	mintFailureThreshold = 5
	mintFailureWindow    = 5 * time.Minute
)

// expiryThresholds are how long before a certificate expires an event is sent: once per key
// and threshold.
var expiryThresholds = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour}

type event struct {
	typ      string
	metadata []string // key, value pairs
}

type eventLog struct {
	b       *backend
	queue   chan event
	start   sync.Once
	sender  sync.WaitGroup
	pending atomic.Int64 // queued and not yet sent: tests wait for zero
	// unsupported is set once Vault has refused an event: later ones are dropped quietly.
	unsupported atomic.Bool
	refusedOnce atomic.Bool // the debug line for other refusals is said once

	mu sync.Mutex
	// expiryWarned holds the (connection, certificate expiry, threshold) already announced.
	expiryWarned map[expiryNotice]bool
	// failures are each connection's recent mint failures.
	failures map[string]*failureWindow
}

type expiryNotice struct {
	connection string
	notAfter   int64
	threshold  time.Duration
}

type failureWindow struct {
	since    time.Time // start of the current window
	count    int
	lastSent time.Time
}

func newEventLog(b *backend) *eventLog {
	return &eventLog{b: b, queue: make(chan event, eventQueueSize),
		expiryWarned: map[expiryNotice]bool{}, failures: map[string]*failureWindow{}}
}

// send queues an event for the sender goroutine. It never blocks.
func (l *eventLog) send(typ string, metadata ...string) {
	if l.unsupported.Load() {
		return
	}
	l.start.Do(func() {
		l.sender.Add(1)
		go l.run()
	})
	l.pending.Add(1)
	select {
	case l.queue <- event{typ: typ, metadata: metadata}:
	default:
		l.pending.Add(-1)
		l.b.Logger().Debug("event queue full; event dropped", "type", typ)
	}
}

// run sends queued events until the backend is cleaned up.
func (l *eventLog) run() {
	defer l.sender.Done()
	for {
		select {
		case <-l.b.ctx.Done():
			return
		case ev := <-l.queue:
			l.deliver(ev)
			l.pending.Add(-1)
		}
	}
}

func (l *eventLog) deliver(ev event) {
	if l.unsupported.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(l.b.ctx, eventTimeout)
	defer cancel()
	err := logical.SendEvent(ctx, l.b, ev.typ, ev.metadata...)
	switch {
	case err == nil:
		l.b.Logger().Debug("sent event", "type", ev.typ)
	case l.b.ctx.Err() != nil: // cleaned up while sending
	case errors.Is(err, framework.ErrNoEvents) || status.Code(err) == codes.Unimplemented:
		// This Vault has no event support: a no-op from now on, said once.
		if l.unsupported.CompareAndSwap(false, true) {
			l.b.Logger().Debug("this Vault does not take plugin events; events are not sent", "type", ev.typ, "error", err)
		}
	default:
		// Vault refused this one (its event bus is off or failing): the rotation or read that
		// caused it has succeeded all the same, so nothing above hears of it.
		if l.refusedOnce.CompareAndSwap(false, true) {
			l.b.Logger().Debug("Vault did not take an event; events are best effort", "type", ev.typ, "error", err)
		}
	}
}

// wait returns once the sender, if it ever started, has stopped. Clean calls it after
// cancelling the backend's context.
func (l *eventLog) wait() { l.sender.Wait() }

// rotationStarted, rotationCompleted, rotationFailed and rotationRolledBack announce the
// rotation of k. versions are key (or secret) versions: pending, the one active before.
func (l *eventLog) rotationStarted(k rotationKey, dataPath, trigger string, pending, previous int) {
	l.send(eventRotationStarted, rotationMetadata(k, dataPath, "started",
		"trigger", trigger, "pending_version", strconv.Itoa(pending), "previous_version", strconv.Itoa(previous))...)
}

func (l *eventLog) rotationCompleted(k rotationKey, dataPath string, active, previous int) {
	l.send(eventRotationCompleted, rotationMetadata(k, dataPath, "completed",
		"active_version", strconv.Itoa(active), "previous_version", strconv.Itoa(previous))...)
}

func (l *eventLog) rotationFailed(k rotationKey, dataPath string, pending, active int) {
	l.send(eventRotationFailed, rotationMetadata(k, dataPath, "failed",
		"pending_version", strconv.Itoa(pending), "active_version", strconv.Itoa(active))...)
}

func (l *eventLog) rotationRolledBack(k rotationKey, dataPath string, rolledBack, active int) {
	l.send(eventRotationRolledBack, rotationMetadata(k, dataPath, "rolled_back",
		"rolled_back_version", strconv.Itoa(rolledBack), "active_version", strconv.Itoa(active))...)
}

func rotationMetadata(k rotationKey, dataPath, what string, extra ...string) []string {
	md := []string{
		logical.EventMetadataPath, dataPath, logical.EventMetadataDataPath, dataPath,
		logical.EventMetadataOperation, "rotate", logical.EventMetadataModified, "true",
		"kind", k.kind, "connection", k.connection, "outcome", what,
	}
	if k.target != "" {
		md = append(md, "target", k.target)
	}
	return append(md, extra...)
}

// checkCertificates announces active certificates that have come within a threshold of their
// expiry, once per certificate and threshold. It reads the metrics' rotation status: memory
// only, so the periodic func may call it every tick.
func (l *eventLog) checkCertificates(now time.Time) {
	type due struct {
		notice  expiryNotice
		version int
	}
	var found []due
	m := l.b.metrics
	m.mu.RLock()
	for k, s := range m.rotations {
		if k.kind != kindKey || s.expiresAt.IsZero() {
			continue
		}
		left := s.expiresAt.Sub(now)
		// The tightest threshold crossed: a certificate found already inside 7 days gets the
		// 7-day notice, not the 30-day one too.
		for i := len(expiryThresholds) - 1; i >= 0; i-- {
			if left <= expiryThresholds[i] {
				found = append(found, due{expiryNotice{k.connection, s.expiresAt.Unix(), expiryThresholds[i]}, s.activeVersion})
				break
			}
		}
	}
	m.mu.RUnlock()
	for _, d := range found {
		l.mu.Lock()
		seen := l.expiryWarned[d.notice]
		l.expiryWarned[d.notice] = true
		l.mu.Unlock()
		if seen {
			continue
		}
		dataPath := "connections/" + d.notice.connection + "/certificate"
		l.send(eventCertificateExpiry, logical.EventMetadataPath, dataPath, logical.EventMetadataDataPath, dataPath,
			"connection", d.notice.connection, "key_version", strconv.Itoa(d.version),
			"not_after", time.Unix(d.notice.notAfter, 0).UTC().Format(time.RFC3339),
			"threshold_hours", strconv.Itoa(int(d.notice.threshold.Hours())))
	}
}

// mintFailed notes a failed mint of role on connection; the mintFailureThreshold-th failure
// within a window sends one event, at most one per window and connection.
func (l *eventLog) mintFailed(connection, role, code string, now time.Time) {
	l.mu.Lock()
	w := l.failures[connection]
	if w == nil {
		w = &failureWindow{since: now}
		l.failures[connection] = w
	}
	if now.Sub(w.since) > mintFailureWindow {
		w.since, w.count = now, 0
	}
	w.count++
	fire := w.count >= mintFailureThreshold && (w.lastSent.IsZero() || now.Sub(w.lastSent) >= mintFailureWindow)
	count := w.count
	if fire {
		w.lastSent = now
	}
	l.mu.Unlock()
	if !fire {
		return
	}
	dataPath := "roles/" + role
	l.send(eventMintFailures, logical.EventMetadataPath, dataPath, logical.EventMetadataDataPath, dataPath,
		"connection", connection, "role", role, "error_code", code,
		"failures", strconv.Itoa(count), "window_seconds", strconv.Itoa(int(mintFailureWindow.Seconds())))
}

// forgetConnection drops what is kept of a deleted connection.
func (l *eventLog) forgetConnection(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, name)
	for n := range l.expiryWarned {
		if n.connection == name {
			delete(l.expiryWarned, n)
		}
	}
}

// noteKeyTransition reports a key rotation step just written: st is the state it started
// from, t the transition, ring the ring as written. Called with the connection lock held:
// it only records and queues.
func (b *backend) noteKeyTransition(name string, st rotationState, t transition, ring *keyRing) {
	k := keyRotation(name)
	b.metrics.rotation(k, t.state.State)
	switch {
	case t.ring == ringPromotePending:
		b.events.rotationCompleted(k, rotationDataPath(name), activeVersion(ring), st.PreviousVersion)
	case t.state.State == stateFailed && st.State == stateRollingBack:
		b.metrics.rotationFailed(k)
		b.events.rotationRolledBack(k, rotationDataPath(name), st.PendingVersion, activeVersion(ring))
	case t.state.State == stateFailed && st.State != stateFailed:
		b.metrics.rotationFailed(k)
		b.events.rotationFailed(k, rotationDataPath(name), st.PendingVersion, activeVersion(ring))
	}
}

func keyRotation(connection string) rotationKey {
	return rotationKey{kind: kindKey, connection: connection}
}

func rotationDataPath(connection string) string { return "connections/" + connection + "/rotation" }

func activeVersion(ring *keyRing) int {
	if a := ring.active(); a != nil {
		return a.Version
	}
	return 0
}
