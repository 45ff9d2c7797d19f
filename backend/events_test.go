package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// sentEvents waits for the backend's event queue to drain, then returns what reached the
// event bus: type and metadata of each event, in order.
func (e *testEnv) sentEvents() []sentEvent {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.b.events.pending.Load() != 0 {
		if time.Now().After(deadline) {
			e.t.Fatal("events still queued after 5s")
		}
		time.Sleep(time.Millisecond)
	}
	e.events.Lock()
	defer e.events.Unlock()
	var out []sentEvent
	for _, ev := range e.events.Events {
		md := map[string]string{}
		for k, v := range ev.Event.Metadata.GetFields() {
			md[k] = v.GetStringValue()
		}
		out = append(out, sentEvent{typ: string(ev.Type), md: md})
	}
	return out
}

type sentEvent struct {
	typ string
	md  map[string]string
}

func ofType(evs []sentEvent, typ string) []sentEvent {
	var out []sentEvent
	for _, ev := range evs {
		if ev.typ == typ {
			out = append(out, ev)
		}
	}
	return out
}

// wantMetadata fails unless ev's metadata holds every pair of want.
func wantMetadata(t *testing.T, ev sentEvent, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if ev.md[k] != v {
			t.Errorf("%s: metadata %s = %q, want %q (all: %v)", ev.typ, k, ev.md[k], v, ev.md)
		}
	}
}

func TestEventsOnManualRotation(t *testing.T) {
	e := newAppEnv(t)
	pending := mustOK(t, e.write("connections/prod/rotate", nil)).Data["pending_certificate"].(string)
	e.b.wg.Wait()
	started := ofType(e.sentEvents(), eventRotationStarted)
	if len(started) != 1 {
		t.Fatalf("%d rotation-started events, want 1: %v", len(started), e.sentEvents())
	}
	wantMetadata(t, started[0], map[string]string{"connection": "prod", "kind": "key", "trigger": "manual",
		"pending_version": "2", "previous_version": "1", "path": "connections/prod/rotation", "data_path": "connections/prod/rotation"})
	if err := e.emu.SetAppCertificate(e.seed.App.ConsumerKey, pending); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(probeInterval)
	e.tick()
	completed := ofType(e.sentEvents(), eventRotationCompleted)
	if len(completed) != 1 {
		t.Fatalf("%d rotation-completed events, want 1: %v", len(completed), e.sentEvents())
	}
	wantMetadata(t, completed[0], map[string]string{"connection": "prod", "kind": "key", "active_version": "2", "previous_version": "1"})
	if n := len(ofType(e.sentEvents(), eventRotationFailed)); n != 0 {
		t.Errorf("%d failure events for a rotation that succeeded", n)
	}
}

func TestEventOnPromoteEndsRotation(t *testing.T) {
	e := newAppEnv(t)
	mustOK(t, e.write("connections/prod/rotate", nil))
	e.b.wg.Wait()
	mustOK(t, e.write("connections/prod/promote", map[string]any{"force": true}))
	completed := ofType(e.sentEvents(), eventRotationCompleted)
	if len(completed) != 1 {
		t.Fatalf("%d rotation-completed events after a forced promote, want 1", len(completed))
	}
	wantMetadata(t, completed[0], map[string]string{"active_version": "2", "previous_version": "1"})
	// Promoting an archived key back is not the end of a rotation.
	mustOK(t, e.write("connections/prod/promote", map[string]any{"force": true, "version": 1}))
	if n := len(ofType(e.sentEvents(), eventRotationCompleted)); n != 1 {
		t.Errorf("promoting an archived key back sent a rotation-completed event (%d in all)", n)
	}
}

func TestEventsOnFailedAndRolledBackRotations(t *testing.T) {
	t.Run("stalled manual rotation fails", func(t *testing.T) {
		e := newAppEnv(t)
		mustOK(t, e.write("connections/prod/rotate", nil))
		e.b.wg.Wait()
		for i := 0; i < 40 && e.rotation("prod")["state"] != "failed"; i++ {
			e.clock.Advance(probeInterval)
			e.tick()
		}
		// Later slow probes of the failed rotation announce nothing new.
		e.clock.Advance(stalledProbeInterval)
		e.tick()
		failed := ofType(e.sentEvents(), eventRotationFailed)
		if len(failed) != 1 {
			t.Fatalf("%d rotation-failed events, want 1", len(failed))
		}
		wantMetadata(t, failed[0], map[string]string{"connection": "prod", "pending_version": "2", "active_version": "1", "outcome": "failed"})
	})
	t.Run("metadata API rotation rolls back", func(t *testing.T) {
		e, _, _ := startUnacceptedRotation(t)
		for i := 0; i < 40 && e.rotation("prod")["state"] != "failed"; i++ {
			e.clock.Advance(probeInterval)
			e.tick()
		}
		evs := e.sentEvents()
		rolled := ofType(evs, eventRotationRolledBack)
		if len(rolled) != 1 {
			t.Fatalf("%d rolled-back events, want 1: %v", len(rolled), evs)
		}
		wantMetadata(t, rolled[0], map[string]string{"connection": "prod", "rolled_back_version": "2", "active_version": "1"})
		if n := len(ofType(evs, eventRotationFailed)); n != 0 {
			t.Errorf("a rollback also sent %d rotation-failed events: it is announced once, as rolled back", n)
		}
		if got := sample(t, e.scrape(), "vault_salesforce_rotation_failures_total", map[string]string{"connection": "prod"}); got != 1 {
			t.Errorf("a rolled-back rotation counts %v failures, want 1", got)
		}
	})
}

func TestEventCertificateExpiringOncePerThreshold(t *testing.T) {
	e := newTestEnv(t)
	// No automatic rotation, so the certificate is left to come close to its expiry.
	e.createConnection("prod", map[string]any{"certificate_ttl": "1000h", "key_rotation_period": "0", "certificate_renew_before": "0s"})
	expiring := func() []sentEvent { return ofType(e.sentEvents(), eventCertificateExpiry) }
	e.tick()
	if n := len(expiring()); n != 0 {
		t.Fatalf("%d expiry events for a certificate 1000h from expiry", n)
	}
	steps := []struct {
		advance   time.Duration
		want      int
		threshold string
	}{
		{1000*time.Hour - 29*24*time.Hour, 1, "720"}, // 29 days left: the 30-day notice
		{time.Hour, 1, ""},                           // the next tick: nothing new
		{22 * 24 * time.Hour, 2, "168"},              // 7 days left
		{6*24*time.Hour + time.Hour, 3, "24"},        // 23 hours left
		{time.Hour, 3, ""},
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		e.tick()
		e.tick()
		got := expiring()
		if len(got) != s.want {
			t.Fatalf("step %d: %d expiry events, want %d", i, len(got), s.want)
		}
		if s.threshold != "" {
			wantMetadata(t, got[len(got)-1], map[string]string{"connection": "prod", "key_version": "1", "threshold_hours": s.threshold,
				"data_path": "connections/prod/certificate"})
		}
	}
}

func TestEventRepeatedMintFailuresRateLimited(t *testing.T) {
	e := newAppEnv(t)
	e.createRole("leased", "prod", map[string]any{"token_mode": "per_lease"})
	e.emu.AddFault(emulator.Fault{Endpoint: "token", Kind: emulator.FaultStatus, Status: 503})
	fail := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := e.do(logical.ReadOperation, "creds/leased", nil); err == nil {
				t.Fatal("a mint against a failing Salesforce succeeded")
			}
		}
	}
	events := func() []sentEvent { return ofType(e.sentEvents(), eventMintFailures) }
	fail(mintFailureThreshold - 1)
	if n := len(events()); n != 0 {
		t.Fatalf("%d events below the threshold", n)
	}
	fail(1)
	got := events()
	if len(got) != 1 {
		t.Fatalf("%d events at the threshold, want 1", len(got))
	}
	wantMetadata(t, got[0], map[string]string{"connection": "prod", "role": "leased", "error_code": "unreachable", "failures": "5", "window_seconds": "300"})
	fail(3 * mintFailureThreshold) // still failing inside the window: no more events
	if n := len(events()); n != 1 {
		t.Fatalf("%d events within one window, want 1", n)
	}
	e.clock.Advance(mintFailureWindow + time.Second)
	fail(mintFailureThreshold)
	if n := len(events()); n != 2 {
		t.Fatalf("%d events after a second window of failures, want 2", n)
	}
}

// TestEventsWithoutEventSupportAreANoOp: a Vault with no event support (no sender: the
// framework answers ErrNoEvents) changes nothing for the caller, and says so once at debug.
func TestEventsWithoutEventSupportAreANoOp(t *testing.T) {
	e := newAppEnv(t)
	// A second backend on the same storage, set up without an event sender.
	logs := &syncBuffer{}
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace, JSONFormat: true})
	b := newBackend()
	b.now, b.retry = e.clock.Now, e.b.retry
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	do := func(path string, data map[string]any) {
		t.Helper()
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: path, Storage: e.storage, Data: data})
		if err != nil || (resp != nil && resp.IsError()) {
			t.Fatalf("%s without event support: %v %v", path, err, resp)
		}
	}
	for i := 0; i < 3; i++ { // six events: started, completed, three times
		do("connections/prod/rotate", nil)
		b.wg.Wait()
		do("connections/prod/promote", map[string]any{"force": true})
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.events.pending.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !b.events.unsupported.Load() {
		t.Fatal("the backend did not notice that Vault takes no events")
	}
	if n := strings.Count(logs.String(), "this Vault does not take plugin events"); n != 1 {
		t.Fatalf("%d debug lines about missing event support, want exactly 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), `"@level":"error"`) {
		t.Errorf("missing event support logged an error:\n%s", logs.String())
	}
}

func TestEventOnPendingImport(t *testing.T) {
	e := newAppEnv(t)
	mustOK(t, e.write("connections/prod/import", map[string]any{"private_key": pkcs1PEM(newRSA(t, 2048))}))
	started := ofType(e.sentEvents(), eventRotationStarted)
	if len(started) != 1 {
		t.Fatalf("%d rotation-started events after a pending import, want 1", len(started))
	}
	wantMetadata(t, started[0], map[string]string{"connection": "prod", "trigger": "import", "pending_version": "2", "previous_version": "1"})
}
