package backend

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

func connectionFields() map[string]*framework.FieldSchema {
	dur := func(d time.Duration) int { return int(d.Seconds()) }
	fields := addRotationFields(withName("connection", map[string]*framework.FieldSchema{
		"consumer_key": {Type: framework.TypeString, Required: true,
			Description: "The app's consumer key (Setup > App Manager > View > Consumer Key); the JWT iss, or the client_id of the client credentials flow."},
		"auth_flow": {Type: framework.TypeString, Default: authFlowJWTBearer, AllowedValues: []any{authFlowJWTBearer, authFlowClientCredentials},
			Description: "jwt_bearer (Vault's keys sign assertions for a role's username) or client_credentials (the app's consumer key and secret, for the app's run-as user; an External Client App with the client credentials flow enabled). Set at create; it cannot change."},
		"consumer_secret": {Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			Description: "auth_flow=client_credentials: the app's consumer secret. Write-only: sealed in Vault, sent only to this connection's login_url, never returned. Required at create; writing a new login_url needs it again in the same write, because a secret is bound to the host it was written for."},
		"login_url": {Type: framework.TypeString, Default: defaultLoginURL,
			Description: "Where token, revoke and userinfo requests go: https://login.salesforce.com, https://test.salesforce.com, a My Domain (https://acme.my.salesforce.com, https://acme--uat.sandbox.my.salesforce.com), or with allow_community_login an Experience Cloud site URL (https://acme.my.site.com/customers). https only; a login host takes no path. Changing it (or audience, ca_cert, allow_non_salesforce_host) on an existing connection starts a re-key: existing keys keep signing only for the previous origin, and a new key must be proven at the new one (register its certificate on the app) before reads move there."},
		"allow_community_login": {Type: framework.TypeBool, Default: false,
			Description: "Allow an Experience Cloud / Sites login_url (*.my.site.com, *.site.com, *.my.salesforce-sites.com, *.force.com), with at most a site prefix as its path. Off by default: anyone with an org can publish a site on those domains."},
		"allowed_roles": {Type: framework.TypeCommaStringSlice, Default: []string{"*"},
			Description: "Role names or globs (e.g. \"app-*\") that may use this connection; enforced when a role is written and again at every mint. Default: every role."},
		"allowed_usernames": {Type: framework.TypeCommaStringSlice, Default: []string{"*"},
			Description: "Salesforce usernames or globs (e.g. \"*@integrations.acme.com\") that roles on this connection may mint for; enforced at role write and at mint. Default: any user."},
		"allow_privileged_roles": {Type: framework.TypeBool, Default: false,
			Description: "Allow roles to mint for deploy_username or verify_username. Off by default: the deploy user can change the org's metadata and is never meant for an application."},
		"audience": {Type: framework.TypeString,
			Description: "The JWT aud. Default: https://test.salesforce.com for test.salesforce.com and *.sandbox.my.salesforce.com, else https://login.salesforce.com. Write an empty string to return to the default."},
		"allow_non_salesforce_host": {Type: framework.TypeBool, Default: false,
			Description: "Allow a login_url outside Salesforce's domains (a private gateway, or a local emulator on loopback). Without it such hosts, IP literals and names resolving to private addresses are refused."},
		"ca_cert": {Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{EditType: "file"},
			Description: "Extra PEM CA bundle trusted for login_url, on top of the system roots."},
		"key_type": {Type: framework.TypeString, Default: defaultKeyType, AllowedValues: []any{keyutil.RSA2048, keyutil.RSA3072, keyutil.RSA4096},
			Description: "Type of newly generated keys: rsa-2048, rsa-3072 or rsa-4096."},
		"certificate_ttl": {Type: framework.TypeDurationSecond, Default: dur(defaultCertificateTTL),
			Description: "Validity of each generated self-signed certificate (Salesforce keeps accepting an expired one, but rotation renews it before)."},
		"certificate_subject": {Type: framework.TypeString,
			Description: "Subject of generated certificates, e.g. \"CN=vault prod, O=Acme\". Default: CN=vault-plugin-salesforce <name>."},
		"key_rotation_period": {Type: framework.TypeDurationSecond, Default: 0,
			Description: "Rotate when the active key is this old (0: off). Rotation runs in the background and never interrupts reads."},
		"certificate_renew_before": {Type: framework.TypeDurationSecond, Default: dur(defaultCertificateRenewBefore),
			Description: "Also rotate when the active certificate expires within this window (only when key_rotation_period is set)."},
		"keep_archived_keys": {Type: framework.TypeInt, Default: defaultKeepArchivedKeys,
			Description: "Archived key versions kept with their private key (for rolling back); older ones are destroyed automatically (metadata kept)."},
		"deploy": {Type: framework.TypeString, Default: deployManual, AllowedValues: []any{deployManual, deployMetadataAPI},
			Description: "How a new certificate reaches Salesforce: manual (an operator uploads it; the plugin detects acceptance) or metadata_api (the plugin deploys it to the app)."},
		"app_type": {Type: framework.TypeString, Default: appTypeExternalClientApp, AllowedValues: []any{appTypeConnectedApp, appTypeExternalClientApp},
			Description: "The kind of Salesforce app the consumer key belongs to (used by deploy=metadata_api): external_client_app (the default; Salesforce blocks new Connected Apps since Spring '26) or connected_app (still supported for existing apps). Connections created before the default changed keep connected_app."},
		"app_name": {Type: framework.TypeString,
			Description: "API name of the Connected App or External Client App (required for deploy=metadata_api)."},
		"eca_oauth_settings_name": {Type: framework.TypeString,
			Description: "app_type=external_client_app: full name of the app's ExtlClntAppGlobalOauthSettings component, which holds the certificate. Default: <app_name>_glbloauth (what Salesforce names it for an app made in Setup)."},
		"deploy_username": {Type: framework.TypeString,
			Description: "Salesforce user whose token deploys new certificates. Needs API Enabled, Modify Metadata Through Metadata API Functions, Customize Application and Manage Connected Apps (or Modify All Data), pre-authorisation on the app, and for an External Client App the permission to view consumer secrets in metadata. Required for deploy=metadata_api."},
		"verify_username": {Type: framework.TypeString,
			Description: "User whose token request proves a new key works. Default: the username of the first role on this connection."},
		"propagation_timeout": {Type: framework.TypeDurationSecond, Default: dur(defaultPropagationTimeout),
			Description: "How long a deployed or uploaded certificate may take to be accepted before the rotation is rolled back (metadata_api) or reported stalled (manual). Salesforce takes 2-10 minutes."},
		"api_version": {Type: framework.TypeString, Default: defaultAPIVersion,
			Description: "Salesforce API version for Metadata API calls, e.g. 62.0."},
		"consumer_key_max_age": {Type: framework.TypeDurationSecond, Default: 0,
			Description: "Warn on reads when consumer_key has not changed for this long (0: off)."},
		"private_key": {Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{Sensitive: true, EditType: "textarea"},
			Description: "Create only, optional: an existing PEM RSA private key (>= 2048 bits) to use as key version 1 instead of generating one, when migrating an app whose certificate is already registered. Write-only: never returned."},
		"certificate": {Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{EditType: "textarea"},
			Description: "Create only, with private_key: its registered PEM certificate (must match the key). Generated when absent."},
	}))
	maps.Copy(fields, credentialsRotationFields())
	return fields
}

func pathConnections(b *backend) []*framework.Path {
	return []*framework.Path{
		listPath("connections/?$", "connections", "connections", connectionsPrefix),
		pathSpec{pattern: entryPath("connections/", ""), suffix: "connection", fields: connectionFields(), exists: b.connectionExists,
			ops: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: changes(b.pathConnectionWrite, "Create a connection and its first key."),
				logical.UpdateOperation: changes(b.pathConnectionWrite, "Update a connection's settings."),
				logical.ReadOperation:   plain(b.pathConnectionRead, "Read a connection."),
				logical.DeleteOperation: plain(b.pathConnectionDelete, "Delete a connection and its keys."),
			},
			synopsis: "Manage a connection: one Salesforce org reached through one Connected App, and its key ring.",
			help:     connectionHelp}.path(),
	}
}

func (b *backend) connectionExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	c, err := getConnection(ctx, req.Storage, d.Get("name").(string))
	return c != nil, err
}

func (b *backend) pathConnectionWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	if resp := validName(name); resp != nil {
		return resp, nil
	}
	// A write that makes a key (a create, or a re-key) generates it before taking the lock:
	// an RSA-4096 key takes seconds, and nothing should wait for it.
	pre, resp, err := b.connectionWriteDraft(ctx, req.Storage, name, d)
	if resp != nil || err != nil {
		return resp, err
	}
	defer b.lockConn(name)()
	old, conn, resp, err := b.connectionWriteDraftLocked(ctx, req.Storage, name, d)
	if resp != nil || err != nil {
		return resp, err
	}
	if pre != nil && (keyutil.TypeOf(pre) != conn.KeyType || (old != nil && originOf(old).id() == originOf(conn).id())) {
		pre = nil // changed meanwhile: the key is made under the lock, or not at all
	}

	var warnings []string
	if old == nil {
		if resp, err := b.createConnection(ctx, req.Storage, name, conn, d, pre); resp != nil || err != nil {
			return resp, err
		}
	} else {
		for _, f := range []string{"private_key", "certificate"} {
			if _, ok := d.GetOk(f); ok {
				return fieldErr(f, "can only be given when the connection is created: use connections/%s/import to add a key to an existing ring", name).response(), nil
			}
		}
		// Tokens already minted stay valid at Salesforce, so cached tokens survive a settings
		// change (a new consumer key included).
		resp, w, err := b.updateConnection(ctx, req.Storage, name, old, conn, pre, d)
		if resp != nil || err != nil {
			return resp, err
		}
		warnings = w
	}
	ring, err := getKeyRing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	b.scheduleConnection(name, conn, ring)
	if err := b.scheduleCredentials(ctx, req.Storage, name, conn); err != nil {
		b.Logger().Error("scheduling the consumer credential rotation; the next reload does it", "connection", name, "error", err)
	}
	resp, err = b.connectionResponse(name, conn, ring)
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, err
}

// connectionWriteDraft is a first, unlocked look at a write: its field errors, and the key it
// will need (generated here, outside the lock) if it creates the connection or changes its
// origin. The write itself re-reads and re-checks under the lock.
func (b *backend) connectionWriteDraft(ctx context.Context, s logical.Storage, name string, d *framework.FieldData) (*rsa.PrivateKey, *logical.Response, error) {
	old, conn, resp, err := b.connectionWriteDraftLocked(ctx, s, name, d)
	if resp != nil || err != nil {
		return nil, resp, err
	}
	if old != nil && originOf(old).id() == originOf(conn).id() {
		return nil, nil, nil
	}
	if _, ok := d.GetOk("private_key"); (ok && old == nil) || conn.clientCredentials() {
		return nil, nil, nil // an import, or no keys at all: nothing to generate
	}
	key, err := keyutil.Generate(nil, conn.KeyType)
	return key, nil, err
}

// connectionWriteDraftLocked reads the stored connection (nil: a create) and applies the
// write's fields to a copy, checked as a whole.
func (b *backend) connectionWriteDraftLocked(ctx context.Context, s logical.Storage, name string, d *framework.FieldData) (old, conn *connectionEntry, resp *logical.Response, err error) {
	if old, err = getConnection(ctx, s, name); err != nil {
		return nil, nil, nil, err
	}
	now := b.now().UTC()
	conn = defaultConnection(now)
	if old != nil {
		cp := *old
		conn = &cp
	}
	if ferr := applyConnectionFields(conn, d, now); ferr != nil {
		return nil, nil, ferr.response(), nil
	}
	if ferr := checkFlow(old, conn, d); ferr != nil {
		return nil, nil, ferr.response(), nil
	}
	if ferr, err := checkCredentialsRotationConnection(ctx, s, name, conn); err != nil {
		return nil, nil, nil, err
	} else if ferr != nil {
		return nil, nil, ferr.response(), nil
	}
	if !conn.clientCredentials() {
		if ferr := validSubject(conn.subject(name)); ferr != nil {
			return nil, nil, ferr.response(), nil
		}
	}
	conn.UpdatedAt = now
	return old, conn, nil, nil
}

// checkFlow checks what depends on the connection's flow: it is set at create and never
// changes; a client-credentials connection takes a consumer_secret and none of the key fields.
func checkFlow(old, conn *connectionEntry, d *framework.FieldData) *fieldError {
	if old != nil && old.flow() != conn.flow() {
		return fieldErr("auth_flow", "cannot change on an existing connection: create a new connection for the other flow and move the roles to it")
	}
	secret, given := d.GetOk("consumer_secret")
	if !conn.clientCredentials() {
		if given {
			return fieldErr("consumer_secret", "applies to auth_flow=client_credentials connections only")
		}
		return nil
	}
	for _, f := range jwtOnlyFields {
		if _, ok := d.GetOk(f); ok {
			return fieldErr(f, "applies to auth_flow=jwt_bearer connections only: a client_credentials connection has no keys or certificates")
		}
	}
	if given {
		return validConsumerSecret(secret.(string))
	}
	if old == nil {
		return fieldErr("consumer_secret", "is required with auth_flow=client_credentials: copy it from the app's consumer details")
	}
	if originOf(old).id() != originOf(conn).id() {
		return fieldErr("consumer_secret", "must be written again with a new login_url, ca_cert or allow_non_salesforce_host: the secret is bound to the host it was written for and is never sent to another")
	}
	return nil
}

// updateConnection writes changed settings. A change of origin (login_url, audience, trust) is
// a re-key: the ring's keys are pinned to the old origin first, so that none of them ever signs
// for the new one, and a fresh pending key is made for the new origin, to be proven there.
// The connection write sits between the two ring writes; a crash after it leaves the active key
// pinned to the old origin, and the schedule starts the re-key on its next tick.
func (b *backend) updateConnection(ctx context.Context, s logical.Storage, name string, old, conn *connectionEntry, pre *rsa.PrivateKey, d *framework.FieldData) (*logical.Response, []string, error) {
	if conn.clientCredentials() {
		_, secretGiven := d.GetOk("consumer_secret")
		if secretGiven || old.ConsumerKey != conn.ConsumerKey || originOf(old).id() != originOf(conn).id() {
			if ferr, err := credentialsRotationInFlight(ctx, s, name, "consumer_secret"); err != nil {
				return nil, nil, err
			} else if ferr != nil {
				return ferr.response(), nil, nil
			}
		}
		// The secret first: written for the new origin, it is used only once the connection
		// names that origin; a crash in between leaves a secret no mint sends anywhere.
		if secret, ok := d.GetOk("consumer_secret"); ok {
			if err := b.putConsumerSecret(ctx, s, name, conn, secret.(string)); err != nil {
				return nil, nil, err
			}
		}
		if prev := originOf(old); prev.id() != originOf(conn).id() {
			conn.rememberOrigin(prev)
		}
		return nil, nil, b.putConnection(ctx, s, name, conn)
	}
	if keyChanged := old.ConsumerKey != conn.ConsumerKey; keyChanged || originOf(old).id() != originOf(conn).id() {
		if ferr, err := credentialsRotationInFlight(ctx, s, name, "consumer_key"); err != nil {
			return nil, nil, err
		} else if ferr != nil {
			return ferr.response(), nil, nil
		}
		if keyChanged {
			if err := b.adoptOperatorConsumerKey(ctx, s, name, conn); err != nil {
				return nil, nil, err
			}
		}
	}
	if originOf(old).id() == originOf(conn).id() {
		return nil, nil, b.putConnection(ctx, s, name, conn)
	}
	ring, err := getKeyRing(ctx, s, name)
	if err != nil || ring == nil {
		return nil, nil, err
	}
	if ring.Rotation.inFlight() {
		return logical.ErrorResponse("a key rotation of connection %q is in flight (state %s): let it finish or fail before changing login_url, audience, ca_cert or allow_non_salesforce_host", name, ring.Rotation.State), nil, nil
	}
	if ring.pinLegacy(old) {
		if err := b.putKeyRing(ctx, s, name, ring); err != nil {
			return nil, nil, err
		}
	}
	if err := b.putConnection(ctx, s, name, conn); err != nil {
		return nil, nil, err
	}
	prev := originOf(old)
	b.Logger().Info("connection origin changed: re-keying", "connection", name, "previous_login_url", prev.LoginURL, "login_url", conn.LoginURL)
	w := fmt.Sprintf("login_url, audience or trust settings changed: the existing keys keep signing only for the previous origin (%s), where reads keep going until a key made for the new one is proven there. Register the new pending_certificate (connections/%s/certificate) on the app; reads move once Salesforce accepts it", prev.LoginURL, name)
	if err := b.startRotation(ctx, s, name, conn, ring, triggerOriginChange, false, pre); err != nil {
		b.Logger().Error("starting the re-key failed; the schedule retries it", "connection", name, "error", err)
		return nil, []string{w, "the new key could not be made yet; the periodic func retries"}, nil
	}
	return nil, []string{w}, nil
}

// createConnection stores key version 1 (generated or imported), the ring, then the
// connection: the connection entry comes last, so until it exists nothing is visible, and a
// failure removes what was written.
func (b *backend) createConnection(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, d *framework.FieldData, pre *rsa.PrivateKey) (*logical.Response, error) {
	if conn.clientCredentials() {
		return nil, b.createClientCredentials(ctx, s, name, conn, d.Get("consumer_secret").(string))
	}
	key, cert, ferr := importedKeyFields(d, "private_key", "certificate")
	if ferr != nil {
		return ferr.response(), nil
	}
	src := keySource{key: key, cert: cert}
	if key == nil {
		src = keySource{key: pre, generated: true}
	}
	// Leftovers of an earlier connection of this name (a delete that failed half-way).
	if err := deleteAllKeyMaterial(ctx, s, name); err != nil {
		return nil, err
	}
	ring := &keyRing{Rotation: rotationState{State: stateIdle}}
	v, err := b.newKeyVersion(ctx, s, name, conn, ring, statusActive, src)
	if err != nil {
		return errorResponse(err)
	}
	ring.Versions = []*keyVersion{v}
	if err := b.putKeyRing(ctx, s, name, ring); err != nil {
		b.undoCreate(ctx, s, name)
		return nil, err
	}
	if err := b.putConnection(ctx, s, name, conn); err != nil {
		b.undoCreate(ctx, s, name)
		return nil, err
	}
	b.Logger().Info("created connection", "connection", name, "key_version", 1, "origin", v.Origin, "fingerprint_sha256", v.FingerprintSHA256)
	return nil, nil
}

// createClientCredentials stores the consumer secret, then the connection: until the
// connection exists nothing is visible, and a failure removes what was written.
func (b *backend) createClientCredentials(ctx context.Context, s logical.Storage, name string, conn *connectionEntry, secret string) error {
	if err := deleteConsumerSecrets(ctx, s, name); err != nil { // leftovers of a failed delete
		return err
	}
	if err := b.putConsumerSecret(ctx, s, name, conn, secret); err != nil {
		return err
	}
	if err := b.putConnection(ctx, s, name, conn); err != nil {
		b.undoCreate(ctx, s, name)
		return err
	}
	b.Logger().Info("created connection", "connection", name, "flow", authFlowClientCredentials)
	return nil
}

func (b *backend) undoCreate(ctx context.Context, s logical.Storage, name string) {
	defer b.snaps.drop(name)
	if err := s.Delete(ctx, keyringPrefix+name); err != nil {
		b.Logger().Error("cleaning up a failed connection create", "connection", name, "error", err)
	}
	if err := deleteAllKeyMaterial(ctx, s, name); err != nil {
		b.Logger().Error("cleaning up a failed connection create", "connection", name, "error", err)
	}
	if err := deleteConsumerSecrets(ctx, s, name); err != nil {
		b.Logger().Error("cleaning up a failed connection create", "connection", name, "error", err)
	}
}

// applyConnectionFields sets the given fields on c and checks the result as a whole.
func applyConnectionFields(c *connectionEntry, d *framework.FieldData, now time.Time) *fieldError {
	str := func(field string, dst *string) bool {
		v, ok := d.GetOk(field)
		if ok {
			*dst = strings.TrimSpace(v.(string))
		}
		return ok
	}
	if str("auth_flow", &c.AuthFlow) {
		if ferr := oneOf("auth_flow", c.AuthFlow, authFlowJWTBearer, authFlowClientCredentials); ferr != nil {
			return ferr
		}
	}
	oldKey := c.ConsumerKey
	str("consumer_key", &c.ConsumerKey)
	if c.ConsumerKey != oldKey {
		c.ConsumerKeySetAt = now
	}
	str("login_url", &c.LoginURL)
	for _, f := range []struct {
		field string
		dst   *bool
	}{
		{"allow_non_salesforce_host", &c.AllowNonSalesforceHost},
		{"allow_community_login", &c.AllowCommunityLogin},
		{"allow_privileged_roles", &c.AllowPrivilegedRoles},
	} {
		if v, ok := d.GetOk(f.field); ok {
			*f.dst = v.(bool)
		}
	}
	loginURL, err := salesforce.ValidateLoginURL(c.LoginURL, salesforce.HostPolicy{AllowNonSalesforce: c.AllowNonSalesforceHost, AllowCommunity: c.AllowCommunityLogin})
	if err != nil {
		return fieldErr("login_url", "%s", err)
	}
	c.LoginURL = loginURL
	for _, f := range []struct {
		field string
		dst   *[]string
		lower bool
	}{{"allowed_roles", &c.AllowedRoles, true}, {"allowed_usernames", &c.AllowedUsernames, true}} { // role names and usernames are case-insensitive
		if ferr := globListField(d, f.field, f.dst, f.lower); ferr != nil {
			return ferr
		}
	}

	if str("audience", &c.Audience) && c.Audience != "" {
		aud, err := salesforce.ValidateAudience(c.Audience)
		if err != nil {
			return fieldErr("audience", "%s", err)
		}
		c.Audience = aud
	}
	if str("ca_cert", &c.CACert) && c.CACert != "" {
		if ferr := validCABundle(c.CACert); ferr != nil {
			return ferr
		}
	}
	if str("key_type", &c.KeyType) {
		if ferr := oneOf("key_type", c.KeyType, keyutil.KeyTypes...); ferr != nil {
			return ferr
		}
	}
	str("certificate_subject", &c.CertificateSubject) // checked with the default, by the caller
	if str("deploy", &c.Deploy) {
		if ferr := oneOf("deploy", c.Deploy, deployManual, deployMetadataAPI); ferr != nil {
			return ferr
		}
	}
	if str("app_type", &c.AppType) {
		if ferr := oneOf("app_type", c.AppType, appTypeConnectedApp, appTypeExternalClientApp); ferr != nil {
			return ferr
		}
	}
	if str("app_name", &c.AppName) && c.AppName != "" && !appNameRe.MatchString(c.AppName) {
		return fieldErr("app_name", "is not an API name: start with a letter, then letters, digits or underscores (at most 80)")
	}
	if str("eca_oauth_settings_name", &c.ECAOAuthSettingsName) && c.ECAOAuthSettingsName != "" && !appNameRe.MatchString(c.ECAOAuthSettingsName) {
		return fieldErr("eca_oauth_settings_name", "is not an API name: start with a letter, then letters, digits or underscores (at most 80)")
	}
	for _, f := range []struct {
		field string
		dst   *string
	}{{"deploy_username", &c.DeployUsername}, {"verify_username", &c.VerifyUsername}} {
		if str(f.field, f.dst) && *f.dst != "" {
			if ferr := validUsername(f.field, *f.dst); ferr != nil {
				return ferr
			}
		}
	}
	if str("api_version", &c.APIVersion) && !apiVersionRe.MatchString(c.APIVersion) {
		return fieldErr("api_version", "is not a Salesforce API version: use the form 62.0")
	}
	if ferr := wholeNumber(d, "keep_archived_keys"); ferr != nil {
		return ferr
	}
	if v, ok := d.GetOk("keep_archived_keys"); ok {
		n := v.(int)
		if n < 0 || n > maxKeepArchivedKeys {
			return fieldErr("keep_archived_keys", "is %d: keep between 0 and %d archived versions", n, maxKeepArchivedKeys)
		}
		c.KeepArchivedKeys = n
	}
	for _, f := range []struct {
		field     string
		dst       *time.Duration
		min, max  time.Duration
		allowZero bool
	}{
		{"certificate_ttl", &c.CertificateTTL, minCertificateTTL, maxCertificateTTL, false},
		{"key_rotation_period", &c.KeyRotationPeriod, minKeyRotationPeriod, maxCertificateTTL, true},
		{"certificate_renew_before", &c.CertificateRenewBefore, time.Hour, maxCertificateTTL, true},
		{"propagation_timeout", &c.PropagationTimeout, minPropagationTimeout, maxPropagationTimeout, false},
		{"consumer_key_max_age", &c.ConsumerKeyMaxAge, 24 * time.Hour, 0, true},
	} {
		v, set, ferr := durationField(d, f.field, f.min, f.max, f.allowZero)
		if ferr != nil {
			return ferr
		}
		if set {
			*f.dst = v
		}
	}
	if ferr := applyRotationFields(c, d); ferr != nil {
		return ferr
	}
	if ferr := applyCredentialsRotationFields(c, d); ferr != nil {
		return ferr
	}
	return c.validate()
}

// validSubject checks the subject new certificates will get, the default included: a long
// connection name or an old stored value must fail here, naming the field, not at key creation.
func validSubject(subject string) *fieldError {
	if _, err := keyutil.ParseSubject(subject); err != nil {
		return fieldErr("certificate_subject", "%s", err)
	}
	return nil
}

// maxGlobs and maxGlobLength bound the scoping lists: they are matched at every mint.
const (
	maxGlobs      = 64
	maxGlobLength = 256
)

// globListField reads an optional list of names or globs. An empty list is refused: it would
// allow nothing, and a connection no role may use is a typo far more often than an intent.
func globListField(d *framework.FieldData, field string, dst *[]string, lower bool) *fieldError {
	raw, ok := d.GetOk(field)
	if !ok {
		return nil
	}
	out := []string{}
	for _, g := range raw.([]string) {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if len(g) > maxGlobLength || hasControlOrFormat(g) {
			return fieldErr(field, "has an entry that is not a name or glob of at most %d printable characters", maxGlobLength)
		}
		if lower {
			g = strings.ToLower(g)
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return fieldErr(field, "is empty: give at least one name or glob (\"*\" allows all)")
	}
	if len(out) > maxGlobs {
		return fieldErr(field, "has %d entries: use at most %d (globs such as app-* cover many)", len(out), maxGlobs)
	}
	*dst = out
	return nil
}

func validCABundle(pemData string) *fieldError {
	if len(pemData) > maxCACertBytes {
		return fieldErr("ca_cert", "is %d bytes: give at most %d bytes of PEM certificates", len(pemData), maxCACertBytes)
	}
	if !x509.NewCertPool().AppendCertsFromPEM([]byte(pemData)) {
		return fieldErr("ca_cert", "holds no PEM certificate: give one or more PEM-encoded CA certificates (BEGIN CERTIFICATE blocks)")
	}
	return nil
}

func (b *backend) pathConnectionRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil || conn == nil {
		return nil, err
	}
	ring, err := getKeyRing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	return b.connectionResponse(name, conn, ring)
}

// connectionResponse is every setting plus the key ring's summary. Never key material.
func (b *backend) connectionResponse(name string, c *connectionEntry, ring *keyRing) (*logical.Response, error) {
	secs := func(d time.Duration) int64 { return int64(d.Seconds()) }
	data := map[string]any{
		"consumer_key":               c.ConsumerKey,
		"auth_flow":                  c.flow(),
		"consumer_key_set_at":        formatTime(c.ConsumerKeySetAt),
		"login_url":                  c.LoginURL,
		"audience":                   c.audience(),
		"allow_non_salesforce_host":  c.AllowNonSalesforceHost,
		"ca_cert":                    c.CACert,
		"key_type":                   c.KeyType,
		"certificate_ttl":            secs(c.CertificateTTL),
		"certificate_subject":        c.subject(name),
		"key_rotation_period":        secs(c.KeyRotationPeriod),
		"certificate_renew_before":   secs(c.CertificateRenewBefore),
		"keep_archived_keys":         c.KeepArchivedKeys,
		"deploy":                     c.Deploy,
		"app_type":                   c.AppType,
		"app_name":                   c.AppName,
		"eca_oauth_settings_name":    c.ECAOAuthSettingsName,
		"deploy_username":            c.DeployUsername,
		"verify_username":            c.VerifyUsername,
		"propagation_timeout":        secs(c.PropagationTimeout),
		"api_version":                c.APIVersion,
		"consumer_key_max_age":       secs(c.ConsumerKeyMaxAge),
		"rotation_period":            secs(c.KeyRotationPeriod),
		"rotation_schedule":          c.RotationSchedule,
		"rotation_window":            secs(c.RotationWindow),
		"disable_automated_rotation": c.DisableAutomatedRotation,
		"allow_community_login":      c.AllowCommunityLogin,
		"allowed_roles":              globsOrAll(c.AllowedRoles),
		"allowed_usernames":          globsOrAll(c.AllowedUsernames),
		"allow_privileged_roles":     c.AllowPrivilegedRoles,
		"created_at":                 formatTime(c.CreatedAt),
		"updated_at":                 formatTime(c.UpdatedAt),
	}
	resp := &logical.Response{Data: data}
	if c.clientCredentials() {
		for _, f := range jwtOnlyFields {
			delete(data, f) // settings of keys and certificates, which it has none of
		}
	}
	if c.consumerRotatable() { // an External Client App's consumer credential rotation
		maps.Copy(data, credentialsRotationData(c))
	}
	if ring == nil {
		return resp, nil
	}
	data["active_key_version"] = 0
	data["pending_key_version"] = 0
	if a := ring.active(); a != nil {
		data["active_key_version"] = a.Version
		data["certificate"] = a.Certificate
		data["certificate_fingerprint_sha256"] = a.FingerprintSHA256
		data["certificate_not_after"] = formatTime(a.NotAfter)
	}
	if p := ring.pending(); p != nil {
		data["pending_key_version"] = p.Version
	}
	// The rotation's detail is at connections/<name>/rotation; a read carries its summary.
	rot := b.rotationData(c, ring)
	data["rotation_state"] = rot["state"]
	data["rotation_last_error"] = rot["last_error"]
	data["next_scheduled_rotation"] = rot["next_scheduled_rotation"]
	data["next_vault_rotation"] = rot["next_scheduled_rotation"]
	data["last_vault_rotation"] = formatTime(lastVaultRotation(ring))
	for _, w := range b.connectionWarnings(c, ring) {
		resp.AddWarning(w)
	}
	return resp, nil
}

// globsOrAll is a scoping list as the API shows it: nil (an entry from before scoping) is "*".
func globsOrAll(l []string) []string {
	if l == nil {
		return []string{"*"}
	}
	return l
}

// connectionWarnings are what an operator should act on before it becomes an outage.
func (b *backend) connectionWarnings(c *connectionEntry, ring *keyRing) []string {
	now := b.now()
	var w []string
	if a := ring.active(); a != nil && !c.rotationEnabled() && a.NotAfter.Sub(now) < c.CertificateRenewBefore {
		w = append(w, fmt.Sprintf("the active certificate (version %d) expires %s and key rotation is off: set key_rotation_period or rotate with connections/<name>/rotate", a.Version, formatTime(a.NotAfter)))
	}
	switch {
	case ring.stalled():
		w = append(w, fmt.Sprintf("the last key rotation is stalled (failed, its pending key still checked every %s and promoted once Salesforce accepts it): %s", stalledProbeInterval, ring.Rotation.LastError))
	case ring.Rotation.State == stateFailed:
		w = append(w, "the last key rotation failed: "+ring.Rotation.LastError)
	}
	if a := ring.active(); a != nil && !ring.boundToCurrent(a, c) {
		where := "a previous login_url"
		if o, _ := ring.originFor(a, c); o != nil {
			where = o.LoginURL
		}
		w = append(w, fmt.Sprintf("the active key (version %d) was made for %s and signs only there, so reads still go there: register the pending certificate on the app so that a key made for the current login_url is proven and promoted", a.Version, where))
	}
	if c.ConsumerKeyMaxAge > 0 && !c.ConsumerKeySetAt.IsZero() && now.Sub(c.ConsumerKeySetAt) > c.ConsumerKeyMaxAge {
		w = append(w, fmt.Sprintf("consumer_key was set %s, longer ago than consumer_key_max_age: consider regenerating the app's consumer key", formatTime(c.ConsumerKeySetAt)))
	}
	return w
}

func (b *backend) pathConnectionDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	defer b.lockConn(name)()
	users, err := b.rolesUsing(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return logical.ErrorResponse("connection %q is used by role(s) %s: delete them or point them at another connection first", name, strings.Join(users, ", ")), nil
	}
	if resp, err := liveCacheOnlyKeysRefusal(ctx, req.Storage, name); resp != nil || err != nil {
		return resp, err
	}
	if resp, err := tenantSecretsRefusal(ctx, req.Storage, name); resp != nil || err != nil {
		return resp, err
	}
	// The connection entry goes first so the connection disappears at once; the key material
	// follows. A failure part-way leaves only unreferenced entries, which a new connection of
	// the same name clears before writing its own.
	defer b.snaps.drop(name)
	for _, key := range []string{connectionsPrefix + name, keyringPrefix + name} {
		if err := req.Storage.Delete(ctx, key); err != nil {
			return nil, err
		}
	}
	if err := deleteAllKeyMaterial(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if err := deleteConsumerSecrets(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	b.unscheduleConnection(name)
	b.sched.set(ccSchedKey(name), time.Time{})
	b.Logger().Info("deleted connection and destroyed its keys", "connection", name)
	return nil, nil
}

const connectionHelp = `
A connection is one Salesforce org reached through one Connected App (or External Client App):
where token requests go, the app's consumer key, and the ring of RSA keys that sign JWT
assertions. The keys are generated inside Vault and never leave it.

Creating a connection generates key version 1 and returns its certificate. Register that
certificate on the app (Setup > App Manager > Edit > Use digital signatures), or read it later:

    vault read -field=certificate <mount>/connections/<name>/certificate > vault.crt

Reads return every setting, the active and pending key versions, the active certificate, its
fingerprint and expiry, and the rotation state; never private key material. A connection used
by roles, with cache-only keys that are not destroyed, or managing tenant secrets, cannot be
deleted.
`
