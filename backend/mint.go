package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// mint signs an assertion for role with its connection's active key and exchanges it for an
// access token. When Salesforce refuses the active key in a way a new certificate explains
// (invalid assertion, or an app unknown during propagation) and a pending key is in flight,
// it tries the pending key and, if Salesforce accepts it, promotes it: an operator who uploaded
// the new certificate early loses no reads.
func (b *backend) mint(ctx context.Context, s logical.Storage, roleName string, role *roleEntry) (*mintedToken, error) {
	conn, err := b.cachedConnection(ctx, s, role.Connection)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, &mintRefused{fmt.Sprintf("role %q names connection %q, which does not exist", roleName, role.Connection)}
	}
	keys, err := b.cachedMintKeys(ctx, s, role.Connection)
	if err != nil {
		return nil, err
	}
	if keys == nil || keys.active == 0 {
		return nil, &mintRefused{fmt.Sprintf("connection %q has no active key", role.Connection)}
	}
	version := keys.active
	tok, err := b.requestToken(ctx, s, role.Connection, conn, version, role.Username)
	if err != nil && salesforce.KeyRefused(err) {
		tok, version, err = b.mintWithCurrentKeys(ctx, s, role, conn, version, err)
	}
	now := b.now().UTC()
	if err != nil {
		b.recordFailed(s, roleName, err, now)
		b.Logger().Warn("token request failed", "role", roleName, "connection", role.Connection, "key_version", version, "error", err)
		return nil, err
	}
	b.recordMinted(s, roleName, version, now)
	b.Logger().Debug("minted token", "role", roleName, "connection", role.Connection, "key_version", version, "username", role.Username)
	return &mintedToken{token: *tok, username: role.Username, keyVersion: version, issuedAt: now, expiresAt: now.Add(role.SessionTimeout)}, nil
}

// mintWithCurrentKeys retries a refused mint with the keys the ring holds now: a rotation may
// have promoted a key, or started one whose certificate Salesforce already uses, while the
// first request was in flight. A pending key that Salesforce accepts is promoted (unless a
// rollback is under way). It returns the first refusal if nothing else works.
func (b *backend) mintWithCurrentKeys(ctx context.Context, s logical.Storage, role *roleEntry, conn *connectionEntry, tried int, refusal error) (*salesforce.Token, int, error) {
	// The keys are what may have changed: read them from storage, not from the cache.
	b.rings.drop(role.Connection)
	keys, err := b.cachedMintKeys(ctx, s, role.Connection)
	if err != nil || keys == nil {
		return nil, tried, refusal
	}
	if keys.active != 0 && keys.active != tried {
		if tok, err := b.requestToken(ctx, s, role.Connection, conn, keys.active, role.Username); err == nil {
			return tok, keys.active, nil
		}
	}
	pending := keys.pending
	if pending == 0 || pending == tried {
		return nil, tried, refusal
	}
	tok, err := b.requestToken(ctx, s, role.Connection, conn, pending, role.Username)
	if err != nil {
		return nil, tried, refusal
	}
	b.Logger().Info("Salesforce accepted the pending key while refusing the active one; promoting it",
		"connection", role.Connection, "pending_version", pending, "refused_version", tried)
	if perr := b.promoteProven(ctx, s, role.Connection, pending); perr != nil { // the read succeeds either way
		b.Logger().Error("promoting the proven pending key failed; it will be retried", "connection", role.Connection, "error", perr)
	}
	return tok, pending, nil
}

// requestToken makes one JWT bearer request with the given key version.
func (b *backend) requestToken(ctx context.Context, s logical.Storage, connName string, conn *connectionEntry, version int, username string) (*salesforce.Token, error) {
	key, err := b.signer(ctx, s, connName, version)
	if err != nil {
		return nil, err
	}
	assertion, err := salesforce.SignAssertion(key, salesforce.Claims{Issuer: conn.ConsumerKey, Subject: username, Audience: conn.audience()}, b.now())
	if err != nil {
		return nil, fmt.Errorf("signing the assertion: %w", err)
	}
	client, err := b.client(connName, conn)
	if err != nil {
		return nil, &mintRefused{fmt.Sprintf("connection %q: %s", connName, err)}
	}
	return client.RequestToken(ctx, assertion)
}

// mintRefused is a configuration problem found before asking Salesforce.
type mintRefused struct{ msg string }

func (e *mintRefused) Error() string { return e.msg }

// mintErrorResponse turns a mint failure into the contract's answer: Salesforce refusals and
// configuration problems are the operator's (400), an unreachable Salesforce is a bad gateway
// (502), anything else is ours (500).
func mintErrorResponse(err error) (*logical.Response, error) {
	var oe *salesforce.OAuthError
	var ae *salesforce.APIError
	var ue *salesforce.UpstreamError
	var mr *mintRefused
	switch {
	case errors.As(err, &oe):
		return logical.ErrorResponse(oe.Error()), nil
	case errors.As(err, &ae):
		return logical.ErrorResponse(ae.Error()), nil
	case errors.As(err, &mr):
		return logical.ErrorResponse(mr.msg), nil
	case errors.As(err, &ue):
		return nil, logical.CodedError(http.StatusBadGateway, ue.Error())
	}
	return nil, err
}
