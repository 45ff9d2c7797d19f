package backend

import (
	"context"
	"crypto/rsa"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The caches below are owned by the backend and hold what the hot path would otherwise rebuild
// on every read: an HTTP client (TLS pool, CA parsing), a parsed RSA key (PKCS#8 decode and
// precomputation), a role entry. Each is dropped on the plugin's own writes; Vault Community
// Edition never calls Invalidate on a mount, so writers must clear them.

// clientCache holds one Salesforce client per connection.
type clientCache struct {
	mu sync.Mutex
	m  map[string]*salesforce.Client
}

func newClientCache() *clientCache { return &clientCache{m: map[string]*salesforce.Client{}} }

func (c *clientCache) get(name string, build func() (*salesforce.Client, error)) (*salesforce.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[name]; ok {
		return cl, nil
	}
	cl, err := build()
	if err != nil {
		return nil, err
	}
	c.m[name] = cl
	return cl, nil
}

func (c *clientCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[name]; ok {
		cl.Close()
		delete(c.m, name)
	}
}

func (c *clientCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, cl := range c.m {
		cl.Close()
		delete(c.m, name)
	}
}

// client returns the Salesforce client of a connection.
func (b *backend) client(name string, conn *connectionEntry) (*salesforce.Client, error) {
	return b.clients.get(name, func() (*salesforce.Client, error) {
		return b.newClient(salesforce.Options{
			LoginURL:               conn.LoginURL,
			CACertPEM:              conn.CACert,
			AllowNonSalesforceHost: conn.AllowNonSalesforceHost,
			UserAgent:              userAgent(),
			Retry:                  b.retry,
		})
	})
}

// signerCache holds parsed private keys by connection and version.
type signerCache struct {
	mu sync.RWMutex
	m  map[string]map[int]*rsa.PrivateKey
}

func newSignerCache() *signerCache { return &signerCache{m: map[string]map[int]*rsa.PrivateKey{}} }

func (c *signerCache) lookup(conn string, version int) *rsa.PrivateKey {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[conn][version]
}

func (c *signerCache) store(conn string, version int, key *rsa.PrivateKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[conn] == nil {
		c.m[conn] = map[int]*rsa.PrivateKey{}
	}
	c.m[conn][version] = key
}

func (c *signerCache) drop(conn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, conn)
}

func (c *signerCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[string]map[int]*rsa.PrivateKey{}
}

// signer returns the private key of a connection's key version, parsing it once.
func (b *backend) signer(ctx context.Context, s logical.Storage, conn string, version int) (*rsa.PrivateKey, error) {
	if k := b.signers.lookup(conn, version); k != nil {
		return k, nil
	}
	k, err := getKeyMaterial(ctx, s, conn, version)
	if err != nil {
		return nil, err
	}
	b.signers.store(conn, version, k)
	return k, nil
}

// roleCache holds role entries; a miss is not cached, so a new role is seen at once.
type roleCache struct {
	mu sync.RWMutex
	m  map[string]*roleEntry
}

func newRoleCache() *roleCache { return &roleCache{m: map[string]*roleEntry{}} }

func (c *roleCache) lookup(name string) *roleEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[name]
}

func (c *roleCache) store(name string, r *roleEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = r
}

func (c *roleCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

func (c *roleCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[string]*roleEntry{}
}
