package backend

import "sync"

// entryCache holds decoded storage entries by name for the read path. Cached values are shared:
// callers must not modify them (writers read their own copy from storage).
//
// A reader that misses reads storage and then fills the cache. A write that lands in between
// must win, or the cache would keep the old entry until the next write. So every change (drop,
// clear) bumps a generation, a reader takes a ticket before it reads storage, and its
// fill is kept only if nothing changed since. The generation is one for the whole cache, not
// per name: writes are rare (configuration, rotation steps), and a fill lost to another name's
// write costs one more storage read later, while a counter per name would cost memory for
// every role and connection ever read.
type entryCache[T any] struct {
	mu  sync.RWMutex
	m   map[string]T
	gen uint64
}

// fillTicket is what a reader holds between its storage read and its fill.
type fillTicket uint64

func newEntryCache[T any]() *entryCache[T] {
	return &entryCache[T]{m: map[string]T{}}
}

func (c *entryCache[T]) lookup(name string) (T, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[name]
	return v, ok
}

// ticket is taken before reading storage for a fill.
func (c *entryCache[T]) ticket() fillTicket {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return fillTicket(c.gen)
}

// fill caches a value read from storage, unless the cache changed since the ticket was taken.
func (c *entryCache[T]) fill(name string, t fillTicket, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if uint64(t) == c.gen {
		c.m[name] = v
	}
}

// drop forgets a name after a write or delete; the next read goes to storage.
func (c *entryCache[T]) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, name)
}

// readThrough returns name's cached entry, or reads it and fills the cache with it. A missing
// entry (nil) is not cached, so a new one is seen at once.
func readThrough[T any](c *entryCache[*T], name string, read func() (*T, error)) (*T, error) {
	if v, ok := c.lookup(name); ok {
		return v, nil
	}
	t := c.ticket()
	v, err := read()
	if err == nil && v != nil {
		c.fill(name, t, v)
	}
	return v, err
}

func (c *entryCache[T]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = map[string]T{}
}
