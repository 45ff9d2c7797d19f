package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// crashStorage dies (every later write fails) at its n-th Put: a kill -9 just before that write.
type crashStorage struct {
	logical.Storage
	mu   sync.Mutex
	n    int
	puts int
	dead bool
}

var errCrashed = errors.New("crashed")

func (c *crashStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	c.mu.Lock()
	c.puts++
	if c.n > 0 && c.puts >= c.n {
		c.dead = true
	}
	dead := c.dead
	c.mu.Unlock()
	if dead {
		return errCrashed
	}
	return c.Storage.Put(ctx, e)
}

func (c *crashStorage) Delete(ctx context.Context, k string) error {
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead {
		return errCrashed
	}
	return c.Storage.Delete(ctx, k)
}

func (c *crashStorage) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

// crashPlan is a kill -9 before every storage write of one operation (a rotation, a
// registration): crashAtEveryWrite runs it.
type crashPlan[E interface{ env() *testEnv }] struct {
	// minWrites is the fewest writes an uninterrupted op may make: fewer means the plan does
	// not exercise what it claims.
	minWrites int
	fresh     func(t *testing.T) E
	// op runs the operation on s; it stops at the first write that fails.
	op func(e E, s *crashStorage)
	// counted, if set, asserts what the uninterrupted run did.
	counted func(t *testing.T, e E)
	// resume asserts the state a crash before write n (of total) left, then restarts the
	// backend on the same storage and asserts the operation completes exactly once.
	resume func(t *testing.T, e E, n, total int)
}

// crashAtEveryWrite counts the writes of one uninterrupted op on a fresh environment, then, for
// every write n, runs op on another fresh environment whose storage dies just before write n,
// and hands it to resume.
func crashAtEveryWrite[E interface{ env() *testEnv }](t *testing.T, p crashPlan[E]) {
	t.Helper()
	e := p.fresh(t)
	counting := &crashStorage{Storage: e.env().storage}
	p.op(e, counting)
	total := counting.puts
	if total < p.minWrites {
		t.Fatalf("setup: an uninterrupted run made %d writes, want at least %d", total, p.minWrites)
	}
	if p.counted != nil {
		p.counted(t, e)
	}
	for n := 1; n <= total; n++ {
		t.Run(fmt.Sprintf("crash before write %d", n), func(t *testing.T) {
			e := p.fresh(t)
			crashing := &crashStorage{Storage: e.env().storage, n: n}
			p.op(e, crashing)
			if !crashing.isDead() {
				t.Fatalf("the operation finished before write %d", n)
			}
			p.resume(t, e, n, total)
		})
	}
}

// env lets crash plans take a testEnv or an environment that embeds one.
func (e *testEnv) env() *testEnv { return e }
