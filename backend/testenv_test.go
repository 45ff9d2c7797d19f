package backend

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/testclock"
)

// syncBuffer collects the backend's log for the leak scan.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testEnv struct {
	t       testing.TB
	b       *backend
	storage *logical.InmemStorage
	sys     *logical.StaticSystemView
	emu     *emulator.Emulator
	seed    emulator.DemoSeed
	clock   *testclock.Clock // shared by the backend and the emulator
	logs    *syncBuffer
	events  *logical.MockEventSender // what the backend sent to Vault's event bus
	// responses records every response and error the backend gave, for the leak scan.
	mu        sync.Mutex
	responses []string
}

type envOption func(*emulator.Config)

// newTestEnv starts an emulator over TLS on loopback (seeded with the demo org, users and app)
// and a backend on in-memory storage, both on one fake clock.
func newTestEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	clock := testclock.New(time.Now().UTC().Truncate(time.Second))
	cfg := emulator.Config{Clock: clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	emu := emulator.New(cfg)
	if err := emu.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("starting emulator: %v", err)
	}
	t.Cleanup(func() { _ = emu.Close() })

	logs := &syncBuffer{}
	sys := logical.TestSystemView()
	conf := logical.TestBackendConfig()
	conf.System = sys
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace, JSONFormat: true})
	storage := &logical.InmemStorage{}
	conf.StorageView = storage
	events := logical.NewMockEventSender()
	conf.EventsSender = events
	b := newBackend()
	b.now = clock.Now
	b.retry = salesforce.RetryPolicy{Attempts: 3, BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond,
		AttemptTimeout: 1500 * time.Millisecond, Budget: 4 * time.Second}
	b.sleep = func(ctx context.Context, d time.Duration) error { clock.Advance(d); return ctx.Err() }
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: storage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	return &testEnv{t: t, b: b, storage: storage, sys: sys, emu: emu, seed: emu.SeedDemo(), clock: clock, logs: logs, events: events}
}

func (e *testEnv) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	req := &logical.Request{Operation: op, Path: path, Storage: e.storage, Data: data,
		Connection: &logical.Connection{RemoteAddr: "127.0.0.1"}}
	if op == logical.CreateOperation || op == logical.UpdateOperation {
		if ok, exists, err := e.b.HandleExistenceCheck(context.Background(), req); err == nil && ok {
			req.Operation = logical.UpdateOperation
			if !exists {
				req.Operation = logical.CreateOperation
			}
		}
	}
	resp, err := e.b.HandleRequest(context.Background(), req)
	e.record(resp, err)
	return resp, err
}

func (e *testEnv) record(resp *logical.Response, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if resp != nil {
		e.responses = append(e.responses, responseText(resp))
	}
	if err != nil {
		e.responses = append(e.responses, err.Error())
	}
}

func responseText(resp *logical.Response) string {
	var b strings.Builder
	b.WriteString(strings.Join(resp.Warnings, "\n"))
	for k, v := range resp.Data {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", "\\n")))
		b.WriteString("\n")
	}
	if resp.Secret != nil {
		for k, v := range resp.Secret.InternalData {
			b.WriteString(k + "=" + toString(v) + "\n")
		}
	}
	return b.String()
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		var b strings.Builder
		for k, vv := range x {
			b.WriteString(k + ":" + toString(vv) + ";")
		}
		return b.String()
	}
	return strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(fmt.Sprint(v), "\n", " "), "\t", " "))
}

// write, read, list and del fail the test on a Go error (a 500); 4xx answers come back as
// responses with IsError.
func (e *testEnv) write(path string, data map[string]any) *logical.Response {
	e.t.Helper()
	return e.mustDo(logical.UpdateOperation, "write", path, data)
}

func (e *testEnv) read(path string) *logical.Response {
	e.t.Helper()
	return e.mustDo(logical.ReadOperation, "read", path, nil)
}

func (e *testEnv) list(path string) *logical.Response {
	e.t.Helper()
	return e.mustDo(logical.ListOperation, "list", path, nil)
}

func (e *testEnv) del(path string) *logical.Response {
	e.t.Helper()
	return e.mustDo(logical.DeleteOperation, "delete", path, nil)
}

func (e *testEnv) mustDo(op logical.Operation, verb, path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(op, path, data)
	if err != nil {
		e.t.Fatalf("%s %s: %v", verb, path, err)
	}
	return resp
}

func mustOK(t testing.TB, resp *logical.Response) *logical.Response {
	t.Helper()
	if resp != nil && resp.IsError() {
		t.Fatalf("unexpected error response: %v", resp.Error())
	}
	return resp
}

func mustErr(t testing.TB, resp *logical.Response, want ...string) {
	t.Helper()
	if resp == nil || !resp.IsError() {
		t.Fatalf("expected an error response containing %q, got %#v", want, resp)
	}
	msg := resp.Error().Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("error %q does not contain %q", msg, w)
		}
	}
}

// connectionData is a valid connection to the emulator's demo app.
func (e *testEnv) connectionData(extra map[string]any) map[string]any {
	d := map[string]any{
		"consumer_key":              e.seed.App.ConsumerKey,
		"login_url":                 e.emu.URL(),
		"allow_non_salesforce_host": true,
		"ca_cert":                   e.emu.CACertPEM(),
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// createConnection creates a connection and registers its certificate on the demo app, as an
// operator would after the create.
// newAppEnv is newTestEnv with connection prod (the defaults of connectionData) and role app on
// it, for the emulator's integration user.
func newAppEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := newTestEnv(t, opts...)
	e.createConnection("prod", nil)
	e.createRole("app", "prod", nil)
	return e
}

func (e *testEnv) createConnection(name string, extra map[string]any) *logical.Response {
	e.t.Helper()
	resp := mustOK(e.t, e.write("connections/"+name, e.connectionData(extra)))
	if err := e.emu.SetAppCertificate(e.seed.App.ConsumerKey, resp.Data["certificate"].(string)); err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *testEnv) createRole(name, conn string, extra map[string]any) {
	e.t.Helper()
	d := map[string]any{"connection": conn, "username": e.seed.User.Username}
	for k, v := range extra {
		d[k] = v
	}
	mustOK(e.t, e.write("roles/"+name, d))
}

// tick runs the periodic func as Vault's rollback manager does.
func (e *testEnv) tick() {
	e.t.Helper()
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: e.storage})
	if err != nil {
		e.t.Fatalf("periodic: %v", err)
	}
}
