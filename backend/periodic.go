package backend

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// periodic runs on every Vault rollback tick (about once a minute, never overlapping itself):
// it drives the rotations that are due. Its cost is the due work, not the number of
// connections: the schedule answers "what is due" from memory.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	// Only a node that may write storage drives rotations: on performance standbys and
	// secondaries a rotation would either fail to persist or run twice upstream.
	if !b.WriteSafeReplicationState() {
		return nil
	}
	if !b.sched.isLoaded() {
		if err := b.loadSchedule(ctx, req.Storage); err != nil {
			return err
		}
	}
	b.events.checkCertificates(b.now())
	due := b.sched.due(b.now())
	if len(due) == 0 {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, driveBudget)
	defer cancel()
	for _, name := range due {
		if dctx.Err() != nil {
			b.sched.set(name, b.now()) // out of time this tick: first in line next tick
			continue
		}
		if conn, ok := strings.CutPrefix(name, ccSchedPrefix); ok {
			b.driveCredentials(dctx, req.Storage, conn) // a consumer credential rotation
			continue
		}
		if key, ok := strings.CutPrefix(name, tsSchedPrefix); ok {
			b.driveTenantSecret(dctx, req.Storage, key) // a tenant secret rotation
			continue
		}
		b.drive(dctx, req.Storage, name)
	}
	return nil
}
