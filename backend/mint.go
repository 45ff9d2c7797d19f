package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// mint signs an assertion for role with its connection's active key and exchanges it for an
// access token, at the origin that key is bound to. When Salesforce refuses the active key in
// a way a new certificate explains (invalid assertion, or an app unknown during propagation)
// and a pending key is in flight, it tries the pending key and, if Salesforce accepts it,
// promotes it: an operator who uploaded the new certificate early loses no reads.
// snap is the role's connection as connectionFor returned it (scope checked).
func (b *backend) mint(ctx context.Context, s logical.Storage, roleName string, role *roleEntry, snap *connSnapshot) (t *mintedToken, err error) {
	start := time.Now() // the real clock: latency, not the backend's (faked) time
	defer func() { b.recordMint(role.Connection, roleName, snap.entry.flow(), start, err) }()
	if snap.entry.clientCredentials() {
		return b.mintClientCredentials(ctx, s, roleName, role, snap)
	}
	if snap.active == nil {
		return nil, &mintRefused{fmt.Sprintf("connection %q has no active key", role.Connection)}
	}
	k := snap.active
	tok, err := snap.requestToken(ctx, b, k, role.Username)
	if err != nil && salesforce.KeyRefused(err) {
		tok, k, err = b.mintWithCurrentKeys(ctx, s, role, k, snap.iss(), err)
	}
	now := b.now().UTC()
	if err != nil {
		b.recordFailed(s, roleName, err, now)
		b.Logger().Warn("token request failed", "role", roleName, "connection", role.Connection, "key_version", k.version, "error", err)
		return nil, err
	}
	b.recordMinted(s, roleName, k.version, now)
	b.Logger().Debug("minted token", "role", roleName, "connection", role.Connection, "key_version", k.version, "username", role.Username)
	return &mintedToken{token: *tok, username: role.Username, roleUser: role.Username, connection: role.Connection, keyVersion: k.version,
		originID: k.originID, client: k.client, issuedAt: now, expiresAt: now.Add(role.SessionTimeout)}, nil
}

// mintWithCurrentKeys retries a refused mint with the keys the ring holds now: a rotation may
// have promoted a key, or started one whose certificate Salesforce already uses, or switched
// the consumer key (tried as triedIss), while the first request was in flight. A pending key that Salesforce accepts is promoted (unless a
// rollback is under way). It returns the first refusal if nothing else works.
func (b *backend) mintWithCurrentKeys(ctx context.Context, s logical.Storage, role *roleEntry, tried *signingKey, triedIss string, refusal error) (*salesforce.Token, *signingKey, error) {
	// The keys are what may have changed: read them from storage, not from the cache.
	b.snaps.drop(role.Connection)
	snap, err := b.snapshot(ctx, s, role.Connection)
	if err != nil || snap == nil {
		return nil, tried, refusal
	}
	if a := snap.active; a != nil && (a.version != tried.version || snap.iss() != triedIss) {
		if tok, err := snap.requestToken(ctx, b, a, role.Username); err == nil {
			return tok, a, nil
		}
	}
	p := snap.pending
	if p == nil || p.version == tried.version {
		return nil, tried, refusal
	}
	tok, err := snap.requestToken(ctx, b, p, role.Username)
	if err != nil {
		return nil, tried, refusal
	}
	b.Logger().Info("Salesforce accepted the pending key while refusing the active one; promoting it",
		"connection", role.Connection, "pending_version", p.version, "refused_version", tried.version)
	if perr := b.promoteProven(ctx, s, role.Connection, p.version); perr != nil { // the read succeeds either way
		b.Logger().Error("promoting the proven pending key failed; it will be retried", "connection", role.Connection, "error", perr)
	}
	return tok, p, nil
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
