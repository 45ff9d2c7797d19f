package backend

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// keyCountingStorage counts reads and writes per key, and can fail the next writes to a prefix.
type keyCountingStorage struct {
	logical.Storage
	mu         sync.Mutex
	gets, puts map[string]int
	failPuts   map[string]int // prefix -> how many more puts to refuse
}

func newKeyCountingStorage(s logical.Storage) *keyCountingStorage {
	return &keyCountingStorage{Storage: s, gets: map[string]int{}, puts: map[string]int{}, failPuts: map[string]int{}}
}

func (s *keyCountingStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.mu.Lock()
	s.gets[k]++
	s.mu.Unlock()
	return s.Storage.Get(ctx, k)
}

func (s *keyCountingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.mu.Lock()
	s.puts[e.Key]++
	for prefix, n := range s.failPuts {
		if n > 0 && strings.HasPrefix(e.Key, prefix) {
			s.failPuts[prefix] = n - 1
			s.mu.Unlock()
			return errors.New("storage unavailable")
		}
	}
	s.mu.Unlock()
	return s.Storage.Put(ctx, e)
}

// counts returns the calls on keys with a prefix, and resets every count.
func (s *keyCountingStorage) counts(prefix string) (gets, puts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, n := range s.gets {
		if strings.HasPrefix(k, prefix) {
			gets += n
		}
	}
	for k, n := range s.puts {
		if strings.HasPrefix(k, prefix) {
			puts += n
		}
	}
	return gets, puts
}

func (s *keyCountingStorage) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets, s.puts = map[string]int{}, map[string]int{}
}

// mintVia reads creds/<role> through a given storage (the testEnv helpers use their own).
func (e *testEnv) mintVia(s logical.Storage, role string) {
	e.t.Helper()
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
		Path: "creds/" + role, Storage: s, Connection: &logical.Connection{RemoteAddr: "127.0.0.1"}})
	if err != nil || resp == nil || resp.IsError() {
		e.t.Fatalf("creds/%s: %v %v", role, err, resp)
	}
}

func storedUsage(t *testing.T, s logical.Storage, role string) *usageEntry {
	t.Helper()
	u, err := getUsage(context.Background(), s, role)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Concurrent mints of one role neither wait on each other's storage writes nor lose a count:
// a role read sees all of them at once, and storage has all of them after the flush.
func TestUsageCountsEveryConcurrentMint(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("c", nil)
	e.createRole("r", "c", map[string]any{"token_mode": "per_lease"})
	const readers = 30
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.mintVia(e.storage, "r")
		}()
	}
	wg.Wait()
	if got := mustOK(t, e.read("roles/r")).Data["tokens_minted"]; got != int64(readers) {
		t.Fatalf("role read right after the mints: tokens_minted = %v, want %d", got, readers)
	}
	e.b.flushUsage(context.Background())
	if u := storedUsage(t, e.storage, "r"); u.TokensMinted != readers || u.LastKeyVersion != 1 || u.LastMintedAt.IsZero() {
		t.Fatalf("stored usage after the flush: %+v", u)
	}
	if got := mustOK(t, e.read("roles/r")).Data["tokens_minted"]; got != int64(readers) {
		t.Fatalf("role read after the flush counts twice or loses: %v", got)
	}
}

// A warm per_lease mint touches no storage on the read path: the connection and key ring come
// from the cache, usage is written by the flusher, at most once per interval.
func TestMintPathStorageCalls(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("c", nil)
	e.createRole("r", "c", map[string]any{"token_mode": "per_lease"})
	s := newKeyCountingStorage(e.storage)
	e.mintVia(s, "r") // warms the caches
	e.b.flushUsage(context.Background())
	s.reset()

	const mints = 20
	start := time.Now()
	for range mints {
		e.mintVia(s, "r")
	}
	took := time.Since(start)
	for _, prefix := range []string{connectionsPrefix, keyringPrefix, rolesPrefix, keysPrefix} {
		if gets, puts := s.counts(prefix); gets != 0 || puts != 0 {
			t.Errorf("%d warm mints read %s %d times and wrote it %d times, want 0", mints, prefix, gets, puts)
		}
	}
	// The flusher writes when woken, then waits an interval: at most one write per interval
	// started, plus the first.
	_, puts := s.counts(usagePrefix)
	if limit := 2 + int(took/usageFlushInterval); puts > limit {
		t.Errorf("%d mints in %s wrote usage %d times, want at most %d", mints, took.Round(time.Millisecond), puts, limit)
	}
	if got := mustOK(t, e.read("roles/r")).Data["tokens_minted"]; got != int64(mints+1) {
		t.Errorf("tokens_minted = %v, want %d", got, mints+1)
	}

	// A change to the connection is seen by the next mint: an unknown consumer key is refused.
	mustOK(t, e.write("connections/c", map[string]any{"consumer_key": "3MVG9unknownKey"}))
	e.createRole("p", "c", map[string]any{"token_mode": "per_lease"})
	mustErr(t, e.read("creds/p"), "invalid_client_id")
}

// Usage of a role deleted before the flush is dropped, not written back as an orphan entry.
func TestUsageOfDeletedRoleNotWritten(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("c", nil)
	e.createRole("r", "c", map[string]any{"token_mode": "per_lease"})
	// A mint that finishes after the delete records usage for a role that is gone.
	e.b.usage.start.Do(func() {}) // no background flusher: this test flushes by hand
	e.del("roles/r")
	e.b.recordMinted(e.storage, "r", 1, e.clock.Now())
	e.b.flushUsage(context.Background())
	if entry, err := e.storage.Get(context.Background(), usagePrefix+"r"); err != nil || entry != nil {
		t.Fatalf("usage of a deleted role written: %v %v", entry, err)
	}
}

// A failed usage write is retried at the next flush with the counts of both.
func TestUsageFlushRetriesAfterStorageError(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("c", nil)
	e.createRole("r", "c", map[string]any{"token_mode": "per_lease"})
	s := newKeyCountingStorage(e.storage)
	s.failPuts[usagePrefix] = 1
	e.b.usage.start.Do(func() {}) // no background flusher: this test flushes by hand
	e.b.recordMinted(s, "r", 1, e.clock.Now())
	e.b.flushUsage(context.Background()) // refused
	if u := storedUsage(t, e.storage, "r"); u.TokensMinted != 0 {
		t.Fatalf("refused write stored something: %+v", u)
	}
	e.b.recordMinted(s, "r", 1, e.clock.Now())
	if got := mustOK(t, e.read("roles/r")).Data["tokens_minted"]; got != int64(2) {
		t.Fatalf("role read while the write is pending: %v, want 2", got)
	}
	e.b.flushUsage(context.Background())
	if u := storedUsage(t, e.storage, "r"); u.TokensMinted != 2 {
		t.Fatalf("after the retry: %+v, want 2 minted", u)
	}
}

// Cleanup (unmount, seal, reload) writes what is pending before the backend goes away.
func TestUsageFlushedOnCleanup(t *testing.T) {
	e := newTestEnv(t)
	e.createConnection("c", nil)
	e.createRole("r", "c", map[string]any{"token_mode": "per_lease"})
	e.mintVia(e.storage, "r")
	e.mintVia(e.storage, "r")
	e.b.Cleanup(context.Background())
	if u := storedUsage(t, e.storage, "r"); u.TokensMinted != 2 {
		t.Fatalf("after Cleanup: %+v, want 2 minted", u)
	}
}
