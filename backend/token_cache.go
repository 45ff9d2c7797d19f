package backend

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// mintedToken is an access token with what Vault knows of its life. Salesforce reports no
// expiry: expiresAt is issue time + the role's session_timeout, a conservative estimate
// (the session is an idle timeout that each use extends).
type mintedToken struct {
	token      salesforce.Token
	username   string // who the token acts for
	roleUser   string // the role's username it was minted for ("" on client credentials)
	connection string
	keyVersion int
	// originID and client are where the token was issued: it is revoked there, whatever the
	// connection names by then.
	originID  string
	client    *salesforce.Client
	issuedAt  time.Time
	expiresAt time.Time
	// cacheHits counts the reads a shared token serves from the cache (set before it is cached).
	cacheHits *counter
}

// flightKey joins concurrent cold reads of a role into one mint, but only readers of the same
// role content: a reader who sees a changed username or connection must not be handed the
// previous one's token.
func flightKey(name string, role *roleEntry, gen uint64) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%d", name, role.Connection, role.Username, gen)
}

// tokenCache holds the shared-mode token of each role. Salesforce blocks a user after 3,600
// logins an hour, so concurrent cold reads of a role must cause exactly one token request:
// singleflight joins them to the first.
type tokenCache struct {
	mu     sync.RWMutex
	m      map[string]*mintedToken
	flight singleflight.Group
	// gen counts drops per role, so a mint that started before a reset or role change does not
	// put its (now stale) token back into the cache.
	gen map[string]uint64
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: map[string]*mintedToken{}, gen: map[string]uint64{}}
}

// fresh returns the cached token of role name if it was minted for role's connection and
// username and has at least the role's ttl left at now.
func (c *tokenCache) fresh(name string, role *roleEntry, now time.Time) *mintedToken {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.m[name]
	if t == nil || t.expiresAt.Sub(now) < role.TTL || t.roleUser != role.Username || t.connection != role.Connection {
		return nil
	}
	return t
}

func (c *tokenCache) generation(role string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen[role]
}

// storeIf caches t unless the role was dropped since generation gen was read.
func (c *tokenCache) storeIf(role string, gen uint64, t *mintedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[role] == gen {
		c.m[role] = t
	}
}

// take removes and returns the cached token of role (for reset, which revokes it).
func (c *tokenCache) take(role string) *mintedToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.m[role]
	delete(c.m, role)
	c.gen[role]++
	return t
}

func (c *tokenCache) drop(role string) { c.take(role) }

func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for role := range c.m {
		c.gen[role]++
	}
	c.m = map[string]*mintedToken{}
}
