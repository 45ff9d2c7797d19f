package backend

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"unique"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// origin is where a key may sign for: the token endpoint, the JWT audience and the trust
// settings that decide which host answers. (allow_community_login is not one: it only gates
// which login_url may be written, and login_url is part of the origin already.) A key is bound to the origin it was made for
// (keyVersion.BoundOrigin) and never signs for another one, so a connection re-pointed at a new
// host cannot send an assertion that the real org accepts there, nor a token to be revoked.
type origin struct {
	LoginURL               string `json:"login_url"`
	Audience               string `json:"audience"`
	CACert                 string `json:"ca_cert,omitempty"`
	AllowNonSalesforceHost bool   `json:"allow_non_salesforce_host"`
}

// originOf is the origin a connection's settings name now.
func originOf(c *connectionEntry) *origin {
	return &origin{LoginURL: c.LoginURL, Audience: c.audience(), CACert: c.CACert, AllowNonSalesforceHost: c.AllowNonSalesforceHost}
}

// id names an origin in storage and leases: a hash of every field, so that any change of
// endpoint, audience or trust is a different origin.
func (o *origin) id() string {
	b, _ := json.Marshal(o) // a struct of strings and bools: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// connSnapshot is everything a mint reads of one connection, taken from storage at one moment:
// the entry, the keys that may sign and, for each, the client for the origin it is bound to.
// It is immutable; every write that changes what a mint reads drops it (putConnection,
// putKeyRing, deletes), and a reader that holds an old one finishes with it.
type connSnapshot struct {
	name    string
	entry   *connectionEntry
	active  *signingKey   // nil: the connection has no key that may sign
	pending *signingKey   // nil: no rotation in flight
	cc      *consumerPair // auth_flow=client_credentials: the consumer pair; nil otherwise
	// issuer is the iss of a jwt_bearer connection's assertions (jwtIssuer); "": consumer_key.
	issuer string
	// origins are every origin the ring has bound a key to, by id: where a token minted with
	// any of them is revoked.
	origins map[string]*origin
	// legacyOrigin is where leases that recorded no origin (older releases) were issued.
	legacyOrigin string
}

// signingKey is one key version ready to sign, with the client of the origin it is bound to.
type signingKey struct {
	version  int
	key      *rsa.PrivateKey
	origin   *origin
	originID string
	client   *salesforce.Client
}

// snapshot returns the mint path's view of a connection (nil when it does not exist), reading
// storage only when no current one is cached.
func (b *backend) snapshot(ctx context.Context, s logical.Storage, name string) (*connSnapshot, error) {
	return readThrough(b.snaps, name, func() (*connSnapshot, error) {
		conn, ring, err := b.loadConnection(ctx, s, name)
		if err != nil || conn == nil || (ring == nil && !conn.clientCredentials()) {
			return nil, err
		}
		// Most connections of a mount share one CA bundle (or none): keep one copy.
		conn.CACert = unique.Make(conn.CACert).Value()
		return b.buildSnapshot(ctx, s, name, conn, ring)
	})
}

// buildSnapshot makes a snapshot of entries just read from storage. Rotation steps call it
// directly on what they loaded, so that what they sign with is what they decide on.
func (b *backend) buildSnapshot(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing) (*connSnapshot, error) {
	snap := &connSnapshot{name: name, entry: conn, origins: map[string]*origin{}}
	current := originOf(conn)
	snap.origins[current.id()] = current
	snap.legacyOrigin = current.id()
	if conn.clientCredentials() {
		for _, o := range conn.PastOrigins {
			snap.origins[o.id()] = o
		}
		return snap, b.loadConsumerPair(ctx, s, snap, current)
	}
	iss, err := jwtIssuer(ctx, s, name, conn)
	if err != nil {
		return nil, err
	}
	snap.issuer = iss
	for id, o := range ring.Origins {
		snap.origins[id] = o
	}
	if ring.LegacyOrigin != "" {
		snap.legacyOrigin = ring.LegacyOrigin
	}
	for _, v := range []*keyVersion{ring.active(), ring.pending()} {
		if v == nil {
			continue
		}
		// A key signs at the origin it is bound to, whatever the connection names now: after a
		// login_url change the active key keeps serving the old origin (where the app still
		// trusts it) until a key made for the new one is proven there.
		sk, err := b.signingKeyFor(ctx, s, name, conn, ring, v)
		if err != nil {
			return nil, err
		}
		if v.Status == statusActive {
			snap.active = sk
		} else {
			snap.pending = sk
		}
	}
	return snap, nil
}

// loadConsumerPair puts the connection's consumer pair in snap, if its secret is bound to the
// connection's origin: a secret is never sent to a login_url it was not written for.
func (b *backend) loadConsumerPair(ctx context.Context, s logical.Storage, snap *connSnapshot, current *origin) error {
	sec, err := getConsumerSecret(ctx, s, snap.name)
	if err != nil || sec == nil || sec.BoundOrigin != current.id() {
		return err
	}
	client, err := b.transports.client(current, b.retry)
	if err != nil {
		return &mintRefused{fmt.Sprintf("connection %q: %s", snap.name, err)}
	}
	key := snap.entry.ConsumerKey
	if sec.FromRotation {
		key = sec.ConsumerKey // issued with its secret by a rotation; consumer_key follows it
	}
	snap.cc = &consumerPair{key: key, secret: sec.Secret, originID: current.id(), client: client}
	return nil
}

// signingKeyFor loads version v's private key and the client of the origin it is bound to.
func (b *backend) signingKeyFor(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, v *keyVersion) (*signingKey, error) {
	o, id := ring.originFor(v, conn)
	if o == nil {
		return nil, fmt.Errorf("key version %d of connection %q is bound to an origin the ring does not hold", v.Version, name)
	}
	key, err := getKeyMaterial(ctx, s, name, v.Version)
	if err != nil {
		return nil, err
	}
	client, err := b.transports.client(o, b.retry)
	if err != nil {
		return nil, &mintRefused{fmt.Sprintf("connection %q: %s", name, err)}
	}
	return &signingKey{version: v.Version, key: key, origin: o, originID: id, client: client}, nil
}

// prove makes one token request for username with key version v of the ring as loaded, at
// v's origin: the proof a rotation or a promote needs before a key may sign for reads.
func (b *backend) prove(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, ring *keyRing, v *keyVersion, username string) (*salesforce.Token, *signingKey, error) {
	k, err := b.signingKeyFor(ctx, s, name, conn, ring, v)
	if err != nil {
		return nil, nil, err
	}
	iss, err := jwtIssuer(ctx, s, name, conn)
	if err != nil {
		return nil, nil, err
	}
	snap := &connSnapshot{name: name, entry: conn, issuer: iss}
	tok, err := snap.requestToken(ctx, b, k, username)
	return tok, k, err
}

// revokeQuietly revokes a token minted only to prove a key or to deploy, where it was issued:
// it should not outlive its purpose. A failure is logged; the token dies with its session.
func (b *backend) revokeQuietly(ctx context.Context, name string, client *salesforce.Client, token string) {
	if err := client.Revoke(ctx, token); err != nil {
		b.Logger().Debug("could not revoke a probe token; it expires with its session", "connection", name, "error", err)
	}
}

// iss is the consumer key the snapshot's assertions name.
func (s *connSnapshot) iss() string {
	if s.issuer != "" {
		return s.issuer
	}
	return s.entry.ConsumerKey
}

// requestToken makes one JWT bearer request for username with key k, at k's origin.
func (s *connSnapshot) requestToken(ctx context.Context, b *backend, k *signingKey, username string) (*salesforce.Token, error) {
	assertion, err := salesforce.SignAssertion(k.key, salesforce.Claims{Issuer: s.iss(), Subject: username, Audience: k.origin.Audience}, b.now())
	if err != nil {
		return nil, fmt.Errorf("signing the assertion: %w", err)
	}
	b.metrics.login(s.name, username) // every JWT bearer request is a login for username
	return k.client.RequestToken(ctx, assertion)
}

// revokeClient is the client for the origin a token was minted at; nil when the ring no longer
// knows that origin (the connection was deleted and made anew).
func (s *connSnapshot) revokeClient(b *backend, originID string) (*salesforce.Client, error) {
	o := s.origins[originID]
	if o == nil {
		return nil, nil
	}
	return b.transports.client(o, b.retry)
}

// transportPool holds one HTTP transport per CA bundle and host rule, shared by every
// connection that has them: a transport (root pool, idle TLS connections) is the costly part,
// and it depends on nothing a connection write can make stale. Clients are cheap and are built
// per snapshot, from exactly the origin they serve.
type transportPool struct {
	mu sync.Mutex
	m  map[transportKey]*salesforce.Transport
}

type transportKey struct {
	ca       [sha256.Size]byte
	allowAny bool
}

func newTransportPool() *transportPool {
	return &transportPool{m: map[transportKey]*salesforce.Transport{}}
}

// client builds a client for origin o over the pooled transport for its trust settings.
func (p *transportPool) client(o *origin, retry salesforce.RetryPolicy) (*salesforce.Client, error) {
	key := transportKey{ca: sha256.Sum256([]byte(o.CACert)), allowAny: o.AllowNonSalesforceHost}
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.m[key]
	if !ok {
		var err error
		if t, err = salesforce.NewTransport(o.CACert, o.AllowNonSalesforceHost, retry); err != nil {
			return nil, err
		}
		p.m[key] = t
	}
	return salesforce.NewClient(o.LoginURL, userAgent(), retry, t), nil
}

func (p *transportPool) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.m {
		t.Close()
	}
	p.m = map[transportKey]*salesforce.Transport{}
}
