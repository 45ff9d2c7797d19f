package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The consumer key of a jwt_bearer connection on an External Client App, rotated through the
// staged-credentials API by the client-credentials machinery (consumer_rotation_*.go): the same
// states, table and crash points; only the proof differs. The new key is proven by a JWT bearer
// token request signed with the connection's active key whose iss is the new key; the
// certificate and the key ring are untouched. Salesforce returns a secret with every staged
// pair: it is sealed like a client-credentials one (it is the app's secret all the same) and
// never used.
//
// The two rotations of one jwt_bearer connection never run at once. A key rotation proves a new
// certificate with a token request whose iss is the consumer key; a consumer-key rotation proves
// a new consumer key with a token request signed by the active key. Each proof needs the other
// half to stay put: interleaved, a promoted key could make the consumer-key proof sign with a
// retired certificate, or a switched consumer key make the certificate proof name a key about to
// be deleted, and the failure would be blamed on the half being rotated (a rollback of a good
// certificate, a failed rotation of a good key). So each starts only while the other is at rest,
// both checked under the connection lock: a consumer-key rotation waits while a key rotation is
// in flight or stalled (its pending key may still be promoted), and a key rotation waits while a
// consumer key is being staged, promoted, proven or switched (consumerKeyInMotion). The overlap
// does not hold a key rotation back: reads and proofs already use the new consumer key, and what
// is left, the DELETE of the previous one, goes through another connection and signs nothing.

// consumerRotatable reports whether the staged-credentials API can rotate the connection's
// consumer key: a client-credentials connection, or a jwt_bearer one on an External Client App
// (the API manages External Client Apps only; a Connected App's key is regenerated in Setup).
func (c *connectionEntry) consumerRotatable() bool {
	return c.clientCredentials() || c.AppType == appTypeExternalClientApp
}

// jwtIssuer is the consumer key a jwt_bearer connection's assertions carry as iss: the key a
// staged-credentials rotation made active (stored with its pair under secrets/), else
// consumer_key. Reading the store, not the entry, keeps a crash between the switch and the
// connection write from sending the previous key.
func jwtIssuer(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) (string, error) {
	sec, err := getConsumerSecret(ctx, s, name)
	if err != nil || sec == nil || !sec.FromRotation || sec.ConsumerKey == "" {
		return conn.ConsumerKey, err
	}
	return sec.ConsumerKey, nil
}

// consumerKeyInMotion reports a consumer-key rotation between its start and its overlap, or a
// failed one whose promoted key is still being proven: a key rotation does not start over it.
func consumerKeyInMotion(st credentialsRotation) bool {
	return (st.inFlight() && st.State != ccStateOverlap) || st.probing()
}

// keyRotationBusy reports a key rotation that may still change the active key.
func keyRotationBusy(ring *keyRing) bool {
	return ring != nil && (ring.Rotation.inFlight() || ring.stalled())
}

// keyRotationHeldBack refuses to start a key rotation of a jwt_bearer connection while its
// consumer key is in motion. Called with the connection lock held.
func keyRotationHeldBack(ctx context.Context, s logical.Storage, name string) error {
	cr, err := getCredRing(ctx, s, name)
	if err != nil || cr == nil || !consumerKeyInMotion(cr.Rotation) {
		return err
	}
	return fieldErr("name", "has a consumer key rotation in flight (state %s): a key rotation starts once it reaches its overlap, see connections/<name>/credentials/rotation", cr.Rotation.State)
}

// consumerRotationHeldBack refuses to start a consumer-key rotation of a jwt_bearer connection
// while a key rotation may change the key that signs its proof. Called with the lock held.
func consumerRotationHeldBack(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) error {
	if conn.clientCredentials() {
		return nil
	}
	ring, err := getKeyRing(ctx, s, name)
	if err != nil || !keyRotationBusy(ring) {
		return err
	}
	return fieldErr("name", "has a key rotation in flight or stalled (state %s): the consumer key rotation starts once it is done, see connections/<name>/rotation", ring.Rotation.State)
}

// holdBack is when work due at at is next looked at: past a retry when held says a start must
// wait for the connection's other rotation (the periodic func looks again at a later tick
// instead of looping on a start it may not make). A storage error in held is returned.
func (b *backend) holdBack(at time.Time, held error) (time.Time, error) {
	var fe *fieldError
	switch {
	case held != nil && !errors.As(held, &fe):
		return time.Time{}, held
	case held == nil || at.IsZero():
		return at, nil
	}
	return laterOf(at, b.now().Add(retryBase)), nil
}

// proveConsumerKey makes one JWT bearer token request with issuer as iss, signed by the
// connection's active key at its origin, for the user that proves keys.
func (b *backend) proveConsumerKey(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, issuer string) (*salesforce.Token, *salesforce.Client, error) {
	username, err := b.verifyUsername(ctx, s, name, conn)
	if err != nil {
		return nil, nil, err
	}
	if username == "" {
		return nil, nil, fieldErr("verify_username", "is needed to prove a new consumer key: set it on the connection, or create a role on it")
	}
	snap, err := b.snapshot(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if snap == nil || snap.active == nil {
		return nil, nil, errors.New("the connection has no active key to sign the proof of the new consumer key with")
	}
	proof := &connSnapshot{name: name, entry: conn, issuer: issuer}
	tok, err := proof.requestToken(ctx, b, snap.active, username)
	if err != nil {
		return nil, nil, fmt.Errorf("proving the new consumer key as %s: %w", username, err)
	}
	return tok, snap.active.client, nil
}

// adoptOperatorConsumerKey makes a consumer_key the operator wrote on a jwt_bearer connection
// its active credential version: the key a rotation stored for that version no longer names the
// app, so it goes, and iss follows consumer_key again.
func (b *backend) adoptOperatorConsumerKey(ctx context.Context, s logical.Storage, name string, conn *connectionEntry) error {
	ring, err := getCredRing(ctx, s, name)
	if err != nil || ring == nil || ring.active() == nil {
		return err
	}
	defer b.snaps.drop(name)
	if err := s.Delete(ctx, consumerSecretPath(name, ring.active().Version)); err != nil {
		return err
	}
	return b.activeVersionTakes(ctx, s, name, ring, conn.ConsumerKey)
}
