package backend

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// A fill that started before a change must not land: otherwise the cache keeps the old entry
// until the next write.
func TestEntryCacheStaleFillDiscarded(t *testing.T) {
	old := "old"
	cases := []struct {
		name   string
		change func(c *entryCache[*string])
		want   *string // what lookup returns after the late fill; nil: a miss
	}{
		{"drop after the ticket", func(c *entryCache[*string]) { c.drop("k") }, nil},
		{"clear after the ticket", func(c *entryCache[*string]) { c.clear() }, nil},
		{"another name changed", func(c *entryCache[*string]) { c.drop("other") }, nil}, // one generation per cache
		{"nothing changed", func(*entryCache[*string]) {}, &old},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := newEntryCache[*string]()
			ticket := cache.ticket()
			c.change(cache)
			cache.fill("k", ticket, &old) // the reader's value, read before the change
			got, ok := cache.lookup("k")
			if c.want == nil {
				if ok {
					t.Fatalf("a stale fill landed: %q", *got)
				}
				return
			}
			if !ok || got != c.want {
				t.Fatalf("lookup = %v, %v; want %q", got, ok, *c.want)
			}
		})
	}
}

func TestReadThroughCachesOnlyFoundEntries(t *testing.T) {
	cache := newEntryCache[*string]()
	var reads atomic.Int32
	v := "v"
	found := func() (*string, error) { reads.Add(1); return &v, nil }
	missing := func() (*string, error) { reads.Add(1); return nil, nil }
	failing := func() (*string, error) { reads.Add(1); return nil, fmt.Errorf("storage down") }

	for range 3 {
		if got, err := readThrough(cache, "missing", missing); got != nil || err != nil {
			t.Fatalf("missing: %v %v", got, err)
		}
		if _, err := readThrough(cache, "failing", failing); err == nil {
			t.Fatal("failing: no error")
		}
		if got, err := readThrough(cache, "found", found); got != &v || err != nil {
			t.Fatalf("found: %v %v", got, err)
		}
	}
	// found is read once; missing and failing every time (a new entry must be seen at once).
	if n := reads.Load(); n != 1+3+3 {
		t.Fatalf("storage reads = %d, want 7", n)
	}
}

// Writers and readers race on one connection through the real storage helpers: once the
// writers stop, the mint path's snapshot must hold the last write, not a stale fill.
func TestConnectionSnapshotNeverKeepsAStaleEntry(t *testing.T) {
	b := newBackend()
	s := &logical.InmemStorage{}
	ctx := context.Background()
	conn := &connectionEntry{LoginURL: "https://login.salesforce.com", KeyType: "rsa-2048", CertificateTTL: defaultCertificateTTL}
	ring := &keyRing{}
	v, err := b.newKeyVersion(ctx, s, "c", conn, ring, statusActive, keySource{})
	if err != nil {
		t.Fatal(err)
	}
	ring.Versions = []*keyVersion{v}
	if err := b.putKeyRing(ctx, s, "c", ring); err != nil {
		t.Fatal(err)
	}
	write := func(i int) {
		c := *conn
		c.ConsumerKey = fmt.Sprintf("key%04d", i)
		if err := b.putConnection(ctx, s, "c", &c); err != nil {
			t.Error(err)
		}
	}
	write(0)
	const writes = 300
	var wg sync.WaitGroup
	var stop atomic.Bool
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := b.snapshot(ctx, s, "c"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 1; i <= writes; i++ {
		write(i)
	}
	stop.Store(true)
	wg.Wait()
	got, err := b.snapshot(ctx, s, "c")
	if err != nil || got == nil || got.entry.ConsumerKey != fmt.Sprintf("key%04d", writes) {
		t.Fatalf("after the last write the mint path sees %+v (%v)", got, err)
	}
}
