package backend

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// tenantSecretPattern is connections/<name>/tenant-secrets/<type> followed by suffix. Any
// generic name is routed so that a bad type gets a 400 naming the field, not a 404.
func tenantSecretPattern(suffix string) string {
	return entryPath("connections/", "/tenant-secrets/"+framework.GenericNameRegex("type")+suffix)
}

func tenantSecretTypeField() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{"type": {Type: framework.TypeString,
		Description: "The secret's type, Salesforce's TenantSecret Type: data, deterministic_data, analytics, event_bus, search_index or database. search_index and database secrets are wrapped as Salesforce takes them, CKM_RSA_AES_KEY_WRAP (an ephemeral AES-256 key under RSA-OAEP, the secret under it by RFC 5649 key wrap); the others with RSA-OAEP."}}
}

func tenantSecretVersionFields() map[string]*framework.FieldSchema {
	f := tenantSecretTypeField()
	f["version"] = &framework.FieldSchema{Type: framework.TypeInt, Description: "The version, as the versions list shows it."}
	return f
}

func tenantSecretConfigFields() map[string]*framework.FieldSchema {
	f := tenantSecretTypeField()
	f["certificate_name"] = &framework.FieldSchema{Type: framework.TypeString,
		Description: "The unique name of the org's BYOK certificate (Setup > Certificate and Key Management; created with Use Platform Encryption on and Exportable Private Key off). Sent with every upload. Required on create."}
	f["certificate"] = &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{EditType: "textarea"},
		Description: "The PEM of that certificate (RSA 2048 or 4096 bits). When absent, it is read from the org through the Tooling API by certificate_name."}
	f["key_derivation"] = &framework.FieldSchema{Type: framework.TypeBool, Default: true,
		Description: "Salesforce derives the data key from the secret (KeyDerivationMode PBKDF2). false uploads the secret as the final data key (NONE)."}
	f["oaep_hash"] = &framework.FieldSchema{Type: framework.TypeString, Default: "sha1", AllowedValues: []any{"sha1", "sha512"},
		Description: "The RSA-OAEP padding hash used to wrap the secret (for search_index and database, the ephemeral AES key): sha1 (what published key managers use) or sha512 (the \"SHA512 padding\" Salesforce's docs name); Salesforce accepts both."}
	f["rotation_period"] = &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: 0,
		Description: "Rotate automatically this long after the last rotation; 0 turns it off. Refused below Salesforce's minimum for the type: data and analytics 24h (sandbox 4h), deterministic_data 168h (sandbox 4h), event_bus and search_index 168h, database 24h (sandbox 4h; not published by Salesforce, assumed as data's)."}
	f["keep_archived"] = &framework.FieldSchema{Type: framework.TypeInt, Default: defaultKeep,
		Description: "How many archived versions to keep, 1 to 49 (Salesforce allows 50 active + archived per type). Beyond it, the oldest are destroyed only if auto_destroy is on."}
	f["auto_destroy"] = &framework.FieldSchema{Type: framework.TypeBool, Default: false,
		Description: "Destroy the oldest archived versions beyond keep_archived after a rotation, at Salesforce and then in Vault. WARNING: destroying a tenant secret makes the data encrypted under it unreadable unless it is re-encrypted first; an automatically destroyed version is erased from Vault and cannot be restored."}
	return f
}

func pathTenantSecrets(b *backend) []*framework.Path {
	conn := func(f map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
		return withName("connection", f)
	}
	return []*framework.Path{
		pathSpec{pattern: tenantSecretPattern("/rotate"), verb: "rotate", suffix: "tenant-secret", fields: conn(tenantSecretTypeField()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.pathTenantSecretRotate, "Generate, wrap and upload a new tenant secret now.")},
			synopsis: "Rotate a tenant secret now.", help: tenantSecretRotateHelp}.path(),
		pathSpec{pattern: tenantSecretPattern("/versions/?$"), suffix: "tenant-secret-versions", fields: conn(tenantSecretTypeField()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ListOperation: plain(b.pathTenantSecretVersions, "List the versions of a tenant secret.")},
			synopsis: "The version table of a tenant secret.", help: tenantSecretVersionsHelp}.path(),
		pathSpec{pattern: tenantSecretPattern(`/versions/(?P<version>\d+)/destroy`), verb: "destroy", suffix: "tenant-secret-version", fields: conn(tenantSecretVersionFields()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.pathTenantSecretDestroy, "Destroy an archived version at Salesforce.")},
			synopsis: "Destroy an archived tenant secret version.", help: tenantSecretDestroyHelp}.path(),
		pathSpec{pattern: tenantSecretPattern(`/versions/(?P<version>\d+)/restore`), verb: "restore", suffix: "tenant-secret-version", fields: conn(tenantSecretVersionFields()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: changes(b.pathTenantSecretRestore, "Restore a destroyed version from its export.")},
			synopsis: "Restore a destroyed tenant secret version.", help: tenantSecretDestroyHelp}.path(),
		pathSpec{pattern: tenantSecretPattern(`/versions/(?P<version>\d+)`), suffix: "tenant-secret-version", fields: conn(tenantSecretVersionFields()),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathTenantSecretVersionRead, "Read one version.")},
			synopsis: "One version of a tenant secret: never the secret.", help: tenantSecretVersionsHelp}.path(),
		pathSpec{pattern: tenantSecretPattern(""), suffix: "tenant-secret", fields: conn(tenantSecretConfigFields()), exists: b.tenantSecretExists,
			ops: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: changes(b.pathTenantSecretWrite, "Configure a tenant secret type."),
				logical.UpdateOperation: changes(b.pathTenantSecretWrite, "Change a tenant secret type's settings."),
				logical.ReadOperation:   plain(b.pathTenantSecretRead, "Read the settings and rotation state."),
				logical.DeleteOperation: changes(b.pathTenantSecretDelete, "Stop managing a tenant secret type."),
			},
			synopsis: "Manage a Shield Platform Encryption BYOK tenant secret type of a connection.", help: tenantSecretHelp}.path(),
	}
}

func validTenantSecretType(typ string) *fieldError {
	if _, ok := tenantSecretTypes[typ]; !ok {
		return fieldErr("type", "must be one of data, deterministic_data, analytics, event_bus, search_index, database")
	}
	return nil
}

func (b *backend) tenantSecretExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	cfg, err := getTenantSecretConfig(ctx, req.Storage, d.Get("name").(string), d.Get("type").(string))
	return cfg != nil, err
}

func (b *backend) pathTenantSecretWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name, typ := d.Get("name").(string), d.Get("type").(string)
	if resp := validName(name); resp != nil {
		return resp, nil
	}
	if ferr := validTenantSecretType(typ); ferr != nil {
		return ferr.response(), nil
	}
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return logical.ErrorResponse("connection %q does not exist: create it first", name), nil
	}
	cur, err := getTenantSecretConfig(ctx, req.Storage, name, typ)
	if err != nil {
		return nil, err
	}
	next := tenantSecretConfig{Connection: name, Type: typ, KeyDerivation: true, OAEPHash: "sha1", KeepArchived: defaultKeep}
	if cur != nil {
		next = *cur
	}
	if v, ok := d.GetOk("certificate_name"); ok {
		if next.CertificateName != v.(string) {
			next.Certificate = "" // another certificate: read it again unless given
		}
		next.CertificateName = v.(string)
	}
	if next.CertificateName == "" || len(next.CertificateName) > 80 {
		return fieldErr("certificate_name", "is required: the unique name (1 to 80 characters) of the org's BYOK certificate").response(), nil
	}
	if v, ok := d.GetOk("key_derivation"); ok {
		next.KeyDerivation = v.(bool)
	}
	if v, ok := d.GetOk("oaep_hash"); ok {
		next.OAEPHash = v.(string)
	}
	if ferr := oneOf("oaep_hash", next.OAEPHash, "sha1", "sha512"); ferr != nil {
		return ferr.response(), nil
	}
	if v, ok := d.GetOk("rotation_period"); ok {
		next.RotationPeriod = time.Duration(v.(int)) * time.Second
	}
	if min := minimumPeriod(typ, conn); next.RotationPeriod < 0 || (next.RotationPeriod > 0 && next.RotationPeriod < min) {
		return fieldErr("rotation_period", "must be 0 (off) or at least %s: Salesforce refuses rotating a %s secret more often in this org", min, typ).response(), nil
	}
	if v, ok := d.GetOk("keep_archived"); ok {
		next.KeepArchived = v.(int)
	}
	if next.KeepArchived < 1 || next.KeepArchived > maxKeepArchived-1 {
		return fieldErr("keep_archived", "must be 1 to %d: Salesforce allows %d active and archived secrets per type", maxKeepArchived-1, maxKeepArchived).response(), nil
	}
	if v, ok := d.GetOk("auto_destroy"); ok {
		next.AutoDestroy = v.(bool)
	}
	if resp, err := b.resolveBYOKCertificate(ctx, req.Storage, d, &next); resp != nil || err != nil {
		return resp, err
	}
	// The connection's lock too: its delete must not miss a type created meanwhile.
	defer b.lockConnWith(name, tenantSecretsPrefix+name+"/"+typ)()
	if still, err := getConnection(ctx, req.Storage, name); err != nil || still == nil {
		if err != nil {
			return nil, err
		}
		return logical.ErrorResponse("connection %q was deleted meanwhile", name), nil
	}
	if latest, err := getTenantSecretConfig(ctx, req.Storage, name, typ); err != nil {
		return nil, err
	} else if latest != nil {
		// Keep the table and rotation as they are now: only settings come from this request.
		next.Versions, next.Pending, next.LastVersion, next.LastRotatedAt, next.LastError = latest.Versions, latest.Pending, latest.LastVersion, latest.LastRotatedAt, latest.LastError
	}
	if err := putJSON(ctx, req.Storage, tenantSecretConfigPath(name, typ), &next); err != nil {
		return nil, err
	}
	b.scheduleTenantSecret(name, typ, &next)
	return &logical.Response{Data: tenantSecretInfo(&next, conn)}, nil
}

// resolveBYOKCertificate sets cfg.Certificate from the request's PEM, or reads it through the
// Tooling API when it is not known yet; resp is the 400 of a bad or missing certificate.
func (b *backend) resolveBYOKCertificate(ctx context.Context, s logical.Storage, d *framework.FieldData, cfg *tenantSecretConfig) (*logical.Response, error) {
	field, pemText := "certificate", ""
	if v, ok := d.GetOk("certificate"); ok && v.(string) != "" {
		pemText = v.(string)
	} else if cfg.Certificate != "" {
		return nil, nil
	} else {
		field = "certificate_name"
		var resp *logical.Response
		if pemText, resp = b.byokCertificatePEM(ctx, s, cfg.Connection, cfg.CertificateName); resp != nil {
			return resp, nil
		}
	}
	cert, ferr := parseBYOKCertificate(field, pemText)
	if ferr != nil {
		return ferr.response(), nil
	}
	cfg.Certificate = keyutil.EncodeCertificate(cert)
	return nil, nil
}

func tenantSecretInfo(cfg *tenantSecretConfig, conn *connectionEntry) map[string]any {
	info := map[string]any{
		"connection":              cfg.Connection,
		"type":                    cfg.Type,
		"certificate_name":        cfg.CertificateName,
		"key_derivation":          cfg.KeyDerivation,
		"oaep_hash":               cfg.OAEPHash,
		"rotation_period":         int64(cfg.RotationPeriod.Seconds()),
		"keep_archived":           cfg.KeepArchived,
		"auto_destroy":            cfg.AutoDestroy,
		"active_version":          cfg.activeVersion(),
		"last_rotated_at":         formatTime(cfg.LastRotatedAt),
		"last_error":              cfg.LastError,
		"rotation_state":          "idle",
		"next_scheduled_rotation": "",
	}
	if conn != nil {
		info["minimum_rotation_period"] = int64(minimumPeriod(cfg.Type, conn).Seconds())
	}
	if cfg.Pending != nil {
		info["rotation_state"] = cfg.Pending.State
		info["pending_version"] = cfg.Pending.Version
	}
	if cfg.RotationPeriod > 0 && !cfg.LastRotatedAt.IsZero() {
		info["next_scheduled_rotation"] = formatTime(cfg.LastRotatedAt.Add(cfg.RotationPeriod))
	}
	if cert, err := keyutil.ParseCertificatePEM(cfg.Certificate); err == nil {
		info["certificate_fingerprint_sha256"] = keyutil.Fingerprint(cert)
		info["certificate_not_after"] = formatTime(cert.NotAfter)
	}
	return info
}

func (b *backend) pathTenantSecretRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	cfg, err := getTenantSecretConfig(ctx, req.Storage, name, d.Get("type").(string))
	if err != nil || cfg == nil {
		return nil, err
	}
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	data := tenantSecretInfo(cfg, conn)
	data["certificate"] = cfg.Certificate
	return &logical.Response{Data: data}, nil
}

// pathTenantSecretDelete stops managing the type. While Salesforce holds versions Vault
// manages, it is refused: their exports (what restore needs) would be lost.
func (b *backend) pathTenantSecretDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, typ := d.Get("name").(string), d.Get("type").(string)
	defer b.lockConn(tenantSecretsPrefix + name + "/" + typ)()
	cfg, err := getTenantSecretConfig(ctx, req.Storage, name, typ)
	if err != nil || cfg == nil {
		return nil, err
	}
	if len(cfg.Versions) > 0 || cfg.Pending != nil {
		return logical.ErrorResponse("tenant secret type %q has versions at Salesforce whose export only Vault keeps: deleting would make a destroyed version impossible to restore; turn rotation_period off instead", typ), nil
	}
	b.sched.set(tsSchedKey(name, typ), time.Time{})
	return nil, req.Storage.Delete(ctx, tenantSecretConfigPath(name, typ))
}

func (b *backend) pathTenantSecretRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name, typ := d.Get("name").(string), d.Get("type").(string)
	if ferr := validTenantSecretType(typ); ferr != nil {
		return ferr.response(), nil
	}
	cfg, userErr, err := b.rotateTenantSecret(ctx, req.Storage, name, typ, "manual")
	if cfg != nil {
		b.scheduleTenantSecret(name, typ, cfg)
	}
	switch {
	case err != nil:
		return tenantSecretFailure(err)
	case userErr != "":
		return logical.ErrorResponse("the rotation did not happen: %s", userErr), nil
	case cfg == nil:
		return logical.ErrorResponse("connection %q has no tenant secret config for %q: write connections/%s/tenant-secrets/%s first", name, typ, name, typ), nil
	}
	return &logical.Response{Data: tenantSecretVersionInfo(cfg.active())}, nil
}

func tenantSecretVersionInfo(v *tsVersion) map[string]any {
	return map[string]any{
		"version":       v.Version,
		"status":        v.Status,
		"salesforce_id": v.SalesforceID,
		"source":        "vault",
		"key_manager":   "Vault",
		"hash_sha256":   v.Hash,
		"created_at":    formatTime(v.CreatedAt),
		"modified_at":   formatTime(v.ModifiedAt),
	}
}

func (b *backend) pathTenantSecretVersions(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := getTenantSecretConfig(ctx, req.Storage, d.Get("name").(string), d.Get("type").(string))
	if err != nil || cfg == nil {
		return nil, err
	}
	vs := append([]tsVersion(nil), cfg.Versions...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].Version < vs[j].Version })
	keys := make([]string, 0, len(vs))
	info := map[string]any{}
	for i := range vs {
		k := strconv.Itoa(vs[i].Version)
		keys = append(keys, k)
		info[k] = tenantSecretVersionInfo(&vs[i])
	}
	return logical.ListResponseWithInfo(keys, info), nil
}

func (b *backend) pathTenantSecretVersionRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := getTenantSecretConfig(ctx, req.Storage, d.Get("name").(string), d.Get("type").(string))
	if err != nil || cfg == nil {
		return nil, err
	}
	v := cfg.version(d.Get("version").(int))
	if v == nil {
		return nil, nil
	}
	return &logical.Response{Data: tenantSecretVersionInfo(v)}, nil
}

// pathTenantSecretDestroy destroys an archived version at Salesforce, then records it. The
// sealed secret and its export stay, so that restore can undo it.
func (b *backend) pathTenantSecretDestroy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.changeTenantSecretStatus(ctx, req, d, tsArchived, tsDestroyed)
}

// pathTenantSecretRestore writes a destroyed version's export back at Salesforce: it becomes
// archived again.
func (b *backend) pathTenantSecretRestore(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.changeTenantSecretStatus(ctx, req, d, tsDestroyed, tsArchived)
}

func (b *backend) changeTenantSecretStatus(ctx context.Context, req *logical.Request, d *framework.FieldData, from, to string) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name, typ, n := d.Get("name").(string), d.Get("type").(string), d.Get("version").(int)
	cfg, err := getTenantSecretConfig(ctx, req.Storage, name, typ)
	if err != nil {
		return nil, err
	}
	var v *tsVersion
	if cfg != nil {
		v = cfg.version(n)
	}
	switch {
	case v == nil:
		return logical.ErrorResponse("version %d of %s/%s does not exist: list …/versions", n, name, typ), nil
	case v.Status == to:
		return &logical.Response{Data: tenantSecretVersionInfo(v)}, nil // already done: a retry after a crash
	case v.Status == tsActive:
		return logical.ErrorResponse("version %d is the active secret: it cannot be destroyed; rotate first, then destroy it once archived", n), nil
	case v.Status != from:
		return logical.ErrorResponse("version %d is %s: only a %s version can become %s", n, v.Status, from, to), nil
	}
	fields := map[string]string{"Status": "Destroyed"}
	if to == tsArchived {
		val, err := getEntry[tenantSecretValue](ctx, req.Storage, tenantSecretValuePath(name, typ, n))
		if err != nil {
			return nil, err
		}
		if val == nil || val.Export == "" {
			return logical.ErrorResponse("version %d has no export value in Vault: it cannot be restored", n), nil
		}
		fields = map[string]string{"SecretValue": val.Export}
	}
	api, err := b.connectionAPI(ctx, req.Storage, name, "connection", defaultAPIVersion)
	if err != nil {
		return logical.ErrorResponse("%s", describeTenantSecretError(err)), nil
	}
	defer api.close()
	if err := api.client.UpdateTenantSecret(ctx, api.sess, v.SalesforceID, fields); err != nil {
		if !salesforce.Refused(err) {
			return tenantSecretFailure(err)
		}
		return logical.ErrorResponse("Salesforce did not change version %d: %s", n, describeTenantSecretError(err)), nil
	}
	cfg, err = b.updateTenantSecretConfig(ctx, req.Storage, cfg, func(c *tenantSecretConfig) {
		if cv := c.version(n); cv != nil {
			cv.Status, cv.ModifiedAt = to, b.now().UTC()
		}
	})
	if err != nil {
		return nil, err
	}
	if to == tsDestroyed {
		b.Logger().Warn("destroyed a tenant secret version: data encrypted under it is unreadable until it is restored", "connection", name, "type", typ, "version", n)
	}
	return &logical.Response{Data: tenantSecretVersionInfo(cfg.version(n))}, nil
}

const tenantSecretHelp = `
Vault as the key manager of a Salesforce Shield Platform Encryption tenant secret (Bring Your
Own Key). The secret is 32 random bytes generated in Vault and kept only under its seal-wrapped
storage; it is wrapped with RSA-OAEP for the org's BYOK certificate and uploaded as a
TenantSecret with the connection's own login (deploy_username, else verify_username), who needs
the Manage Encryption Keys permission.

    vault write <mount>/connections/<name>/tenant-secrets/data certificate_name=Vault_BYOK rotation_period=720h
    vault write -f <mount>/connections/<name>/tenant-secrets/data/rotate

Reads show the settings, the active version, the rotation in flight and the last error. Delete
is refused while Salesforce holds versions Vault manages (their exports would be lost).
`

const tenantSecretRotateHelp = `
Generates a new tenant secret, seals it in Vault, wraps it for the BYOK certificate and uploads
it. It becomes the active secret and the previous active one is archived. The rotation is
recorded before each call to Salesforce: a rotation cut short (crash, outage) resumes with the
same secret on the next rotate or periodic run, after looking at Salesforce for its upload.
Salesforce refusals (too soon for the type, 50 secrets reached, bad certificate, hash mismatch)
answer 400 with what to do.
`

const tenantSecretVersionsHelp = `
The version table: version, status (active, archived, destroyed), salesforce_id (02G…), source
(vault), key_manager, created_at, modified_at and hash_sha256 (base64 of the secret's SHA-256,
the value Salesforce checks). The secret itself is never shown.
`

const tenantSecretDestroyHelp = `
destroy marks an archived version Destroyed at Salesforce: data encrypted under it becomes
unreadable. The active version cannot be destroyed. restore writes back the export value
Salesforce returned at upload (which Vault keeps sealed), making the version archived again.
`
