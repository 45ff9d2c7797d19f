// Package backend is the Salesforce secrets engine: connections (an org reached through a
// Connected App, with a ring of Vault-generated RSA keys), roles (a username and a caching
// policy) and creds (access tokens minted with the OAuth 2.0 JWT bearer flow).
package backend

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/version"
)

// operationPrefix names every OpenAPI operation of this engine (salesforce-read-connection, …).
const operationPrefix = "salesforce"

// Storage prefixes. Private key material lives only under keysPrefix, which is seal-wrapped on
// Vault Enterprise; everything else is metadata. No WALs are used: the key ring is the journal.
const (
	connectionsPrefix = "connections/"
	keyringPrefix     = "keyring/"
	keysPrefix        = "keys/"
	rolesPrefix       = "roles/"
	secretsPrefix     = "secrets/" // consumer secrets; seal-wrapped like keys/
	usagePrefix       = "usage/"
	credRingPrefix    = "credrings/" // consumer credential versions and their rotation; no secrets
)

type backend struct {
	*framework.Backend

	// connLocks serialise writes to one connection, its key ring and its rotation; role writes
	// take the read side of their connection's lock so a connection cannot vanish under them.
	connLocks []*locksutil.LockEntry
	// roleLocks serialise writes to one role and its usage counters.
	roleLocks []*locksutil.LockEntry

	// The read path's caches. Both are generation-guarded (entry_cache.go) and dropped by the
	// put and delete of what they hold; Vault Community Edition never calls Invalidate on a
	// mount, so writers must drop them.
	roles *entryCache[*roleEntry]    // role entries, the first read of every creds request
	snaps *entryCache[*connSnapshot] // one immutable snapshot per connection: entry, keys, clients
	// transports are the HTTP plumbing clients are built on, keyed by CA bundle and host rule.
	transports *transportPool
	tokens     *tokenCache   // shared-mode access tokens per role
	idents     identities    // run-as usernames of client-credentials tokens, by identity URL
	usage      *usageLog     // role usage not yet written, and its flusher
	rotor      *rotationRuns // connections whose rotation is being driven right now
	sched      *schedule     // when each connection next needs rotation work
	metrics    *metrics      // this mount's Prometheus metrics (metrics.go)
	events     *eventLog     // this mount's Vault events (events.go)
	orgUsage   orgUsageCache // each connection's last Salesforce-side usage answer (path_usage.go)

	now func() time.Time
	// retry bounds every Salesforce call; tests shorten it.
	retry salesforce.RetryPolicy
	// sleep waits between rotation steps; tests replace it to run without real waits.
	sleep func(context.Context, time.Duration) error

	// ctx lives as long as the backend; background work stops when Clean cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Factory is what Vault calls to make one backend per mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if conf.System != nil {
		cp := *conf
		cp.System = newCachedSystemView(conf.System, time.Now)
		conf = &cp
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend() *backend {
	b := &backend{
		connLocks:  locksutil.CreateLocks(),
		roleLocks:  locksutil.CreateLocks(),
		roles:      newEntryCache[*roleEntry](),
		snaps:      newEntryCache[*connSnapshot](),
		transports: newTransportPool(),
		tokens:     newTokenCache(),
		usage:      newUsageLog(),
		rotor:      newRotationRuns(),
		sched:      newSchedule(),
		sleep:      sleepCtx,
		now:        time.Now,
		retry:      salesforce.DefaultRetry(),
	}
	b.metrics = newMetrics(func() time.Time { return b.now() })
	b.events = newEventLog(b)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{keysPrefix, secretsPrefix},
			// Salesforce's cache-only key callout: authenticated by the key's own secret.
			Unauthenticated: []string{"cache-only/*"},
		},
		Paths: framework.PathAppend(
			// The SDK tries the patterns in this order on every request, first match wins:
			// creds, the path applications call, comes first (no other pattern starts like
			// it); then specific patterns before generic ones.
			pathCreds(b),
			pathKeys(b),
			pathRotation(b),
			pathCredentials(b),
			pathCacheOnly(b),
			pathTenantSecrets(b),
			pathUsage(b),
			pathConnections(b),
			pathRoles(b),
			[]*framework.Path{pathInfo(b)},
			[]*framework.Path{pathMetrics(b)},
		),
		Secrets:        []*framework.Secret{secretToken(b)},
		PeriodicFunc:   b.periodic,
		InitializeFunc: b.initialize,
		Clean:          b.clean,
		Invalidate:     b.invalidate,
		RunningVersion: version.Version,
	}
	return b
}

func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	return b.loadSchedule(ctx, req.Storage)
}

// clean stops background work and drops every cache (unmount, seal, step-down, reload).
func (b *backend) clean(context.Context) {
	b.cancel()
	b.wg.Wait()
	b.usage.wait()
	b.events.wait()
	b.roles.clear()
	b.snaps.clear()
	b.tokens.clear()
	b.transports.clear()
}

// invalidate is called when storage changes under us through replication (Enterprise).
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case strings.HasPrefix(key, connectionsPrefix):
		b.snaps.drop(strings.TrimPrefix(key, connectionsPrefix))
	case strings.HasPrefix(key, keyringPrefix):
		b.snaps.drop(strings.TrimPrefix(key, keyringPrefix))
	case strings.HasPrefix(key, credRingPrefix):
		b.snaps.drop(strings.TrimPrefix(key, credRingPrefix))
	case strings.HasPrefix(key, rolesPrefix):
		name := strings.TrimPrefix(key, rolesPrefix)
		b.roles.drop(name)
		b.tokens.drop(name)
	}
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (b *backend) connLock(name string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.connLocks, name)
}

func (b *backend) roleLock(name string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.roleLocks, name)
}

// lockConn takes the write lock of connection name and returns its unlock.
func (b *backend) lockConn(name string) (unlock func()) {
	lock := b.connLock(name)
	lock.Lock()
	return lock.Unlock
}

// lockRole takes the write lock of role name and returns its unlock.
func (b *backend) lockRole(name string) (unlock func()) {
	lock := b.roleLock(name)
	lock.Lock()
	return lock.Unlock
}

const backendHelp = `
The Salesforce secrets engine mints short-lived Salesforce access tokens with the OAuth 2.0 JWT
bearer flow. The RSA keys that sign the JWT assertions are generated inside Vault and never leave
it: operators register only the X.509 certificate on the Salesforce Connected App (or External
Client App). Keys are versioned and can be rotated automatically with no outage.

Start with "connections/<name>" (the org and app), register the certificate it returns on the
app, define "roles/<name>" (the Salesforce username and caching policy), then read
"creds/<name>" to get a token.
`
