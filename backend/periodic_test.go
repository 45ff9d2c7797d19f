package backend

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// countingStorage counts storage calls, to prove a tick with nothing due reads nothing.
type countingStorage struct {
	logical.Storage
	ops atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.ops.Add(1)
	return s.Storage.Get(ctx, k)
}

func (s *countingStorage) List(ctx context.Context, p string) ([]string, error) {
	s.ops.Add(1)
	return s.Storage.List(ctx, p)
}

func (s *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.ops.Add(1)
	return s.Storage.Put(ctx, e)
}

// seedConnections writes n connections with rotation on (none due for a year) straight to
// storage: generating n keys through the API would take minutes and measure nothing new.
func seedConnections(tb testing.TB, s logical.Storage, n int, now time.Time) {
	tb.Helper()
	ctx := context.Background()
	conn := defaultConnection(now)
	conn.ConsumerKey, conn.KeyRotationPeriod = "3MVGbench", 8000*time.Hour
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("c%05d", i)
		ring := &keyRing{Versions: []*keyVersion{{Version: 1, Status: statusActive, CreatedAt: now, ActivatedAt: now, NotAfter: now.Add(8760 * time.Hour)}},
			Rotation: rotationState{State: stateIdle}}
		if err := putJSON(ctx, s, connectionsPrefix+name, conn); err != nil {
			tb.Fatal(err)
		}
		if err := putJSON(ctx, s, keyringPrefix+name, ring); err != nil {
			tb.Fatal(err)
		}
	}
}

func newBenchBackend(tb testing.TB, s logical.Storage) *backend {
	tb.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.Logger = hclog.NewNullLogger()
	b := newBackend()
	if err := b.Setup(context.Background(), conf); err != nil {
		tb.Fatal(err)
	}
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: s}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Cleanup(context.Background()) })
	return b
}

func TestTickWithNothingDueTouchesNoStorage(t *testing.T) {
	store := &countingStorage{Storage: &logical.InmemStorage{}}
	seedConnections(t, store, 1000, time.Now())
	b := newBenchBackend(t, store)
	if b.sched.len() != 1000 {
		t.Fatalf("schedule holds %d connections, want 1000", b.sched.len())
	}
	store.ops.Store(0)
	req := &logical.Request{Operation: logical.RollbackOperation, Storage: store}
	for i := 0; i < 10; i++ {
		if _, err := b.HandleRequest(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// The rotation state in the key ring is the journal (no WALs), so a tick with nothing due
	// must make no storage call at all: no scan of connections.
	if ops := store.ops.Load(); ops != 0 {
		t.Fatalf("10 ticks with nothing due made %d storage calls; want 0", ops)
	}
}

// BenchmarkTick10kConnectionsNothingDue measures a periodic tick with 10,000 connections and
// nothing due, against the same rollback request on a backend with no periodic func (the
// framework's own cost), in the same run. Compare with benchstat, or read the two ns/op.
func BenchmarkTick10kConnectionsNothingDue(b *testing.B) {
	store := &logical.InmemStorage{}
	seedConnections(b, store, 10000, time.Now())
	be := newBenchBackend(b, store)
	req := &logical.Request{Operation: logical.RollbackOperation, Storage: store}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := be.HandleRequest(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTickBaselineFrameworkOnly(b *testing.B) {
	store := &logical.InmemStorage{}
	seedConnections(b, store, 10000, time.Now())
	be := &framework.Backend{BackendType: logical.TypeLogical, WALRollback: func(context.Context, *logical.Request, string, any) error { return nil }}
	conf := logical.TestBackendConfig()
	conf.StorageView = store
	if err := be.Setup(context.Background(), conf); err != nil {
		b.Fatal(err)
	}
	req := &logical.Request{Operation: logical.RollbackOperation, Storage: store}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := be.HandleRequest(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
