package backend

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretTypeToken = "salesforce_token"

func pathCreds(b *backend) []*framework.Path {
	return []*framework.Path{pathSpec{pattern: entryPath("creds/", ""), verb: "generate", suffix: "credentials",
		fields: map[string]*framework.FieldSchema{"name": {Type: framework.TypeLowerCaseString, Description: "Name of the role to mint a token for."}},
		// Minting calls Salesforce and writes usage (and, per lease, a lease): run it once, on
		// the node that may write.
		ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: changes(b.pathCredsRead, "Get a Salesforce access token for a role.")},
		synopsis: "Get a Salesforce access token for a role.", help: credsHelp}.path()}
}

func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	role, err := b.cachedRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("unknown role %q: create it at roles/%s first", name, name), nil
	}
	if !role.allows(req) {
		return nil, logical.ErrPermissionDenied
	}
	snap, err := b.connectionFor(ctx, req.Storage, name, role)
	if err != nil {
		b.metrics.mintRefusedEarly(role.Connection, name, err)
		return mintErrorResponse(err)
	}
	if role.TokenMode == tokenModePerLease {
		return b.credsPerLease(ctx, req, name, role, snap)
	}
	t, err := b.sharedToken(ctx, req.Storage, name, role, snap)
	if err != nil {
		return mintErrorResponse(err)
	}
	return &logical.Response{Data: b.tokenData(t)}, nil
}

// connectionFor is the snapshot of the role's connection, once the connection is known to allow
// the role: checked on every read, cached token or not, because the connection's scope may
// have narrowed since the role was written.
func (b *backend) connectionFor(ctx context.Context, s logical.Storage, name string, role *roleEntry) (*connSnapshot, error) {
	snap, err := b.snapshot(ctx, s, role.Connection)
	if err != nil {
		return nil, err
	}
	if snap == nil {
		return nil, &mintRefused{fmt.Sprintf("role %q names connection %q, which does not exist", name, role.Connection)}
	}
	if ferr := snap.entry.allowsRole(name, role.Username); ferr != nil {
		return nil, &mintRefused{fmt.Sprintf("role %q may not mint on connection %q: %s", name, role.Connection, ferr)}
	}
	return snap, nil
}

// sharedToken returns the role's cached token, or mints one if it has less than the role's ttl
// left. Concurrent readers of a cold role share one token request.
func (b *backend) sharedToken(ctx context.Context, s logical.Storage, name string, role *roleEntry, snap *connSnapshot) (*mintedToken, error) {
	if t := b.tokens.fresh(name, role, b.now()); t != nil {
		t.cacheHits.Inc() // resolved when the token was cached: the hit path does no lookup
		return t, nil
	}
	b.metrics.cacheCounters(role.Connection, name).miss.Inc()
	gen := b.tokens.generation(name)
	ch := b.tokens.flight.DoChan(flightKey(name, role, gen), func() (any, error) {
		if t := b.tokens.fresh(name, role, b.now()); t != nil {
			return t, nil // a mint finished between our check and joining the flight
		}
		// Detach from the first reader's request: the others wait on this mint too, and one
		// reader giving up must not fail them all. The client's retry budget bounds it.
		mctx, cancel := context.WithTimeout(b.ctx, b.retry.Budget+5*time.Second)
		defer cancel()
		t, err := b.mint(mctx, s, name, role, snap)
		if err != nil {
			return nil, err
		}
		t.cacheHits = &b.metrics.cacheCounters(role.Connection, name).hit
		b.tokens.storeIf(name, gen, t)
		return t, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*mintedToken), nil
	}
}

// credsPerLease mints a fresh token under a lease that expires no later than the token.
func (b *backend) credsPerLease(ctx context.Context, req *logical.Request, name string, role *roleEntry, snap *connSnapshot) (*logical.Response, error) {
	t, err := b.mint(ctx, req.Storage, name, role, snap)
	if err != nil {
		return mintErrorResponse(err)
	}
	resp := b.Secret(secretTypeToken).Response(b.tokenData(t), map[string]any{
		"access_token": t.token.AccessToken,
		"connection":   role.Connection,
		"origin_id":    t.originID, // where it is revoked, whatever the connection says by then
		"role":         name,
		"expires_at":   t.expiresAt.Format(time.RFC3339),
	})
	resp.Secret.TTL = minDuration(role.TTL, role.SessionTimeout)
	resp.Secret.MaxTTL = minDuration(role.MaxTTL, role.SessionTimeout)
	resp.Secret.Renewable = true
	return resp, nil
}

func (b *backend) tokenData(t *mintedToken) map[string]any {
	ttl := int64(math.Max(0, math.Floor(t.expiresAt.Sub(b.now()).Seconds())))
	return map[string]any{
		"access_token": t.token.AccessToken,
		"instance_url": t.token.InstanceURL,
		"id":           t.token.ID,
		"token_type":   t.token.TokenType,
		"scope":        t.token.Scope,
		"username":     t.username,
		"issued_at":    t.issuedAt.Format(time.RFC3339),
		"expires_at":   t.expiresAt.Format(time.RFC3339),
		"ttl":          ttl,
		"key_version":  t.keyVersion,
	}
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func secretToken(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretTypeToken,
		Fields: map[string]*framework.FieldSchema{
			"access_token": {Type: framework.TypeString, Description: "Salesforce access token."},
		},
		Renew:  b.renewToken,
		Revoke: b.revokeToken,
	}
}

// renewToken extends a per-lease token's lease up to the role's ttl, never past the token's
// estimated expiry (issue time + session_timeout).
func (b *backend) renewToken(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	name, _ := req.Secret.InternalData["role"].(string)
	role, err := b.cachedRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("role %q no longer exists; the lease cannot be renewed", name), nil
	}
	expires, err := time.Parse(time.RFC3339, fmt.Sprint(req.Secret.InternalData["expires_at"]))
	if err != nil {
		return nil, fmt.Errorf("lease has no valid expires_at: %w", err)
	}
	left := expires.Sub(b.now())
	if left <= 0 {
		return logical.ErrorResponse("the token has reached its session timeout; read creds/%s again", name), nil
	}
	req.Secret.TTL = minDuration(role.TTL, left)
	req.Secret.MaxTTL = minDuration(role.MaxTTL, role.SessionTimeout)
	return &logical.Response{Secret: req.Secret}, nil
}

// revokeToken revokes a per-lease token at the origin that issued it. It is idempotent (an
// already invalid token counts as revoked). A revoke that cannot be done fails, so Vault keeps
// the lease and retries; only while the mount is being disabled are failures let go, so that
// `secrets disable` is never blocked.
func (b *backend) revokeToken(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	token, _ := req.Secret.InternalData["access_token"].(string)
	connName, _ := req.Secret.InternalData["connection"].(string)
	originID, _ := req.Secret.InternalData["origin_id"].(string)
	if token == "" {
		return nil, nil
	}
	err := b.revokeAt(ctx, req.Storage, connName, originID, token)
	if err == nil {
		return nil, nil
	}
	if b.System().Tainted() {
		b.Logger().Warn("could not revoke a token at Salesforce while the mount is being disabled; letting the lease go",
			"connection", connName, "error", err)
		return nil, nil
	}
	return nil, err
}

// revokeAt revokes a token at the origin originID of connection connName. Leases written
// before origins were recorded (originID empty) are revoked at the origin the connection had
// then, which its ring pins at the first change of origin. When
// the connection or the origin is gone the token cannot be revoked where it was issued: that is
// an error, never a silent success.
func (b *backend) revokeAt(ctx context.Context, s logical.Storage, connName, originID, token string) error {
	snap, err := b.snapshot(ctx, s, connName)
	if err != nil {
		return err
	}
	if snap == nil {
		return &mintRefused{fmt.Sprintf("connection %q, which issued the token, no longer exists: it cannot be revoked at Salesforce and stays valid until its session times out; revoke it in Salesforce (Setup > Session Management) and force-revoke the lease", connName)}
	}
	if originID == "" {
		originID = snap.legacyOrigin
	}
	client, err := snap.revokeClient(b, originID)
	if err != nil {
		return err
	}
	if client == nil {
		return &mintRefused{fmt.Sprintf("connection %q no longer knows the login_url that issued the token (it was deleted and made anew): revoke it in Salesforce (Setup > Session Management) and force-revoke the lease", connName)}
	}
	return client.Revoke(ctx, token)
}

const credsHelp = `
Reading creds/<role> returns a Salesforce access token for the role's username, minted with the
JWT bearer flow and the connection's active key.

token_mode=shared (default): one token per role is cached in memory and handed to every reader,
with no Vault lease. A cached token with less than the role's ttl left is replaced first, so a
reader always gets at least ttl of life (see expires_at and ttl in the answer). Concurrent reads
of a cold role make one token request. Use roles/<role>/reset to drop and revoke it.

token_mode=per_lease: every read mints a fresh token under a lease (ttl, max_ttl, never beyond
session_timeout). Revoking or expiring the lease revokes the token at Salesforce.

Salesforce refusals come back as HTTP 400 with Salesforce's error and what to check; an
unreachable Salesforce (after retries) as HTTP 502.
`
