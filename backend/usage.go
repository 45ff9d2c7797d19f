package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// usageEntry records what a role's tokens have been doing, for operators.
type usageEntry struct {
	TokensMinted   int64     `json:"tokens_minted"`
	LastMintedAt   time.Time `json:"last_minted_at,omitempty"`
	LastKeyVersion int       `json:"last_key_version,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitempty"`
}

// add folds a delta (counts since the last flush, latest outcomes) into u.
func (u *usageEntry) add(d *usageEntry) {
	u.TokensMinted += d.TokensMinted
	if !d.LastMintedAt.IsZero() {
		u.LastMintedAt, u.LastKeyVersion = d.LastMintedAt, d.LastKeyVersion
	}
	if !d.LastErrorAt.IsZero() {
		u.LastError, u.LastErrorAt = d.LastError, d.LastErrorAt
	}
}

func getUsage(ctx context.Context, s logical.Storage, role string) (*usageEntry, error) {
	var u usageEntry
	if _, err := getJSON(ctx, s, usagePrefix+role, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// usageFlushInterval is how often recorded usage is written to storage: at most once per role
// per interval, however many tokens are minted in it. A crash loses at most this much of the
// counts; they are bookkeeping, not state.
const usageFlushInterval = time.Second

// usageLog keeps role usage off the read path. A mint only adds to an in-memory delta; a
// background flusher writes the deltas (one get and put per role per interval, under the role's
// lock), so concurrent mints of one role neither wait for storage nor queue on its lock.
// Role reads add the unflushed delta, so an operator sees every mint at once.
type usageLog struct {
	mu      sync.Mutex
	pending map[string]*usageEntry
	storage logical.Storage // the mount's storage, as the last mint saw it
	wake    chan struct{}
	start   sync.Once
	// flusher is the flusher's own wait group, not the backend's: tests wait on b.wg for a
	// rotation to finish, and the flusher runs until Clean.
	flusher sync.WaitGroup
}

func newUsageLog() *usageLog {
	return &usageLog{pending: map[string]*usageEntry{}, wake: make(chan struct{}, 1)}
}

// wait returns once the flusher, if it ever started, has written what was left and stopped.
// Clean calls it after cancelling the backend's context.
func (l *usageLog) wait() { l.flusher.Wait() }

// recordMinted and recordFailed note a mint's outcome. They never block on storage.
func (b *backend) recordMinted(s logical.Storage, role string, version int, at time.Time) {
	b.recordUsage(s, role, func(d *usageEntry) {
		d.TokensMinted++
		d.LastMintedAt, d.LastKeyVersion = at, version
	})
}

func (b *backend) recordFailed(s logical.Storage, role string, err error, at time.Time) {
	b.recordUsage(s, role, func(d *usageEntry) { d.LastError, d.LastErrorAt = err.Error(), at })
}

func (b *backend) recordUsage(s logical.Storage, role string, update func(*usageEntry)) {
	l := b.usage
	l.mu.Lock()
	d := l.pending[role]
	if d == nil {
		d = &usageEntry{}
		l.pending[role] = d
	}
	update(d)
	l.storage = s
	l.mu.Unlock()
	l.start.Do(func() {
		l.flusher.Add(1)
		go b.flushUsageLoop()
	})
	select {
	case l.wake <- struct{}{}:
	default: // a flush is already due
	}
}

// usageOf is a role's usage as stored plus what is not flushed yet. The caller holds the role's
// lock (either side), so a flush cannot move a delta from memory to storage half-seen.
func (b *backend) usageOf(ctx context.Context, s logical.Storage, role string) (*usageEntry, error) {
	u, err := getUsage(ctx, s, role)
	if err != nil {
		return nil, err
	}
	b.usage.mu.Lock()
	if d := b.usage.pending[role]; d != nil {
		u.add(d)
	}
	b.usage.mu.Unlock()
	return u, nil
}

// forgetUsage drops a deleted role's unflushed usage. The caller holds the role's lock.
func (b *backend) forgetUsage(role string) {
	b.usage.mu.Lock()
	delete(b.usage.pending, role)
	b.usage.mu.Unlock()
}

// flushUsageLoop writes pending usage when there is some, at most once per interval, until
// the backend is cleaned up; then it writes what is left.
func (b *backend) flushUsageLoop() {
	defer b.usage.flusher.Done()
	for {
		select {
		case <-b.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.flushUsage(ctx)
			cancel()
			return
		case <-b.usage.wake:
		}
		b.flushUsage(b.ctx)
		// A real wait even where tests fake b.sleep: this one only spaces writes out.
		_ = sleepCtx(b.ctx, usageFlushInterval) // cleaned up: the select above does the last flush
	}
}

// flushUsage writes every role's pending delta. A role deleted meanwhile gets nothing written;
// a failed write puts the delta back for the next flush.
func (b *backend) flushUsage(ctx context.Context) {
	b.usage.mu.Lock()
	s := b.usage.storage
	roles := make([]string, 0, len(b.usage.pending))
	for role := range b.usage.pending {
		roles = append(roles, role)
	}
	b.usage.mu.Unlock()
	for _, role := range roles {
		b.flushRoleUsage(ctx, s, role)
	}
	// A map keeps the room it once needed: start afresh once everything is written.
	b.usage.mu.Lock()
	if len(b.usage.pending) == 0 {
		b.usage.pending = map[string]*usageEntry{}
	}
	b.usage.mu.Unlock()
}

func (b *backend) flushRoleUsage(ctx context.Context, s logical.Storage, role string) {
	lock := b.roleLock(role)
	lock.Lock()
	defer lock.Unlock()
	b.usage.mu.Lock()
	d := b.usage.pending[role]
	delete(b.usage.pending, role)
	b.usage.mu.Unlock()
	if d == nil {
		return
	}
	err := func() error {
		if r, err := b.cachedRole(ctx, s, role); err != nil || r == nil {
			return err // deleted: its usage goes with it
		}
		u, err := getUsage(ctx, s, role)
		if err != nil {
			return err
		}
		u.add(d)
		return putJSON(ctx, s, usagePrefix+role, u)
	}()
	if err != nil {
		b.Logger().Warn("could not record role usage; retrying at the next flush", "role", role, "error", err)
		b.usage.mu.Lock()
		if later := b.usage.pending[role]; later != nil {
			d.add(later)
		}
		b.usage.pending[role] = d
		b.usage.mu.Unlock()
		select {
		case b.usage.wake <- struct{}{}:
		default:
		}
	}
}
