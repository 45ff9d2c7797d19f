package backend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/testclock"
)

// countingSystemView is Vault's side of the gRPC calls, counted, with a state a test changes.
type countingSystemView struct {
	logical.StaticSystemView
	mu                 sync.Mutex
	state              consts.ReplicationState
	stateCalls, locals atomic.Int64
}

func (c *countingSystemView) ReplicationState() consts.ReplicationState {
	c.stateCalls.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *countingSystemView) LocalMount() bool { c.locals.Add(1); return false }

func (c *countingSystemView) set(s consts.ReplicationState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = s
}

// The router's per-request replication check is answered from memory, and a node that becomes a
// performance standby still forwards: within the cache's bound, not never.
func TestReplicationStateIsCachedAndForwardingStillWorks(t *testing.T) {
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	sys := &countingSystemView{}
	conf := logical.TestBackendConfig()
	conf.System = newCachedSystemView(sys, clock.Now)
	storage := &logical.InmemStorage{}
	conf.StorageView = storage
	b := newBackend()
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	req := func(op logical.Operation, path string) (*logical.Response, error) {
		return b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Storage: storage,
			Connection: &logical.Connection{RemoteAddr: "127.0.0.1"}})
	}
	for i := 0; i < 100; i++ {
		if _, err := req(logical.ReadOperation, "creds/app"); err != nil {
			t.Fatal(err)
		}
	}
	if n := sys.stateCalls.Load(); n != 1 {
		t.Fatalf("100 requests asked Vault for the replication state %d times, want 1", n)
	}

	sys.set(consts.ReplicationPerformanceStandby)
	clock.Advance(replicationStateTTL)
	_, err := req(logical.ReadOperation, "creds/app")
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("on a performance standby a mint must be forwarded (ErrReadOnly), got %v", err)
	}
	if b.WriteSafeReplicationState() {
		t.Fatal("the periodic func would drive rotations on a performance standby")
	}
	// And back: a promoted node serves again.
	sys.set(consts.ReplicationPerformancePrimary)
	clock.Advance(replicationStateTTL)
	if _, err := req(logical.ReadOperation, "creds/app"); err != nil {
		t.Fatalf("after the state changed back: %v", err)
	}
	if n := sys.locals.Load(); n > 1 {
		t.Fatalf("LocalMount asked %d times, want at most once", n)
	}
}

func TestFactoryCachesTheSystemView(t *testing.T) {
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	lb, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Cleanup(context.Background())
	if _, ok := lb.(*backend).System().(*cachedSystemView); !ok {
		t.Fatal("Factory does not wrap the system view")
	}
}
