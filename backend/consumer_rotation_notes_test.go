package backend

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// A consumer credential rotation shows in the metrics as kind consumer_secret, from idle through
// overlap back to idle, with its next scheduled rotation; it sends one started and, once the
// previous pair is deleted, one completed event.
func TestCredentialsRotationMetricsAndEvents(t *testing.T) {
	e := newCCRotationEnv(t, map[string]any{"credentials_rotation_period": "24h"})
	cc := map[string]string{"kind": kindConsumerSecret, "connection": "cc"}
	f := e.scrape()
	if got := sample(t, f, "vault_salesforce_rotation_state", map[string]string{"kind": kindConsumerSecret, "connection": "cc", "state": ccStateIdle}); got != 1 {
		t.Fatalf("rotation state idle: %v", got)
	}
	next := sample(t, f, "vault_salesforce_next_rotation_timestamp_seconds", cc)
	if want := float64(e.clock.Now().Add(24 * time.Hour).Unix()); math.Abs(next-want) > 5 {
		t.Errorf("next rotation at %v, want about %v", next, want)
	}
	if _, n := find(f, "vault_salesforce_rotation_state", map[string]string{"kind": kindConsumerSecret, "connection": "admin"}); n != 0 {
		t.Error("a jwt_bearer connection reports a consumer credential rotation")
	}

	mustOK(t, e.write("connections/cc/credentials/rotate", nil))
	f = e.scrape()
	if got := sample(t, f, "vault_salesforce_rotation_state", cc); got != 1 {
		t.Fatalf("want one consumer_secret state series, got %v", got)
	}
	if _, n := find(f, "vault_salesforce_rotation_state", map[string]string{"kind": kindConsumerSecret, "connection": "cc", "state": ccStateOverlap}); n != 1 {
		t.Errorf("a rotation in its overlap is not reported so: %v", f["vault_salesforce_rotation_state"])
	}
	started := ofType(e.sentEvents(), eventRotationStarted)
	if len(started) != 1 {
		t.Fatalf("%d rotation-started events, want 1: %v", len(started), e.sentEvents())
	}
	wantMetadata(t, started[0], map[string]string{"kind": kindConsumerSecret, "connection": "cc", "trigger": triggerManual,
		"pending_version": "2", "previous_version": "1", "data_path": "connections/cc/credentials/rotation"})
	if n := len(ofType(e.sentEvents(), eventRotationCompleted)); n != 0 {
		t.Fatalf("completed before the previous pair is deleted (%d events)", n)
	}

	e.clock.Advance(11 * time.Minute)
	e.tick()
	completed := ofType(e.sentEvents(), eventRotationCompleted)
	if len(completed) != 1 {
		t.Fatalf("%d rotation-completed events, want 1: %v", len(completed), e.sentEvents())
	}
	wantMetadata(t, completed[0], map[string]string{"kind": kindConsumerSecret, "connection": "cc", "active_version": "2", "previous_version": "1"})
	f = e.scrape()
	if _, n := find(f, "vault_salesforce_rotation_state", map[string]string{"kind": kindConsumerSecret, "connection": "cc", "state": ccStateIdle}); n != 1 {
		t.Errorf("a completed rotation is not reported idle: %v", f["vault_salesforce_rotation_state"])
	}
	if n := len(ofType(e.sentEvents(), eventRotationFailed)); n != 0 {
		t.Errorf("%d failure events for a rotation that succeeded", n)
	}
}

// A refused rotation fails once: one failed event, one count of rotation_failures_total.
func TestCredentialsRotationFailureMetricsAndEvent(t *testing.T) {
	e := newCCRotationEnv(t, nil)
	if _, err := e.emu.SetAllowECAConsumerSecretREST(emulator.DemoOrgID, false); err != nil {
		t.Fatal(err)
	}
	mustErr(t, e.write("connections/cc/credentials/rotate", nil), "FUNCTIONALITY_NOT_ENABLED")
	e.clock.Advance(stalledProbeInterval)
	e.tick()
	failed := ofType(e.sentEvents(), eventRotationFailed)
	if len(failed) != 1 {
		t.Fatalf("%d rotation-failed events, want 1: %v", len(failed), e.sentEvents())
	}
	wantMetadata(t, failed[0], map[string]string{"kind": kindConsumerSecret, "connection": "cc", "pending_version": "2", "active_version": "1", "outcome": "failed"})
	f := e.scrape()
	if got := sample(t, f, "vault_salesforce_rotation_failures_total", map[string]string{"kind": kindConsumerSecret, "connection": "cc"}); got != 1 {
		t.Errorf("rotation failures %v, want 1", got)
	}
	if _, n := find(f, "vault_salesforce_rotation_state", map[string]string{"kind": kindConsumerSecret, "connection": "cc", "state": ccStateFailed}); n != 1 {
		t.Errorf("a failed rotation is not reported failed: %v", f["vault_salesforce_rotation_state"])
	}
}

// A rotation whose intent could not be written announces nothing: no event, no state change.
func TestCredentialsRotationNoEventWithoutWrite(t *testing.T) {
	e := newCCRotationEnv(t, nil)
	crashing := &crashStorage{Storage: e.storage, n: 1}
	if _, _, err := e.b.startCredentialsRotation(context.Background(), crashing, "cc", triggerManual); err == nil {
		t.Fatal("the start succeeded on a storage that refuses every write")
	}
	if n := len(ofType(e.sentEvents(), eventRotationStarted)); n != 0 {
		t.Fatalf("%d rotation-started events for a rotation never stored", n)
	}
	if _, n := find(e.scrape(), "vault_salesforce_rotation_state", map[string]string{"kind": kindConsumerSecret, "connection": "cc", "state": ccStateIdle}); n != 1 {
		t.Error("an unwritten start changed the reported state")
	}
}
