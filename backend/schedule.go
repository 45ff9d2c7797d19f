package backend

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// schedule is the in-memory queue of connections that have rotation work coming: a rotation to
// start, a step to retry, archived keys to destroy. It is built once at initialisation (like
// openldap's rotation queue), kept current by every write, and lets a periodic tick cost
// O(due) instead of a storage scan of every connection.
//
// Why not the SDK's sdk/queue, which openldap uses: it has no peek (a tick would pop every
// head and push back the ones not due), its Push deep-copies each item by reflection
// (copystructure), costly when 10,000 connections are loaded at start, and an update is a
// PopByKey and a Push under two locks, so a concurrent tick can miss the connection between
// them. The heap below is container/heap with an index: set is one atomic update.
type schedule struct {
	mu     sync.Mutex
	h      schedHeap
	index  map[string]*schedItem
	loaded bool
}

type schedItem struct {
	name string
	at   time.Time
	pos  int
}

type schedHeap []*schedItem

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h schedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].pos = i; h[j].pos = j }
func (h *schedHeap) Push(x any)        { it := x.(*schedItem); it.pos = len(*h); *h = append(*h, it) }
func (h *schedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

func newSchedule() *schedule { return &schedule{index: map[string]*schedItem{}} }

// set schedules name at t, or unschedules it when t is zero.
func (s *schedule) set(name string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.index[name]
	switch {
	case t.IsZero() && ok:
		heap.Remove(&s.h, it.pos)
		delete(s.index, name)
	case t.IsZero():
	case ok:
		it.at = t
		heap.Fix(&s.h, it.pos)
	default:
		it = &schedItem{name: name, at: t}
		heap.Push(&s.h, it)
		s.index[name] = it
	}
}

// due removes and returns the names scheduled at or before now, earliest first.
func (s *schedule) due(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for len(s.h) > 0 && !s.h[0].at.After(now) {
		it := heap.Pop(&s.h).(*schedItem)
		delete(s.index, it.name)
		out = append(out, it.name)
	}
	return out
}

func (s *schedule) isLoaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loaded
}

func (s *schedule) markLoaded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
}

func (s *schedule) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.h)
}

// loadSchedule builds the schedule from storage: one pass over the connections at
// initialisation (and after a crash-restart or reload, which re-run it).
func (b *backend) loadSchedule(ctx context.Context, s logical.Storage) error {
	names, err := s.List(ctx, connectionsPrefix)
	if err != nil {
		return err
	}
	for _, name := range names {
		conn, err := getConnection(ctx, s, name)
		if err != nil {
			return err
		}
		ring, err := getKeyRing(ctx, s, name)
		if err != nil {
			return err
		}
		if conn != nil && ring != nil {
			b.scheduleConnection(name, conn, ring)
		}
		if conn != nil && conn.consumerRotatable() {
			if err := b.scheduleCredentials(ctx, s, name, conn); err != nil {
				return err
			}
		}
	}
	if err := b.loadTenantSecretSchedule(ctx, s); err != nil {
		return err
	}
	b.sched.markLoaded()
	return nil
}

func (b *backend) scheduleConnection(name string, conn *connectionEntry, ring *keyRing) {
	b.metrics.keyRing(name, conn, ring, b.now())
	if conn == nil || ring == nil {
		b.sched.set(name, time.Time{})
		return
	}
	b.sched.set(name, nextRotationWork(conn, ring, b.now()))
}

func (b *backend) unscheduleConnection(name string) {
	b.sched.set(name, time.Time{})
	b.metrics.forgetConnection(name)
	b.events.forgetConnection(name)
	b.orgUsage.forget(name)
}

// nextRotationWork is when the connection next needs the periodic func: zero for never.
func nextRotationWork(conn *connectionEntry, ring *keyRing, now time.Time) time.Time {
	st := ring.Rotation
	switch st.State {
	case stateDeploying, stateVerifying, statePromoting, stateRollingBack:
		if st.NextAttemptAt.IsZero() {
			return now
		}
		return st.NextAttemptAt
	case stateFailed:
		// A stalled rotation keeps being probed, slowly. After a rollback nothing is pending,
		// and the next rotation is due as when idle, after a backoff.
		if ring.stalled() {
			return laterOf(st.NextAttemptAt, now)
		}
	}
	if len(ring.archived()) > conn.KeepArchivedKeys {
		return now
	}
	at, _ := nextStartAt(conn, ring, now)
	return at
}

// nextStartAt is when the next rotation should start, and why: at once when the active key is
// bound to an origin the connection no longer names (a re-key), else when the schedule says;
// after a failure, not before its backoff. Zero: never.
func nextStartAt(conn *connectionEntry, ring *keyRing, now time.Time) (time.Time, string) {
	var at time.Time
	trigger := triggerScheduled
	if a := ring.active(); a != nil && !ring.boundToCurrent(a, conn) {
		at, trigger = a.CreatedAt, triggerOriginChange
	} else {
		at = scheduledRotationAt(conn, ring, now)
	}
	if !at.IsZero() && ring.Rotation.State == stateFailed {
		at = laterOf(at, ring.Rotation.LastAttemptAt.Add(failureBackoff(ring.Rotation.Failures)))
	}
	return at, trigger
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
