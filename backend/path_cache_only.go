package backend

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
)

// cacheOnlyKeyPattern is connections/<name>/cache-only-keys/<kid> followed by suffix. The
// route takes any generic name so that a bad kid gets a 400 naming the field, not a 404.
func cacheOnlyKeyPattern(suffix string) string {
	return entryPath("connections/", "/cache-only-keys/"+framework.GenericNameRegex("kid")+suffix)
}

func cacheOnlyKidField() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{"kid": {Type: framework.TypeString,
		Description: "The key identifier: 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_', unique in this mount. Salesforce sends it in the callout URL and it is the key's RemoteKeyIdentifier there."}}
}

func cacheOnlyKeyFields() map[string]*framework.FieldSchema {
	f := cacheOnlyKidField()
	f["certificate"] = &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{EditType: "textarea"},
		Description: "PEM of the org's BYOK certificate (RSA 2048 or 4096 bits; Setup > Certificate and Key Management > Download Certificate). The data key is wrapped for it on every callout. This or certificate_name is required."}
	f["certificate_name"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "The BYOK certificate's unique name (API name) at Salesforce: when certificate is not given, its PEM is read through the Tooling API with the connection's own login (the user needs Manage Encryption Keys). Kept for reads."}
	f["replay_detection"] = &framework.FieldSchema{Type: framework.TypeBool, Default: false,
		Description: "Match the key's \"Use replay detection\" setting at Salesforce: callouts without a requestId nonce are refused, and the nonce comes back as the JWE header's jti."}
	f["auth_scheme"] = &framework.FieldSchema{Type: framework.TypeString, Default: authSchemeBearer, AllowedValues: []any{authSchemeBearer, authSchemeBasic},
		Description: "How the Named Credential authenticates: bearer (it sends \"Authorization: Bearer <named_credential_secret>\") or basic (password authentication, username the kid, password named_credential_secret). Any other credential is refused."}
	return f
}

func cacheOnlyRegisterFields() map[string]*framework.FieldSchema {
	f := cacheOnlyKidField()
	var types []any
	for _, t := range remoteKeyTypes() {
		types = append(types, t)
	}
	f["type"] = &framework.FieldSchema{Type: framework.TypeString, Default: "data", AllowedValues: types,
		Description: "The tenant secret type the key serves, as in tenant-secrets/:type: data (the default), deterministic_data, analytics or event_bus. The registered key becomes the type's active key at Salesforce, and Salesforce's minimum interval between rotations of the type applies."}
	f["named_credential"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "Required. The developer name (API name) of the org's Named Credential that calls Vault's cache-only endpoint with this key's named_credential_secret. Vault looks up its id, Salesforce's RemoteKeyServiceId."}
	f["certificate_name"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "The BYOK certificate's unique name (API name) at Salesforce, the key's RemoteKeyCertificate. Leave it out when the key was created with certificate_name (that one is used); required when it was created from a PEM."}
	return f
}

func pathCacheOnly(b *backend) []*framework.Path {
	return []*framework.Path{
		pathSpec{pattern: "cache-only/" + framework.GenericNameRegex("kid"), verb: "fetch", suffix: "cache-only-key",
			fields: map[string]*framework.FieldSchema{
				"kid":       {Type: framework.TypeString, Description: "The key identifier Salesforce asks for."},
				"requestId": {Type: framework.TypeString, Query: true, Description: "Salesforce's replay-detection nonce, echoed as the JWE header's jti."},
			},
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathCacheOnlyFetch, "Answer Salesforce's cache-only key callout.")},
			synopsis: "The cache-only key service endpoint that Salesforce's Named Credential calls.", help: cacheOnlyFetchHelp}.path(),
		pathSpec{pattern: entryPath("connections/", "/cache-only-keys/?$"), suffix: "cache-only-keys", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ListOperation: plain(b.pathCacheOnlyKeysList, "List a connection's cache-only keys.")},
			synopsis: "List a connection's cache-only keys with their status.", help: cacheOnlyKeyHelp}.path(),
		pathSpec{pattern: cacheOnlyKeyPattern("/rotate-secret"), verb: "rotate", suffix: "cache-only-key-secret", fields: withName("connection", cacheOnlyKidField()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.pathCacheOnlySecretRotate, "Issue a new Named Credential secret.")},
			synopsis: "Issue a new Named Credential secret for a cache-only key; the old one stops working at once.", help: cacheOnlyRotateHelp}.path(),
		pathSpec{pattern: cacheOnlyKeyPattern("/register"), verb: "register", suffix: "cache-only-key", fields: withName("connection", cacheOnlyRegisterFields()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.pathCacheOnlyKeyRegister, "Register the cache-only key at Salesforce.")},
			synopsis: "Register a cache-only key at Salesforce: a TenantSecret with Source REMOTE, made with the connection's own login.", help: cacheOnlyRegisterHelp}.path(),
		pathSpec{pattern: cacheOnlyKeyPattern(""), suffix: "cache-only-key", fields: withName("connection", cacheOnlyKeyFields()), exists: b.cacheOnlyKeyExists,
			ops: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: changes(b.pathCacheOnlyKeyCreate, "Create a cache-only key."),
				logical.UpdateOperation: changes(b.pathCacheOnlyKeyCreate, "Refused: a cache-only key cannot change."),
				logical.ReadOperation:   plain(b.pathCacheOnlyKeyRead, "Read a cache-only key's settings and status."),
				logical.DeleteOperation: changes(b.pathCacheOnlyKeyDestroy, "Destroy a cache-only key."),
			},
			synopsis: "Manage a cache-only key: a data key Salesforce fetches from Vault on use.", help: cacheOnlyKeyHelp}.path(),
	}
}

// cacheOnlyKeyOf is the key kid of connection name; nil when there is none (or it belongs to
// another connection).
func cacheOnlyKeyOf(ctx context.Context, s logical.Storage, name, kid string) (*cacheOnlyKey, error) {
	k, err := getCacheOnlyKey(ctx, s, kid)
	if err != nil || k == nil || k.Connection != name {
		return nil, err
	}
	return k, nil
}

func (b *backend) cacheOnlyKeyExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	kid := d.Get("kid").(string)
	if validKid(kid) != nil {
		return false, nil //nolint:nilerr // a malformed kid names no key; the handler says why
	}
	k, err := cacheOnlyKeyOf(ctx, req.Storage, d.Get("name").(string), kid)
	return k != nil, err
}

func (b *backend) pathCacheOnlyKeyCreate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name, kid := d.Get("name").(string), d.Get("kid").(string)
	if resp := validName(name); resp != nil {
		return resp, nil
	}
	if ferr := validKid(kid); ferr != nil {
		return ferr.response(), nil
	}
	if req.Operation == logical.UpdateOperation {
		return logical.ErrorResponse("cache-only key %q already exists and cannot change: use connections/<name>/cache-only-keys/%s/rotate-secret for a new Named Credential secret, or create a key with another kid", kid, kid), nil
	}
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return logical.ErrorResponse("connection %q does not exist: create it first", name), nil
	}
	k := &cacheOnlyKey{Kid: kid, Connection: name, ReplayDetection: d.Get("replay_detection").(bool), AuthScheme: d.Get("auth_scheme").(string), CreatedAt: b.now().UTC()}
	if ferr := oneOf("auth_scheme", k.AuthScheme, authSchemeBearer, authSchemeBasic); ferr != nil {
		return ferr.response(), nil
	}
	// Read before any lock: it may be a call to Salesforce.
	cert, bad, err := b.cacheOnlyCertificate(ctx, req.Storage, name, d)
	if bad != nil || err != nil {
		return bad, err
	}
	k.Certificate, k.CertificateName = keyutil.EncodeCertificate(cert), d.Get("certificate_name").(string)
	dataKey, err := newDataKey()
	if err != nil {
		return nil, err
	}
	secret, hash, err := newBearerSecret()
	if err != nil {
		return nil, err
	}

	defer b.lockConnWith(name, cacheOnlyPrefix+kid)()
	// Again under the lock the connection delete takes: a key is never made for a connection
	// deleted since the check above.
	if conn, err := getConnection(ctx, req.Storage, name); err != nil || conn == nil {
		if err != nil {
			return nil, err
		}
		return logical.ErrorResponse("connection %q does not exist: create it first", name), nil
	}
	if existing, err := getCacheOnlyKey(ctx, req.Storage, kid); err != nil || existing != nil {
		if err != nil {
			return nil, err
		}
		// Not naming the other connection: a writer of this one may not be allowed to see it.
		return logical.ErrorResponse("kid %q is already used in this mount: choose another kid", kid), nil
	}
	// The secret entry first: until the metadata exists nothing serves or lists the key, and a
	// create retried after a failure here overwrites the unreferenced entry.
	if err := putJSON(ctx, req.Storage, cacheOnlySecretPath(name, kid), &cacheOnlySecret{DataKey: dataKey, BearerHash: hash}); err != nil {
		return nil, err
	}
	if err := putJSON(ctx, req.Storage, cacheOnlyKeyPath(kid), k); err != nil {
		return nil, err
	}
	b.Logger().Info("created cache-only key", "connection", name, "kid", kid)
	resp := &logical.Response{Data: cacheOnlyKeyInfo(k, cert, cacheOnlyActive)}
	b.addNamedCredential(resp, req, k, secret)
	if cert.NotAfter.Before(k.CreatedAt) {
		resp.AddWarning("the certificate expired on " + formatTime(cert.NotAfter) + ": check it is the org's current BYOK certificate (the key is wrapped for it on every callout)")
	}
	return resp, nil
}

// cacheOnlyCertificate is the certificate a create names, checked: the PEM given, or the one
// certificate_name names at Salesforce. resp is the 400 that says what is wrong.
func (b *backend) cacheOnlyCertificate(ctx context.Context, s logical.Storage, conn string, d *framework.FieldData) (*x509.Certificate, *logical.Response, error) {
	field, pemText := "certificate", d.Get("certificate").(string)
	if name := d.Get("certificate_name").(string); pemText == "" && name != "" {
		field = "certificate_name"
		var resp *logical.Response
		if pemText, resp = b.byokCertificatePEM(ctx, s, conn, name); resp != nil {
			return nil, resp, nil
		}
	}
	if pemText == "" {
		return nil, fieldErr("certificate", "is required, or certificate_name: the org's BYOK certificate (Setup > Certificate and Key Management)").response(), nil
	}
	cert, ferr := parseBYOKCertificate(field, pemText)
	if ferr != nil {
		return nil, ferr.response(), nil
	}
	return cert, nil, nil
}

// addNamedCredential puts the one-time answer of a create or a secret rotation in resp: the
// secret, and what the Named Credential needs around it.
func (b *backend) addNamedCredential(resp *logical.Response, req *logical.Request, k *cacheOnlyKey, secret string) {
	resp.Data["named_credential_secret"] = secret
	if k.AuthScheme == authSchemeBasic {
		resp.Data["named_credential_username"] = k.Kid
	}
	if req.MountPoint != "" {
		resp.Data["named_credential_url_path"] = "/v1/" + req.MountPoint + "cache-only"
	}
	resp.AddWarning("named_credential_secret is shown only now: put it in the Named Credential. If it is lost, rotate-secret issues a new one; the key itself stays.")
}

func cacheOnlyKeyInfo(k *cacheOnlyKey, cert *x509.Certificate, status string) map[string]any {
	info := map[string]any{
		"kid":               k.Kid,
		"connection":        k.Connection,
		"status":            status,
		"replay_detection":  k.ReplayDetection,
		"auth_scheme":       k.AuthScheme,
		"certificate_name":  k.CertificateName,
		"callout_path":      "cache-only/" + k.Kid,
		"created_at":        formatTime(k.CreatedAt),
		"secret_rotated_at": formatTime(k.SecretRotatedAt),
		"destroyed_at":      formatTime(k.DestroyedAt),
	}
	for field, v := range registrationInfo(k) {
		if field != "certificate_name" || v != "" {
			info[field] = v
		}
	}
	if cert != nil {
		info["certificate_fingerprint_sha256"] = keyutil.Fingerprint(cert)
		info["certificate_not_after"] = formatTime(cert.NotAfter)
	}
	return info
}

func (b *backend) pathCacheOnlyKeyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	k, err := cacheOnlyKeyOf(ctx, req.Storage, d.Get("name").(string), d.Get("kid").(string))
	if err != nil || k == nil {
		return nil, err
	}
	sec, err := getCacheOnlySecret(ctx, req.Storage, k)
	if err != nil {
		return nil, err
	}
	cert, err := keyutil.ParseCertificatePEM(k.Certificate)
	if err != nil {
		return nil, err
	}
	data := cacheOnlyKeyInfo(k, cert, k.status(sec))
	data["certificate"] = k.Certificate
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathCacheOnlyKeysList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	found, err := cacheOnlyKeysOf(ctx, req.Storage, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	var keys []string
	info := map[string]any{}
	for _, k := range found {
		keys = append(keys, k.key.Kid)
		info[k.key.Kid] = cacheOnlyKeyInfo(k.key, nil, k.key.status(k.secret))
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

// pathCacheOnlyKeyDestroy erases the data key. The entry stays as a tombstone so that the
// kid is never reused and Salesforce's callouts get the destroyed answer, not a refusal.
func (b *backend) pathCacheOnlyKeyDestroy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, kid := d.Get("name").(string), d.Get("kid").(string)
	if validKid(kid) != nil {
		return nil, nil
	}
	defer b.lockCacheOnlyKey(kid)()
	k, err := cacheOnlyKeyOf(ctx, req.Storage, name, kid)
	if err != nil || k == nil {
		return nil, err
	}
	sec, err := getCacheOnlySecret(ctx, req.Storage, k)
	if err != nil {
		return nil, err
	}
	// The data key goes first: once it is gone the key is destroyed whatever happens next.
	if sec != nil && len(sec.DataKey) > 0 {
		if err := putJSON(ctx, req.Storage, cacheOnlySecretPath(name, kid), &cacheOnlySecret{BearerHash: sec.BearerHash}); err != nil {
			return nil, err
		}
	}
	if k.DestroyedAt.IsZero() {
		k.DestroyedAt = b.now().UTC()
		if err := putJSON(ctx, req.Storage, cacheOnlyKeyPath(kid), k); err != nil {
			return nil, err
		}
		b.Logger().Warn("destroyed cache-only key: Salesforce can no longer decrypt data encrypted under it once its cache is flushed", "connection", name, "kid", kid)
	}
	return nil, nil
}

func (b *backend) pathCacheOnlySecretRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name, kid := d.Get("name").(string), d.Get("kid").(string)
	if ferr := validKid(kid); ferr != nil {
		return ferr.response(), nil
	}
	secret, hash, err := newBearerSecret()
	if err != nil {
		return nil, err
	}
	defer b.lockCacheOnlyKey(kid)()
	k, err := cacheOnlyKeyOf(ctx, req.Storage, name, kid)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return logical.ErrorResponse("connection %q has no cache-only key %q", name, kid), nil
	}
	sec, err := getCacheOnlySecret(ctx, req.Storage, k)
	if err != nil {
		return nil, err
	}
	if k.status(sec) == cacheOnlyDestroyed {
		return logical.ErrorResponse("cache-only key %q is destroyed: it has no secret to rotate", kid), nil
	}
	if err := putJSON(ctx, req.Storage, cacheOnlySecretPath(name, kid), &cacheOnlySecret{DataKey: sec.DataKey, BearerHash: hash}); err != nil {
		return nil, err
	}
	k.SecretRotatedAt = b.now().UTC()
	if err := putJSON(ctx, req.Storage, cacheOnlyKeyPath(kid), k); err != nil {
		return nil, err
	}
	b.Logger().Info("rotated the Named Credential secret of a cache-only key", "connection", name, "kid", kid)
	resp := &logical.Response{Data: map[string]any{"kid": kid, "secret_rotated_at": formatTime(k.SecretRotatedAt)}}
	b.addNamedCredential(resp, req, k, secret)
	return resp, nil
}

// pathCacheOnlyFetch answers Salesforce's callout. Vault does not authenticate it (the path
// is unauthenticated); the Named Credential's secret does. Every refusal before the caller is
// known is the same bare 401, so the answer tells an outsider nothing, not even whether the
// kid exists.
func (b *backend) pathCacheOnlyFetch(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	kid := d.Get("kid").(string)
	if validKid(kid) != nil {
		return cacheOnlyAnswer(401, map[string]any{"error": "unauthorized"}), nil //nolint:nilerr // every refusal is the same bare 401
	}
	k, err := getCacheOnlyKey(ctx, req.Storage, kid)
	if err != nil {
		return nil, err
	}
	var sec *cacheOnlySecret
	if k != nil {
		if sec, err = getCacheOnlySecret(ctx, req.Storage, k); err != nil {
			return nil, err
		}
	}
	if k == nil || sec == nil || !k.authorizes(sec, authorizationHeader(req.Headers)) {
		b.Logger().Debug("refused a cache-only key callout", "kid", kid, "remote_addr", remoteAddr(req))
		return cacheOnlyAnswer(401, map[string]any{"error": "unauthorized"}), nil
	}
	if k.status(sec) == cacheOnlyDestroyed {
		b.Logger().Warn("Salesforce asked for a destroyed cache-only key", "connection", k.Connection, "kid", kid)
		return cacheOnlyAnswer(404, map[string]any{"error": "key destroyed"}), nil
	}
	requestID, resp := cacheOnlyRequestID(req, d, k)
	if resp != nil {
		return resp, nil
	}
	cert, err := keyutil.ParseCertificatePEM(k.Certificate)
	if err != nil {
		return nil, err
	}
	jwe, err := cacheOnlyJWE(kid, requestID, cert.PublicKey.(*rsa.PublicKey), sec.DataKey)
	if err != nil {
		return nil, err
	}
	b.Logger().Debug("served a cache-only key", "connection", k.Connection, "kid", kid, "replay_nonce", requestID != "")
	return cacheOnlyAnswer(200, map[string]any{"kid": kid, "jwe": jwe}), nil
}

// cacheOnlyRequestID is the callout's nonce, checked against the key's replay setting; resp
// is the 400 of a callout that may not be served.
func cacheOnlyRequestID(req *logical.Request, d *framework.FieldData, k *cacheOnlyKey) (string, *logical.Response) {
	for field := range req.Data {
		if field != "requestId" {
			return "", cacheOnlyAnswer(400, map[string]any{"error": "unknown query parameter: only requestId is accepted"})
		}
	}
	requestID := d.Get("requestId").(string)
	switch {
	case requestID == "" && k.ReplayDetection:
		return "", cacheOnlyAnswer(400, map[string]any{"error": "requestId is required: this key has replay detection on"})
	case requestID != "" && !requestIDRe.MatchString(requestID):
		return "", cacheOnlyAnswer(400, map[string]any{"error": "requestId must be 1 to 256 visible ASCII characters"})
	}
	return requestID, nil
}

// cacheOnlyAnswer is a raw JSON answer: Salesforce reads the body and the status as they are,
// not wrapped in Vault's {"data":…} envelope.
func cacheOnlyAnswer(status int, body map[string]any) *logical.Response {
	raw, _ := json.Marshal(body) // maps of strings always encode
	return &logical.Response{Data: map[string]any{
		logical.HTTPStatusCode:         status,
		logical.HTTPContentType:        "application/json",
		logical.HTTPRawBody:            raw,
		logical.HTTPCacheControlHeader: "no-store",
	}}
}

func remoteAddr(req *logical.Request) string {
	if req.Connection == nil {
		return ""
	}
	return req.Connection.RemoteAddr
}

const cacheOnlyKeyHelp = `
A cache-only key is a 32-byte data key that Salesforce Shield Platform Encryption fetches from
Vault each time it needs it (Cache-Only Key Service) instead of storing it. It is generated in
Vault and kept only under the seal-wrapped storage prefix; reads never show it.

Create one with the org's BYOK certificate (RSA 2048 or 4096 bits):

    vault write <mount>/connections/<name>/cache-only-keys/<kid> certificate=@byok.crt

The answer holds named_credential_secret, once: the value the org's Named Credential sends as
"Authorization: Bearer <value>" (or, with auth_scheme=basic, as the password of user <kid>).
Point the Named Credential at https://<vault>/v1/<mount>/cache-only; Salesforce appends /<kid>.
The mount must pass the Authorization header to the plugin:

    vault secrets tune -passthrough-request-headers=Authorization <mount>

Reads show the status (active or destroyed), the certificate, replay_detection and dates.
Deleting a key destroys it: the data key is erased at once and later callouts are answered
404, which Salesforce reports as DESTROY_HTTP_CODE. Salesforce can then no longer decrypt
anything encrypted under the key once its cache (at most 72 hours) is flushed. This cannot be
undone. The kid stays reserved (status destroyed).
`

const cacheOnlyRotateHelp = `
Issues a new Named Credential secret for an active cache-only key and answers it once as
named_credential_secret. The previous secret stops working at once, so update the Named
Credential right after. The data key does not change.
`

const cacheOnlyFetchHelp = `
The endpoint of the cache-only key service: Salesforce's Named Credential calls
GET <mount>/cache-only/<kid> (with ?requestId=<nonce> when replay detection is on). Vault does not
authenticate it; the key's Named Credential secret does, in the Authorization header, which the
mount must pass through (vault secrets tune -passthrough-request-headers=Authorization <mount>).

The answer is raw JSON {"kid": "<kid>", "jwe": "<compact JWE>"}: the data key under AES-256-GCM,
its content key RSA-OAEP-wrapped for the key's BYOK certificate, the header
{"alg":"RSA-OAEP","enc":"A256GCM","kid":"<kid>"} plus "jti":"<nonce>" when a requestId was sent.
A missing or wrong credential (or an unknown kid) gets 401 with no detail; a destroyed key 404;
a missing nonce under replay detection, or a malformed one, 400.
`

const cacheOnlyRegisterHelp = `
Registers the cache-only key at Salesforce as a TenantSecret with Source REMOTE: its kid
(RemoteKeyIdentifier), the Named Credential Salesforce calls Vault through
(RemoteKeyServiceId) and the BYOK certificate (RemoteKeyCertificate). No key material is sent.
The connection's own login makes the call; its user needs Manage Encryption Keys.

    vault write <mount>/connections/<name>/cache-only-keys/<kid>/register named_credential=Vault_Keys

The registered key becomes the active key of its type at Salesforce (the previous one is
archived), so set up the Named Credential first: Salesforce fetches the key through it from
then on. The answer and later reads show registration_status and salesforce_id (02G…).

The intent is recorded before the call. If the call fails or Vault stops part-way, register
again: Vault first looks at Salesforce for the record it may have made, so there is never a
second registration. Salesforce refusing (no permission, no such certificate or Named
Credential, too soon after the type's last rotation) is a 400 saying what to fix, and nothing
is recorded; Salesforce unreachable is a 502. A registered key is not registered again (400).
`
