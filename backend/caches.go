package backend

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The caches below are owned by the backend and hold what the hot path would otherwise rebuild
// on every read: an HTTP client (TLS pool, CA parsing), a parsed RSA key (PKCS#8 decode and
// precomputation), a role entry. Each is dropped on the plugin's own writes; Vault Community
// Edition never calls Invalidate on a mount, so writers must clear them.

// clientCache holds one Salesforce client per connection, over transports shared by every
// connection with the same CA bundle and host rule: a transport (root pool, idle TLS
// connections) is the costly part, and it does not depend on the login host.
type clientCache struct {
	mu         sync.Mutex
	m          map[string]*salesforce.Client
	transports map[transportKey]*salesforce.Transport
}

type transportKey struct {
	ca       [sha256.Size]byte
	allowAny bool
}

func newClientCache() *clientCache {
	return &clientCache{m: map[string]*salesforce.Client{}, transports: map[transportKey]*salesforce.Transport{}}
}

// drop forgets a connection's client; its transport stays for the others that share it.
func (c *clientCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

func (c *clientCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.transports {
		t.Close()
	}
	c.m = map[string]*salesforce.Client{}
	c.transports = map[transportKey]*salesforce.Transport{}
}

// client returns the Salesforce client of a connection.
func (b *backend) client(name string, conn *connectionEntry) (*salesforce.Client, error) {
	c := b.clients
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[name]; ok {
		return cl, nil
	}
	key := transportKey{ca: sha256.Sum256([]byte(conn.CACert)), allowAny: conn.AllowNonSalesforceHost}
	t, ok := c.transports[key]
	if !ok {
		var err error
		if t, err = salesforce.NewTransport(conn.CACert, conn.AllowNonSalesforceHost, b.retry); err != nil {
			return nil, err
		}
		c.transports[key] = t
	}
	cl := salesforce.NewClient(conn.LoginURL, userAgent(), b.retry, t)
	c.m[name] = cl
	return cl, nil
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
