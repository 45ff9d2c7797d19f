package backend

import (
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// replicationStateTTL bounds how long a replication state read from Vault is reused.
const replicationStateTTL = time.Second

// cachedSystemView answers the two questions the SDK's router asks on every request to a path
// with Operations (framework.Backend.HandleRequest: LocalMount and ReplicationState, to decide
// whether to forward with ErrReadOnly) from memory instead of a gRPC round trip back to Vault
// each time; in an external plugin those two calls were a measurable part of every cached read.
//
//   - LocalMount is fixed for a backend instance: a mount's "local" flag is set when it is
//     enabled and cannot be tuned, so it is read once.
//   - ReplicationState is reused for at most replicationStateTTL. A node's role changes by
//     stepping up or down, which tears the mount's backend down and sets a new one up; a cluster
//     becomes a performance secondary only by a replication activation that does the same.
//     What a cached value could miss inside its second is a change Vault makes to the same
//     instance, and even then a request that should have been forwarded fails its first storage
//     write on the standby with ErrReadOnly, which Vault forwards itself.
type cachedSystemView struct {
	logical.SystemView
	now func() time.Time

	mu         sync.Mutex
	localKnown bool
	local      bool
	state      consts.ReplicationState
	stateAt    time.Time
}

func newCachedSystemView(sys logical.SystemView, now func() time.Time) *cachedSystemView {
	return &cachedSystemView{SystemView: sys, now: now}
}

func (c *cachedSystemView) LocalMount() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.localKnown {
		c.local, c.localKnown = c.SystemView.LocalMount(), true
	}
	return c.local
}

func (c *cachedSystemView) ReplicationState() consts.ReplicationState {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stateAt.IsZero() || now.Sub(c.stateAt) >= replicationStateTTL || now.Before(c.stateAt) {
		c.state, c.stateAt = c.SystemView.ReplicationState(), now
	}
	return c.state
}
