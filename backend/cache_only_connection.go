package backend

import (
	"context"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// A cache-only key belongs to one connection: it is served to that org's Named Credential. A
// key that outlived its connection would still be served for an org Vault no longer manages,
// and a connection made anew under the name would inherit it. So a connection is deleted only
// once its keys are destroyed; destroyed keys stay as tombstones (no data key) that keep their
// kid reserved in the mount and answer Salesforce 404.

// cacheOnlyKeyWithSecret is a key and its sealed entry (nil: none).
type cacheOnlyKeyWithSecret struct {
	key    *cacheOnlyKey
	secret *cacheOnlySecret
}

// cacheOnlyKeysOf is connection name's keys, destroyed ones included, sorted by kid. Keys are
// stored mount-wide (the callout names only the kid), so this reads them all.
func cacheOnlyKeysOf(ctx context.Context, s logical.Storage, name string) ([]cacheOnlyKeyWithSecret, error) {
	kids, err := s.List(ctx, cacheOnlyPrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(kids)
	var out []cacheOnlyKeyWithSecret
	for _, kid := range kids {
		k, err := cacheOnlyKeyOf(ctx, s, name, kid)
		if err != nil {
			return nil, err
		}
		if k == nil {
			continue
		}
		sec, err := getCacheOnlySecret(ctx, s, k)
		if err != nil {
			return nil, err
		}
		out = append(out, cacheOnlyKeyWithSecret{key: k, secret: sec})
	}
	return out, nil
}

// liveCacheOnlyKeysRefusal is the 400 of a connection delete while the connection has cache-only
// keys that are not destroyed, or nil. The caller holds the connection's lock, which a key's
// create also takes, so no key appears between this check and the delete.
func liveCacheOnlyKeysRefusal(ctx context.Context, s logical.Storage, name string) (*logical.Response, error) {
	keys, err := cacheOnlyKeysOf(ctx, s, name)
	if err != nil {
		return nil, err
	}
	var live []string
	for _, k := range keys {
		if k.key.status(k.secret) == cacheOnlyActive {
			live = append(live, k.key.Kid)
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	return logical.ErrorResponse("connection %q still serves cache-only key(s) %s to Salesforce: destroy them first (vault delete <mount>/connections/%s/cache-only-keys/<kid>; Salesforce can then no longer decrypt what it encrypted under them, so re-encrypt under another key first), then delete the connection",
		name, strings.Join(live, ", "), name), nil
}

// lockConnWith takes the lock of connection conn together with the lock of an entry that
// belongs to it (a cache-only key, a tenant-secret type), for a create: the connection delete
// holds the connection's lock while it looks for what would be stranded. The two names may
// share a lock; LocksForKeys gives each lock once, in table order, so this cannot deadlock with
// itself or another two-name locker.
func (b *backend) lockConnWith(conn, entry string) (unlock func()) {
	locks := locksutil.LocksForKeys(b.connLocks, []string{conn, entry})
	for _, l := range locks {
		l.Lock()
	}
	return func() {
		for i := len(locks) - 1; i >= 0; i-- {
			locks[i].Unlock()
		}
	}
}
