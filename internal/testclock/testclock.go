// Package testclock is a settable clock for tests that walk through token expiry, rotation
// schedules and certificate propagation without sleeping.
package testclock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use; pass its Now method wherever a func() time.Time is taken.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock stopped at t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
