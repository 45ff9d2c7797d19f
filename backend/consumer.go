package backend

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// Client-credentials connections: an External Client App's consumer key and secret, sealed in
// Vault, exchanged for an access token of the app's run-as user. The secret is stored only
// under the seal-wrapped secrets/ prefix, bound to the origin it was written for like a key,
// and sent nowhere but that origin's token endpoint.

const (
	authFlowJWTBearer         = "jwt_bearer"
	authFlowClientCredentials = "client_credentials"

	maxConsumerSecretLength = 256
)

// jwtOnlyFields are the connection fields that only mean something for keys and certificates;
// a client-credentials connection refuses them when they are given.
var jwtOnlyFields = []string{"audience", "key_type", "certificate_ttl", "certificate_subject", "key_rotation_period",
	"certificate_renew_before", "keep_archived_keys", "deploy", "app_type", "app_name", "eca_oauth_settings_name",
	"deploy_username", "verify_username", "propagation_timeout", "private_key", "certificate",
	"rotation_period", "rotation_schedule", "rotation_window", "disable_automated_rotation"}

// flow is the connection's OAuth flow; entries written before flows existed are JWT bearer.
func (c *connectionEntry) flow() string {
	if c.AuthFlow == "" {
		return authFlowJWTBearer
	}
	return c.AuthFlow
}

func (c *connectionEntry) clientCredentials() bool { return c.flow() == authFlowClientCredentials }

// consumerSecret is the only storage entry that holds a consumer secret. Versioned so that a
// rotation can hold the staged and the previous pair beside the active one.
type consumerSecret struct {
	ConsumerKey string    `json:"consumer_key"`
	Secret      string    `json:"secret"`
	BoundOrigin string    `json:"bound_origin"` // the origin it may be sent to (origin.id)
	CreatedAt   time.Time `json:"created_at"`
	// FromRotation marks a pair Salesforce issued to a staged-credentials rotation: reads use
	// its own ConsumerKey, which the connection's consumer_key follows.
	FromRotation bool `json:"from_rotation,omitempty"`
}

func consumerSecretPath(conn string, version int) string {
	return secretsPrefix + conn + "/consumer/" + strconv.Itoa(version)
}

// getConsumerSecret is the secret of the connection's active consumer credential version.
func getConsumerSecret(ctx context.Context, s logical.Storage, conn string) (*consumerSecret, error) {
	v, err := activeConsumerVersion(ctx, s, conn)
	if err != nil {
		return nil, err
	}
	return getEntry[consumerSecret](ctx, s, consumerSecretPath(conn, v))
}

// putConsumerSecret writes the connection's secret as its active version, bound to conn's
// current origin, and drops the connection's snapshot. After a rotation the table's active
// version takes the operator's key.
func (b *backend) putConsumerSecret(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, secret string) error {
	defer b.snaps.drop(name)
	ring, err := getCredRing(ctx, s, name)
	if err != nil {
		return err
	}
	v, now := 1, b.now().UTC()
	if ring != nil && ring.active() != nil {
		v = ring.active().Version
	}
	if err := putJSON(ctx, s, consumerSecretPath(name, v), &consumerSecret{ConsumerKey: conn.ConsumerKey, Secret: secret,
		BoundOrigin: originOf(conn).id(), CreatedAt: now}); err != nil {
		return err
	}
	if ring == nil || ring.active() == nil {
		return nil
	}
	return b.activeVersionTakes(ctx, s, name, ring, conn.ConsumerKey)
}

// activeVersionTakes records key, written by the operator, as the table's active version.
func (b *backend) activeVersionTakes(ctx context.Context, s logical.Storage, name string, ring *credRing, key string) error {
	now := b.now().UTC()
	a := ring.active()
	a.ConsumerKey, a.CreatedAt, a.ActivatedAt = key, now, now
	return b.putCredRing(ctx, s, name, ring)
}

// deleteConsumerSecrets erases every stored consumer secret of a connection.
func deleteConsumerSecrets(ctx context.Context, s logical.Storage, conn string) error {
	if err := deleteAll(ctx, s, secretsPrefix+conn+"/consumer/"); err != nil {
		return err
	}
	return s.Delete(ctx, credRingPrefix+conn) // the versions' table goes with them
}

// deleteAll deletes every entry directly under prefix.
func deleteAll(ctx context.Context, s logical.Storage, prefix string) error {
	names, err := s.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := s.Delete(ctx, prefix+n); err != nil {
			return err
		}
	}
	return nil
}

// consumerPair is a client-credentials connection's secret, ready to use at its origin.
type consumerPair struct {
	key, secret string
	originID    string
	client      *salesforce.Client
}

// validConsumerSecret checks a written consumer_secret without ever quoting it.
func validConsumerSecret(v string) *fieldError {
	if v == "" || len(v) > maxConsumerSecretLength || hasControlOrFormat(v) {
		return fieldErr("consumer_secret", "must be the app's consumer secret: 1 to %d printable characters, from the app's consumer details", maxConsumerSecretLength)
	}
	return nil
}

// identities maps identity URLs to usernames: the run-as user of a client-credentials app does
// not change between mints, so its identity is read once, not once a mint.
type identities struct{ m sync.Map }

// mintClientCredentials exchanges the connection's consumer pair for a token of the app's
// run-as user, at the origin the secret is bound to.
func (b *backend) mintClientCredentials(ctx context.Context, s logical.Storage, roleName string, role *roleEntry, snap *connSnapshot) (*mintedToken, error) {
	cc := snap.cc
	if cc == nil {
		return nil, &mintRefused{fmt.Sprintf("connection %q has no consumer secret for its login_url: write consumer_secret on the connection", role.Connection)}
	}
	tok, err := cc.client.RequestClientCredentialsToken(ctx, cc.key, cc.secret)
	now := b.now().UTC()
	if err != nil {
		b.recordFailed(s, roleName, err, now)
		b.Logger().Warn("token request failed", "role", roleName, "connection", role.Connection, "flow", authFlowClientCredentials, "error", err)
		return nil, err
	}
	username, err := b.runAsUser(ctx, cc, tok)
	if err == nil {
		if ferr := snap.entry.allowsRole(roleName, username); ferr != nil {
			err = &mintRefused{fmt.Sprintf("role %q may not mint on connection %q: the app's run-as user %s", roleName, role.Connection, ferr)}
		}
	}
	if err != nil {
		b.revokeQuietly(ctx, role.Connection, cc.client, tok.AccessToken)
		b.recordFailed(s, roleName, err, now)
		return nil, err
	}
	b.recordMinted(s, roleName, 0, now)
	b.metrics.login(role.Connection, username) // the run-as user's login; a refused one names no user
	b.Logger().Debug("minted token", "role", roleName, "connection", role.Connection, "flow", authFlowClientCredentials, "username", username)
	return &mintedToken{token: *tok, username: username, roleUser: role.Username, connection: role.Connection, originID: cc.originID, client: cc.client,
		issuedAt: now, expiresAt: now.Add(role.SessionTimeout)}, nil
}

// runAsUser is the username of tok's identity URL, cached per origin and URL: a host's answer
// is never reused for a token from another host that names the same URL.
func (b *backend) runAsUser(ctx context.Context, cc *consumerPair, tok *salesforce.Token) (string, error) {
	key := cc.originID + "\x00" + tok.ID
	if u, ok := b.idents.m.Load(key); ok {
		return u.(string), nil
	}
	u, err := cc.client.Username(ctx, tok)
	if err == nil {
		b.idents.m.Store(key, u)
	}
	return u, err
}

// keysOnly wraps a handler of the key ring's paths: on a client-credentials connection, which
// has no keys or certificates, it answers a 400 that says so instead of an empty answer.
func (b *backend) keysOnly(h framework.OperationFunc) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		conn, err := getConnection(ctx, req.Storage, d.Get("name").(string))
		if err != nil {
			return nil, err
		}
		if conn != nil && conn.clientCredentials() {
			return logical.ErrorResponse("connection %q uses auth_flow=client_credentials: it has no keys, certificates or key rotation (those are for jwt_bearer connections)", d.Get("name").(string)), nil
		}
		return h(ctx, req, d)
	}
}

// maxPastOrigins bounds how many earlier origins a client-credentials connection remembers for
// revocation: leases live at most a day, and login_url changes are rare.
const maxPastOrigins = 8

// rememberOrigin records o as the newest origin tokens of this connection were issued at,
// keeping the maxPastOrigins most recent.
func (c *connectionEntry) rememberOrigin(o *origin) {
	past := append([]*origin{o}, c.PastOrigins...)
	c.PastOrigins = past[:min(len(past), maxPastOrigins)]
}
